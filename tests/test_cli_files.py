"""Your own data end to end: train from files, predict, evaluate, pipeline, report, config."""

import json

import pandas as pd
import pytest

from seqtune.cli import main

from .conftest import topic_rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """One tiny run on a made-up 3-topic CSV, shared by the tests below."""
    folder = tmp_path_factory.mktemp("files")
    pd.DataFrame(topic_rows(240, seed=1)).to_csv(folder / "train.csv", index=False)
    pd.DataFrame(topic_rows(60, seed=2)).to_csv(folder / "dev.csv", index=False)
    out = folder / "run"
    code = main(["train", "--train", str(folder / "train.csv"), "--validation", str(folder / "dev.csv"),
                 "--model", str(tiny_model_dir), "--epochs", "12", "--batch-size", "16", "--learning-rate", "5e-3",
                 "--output-dir", str(out), "--quiet", "--logging-steps", "5"])
    assert code == 0
    return folder, out


def test_training_from_a_csv_learns_and_writes_its_files(trained):
    folder, out = trained
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_accuracy"] > 0.9 and {"eval_macro_f1"} <= set(results)
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "food", "1": "sports", "2": "tech"}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r][:3] == [5, 10, 15]
    assert sum("eval_loss" in r for r in records) == 12
    report = (out / "report.md").read_text()
    assert "## Confusion matrix" in report and "| food |" in report and "train: 240 rows" in report
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: text-classification")
    assert "type: accuracy" in card


def test_curves_png_opens_with_the_expected_axes(trained):
    import matplotlib.image

    from seqtune.report import plot_curves, read_metrics

    folder, out = trained
    image = matplotlib.image.imread(out / "training_curves.png")
    assert image.shape[0] > 300 and image.shape[1] > 1000
    axes = plot_curves(read_metrics(out), folder / "again.png")
    assert axes == [("Loss", "optimizer step", "loss"), ("Learning rate", "optimizer step", "learning rate"),
                    ("Evaluation metrics", "optimizer step", "value")]
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.md").is_file()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_predict_round_trip_names_and_probabilities(trained, suffix):
    folder, out = trained
    pd.DataFrame([{"text": "goal team today we"}, {"text": "pasta soup and some"}]).to_csv(
        folder / "new.csv", index=False)
    target = folder / f"predicted{suffix}"
    assert main(["predict", "--model", str(out), "--input", str(folder / "new.csv"), "--output", str(target),
                 "--all-scores", "--quiet"]) == 0
    rows = pd.read_csv(target) if suffix == ".csv" else pd.read_json(target, lines=True)
    assert rows["predicted_label"].tolist() == ["sports", "food"]
    assert ((rows["probability"] > 0.34) & (rows["probability"] <= 1)).all()
    total = rows[["probability_food", "probability_sports", "probability_tech"]].sum(axis=1)
    assert total.round(5).eq(1).all()


