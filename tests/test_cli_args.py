"""The command line's optimizer, schedule, warmup and label-smoothing options: used, or refused in one line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from seqtune.cli import main

from .conftest import topic_rows


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame(topic_rows(24)).to_csv(path, index=False)
    return path


@pytest.fixture
def no_model_loaded(monkeypatch):
    """A refused option costs no model load (the options that need torch to check are checked after the data)."""
    import seqtune.models

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded for options that should have been refused")

    monkeypatch.setattr(seqtune.models, "load_model_and_tokenizer", loaded)


def _one_line(capsys, *parts):
    err = capsys.readouterr().err
    assert err.startswith("seqtune: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err


@pytest.mark.parametrize("extra, message", [
    (["--optim", "adamw_bnb_8bit"], "argument --optim: invalid choice: 'adamw_bnb_8bit'"),
    (["--lr-scheduler", "warmup_cosine"], "argument --lr-scheduler: invalid choice: 'warmup_cosine'"),
    (["--warmup-ratio", "1.5"], "--warmup-ratio: expected a fraction in [0, 1), got 1.5"),
    (["--label-smoothing=-0.1"], "--label-smoothing: expected a fraction in [0, 1), got -0.1"),
    (["--lr-scheduler-kwargs", "{min_lr"], "--lr-scheduler-kwargs: expected a JSON object, got '{min_lr'"),
    (["--lr-scheduler-kwargs", "[1]"], "--lr-scheduler-kwargs: expected a JSON object, got '[1]'"),
    (["--lr-scheduler", "cosine_with_min_lr"],
     "lr_scheduler_type='cosine_with_min_lr' with lr_scheduler_kwargs={}: One of min_lr or min_lr_rate"),
])
def test_bad_optimizer_and_schedule_options_are_one_line(extra, message, csv, no_model_loaded, capsys, tmp_path):
    argv = ["train", "--train", str(csv), "--validation-split", "0.25", "--output-dir", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    _one_line(capsys, message)


def test_the_options_reach_the_training(csv, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--train", str(csv), "--validation-split", "0.25", "--model", str(tiny_model_dir),
            "--output-dir", str(out), "--epochs", "1", "--save-strategy", "no", "--quiet", "--optim", "sgd",
            "--lr-scheduler", "cosine_with_min_lr", "--lr-scheduler-kwargs", '{"min_lr_rate": 0.1}',
            "--warmup-ratio", "0.2", "--label-smoothing", "0.1"]
    assert main(argv) == 0, capsys.readouterr().err
    args = json.loads((out / "training_args.json").read_text())
    assert (args["optim"], args["lr_scheduler_type"], args["lr_scheduler_kwargs"], args["warmup_ratio"],
            args["label_smoothing_factor"]) == ("sgd", "cosine_with_min_lr", {"min_lr_rate": 0.1}, 0.2, 0.1)


def test_a_recipe_file_gives_the_schedule_options_as_a_mapping(csv, no_model_loaded, capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lr_scheduler: cosine\nlr_scheduler_kwargs:\n  nope: 1\n")
    argv = ["train", "--config", str(recipe), "--train", str(csv), "--validation-split", "0.25",
            "--output-dir", str(tmp_path / "o")]
    assert main(argv) == 2
    _one_line(capsys, "lr_scheduler_type='cosine' with lr_scheduler_kwargs={'nope': 1}:")
