"""Option validation (seqtune/options.py): every bad value or combination refused in one line, before any
data or model is loaded; YAML --config values read as their flags would be; a property test of hostile argv."""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from seqtune.cli import build_parser, main
from seqtune.options import RULES, subparser

from .conftest import topic_rows


@pytest.fixture
def nothing_loaded(monkeypatch):
    """A refused option must cost nothing: reading data or loading a model fails the test."""
    import seqtune.data.files
    import seqtune.models

    def loaded(*args, **kwargs):
        raise AssertionError("data or a model was loaded for options that should have been refused")

    for module, name in ((seqtune.models, "load_model_and_tokenizer"), (seqtune.data.files, "load_files"),
                         (seqtune.data.files, "read_table")):
        monkeypatch.setattr(module, name, loaded)


@pytest.fixture
def csv(tmp_path) -> Path:
    path = tmp_path / "t.csv"
    pd.DataFrame(topic_rows(24)).to_csv(path, index=False)
    return path


def _one_line(capsys, *names: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("seqtune: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    for name in names:
        assert name in err, err
    return err


BAD_TRAIN = [
    (["--epochs", "inf"], "--epochs"), (["--epochs", "nan"], "--epochs"), (["--epochs", "0"], "--epochs"),
    (["--epochs=-inf"], "--epochs"), (["--epochs", "-inf"], "--epochs"), (["--epochs", "three"], "--epochs"),
    (["--logging-steps", "nan"], "--logging-steps"), (["--logging-steps", "0"], "--logging-steps"),
    (["--learning-rate", "inf"], "--learning-rate"), (["--learning-rate", "0"], "--learning-rate"),
    (["--weight-decay", "-0.1"], "--weight-decay"), (["--weight-decay", "nan"], "--weight-decay"),
    (["--seed", "-1"], "--seed"), (["--seed", str(2**32)], "--seed"), (["--seed", "1.5"], "--seed"),
    (["--max-length", "-5"], "--max-length"), (["--max-length", "0"], "--max-length"),
    (["--batch-size", "0"], "--batch-size"), (["--batch-size", "2.5"], "--batch-size"),
    (["--batch-size", str(2**70)], "--batch-size"), (["--eval-batch-size", "-1"], "--eval-batch-size"),
    (["--warmup-steps", "-1"], "--warmup-steps"), (["--warmup-steps", "nan"], "--warmup-steps"),
    (["--warmup-steps", "1.5"], "--warmup-steps"), (["--warmup-steps", "inf"], "--warmup-steps"),
    (["--save-total-limit", "0"], "--save-total-limit"),
    (["--gradient-accumulation-steps", "0"], "--gradient-accumulation-steps"),
    (["--max-steps", "0"], "--max-steps"), (["--max-steps", "-7"], "--max-steps"),
    (["--text-column", "a", "--text-column", "b", "--text-column", "c"], "--text-column"),
    (["--text-column="], "--text-column"), (["--label-column", " "], "--label-column"),
    (["--output-dir="], "--output-dir"), (["--model="], "--model"), (["--metric", "nope"], "--metric"),
    (["--save-strategy", "sometimes"], "--save-strategy"), (["--epochz", "3"], "--epochz"),
    (["--torch-compile", "fastest"], "--torch-compile"),
    (["--label-separator="], "--label-separator: expected the character(s) between labels"),
    (["--label-names="], "--label-names: expected a file of names"),
]


@pytest.mark.parametrize("extra, option", BAD_TRAIN)
def test_bad_train_option_is_one_line_before_anything_loads(extra, option, csv, tmp_path, nothing_loaded, capsys):
    argv = ["train", "--train", str(csv), "--validation-split", "0.25", "--output-dir", str(tmp_path / "out"), *extra]
    assert main(argv) == 2
    _one_line(capsys, option)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("split", ["1.5", "nan", "0", "1", "-0.1"])
def test_bad_validation_split(split, csv, nothing_loaded, capsys):
    assert main(["train", "--train", str(csv), f"--validation-split={split}"]) == 2
    _one_line(capsys, "--validation-split", "between 0 and 1")


# Combinations: contradictions are refused, and so are options that would be silently ignored.
@pytest.mark.parametrize("argv, message", [
    (["--train", "T", "--validation", "T", "--validation-split", "0.1"], "either --validation FILE or"),
    (["--train", "T", "--validation-split", "0.1", "--resume", "--overwrite-output-dir"], "pass one of them"),
    (["--train", "T", "--validation-split", "0.1", "--resume", "ckpt", "--overwrite-output-dir"], "pass one of them"),
    (["--train", "T", "--task", "glue/mrpc"], "either --task"),
    (["--task", "glue/mrpc", "--text-column", "a"], "--text-column applies to --train files"),
    (["--task", "glue/mrpc", "--validation-split", "0.1"], "--validation-split applies to --train files"),
    (["--task", "glue/mrpc", "--no-header"], "--header applies to --train files"),
    (["--train", "T", "--validation-split", "0.1", "--data-dir", "d"], "--data-dir applies to --task"),
    (["--train", "T"], "no validation data"),
    ([], "nothing to train on"),
])
def test_combinations(argv, message, csv, nothing_loaded, capsys):
    assert main(["train", *[str(csv) if a == "T" else a for a in argv]]) == 2
    _one_line(capsys, message)


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("extra, option", [
    (["--batch-size", "0"], "--batch-size"), (["--batch-size", "-3"], "--batch-size"),
    (["--batch-size", "x"], "--batch-size"), (["--format", "xls"], "--format"),
    (["--text-column", "a", "--text-column", "b", "--text-column", "c"], "--text-column"),
])
def test_bad_predict_and_evaluate_options(command, extra, option, csv, tmp_path, nothing_loaded, capsys):
    files = (["--input", str(csv), "--output", str(tmp_path / "p.csv")] if command == "predict"
             else ["--data", str(csv)])
    assert main([command, "--model", str(tmp_path), *files, *extra]) == 2
    _one_line(capsys, option)
    assert not (tmp_path / "p.csv").exists()


def test_missing_required_option_is_one_line(capsys):
    assert main(["predict", "--model", "m"]) == 2
    _one_line(capsys, "--input", "seqtune predict --help")


def test_every_number_option_has_a_rule():
    parser = build_parser()
    for command in ("train", "predict", "evaluate"):
        for action in subparser(parser, command)._actions:
            if action.type in (int, float):
                assert action.dest in RULES, action.dest


# YAML --config: each value read as its flag would be, or refused naming the key.
@pytest.mark.parametrize("line, key", [
    ("epochs: [1, 2]", "epochs"), ("epochs: {a: 1}", "epochs"), ("epochs: .nan", "epochs"),
    ("epochs: .inf", "epochs"), ("epochs: 'three'", "epochs"), ("batch_size: true", "batch_size"),
    ("batch_size: 2.5", "batch_size"), ("batch-size: 0", "batch-size"), ("seed: -1", "seed"),
    ("learning_rate: {nested: {deeper: 1}}", "learning_rate"), ("max_steps: 0", "max_steps"),
    ("model: 5", "model"), ("output_dir: [a, b]", "output_dir"), ("validation: 1.5", "validation"),
    ("text_column: {a: 1}", "text_column"), ("text_column: [a, b, c]", "text_column"),
    ("text_column: [[a]]", "text_column"), ("text_column: []", "text_column"), ("metric: 3", "metric"),
    ("quiet: 'yes'", "quiet"), ("header: 1", "header"), ("save_strategy: sometimes", "save_strategy"),
    ("save_strategy: true", "save_strategy"), ("resume: 3", "resume"), ("epochs: null", "epochs"),
    ("batch_size: 4\nbatch-size: 8", "batch-size"),
])
def test_config_value_of_the_wrong_type(line, key, csv, tmp_path, nothing_loaded, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"train: {csv}\nvalidation_split: 0.25\n{line}\n")
    assert main(["train", "--config", str(recipe)]) == 2
    _one_line(capsys, f"--config {recipe}: ", key)


@pytest.fixture
def trained_with(monkeypatch):
    """The options `train` would run with, captured instead of training."""
    import seqtune.run

    seen: list[argparse.Namespace] = []
    monkeypatch.setattr(seqtune.run, "run_train", lambda options: seen.append(options) or 0)
    return seen


def test_config_values_are_read_as_their_flags(csv, tmp_path, trained_with, nothing_loaded):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"train: {csv}\nvalidation-split: 0.25\ntext_column: text\nlabel_column: 1\n"
                      "learning_rate: 5e-5\nepochs: 2\nsave_strategy: no\nwarmup_steps: 0.1\nresume: false\n"
                      "metric: accuracy\nmax_steps: -1\n")
    assert main(["train", "--config", str(recipe)]) == 0
    options = trained_with[-1]
    assert options.text_column == ["text"] and options.label_column == ["1"] and options.metric == ["accuracy"]
    assert options.learning_rate == 5e-5 and options.epochs == 2.0 and isinstance(options.epochs, float)
    assert options.save_strategy == "no" and options.warmup_steps == 0.1 and options.resume is None
    # Flags win: a repeated flag replaces the file's list, and a flag beats the file's contradicting option.
    assert main(["train", "--config", str(recipe), "--text-column", "a", "--text-column", "b",
                 "--validation", str(csv), "--resume"]) == 0
    options = trained_with[-1]
    assert options.text_column == ["a", "b"] and options.validation_split is None and options.resume is True


@pytest.mark.parametrize("extra", [["--warmup-steps", "0.1"], ["--warmup-steps", "10"], ["--resume"],
                                   ["--resume", "runs/x/checkpoint-4"], ["--max-steps", "-1"], ["--seed", "0"],
                                   ["--max-length", "1"], ["--text-column", "0", "--text-column", "1"]])
def test_values_that_work_today_still_pass(extra, csv, trained_with, nothing_loaded):
    assert main(["train", "--train", str(csv), "--validation-split", "0.25", *extra]) == 0


# A property: whatever mix of good and hostile values, exit 0 or 2, one short line, no file touched.
LONG = os.environ.get("SEQTUNE_LONG_TESTS") == "1"
HOSTILE = st.one_of(
    st.floats().map(repr), st.integers(-(2**70), 2**70).map(str),
    st.text(alphabet="0123456789.-+eE_xnaifNI ", max_size=6),
    st.sampled_from(["", "nan", "inf", "-inf", "1e400", "0x10", "1_0", "-0", "+1", " 1"]))
VALID = {
    "--epochs": st.floats(0.01, 5), "--learning-rate": st.floats(1e-6, 1e-2), "--weight-decay": st.floats(0, 0.1),
    "--warmup-steps": st.one_of(st.floats(0, 0.99), st.integers(0, 20)), "--logging-steps": st.integers(1, 50),
    "--batch-size": st.integers(1, 16), "--eval-batch-size": st.integers(1, 64), "--seed": st.integers(0, 2**32 - 1),
    "--gradient-accumulation-steps": st.integers(1, 4), "--save-total-limit": st.integers(1, 5),
    "--max-length": st.integers(1, 128), "--validation-split": st.floats(0.2, 0.5),
    "--max-steps": st.just(1),  # a valid run trains one step: the property stays quick
}


def _not_a_long_run(value: str) -> bool:
    """A huge --max-steps is valid and trains that long: the property keeps to short runs."""
    try:
        return not 20 < float(value) < 2**63
    except ValueError:
        return True


@st.composite
def train_argv(draw) -> list[str]:
    argv = []
    for option, valid in VALID.items():
        if option == "--max-steps" or draw(st.booleans()):
            value = str(draw(valid)) if draw(st.integers(0, 3)) else draw(
                HOSTILE.filter(_not_a_long_run) if option == "--max-steps" else HOSTILE)
            argv += [f"{option}={value}"] if draw(st.booleans()) else [option, value]
    return argv


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    pd.DataFrame(topic_rows(24)).to_csv(folder / "train.csv", index=False)
    pd.DataFrame(topic_rows(9, seed=1)).to_csv(folder / "dev.csv", index=False)
    return folder


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


RUNS = itertools.count()


@settings(max_examples=300 if LONG else 25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=train_argv())
def test_hostile_train_options_exit_0_or_2_in_one_line(argv, data_folder, tiny_model_dir, tmp_path_factory, capsys):
    before = _hashes(data_folder)
    out = tmp_path_factory.getbasetemp() / "hostile" / f"run-{next(RUNS)}"  # new per example
    validation = [] if any(a.startswith("--validation-split") for a in argv) else [
        "--validation", str(data_folder / "dev.csv")]
    code = main(["train", "--train", str(data_folder / "train.csv"), *validation, "--model", str(tiny_model_dir),
                 "--save-strategy", "no", "--quiet", "--output-dir", str(out), *argv])
    err = capsys.readouterr().err
    event(f"exit {code}")  # --hypothesis-show-statistics: how many trained, how many were refused
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err, err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) <= 3 and all(len(line) < 400 for line in lines), err
        assert lines[-1].startswith("seqtune: error:"), err
    assert _hashes(data_folder) == before


@pytest.mark.parametrize("value, expected", [(True, "default"), (False, None), ("reduce-overhead", "reduce-overhead")])
def test_a_config_file_may_switch_torch_compile_with_a_yaml_boolean(value, expected):
    from seqtune.options import check

    action = next(a for a in subparser(build_parser(), "train")._actions if a.dest == "torch_compile")
    assert check(action, value) == expected