def test_evaluate_prints_metrics(trained, capsys):
    folder, out = trained
    assert main(["evaluate", "--model", str(out), "--data", str(folder / "dev.csv"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy:" in printed and "macro_f1:" in printed
    shown = dict(line.strip().split(": ") for line in printed.splitlines()[1:])
    results = json.loads((out / "all_results.json").read_text())  # the run's last evaluation, of the same rows
    assert float(shown["loss"]) == pytest.approx(results["eval_loss"], abs=2e-4)
    assert float(shown["accuracy"]) == pytest.approx(results["eval_accuracy"], abs=1e-4)


def test_evaluate_refuses_ids_for_classes_a_run_on_files_numbered_itself(trained, tmp_path, capsys):
    folder, out = trained
    dev = pd.read_csv(folder / "dev.csv")
    dev["label"] = dev["label"].map({"sports": 0, "food": 1, "tech": 2})  # a numbering the model never saw
    dev.to_csv(tmp_path / "ids.csv", index=False)
    assert main(["evaluate", "--model", str(out), "--data", str(tmp_path / "ids.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "row 1: label '0' is not one of the training labels (food, sports, tech)" in err and err.count("\n") == 1


def test_resume_with_another_seed_or_other_rows_is_refused(trained, tmp_path, capsys):
    import shutil

    folder, out = trained
    run = shutil.copytree(out, tmp_path / "run")
    pd.DataFrame(topic_rows(240, seed=9)).to_csv(tmp_path / "other.csv", index=False)
    common = ["train", "--validation", str(folder / "dev.csv"), "--model", str(run), "--epochs", "12",
              "--batch-size", "16", "--learning-rate", "5e-3", "--output-dir", str(run), "--quiet", "--resume"]
    for extra, says in (([ "--train", str(folder / "train.csv"), "--seed", "7"], "seed 42 there, 7 here"),
                        (["--train", str(tmp_path / "other.csv")], "the training rows differ")):
        assert main([*common, *extra]) == 2
        err = capsys.readouterr().err
        assert "comes from another recipe" in err and says in err and err.count("\n") == 1, err
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in out.iterdir())


def test_transformers_pipeline_loads_the_output(trained):
    from transformers import pipeline

    folder, out = trained
    classifier = pipeline("text-classification", model=str(out), device="cpu")
    assert classifier("coach league goal match")[0]["label"] == "sports"


def test_regression_and_validation_split_from_config_with_override(tmp_path, tiny_model_dir, capsys):
    rows = [{"sentence1": f"{'very ' * (i % 4)}good", "sentence2": "fine", "score": (i % 4) / 3} for i in range(60)]
    pd.DataFrame(rows).to_json(tmp_path / "scores.jsonl", orient="records", lines=True)
    (tmp_path / "recipe.yaml").write_text(
        f"train: {tmp_path / 'scores.jsonl'}\nvalidation-split: 0.2\nmodel: {tiny_model_dir}\n"
        "epochs: 1\nbatch_size: 4\nquiet: true\nsave_strategy: 'no'\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "recipe.yaml"), "--epochs", "2", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "holding out 12 of the training rows" in printed and "pearson=" in printed
    args = json.loads((out / "run.json").read_text())["args"]
    assert args["num_train_epochs"] == 2 and args["per_device_train_batch_size"] == 4
    config = json.loads((out / "config.json").read_text())
    assert len(config["id2label"]) == 1 and config["problem_type"] == "regression"


@pytest.mark.parametrize("argv, message", [
    (["train", "--train", "missing.csv", "--validation-split", "0.1"], "missing.csv: no such file"),
    (["train", "--task", "glue/mrpc", "--train", "x.csv"], "either --task"),
    (["train"], "nothing to train on"),
    (["predict", "--model", "/nonexistent", "--input", "a.csv", "--output", "b.csv"], "not a trained model"),
    (["train", "--config", "/nonexistent.yaml"], "--config /nonexistent.yaml"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unknown_config_key(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text("epochz: 3\n")
    assert main(["train", "--config", str(tmp_path / "r.yaml")]) == 2
    assert "unknown option 'epochz'" in capsys.readouterr().err


NEWS = {"Business": ["Shares of the retailer fell sharply after it cut its profit forecast for the year",
                     "The central bank kept interest rates unchanged and signalled caution about inflation",
                     "A merger between the two airlines was approved by regulators on Monday morning"],
        "Sports": ["The home side scored twice in the final ten minutes to win the cup final",
                   "She retained her title after a five set match that lasted nearly four hours",
                   "The coach was sacked after the team lost six league games in a row"],
        "Science": ["Astronomers detected water vapour in the atmosphere of a distant planet",
                    "A new vaccine trial showed strong protection in older adults, researchers said",
                    "The probe sent back images of craters near the south pole of the moon"]}


def _news_rows(n: int, seed: int) -> list[tuple[str, str]]:
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = list(NEWS)[i % 3]
        rows.append((f"{rng.choice(NEWS[label])} ({rng.randint(1, 999)})", label))
    return rows


def test_headerless_tsv_of_long_texts_and_string_labels_trains_on_every_row(tmp_path, tiny_model_dir, capsys):
    for name, n, seed in (("train.tsv", 60, 1), ("dev.tsv", 15, 2)):
        (tmp_path / name).write_text("".join(f"{text}\t{label}\n" for text, label in _news_rows(n, seed)))
    out = tmp_path / "run"
    assert main(["train", "--train", str(tmp_path / "train.tsv"), "--validation", str(tmp_path / "dev.tsv"),
                 "--model", str(tiny_model_dir), "--epochs", "1", "--batch-size", "8", "--quiet",
                 "--output-dir", str(out)]) == 0
    assert "seqtune: 60 examples" in capsys.readouterr().out  # the first row is data, not a header
    run = json.loads((out / "run.json").read_text())
    assert run["data"]["train"]["rows"] == 60 and run["label_names"] == ["Business", "Science", "Sports"]
    assert json.loads((out / "seqtune.json").read_text())["text_columns"] == [0]
    # Files to label are read as the training files were: a short first text is a row, not a header.
    (tmp_path / "new.tsv").write_text("nice\nthe coach was sacked\nwater on the moon\n")
    assert main(["predict", "--model", str(out), "--input", str(tmp_path / "new.tsv"), "--output",
                 str(tmp_path / "p.csv"), "--quiet"]) == 0
    assert pd.read_csv(tmp_path / "p.csv")["0"].tolist() == ["nice", "the coach was sacked", "water on the moon"]
    assert main(["predict", "--model", str(out), "--input", str(tmp_path / "new.tsv"), "--output",
                 str(tmp_path / "q.csv"), "--quiet", "--header"]) == 0
    assert len(pd.read_csv(tmp_path / "q.csv")) == 2  # --header: the user's word wins


def test_without_matplotlib_the_run_finishes_with_a_note(tmp_path, tiny_model_dir, capsys, monkeypatch):
    import sys

    pd.DataFrame(topic_rows(30, seed=1)).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame(topic_rows(9, seed=2)).to_csv(tmp_path / "b.csv", index=False)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    out = tmp_path / "run"
    assert main(["train", "--train", str(tmp_path / "a.csv"), "--validation", str(tmp_path / "b.csv"),
                 "--model", str(tiny_model_dir), "--epochs", "1", "--quiet", "--output-dir", str(out)]) == 0
    captured = capsys.readouterr()
    assert "training_curves.png not drawn: matplotlib is not installed" in captured.out
    assert "Traceback" not in captured.err
    assert (out / "model.safetensors").is_file() and (out / "all_results.json").is_file()
    assert (out / "report.md").is_file() and "training_curves.png" not in (out / "report.md").read_text()
    assert not (out / "training_curves.png").exists()


def test_predict_and_evaluate_leave_no_temporary_folder(trained, tmp_path, monkeypatch):
    import tempfile

    folder, out = trained
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    before = sorted(p.name for p in out.iterdir())
    assert main(["predict", "--model", str(out), "--input", str(folder / "dev.csv"), "--output",
                 str(tmp_path / "p.csv"), "--quiet"]) == 0
    assert main(["evaluate", "--model", str(out), "--data", str(folder / "dev.csv"), "--quiet"]) == 0
    assert list(scratch.iterdir()) == [] and sorted(p.name for p in out.iterdir()) == before


@pytest.mark.parametrize("target, message", [("folder.csv", "is a folder; name a file"),
                                             ("dev.csv/p.csv", "is a file, not a folder")])
def test_an_unusable_output_is_refused_before_any_inference(trained, target, message, capsys, monkeypatch):
    import seqtune.trainer

    folder, out = trained
    (folder / "folder.csv").mkdir(exist_ok=True)
    monkeypatch.setattr(seqtune.trainer.Trainer, "predict", lambda *a, **k: pytest.fail("inference ran"))
    assert main(["predict", "--model", str(out), "--input", str(folder / "dev.csv"), "--output",
                 str(folder / target), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_sigterm_from_outside_stops_with_a_checkpoint_and_exit_143(tmp_path, tiny_model_dir):
    import os
    import signal
    import subprocess
    import sys

    pd.DataFrame(topic_rows(240, seed=1)).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame(topic_rows(9, seed=2)).to_csv(tmp_path / "b.csv", index=False)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "seqtune.cli", "train", "--train", str(tmp_path / "a.csv"), "--validation",
               str(tmp_path / "b.csv"), "--model", str(tiny_model_dir), "--max-steps", "400", "--batch-size", "4",
               "--logging-steps", "1", "--save-strategy", "no", "--quiet", "--output-dir", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as run:
        for line in run.stdout:  # the first logged step: the loop is running
            if line.startswith("loss="):
                break
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=120)
    assert run.returncode == 143, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("seqtune: stopped by SIGTERM at step ") and "--resume" in last and "Traceback" not in err
    step = int(last.split("at step ")[1].split(";")[0])
    assert (out / f"checkpoint-{step}" / "trainer_state.json").is_file() and step < 400
    assert main(["train", "--train", str(tmp_path / "a.csv"), "--validation", str(tmp_path / "b.csv"),
                 "--model", str(tiny_model_dir), "--max-steps", "400", "--batch-size", "4", "--logging-steps",
                 "100", "--save-strategy", "no", "--quiet", "--output-dir", str(out), "--resume"]) == 0
    assert json.loads((out / "all_results.json").read_text())["train_runtime"] > 0


def test_a_failed_write_leaves_the_old_predictions_whole(trained, tmp_path, monkeypatch, capsys):
    folder, out = trained
    target = tmp_path / "predicted.csv"
    target.write_text("yesterday's predictions\n")

    def out_of_disk(self, path, *args, **kwargs):
        with open(path, "w") as handle:
            handle.write("text,predicted_label\nhalf a ro")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", out_of_disk)
    assert main(["predict", "--model", str(out), "--input", str(folder / "dev.csv"), "--output", str(target),
                 "--quiet"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert target.read_text() == "yesterday's predictions\n" and sorted(tmp_path.iterdir()) == [target]


def test_a_torn_last_line_of_metrics_is_skipped_and_a_damaged_one_said(trained, tmp_path, capsys):
    import shutil

    folder, out = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    lines = (copy / "metrics.jsonl").read_text().splitlines()
    (copy / "metrics.jsonl").write_text("\n".join(lines) + '\n{"loss": 0.5, "ste')  # killed mid-write
    assert main(["report", str(copy)]) == 0
    (copy / "metrics.jsonl").write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    capsys.readouterr()
    assert main(["report", str(copy)]) == 2
    assert "metrics.jsonl: line 2 is not a JSON record" in capsys.readouterr().err


def test_max_length_past_the_models_positions_is_one_line(trained, tiny_model_dir, tmp_path, capsys):
    folder, _ = trained
    assert main(["train", "--train", str(folder / "train.csv"), "--validation", str(folder / "dev.csv"),
                 "--model", str(tiny_model_dir), "--max-length", "100000", "--output-dir", str(tmp_path / "o"),
                 "--quiet"]) == 2
    assert "--max-length 100000 is past the model's 128 positions" in capsys.readouterr().err


def test_damaged_or_misused_folders_and_files_are_one_line(trained, tmp_path, capsys):
    import shutil

    folder, out = trained
    assert main(["predict", "--model", str(out), "--input", str(folder / "dev.csv"), "--output",
                 str(folder / "dev.csv"), "--quiet"]) == 2
    assert "is the --input file" in capsys.readouterr().err
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    with open(damaged / "model.safetensors", "r+b") as handle:
        handle.truncate(1000)
    (damaged / "run.json").write_text("{")
    assert main(["predict", "--model", str(damaged), "--input", str(folder / "dev.csv"), "--output",
                 str(tmp_path / "p.csv"), "--quiet"]) == 2
    assert main(["report", str(damaged)]) == 2
    (tmp_path / "c.yaml").write_bytes(b"\xff\xfe\x00bad")
    assert main(["train", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("seqtune: error:") for line in err), err
    assert "cannot load model" in err[0] and "run.json is damaged" in err[1] and "not UTF-8" in err[2]


def test_resuming_with_other_label_names_is_refused(trained, tiny_model_dir, tmp_path, capsys):
    folder, _ = trained
    out = tmp_path / "run"
    assert main(["train", "--train", str(folder / "train.csv"), "--validation", str(folder / "dev.csv"),
                 "--model", str(tiny_model_dir), "--max-steps", "2", "--quiet", "--output-dir", str(out)]) == 0
    renamed = pd.read_csv(folder / "train.csv").replace({"label": {"food": "X", "sports": "Y", "tech": "Z"}})
    renamed.to_csv(tmp_path / "renamed.csv", index=False)
    dev = pd.read_csv(folder / "dev.csv").replace({"label": {"food": "X", "sports": "Y", "tech": "Z"}})
    dev.to_csv(tmp_path / "dev.csv", index=False)
    capsys.readouterr()
    assert main(["train", "--train", str(tmp_path / "renamed.csv"), "--validation", str(tmp_path / "dev.csv"),
                 "--model", str(tiny_model_dir), "--max-steps", "4", "--quiet", "--output-dir", str(out),
                 "--resume"]) == 2
    assert "was trained on the labels food, sports, tech; this data has X, Y, Z" in capsys.readouterr().err
