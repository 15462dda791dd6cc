"""seqtune tune and Trainer.hyperparameter_search: trial counts, the best trial's model, pruning, a study that
continues, two processes on one study, and bad input. Tiny random BERT, tiny CSVs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtune.cli import main
from seqtune.errors import SeqtuneError
from seqtune.tune import default_compute_objective, parse_duration

from .conftest import ROOT, tiny_bert, topic_rows, toy_rows, write_csv

FAST_SPACE = "learning_rate: {type: float, low: 1e-3, high: 5e-3, log: true}\nepochs: {type: int, low: 1, high: 2}\n"


@pytest.fixture
def data(tmp_path, tiny_model_dir) -> dict[str, str]:
    space = tmp_path / "space.yaml"
    space.write_text(FAST_SPACE)
    return {"train": write_csv(tmp_path / "train.csv", topic_rows(24, 0)),
            "val": write_csv(tmp_path / "val.csv", topic_rows(12, 1)), "model": str(tiny_model_dir),
            "space": str(space)}


def _tune(data: dict[str, str], out: Path, *extra: str) -> list[str]:
    return ["tune", "--train", data["train"], "--validation", data["val"], "--model", data["model"], "--space",
            data["space"], "--batch-size", "8", "--output-dir", str(out), "--quiet", *extra]


def _study(out: Path):
    import optuna

    return optuna.load_study(study_name="seqtune", storage=f"sqlite:///{out / 'tune.db'}")


def test_tune_runs_the_trials_and_keeps_the_best_trials_model(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_tune(data, out, "--trials", "3")) == 0
    trials = _study(out).get_trials()
    assert len(trials) == 3 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    best = json.loads((out / "best_params.json").read_text())
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert best["value"] == max(t.value for t in complete)
    assert best["params"] == next(t.params for t in complete if t.number == best["trial"])
    # Only the best trial keeps its weights; the output folder's model is the best trial's.
    assert [t.number for t in trials if (out / "trials" / str(t.number) / "model.safetensors").exists()] == [
        best["trial"]]
    assert (out / "model.safetensors").read_bytes() == (out / "trials" / str(best["trial"]) /
                                                         "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--data", data["val"], "--quiet"]) == 0
    said = capsys.readouterr().out
    assert f"accuracy={best['value']:.4f}" in said.replace(": ", "=")
    report = (out / "tune_report.md").read_text()
    assert "| trial | state | learning_rate | epochs |" in report and (out / "tune_trials.png").stat().st_size > 0
    assert sum(line.startswith("| ") and line[2].isdigit() for line in report.splitlines()) == 3


def test_an_interrupted_study_continues_and_counts_its_finished_trials(data, tmp_path):
    out = tmp_path / "out"
    assert main(_tune(data, out, "--trials", "1")) == 0
    # A trial left running by a process that died (killed): failed, and its values tried again first.
    study = _study(out)
    dead = study.ask({"learning_rate": __import__("optuna").distributions.FloatDistribution(1e-3, 5e-3, log=True)})
    dead.set_user_attr("owner", f"999999999 {__import__('socket').gethostname()}")
    assert main(_tune(data, out, "--trials", "2")) == 0
    states = [t.state.name for t in _study(out).get_trials()]
    assert states.count("COMPLETE") + states.count("PRUNED") == 2 and states[1] == "FAIL"
    assert _study(out).get_trials()[2].params["learning_rate"] == dead.params["learning_rate"]
    with pytest.raises(SeqtuneError, match="holds a study of another search"):
        main(_tune(data, out, "--trials", "3", "--seed", "7", "--debug"))


def test_sigterm_while_a_trial_loads_stops_tune_in_one_line_and_the_rerun_takes_its_values(data, tmp_path,
                                                                                             monkeypatch, capsys):
    import signal

    import seqtune.models as models

    out = tmp_path / "out"
    real = models.load_model_and_tokenizer

    def signalled_while_loading(*args, **kwargs):  # the signal lands outside any training step
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(models, "load_model_and_tokenizer", signalled_while_loading)
    assert main(_tune(data, out, "--trials", "2")) == 143
    err = capsys.readouterr().err
    assert "tune stopped during a trial (0 of 2 trials finished); run the same command again" in err
    assert err.count("\n") == 1 and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    interrupted = _study(out).get_trials()[0]
    monkeypatch.undo()
    assert main(_tune(data, out, "--trials", "1")) == 0
    assert _study(out).get_trials()[1].params == interrupted.params  # its values are tried again first


def test_two_processes_share_one_study(data, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "seqtune", *_tune(data, out, "--trials", "4")]
    runs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    trials = _study(out).get_trials()
    assert len(trials) == 4 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    owners = {t.user_attrs["owner"].split()[0] for t in trials}
    assert owners == {str(run.pid) for run in runs}  # both ran trials
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4  # not the same draws twice


def test_hyperparameter_search_prunes_hopeless_trials_and_loads_the_best(tmp_path):
    import optuna

    from seqtune import Trainer, TrainingArguments

    rows = toy_rows(48)
    args = TrainingArguments(str(tmp_path / "hp"), eval_strategy="epoch", save_strategy="no", report_to="none",
                             disable_tqdm=True, per_device_train_batch_size=8, num_train_epochs=3)
    trainer = Trainer(args=args, model_init=lambda: tiny_bert(vocab_size=64), train_dataset=rows, eval_dataset=rows)

    def space(trial):  # two good trials first, then hopeless ones: the pruner stops those after one epoch
        rate = 1e-2 if trial.number < 2 else 1e-9
        return {"learning_rate": trial.suggest_float("learning_rate", rate, rate)}

    storage = f"sqlite:///{tmp_path / 's.db'}"
    best = trainer.hyperparameter_search(hp_space=space, n_trials=4, direction="minimize", storage=storage,
                                         study_name="s", pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    assert best.hyperparameters == {"learning_rate": 1e-2} and best.run_id in ("0", "1")
    study = optuna.load_study(study_name="s", storage=storage)
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE", "COMPLETE", "PRUNED", "PRUNED"]
    epochs = [len(t.intermediate_values) for t in study.get_trials()]
    assert epochs[:2] == [3, 3] and max(epochs[2:]) < 3  # the hopeless trials stopped before their last epoch
    assert best.objective == pytest.approx(best.run_summary["metrics"]["eval_loss"])
    # The trainer's model is now the best trial's: its evaluation gives the best objective again.
    assert trainer.evaluate()["eval_loss"] == pytest.approx(best.objective, rel=1e-4)
    assert sorted(Path(best.run_summary["output_dir"]).parent.iterdir())[0].name.startswith("run-")


def test_hyperparameter_search_refuses_what_it_cannot_do(tmp_path):
    from seqtune import Trainer, TrainingArguments

    rows = toy_rows(8)
    args = TrainingArguments(str(tmp_path / "x"), report_to="none", disable_tqdm=True)
    trainer = Trainer(tiny_bert(vocab_size=64), args, train_dataset=rows)
    with pytest.raises(SeqtuneError, match="needs a model_init"):
        trainer.hyperparameter_search()
    trainer = Trainer(args=args, model_init=lambda: tiny_bert(vocab_size=64), train_dataset=rows)
    with pytest.raises(SeqtuneError, match="backend 'ray' is not supported"):
        trainer.hyperparameter_search(backend="ray")


def test_default_compute_objective_is_transformers():
    assert default_compute_objective({"eval_loss": 0.5, "epoch": 1, "eval_runtime": 2.0}) == 0.5
    assert default_compute_objective({"eval_loss": 0.5, "eval_accuracy": 0.75, "eval_f1": 0.5,
                                      "eval_samples_per_second": 9.0}) == 1.25


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("45", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=8))
def test_a_duration_is_read_or_refused_in_one_line(text):
    try:
        assert parse_duration(text) > 0
    except SeqtuneError as err:
        assert "\n" not in str(err) and "--timeout" in str(err)


SPACES = {
    "learning_rate: [1, 2]": "expected {type",
    "nonsense: {type: float, low: 0, high: 1}": "not an option seqtune can search",
    "trials: {type: int, low: 1, high: 3}": "not an option seqtune can search",
    "learning_rate: {type: float, low: 1e-3}": "needs low and high",
    "learning_rate: {type: float, low: 1e-3, high: 1e-4}": "is above high",
    "learning_rate: {type: float, low: 0, high: 1e-4, log: true}": "expected a finite number > 0",
    "weight_decay: {type: float, low: 0, high: 0.1, log: true}": "log needs low > 0",
    "batch_size: {type: float, low: 8, high: 32}": "use type int",
    "batch_size: {type: categorical, choices: []}": "non-empty list",
    "batch_size: {type: categorical, choices: [8, 0]}": "expected a whole number >= 1, got 0",
    "epochs: {type: int, low: 1, high: 3, choices: [1]}": "'choices' does not apply",
    "lr_scheduler: {type: float, low: 0, high: 1}": "use type categorical",
    "warmup_ratio: {type: float, low: a, high: 0.1}": "low must be a number",
    "[1, 2]": "expected a mapping",
    "a: [": "--space",
}


@pytest.mark.parametrize(("text", "message"), SPACES.items())
def test_a_malformed_space_is_one_line_and_exit_2(data, tmp_path, capsys, text, message):
    space = tmp_path / "bad.yaml"
    space.write_text(text + "\n")
    assert main(_tune({**data, "space": str(space)}, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--trials", "0"], "--trials: expected a whole number >= 1, got 0"),
    (["--timeout", "soon"], "--timeout 'soon': expected a duration"),
    (["--resume"], "--resume does not apply to tune"),
    (["--objective", "pearson"], "--objective pearson: this run reports accuracy, macro_f1 and loss"),
    (["--epochs", "4"], "--epochs 4.0 is given, but the search space varies epochs"),
])
def test_bad_tune_options_are_one_line_and_exit_2(data, tmp_path, capsys, extra, message):
    assert main(_tune(data, tmp_path / "out", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("content", [b"garbage", b"folder", b"other sqlite"])
def test_a_study_file_that_is_not_a_study_is_refused_and_left_alone(data, tmp_path, capsys, content):
    import sqlite3

    out = tmp_path / "out"
    out.mkdir()
    study = out / "tune.db"
    if content == b"folder":
        study.mkdir()
    elif content == b"other sqlite":
        with sqlite3.connect(study) as db:
            db.execute("CREATE TABLE x (a)")
    else:
        study.write_bytes(content)
    before = study.read_bytes() if study.is_file() else None
    assert main(_tune(data, out, "--trials", "1")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("is not a seqtune study" in err or "holds files that are not" in err), err
    assert (study.read_bytes() if study.is_file() else None) == before
