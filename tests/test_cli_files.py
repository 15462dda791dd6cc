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


def test_tracker_that_is_not_installed_is_said(tmp_path):
    from seqtune import SeqtuneError, Trainer, TrainingArguments

    from .conftest import tiny_bert

    with pytest.raises(SeqtuneError, match="report_to='wandb' needs the wandb package"):
        Trainer(tiny_bert(), TrainingArguments(str(tmp_path), report_to="wandb"))
