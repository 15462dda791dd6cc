"""`seqtune train` keeps the best model by the first metric (or the last with --no-load-best), stops early
with --early-stopping-patience, says what it kept and why, and keeps all of it through a resume.

The validation metric is scripted (one value per evaluation) so that which epoch is best is known."""

import json
import os
import signal

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from seqtune.cli import main
from seqtune.task import TaskSpec

from .conftest import topic_rows

STEPS_PER_EPOCH = 8  # 120 rows, batch 16


@pytest.fixture
def data(tmp_path):
    pd.DataFrame(topic_rows(120, seed=1)).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(topic_rows(30, seed=2)).to_csv(tmp_path / "dev.csv", index=False)
    return tmp_path


def script_accuracy(monkeypatch, values: list[float], on_call: dict | None = None) -> list[int]:
    """Evaluation i scores values[i] (the last repeated); on_call[i] runs at evaluation i. Returns the count."""
    calls = [0]

    def compute_metrics(self, rows=None):
        def scripted(eval_pred):
            index = calls[0]
            calls[0] += 1
            if on_call and index in on_call:
                on_call[index]()
            value = values[min(index, len(values) - 1)]
            return {"accuracy": value, "macro_f1": value}

        return scripted

    monkeypatch.setattr(TaskSpec, "compute_metrics", compute_metrics)
    return calls


def train(data, out, tiny_model_dir, *extra: str) -> int:
    return main(["train", "--train", str(data / "train.csv"), "--validation", str(data / "dev.csv"),
                 "--model", str(tiny_model_dir), "--batch-size", "16", "--learning-rate", "5e-3",
                 "--output-dir", str(out), "--quiet", "--logging-steps", "4", *extra])


def weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def same(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_the_best_epoch_is_kept_saved_and_said_and_early_stopping_ends_the_run(data, tiny_model_dir, monkeypatch,
                                                                               capsys):
    script_accuracy(monkeypatch, [0.5, 0.9, 0.6, 0.7, 0.95, 0.99])
    out = data / "run"
    assert train(data, out, tiny_model_dir, "--epochs", "6", "--early-stopping-patience", "2",
                 "--early-stopping-threshold", "0.05", "--save-total-limit", "1") == 0
    best = f"checkpoint-{2 * STEPS_PER_EPOCH}"
    printed = capsys.readouterr().out
    assert (f"best model: epoch 2 (checkpoint {best}), accuracy 0.9000; stopped early at epoch 4: no improvement "
            "> 0.05 for 2 evaluations") in printed
    # Stopped after 4 of 6 epochs; the best checkpoint survived a limit of 1 beside the newest.
    kept = sorted(p.name for p in out.glob("checkpoint-*"))
    assert kept == sorted([best, f"checkpoint-{4 * STEPS_PER_EPOCH}"])
    assert same(weights(out), weights(out / best))  # the output folder holds the best model
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_accuracy"] == 0.9  # the kept model's evaluation, not the last one's
    run = json.loads((out / "run.json").read_text())
    assert run["best_model"]["kept"] == "best" and run["best_model"]["best"]["step"] == 2 * STEPS_PER_EPOCH
    assert run["best_model"]["early_stopping"]["stopped"] is True
    assert run["args"]["metric_for_best_model"] == "accuracy" and run["args"]["load_best_model_at_end"]
    report = (out / "report.md").read_text()
    assert f"- model kept: best model: epoch 2 (checkpoint {best})" in report and "stopped early at epoch 4" in report
    # Resumed, a run that stopped early is finished: no epoch more, no checkpoint more.
    state = json.loads((out / f"checkpoint-{4 * STEPS_PER_EPOCH}" / "trainer_state.json").read_text())
    assert train(data, out, tiny_model_dir, "--epochs", "6", "--early-stopping-patience", "2",
                 "--early-stopping-threshold", "0.05", "--save-total-limit", "1", "--resume") == 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == kept
    assert json.loads((out / f"checkpoint-{4 * STEPS_PER_EPOCH}" / "trainer_state.json").read_text()) == state
    assert "stopped early at epoch 4" in capsys.readouterr().out


def test_no_load_best_keeps_the_last_model_and_names_the_best(data, tiny_model_dir, monkeypatch, capsys):
    script_accuracy(monkeypatch, [0.5, 0.9, 0.6])
    out = data / "run"
    assert train(data, out, tiny_model_dir, "--epochs", "3", "--no-load-best") == 0
    printed = capsys.readouterr().out
    assert (f"last model kept (epoch 3, --no-load-best); the best was epoch 2 (checkpoint "
            f"checkpoint-{2 * STEPS_PER_EPOCH}), accuracy 0.9000") in printed
    assert same(weights(out), weights(out / f"checkpoint-{3 * STEPS_PER_EPOCH}"))
    assert json.loads((out / "all_results.json").read_text())["eval_accuracy"] == 0.6
    script_accuracy(monkeypatch, [0.5, 0.9, 0.6])  # no checkpoints either: the reason is --no-load-best
    assert train(data, data / "bare", tiny_model_dir, "--epochs", "3", "--no-load-best", "--save-strategy", "no") == 0
    assert "last model kept (epoch 3, --no-load-best)\n" in capsys.readouterr().out


def test_without_checkpoints_the_best_weights_are_kept_in_memory(data, tiny_model_dir, monkeypatch, capsys):
    script_accuracy(monkeypatch, [0.5, 0.9, 0.6])
    with_checkpoints = data / "saved"
    assert train(data, with_checkpoints, tiny_model_dir, "--epochs", "3") == 0
    script_accuracy(monkeypatch, [0.5, 0.9, 0.6])
    in_memory = data / "in-memory"
    assert train(data, in_memory, tiny_model_dir, "--epochs", "3", "--save-strategy", "no") == 0
    assert "best model: epoch 2 (its weights kept in memory), accuracy 0.9000" in capsys.readouterr().out
    assert not list(in_memory.glob("checkpoint-*"))
    # The same seeded run: the weights kept in memory are the best checkpoint's, bit for bit.
    best = weights(with_checkpoints / f"checkpoint-{2 * STEPS_PER_EPOCH}")
    assert same(weights(in_memory), best) and not same(weights(in_memory), weights(with_checkpoints / "checkpoint-24"))


def test_a_best_kept_in_memory_before_a_resume_is_said_lost_not_claimed(data, tiny_model_dir, monkeypatch, capsys):
    stop = {2: lambda: os.kill(os.getpid(), signal.SIGUSR1)}  # during the 3rd evaluation: the best was the 2nd
    script_accuracy(monkeypatch, [0.5, 0.9, 0.6, 0.7, 0.8], stop)
    out = data / "run"
    assert train(data, out, tiny_model_dir, "--epochs", "4", "--save-strategy", "no") == 143
    capsys.readouterr()
    assert train(data, out, tiny_model_dir, "--epochs", "4", "--save-strategy", "no", "--resume") == 0
    assert ("last model kept (epoch 4): the best, epoch 2, accuracy 0.9000, came before the resume and its weights "
            "were only in memory") in capsys.readouterr().out
    run = json.loads((out / "run.json").read_text())
    assert run["best_model"]["kept"] == "last" and run["best_model"]["best"]["step"] == 2 * STEPS_PER_EPOCH


def test_a_stopped_run_resumes_with_its_patience_and_its_best_checkpoint(data, tiny_model_dir, monkeypatch, capsys):
    # Best at evaluation 1; the patience of 3 runs out at evaluation 4 only if the count survives the resume
    # (a fresh count would take evaluation 3 as a new best and stop at 6).
    stop = {1: lambda: os.kill(os.getpid(), signal.SIGUSR1)}  # as SLURM's --signal, during the 2nd evaluation
    calls = script_accuracy(monkeypatch, [0.9, 0.5, 0.5, 0.5, 0.5, 0.5], stop)
    out = data / "run"
    assert train(data, out, tiny_model_dir, "--epochs", "6", "--early-stopping-patience", "3") == 143
    assert calls[0] == 2
    capsys.readouterr()
    assert train(data, out, tiny_model_dir, "--epochs", "6", "--early-stopping-patience", "3", "--resume") == 0
    best = f"checkpoint-{STEPS_PER_EPOCH}"
    assert (f"best model: epoch 1 (checkpoint {best}), accuracy 0.9000; stopped early at epoch 4: no improvement "
            "> 0 for 3 evaluations") in capsys.readouterr().out
    assert same(weights(out), weights(out / best))


@pytest.mark.parametrize("args, message", [
    (["--early-stopping-threshold", "0.01"], "--early-stopping-threshold applies with --early-stopping-patience"),
    (["--early-stopping-patience", "0"], "--early-stopping-patience: expected a whole number >= 1, got 0"),
    (["--early-stopping-patience", "2", "--early-stopping-threshold", "-1"],
     "--early-stopping-threshold: expected a finite number >= 0"),
    (["--save-strategy", "no", "--fsdp"], "--fsdp with --save-strategy no cannot keep the best model"),
    (["--save-strategy", "steps", "--fsdp"], "--fsdp with --save-strategy steps cannot keep the best model"),
])
def test_combinations_that_cannot_keep_the_best_model_are_one_line(args, message, data, capsys):
    code = main(["train", "--train", str(data / "train.csv"), "--validation", str(data / "dev.csv"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_save_strategy_steps_keeps_the_best_in_memory_unless_no_load_best(data, capsys):
    from seqtune.bestmodel import KeepBestInMemory, callbacks
    from seqtune.cli import build_parser
    from seqtune.options import validate

    common = ["train", "--train", str(data / "train.csv"), "--validation", str(data / "dev.csv"),
              "--save-strategy", "steps"]
    options = validate("train", build_parser().parse_args(common))
    assert isinstance(callbacks(options, None)[1], KeepBestInMemory)
    assert validate("train", build_parser().parse_args([*common, "--no-load-best"])).load_best is False


def test_describe_names_each_outcome():
    from seqtune.bestmodel import describe

    kept = {"metric": "pearson", "kept": "best", "last_epoch": 3.0, "early_stopping": None,
            "best": {"epoch": 1.5, "step": 30, "value": 0.81234, "checkpoint": "checkpoint-30"}}
    assert describe(kept) == "best model: epoch 1.50 (checkpoint checkpoint-30), pearson 0.8123"
    kept["early_stopping"] = {"patience": 2, "threshold": 0.0, "stopped": False, "epoch": None}
    assert describe(kept).endswith("; early stopping (no improvement > 0 for 2 evaluations) did not trigger")
    assert describe({**kept, "best": None, "kept": "last", "early_stopping": None}) == (
        "last model kept (epoch 3): no evaluation to choose a best one by")
