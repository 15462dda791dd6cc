"""Multi-label models (thresholds, metrics, predict/evaluate, pipeline) and class weights, end to end."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from seqtune import SeqtuneError
from seqtune.cli import main
from seqtune.multilabel import WeightedLoss, class_weights, parse_class_weights, tune_thresholds
from seqtune.task import TaskSpec

from .conftest import TOPICS, multi_topic_rows, tiny_bert, topic_rows

# ---- thresholds and metrics ----------------------------------------------------------------------------------

def test_thresholds_maximise_each_labels_f1():
    scores = np.array([[0.9, 0.2], [0.6, 0.1], [0.35, 0.3], [0.3, 0.05], [0.1, 0.02]])
    truth = np.array([[1, 0], [1, 0], [1, 0], [0, 0], [0, 0]])
    tuned = tune_thresholds(scores, truth, ["a", "b"])
    assert tuned["a"] == pytest.approx(0.325)  # between 0.35 (a positive) and 0.3 (a negative): F1 = 1
    assert tuned["b"] == 0.5  # no positive row: the default stays
    predicted = scores[:, 0] >= tuned["a"]
    assert predicted.tolist() == truth[:, 0].astype(bool).tolist()


def test_multi_label_metrics_match_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss

    logits = np.array([[2.0, -1.0, 0.5], [-2.0, 1.0, -0.1], [0.3, 0.2, -3.0], [-1.0, -1.0, -1.0]])
    truth = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=float)
    spec = TaskSpec("t", "multi_label", ["a", "b", "c"], ["text"])
    assert spec.metrics == ["micro_f1", "macro_f1", "subset_accuracy", "hamming_loss"]
    got = spec.compute_metrics()((logits, truth))
    predicted = (logits >= 0).astype(int)
    assert got["micro_f1"] == pytest.approx(f1_score(truth, predicted, average="micro"))
    assert got["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert got["subset_accuracy"] == accuracy_score(truth, predicted) == 0.5
    assert got["hamming_loss"] == pytest.approx(hamming_loss(truth, predicted))
    assert [got[f"f1_{n}"] for n in "abc"] == pytest.approx(list(f1_score(truth, predicted, average=None)))
    tuned = TaskSpec("t", "multi_label", ["a", "b", "c"], ["text"], thresholds={"c": 0.7})
    assert tuned.compute_metrics()((logits, truth))["f1_c"] < got["f1_c"]  # sigmoid(0.5) = 0.62 < 0.7: c missed


def test_prediction_columns_read_sigmoid_scores_over_thresholds():
    spec = TaskSpec("t", "multi_label", ["a", "b"], ["text"], thresholds={"a": 0.8, "b": 0.2})
    logits = np.array([[1.0, -1.0], [2.0, -2.0], [-5.0, 5.0]])  # sigmoid: .73/.27, .88/.12, .007/.993
    assert spec.prediction_columns(logits)["predicted_labels"] == [["b"], ["a"], ["b"]]
    assert spec.prediction_columns(logits, threshold=0.5)["predicted_labels"] == [["a"], ["a"], ["b"]]
    scores = spec.prediction_columns(logits, all_scores=True)
    assert scores["probability_a"] == pytest.approx(1 / (1 + np.exp(-logits[:, 0])))
    big = spec.prediction_columns(np.array([[1000.0, -1000.0]]), all_scores=True)  # no overflow
    assert big["predicted_labels"] == [["a"]] and big["probability_b"][0] == 0.0
    with pytest.raises(SeqtuneError, match="--threshold applies to multi-label models"):
        TaskSpec("t", "classification", ["x", "y"], ["text"]).prediction_columns(logits, threshold=0.5)


@pytest.mark.parametrize("thresholds, message", [
    ({"a": 1.5}, r"the threshold of 'a': a threshold is a number in \[0, 1\], got 1.5"),
    ({"a": -0.1}, r"got -0.1"), ({"a": float("nan")}, "got nan"), ({"z": 0.5}, "thresholds names 'z'"),
])
def test_thresholds_outside_zero_one_are_refused(thresholds, message):
    with pytest.raises(SeqtuneError, match=message):
        TaskSpec("t", "multi_label", ["a", "b"], ["text"], thresholds=thresholds)


def test_metrics_that_do_not_score_label_sets_are_refused():
    with pytest.raises(SeqtuneError, match="--metric accuracy does not score label sets; for multi-label use micro_f1"):
        TaskSpec("t", "multi_label", ["a", "b"], ["text"], metrics=["accuracy"])


def test_a_transformers_multi_label_folder_reads_as_multi_label(tmp_path):
    model = tiny_bert(num_labels=3, problem_type="multi_label_classification",
                      id2label={0: "x", 1: "y", 2: "z"}, label2id={"x": 0, "y": 1, "z": 2})
    spec = TaskSpec.for_model_folder(tmp_path, model.config)
    assert spec.task_type == "multi_label" and spec.label_names == ["x", "y", "z"] and spec.thresholds is None


# ---- class weights ---------------------------------------------------------------------------------------------

def test_balanced_weights_are_scikit_learns_and_pos_weight_per_label():
    from sklearn.utils.class_weight import compute_class_weight

    labels = [0, 0, 0, 0, 0, 0, 1, 1, 2]
    weights = class_weights("balanced", labels, ["a", "b", "c"], multi_label=False)
    assert list(weights.values()) == pytest.approx(compute_class_weight("balanced", classes=np.arange(3), y=labels))
    multi_hot = [[1, 0, 1], [0, 0, 1], [0, 0, 1], [1, 0, 1]]
    assert class_weights("balanced", multi_hot, ["a", "b", "c"], multi_label=True) == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert class_weights("balanced", [[1, 0], [0, 0], [0, 1], [0, 0]], ["a", "b"], True) == {"a": 3.0, "b": 3.0}
    assert class_weights({"b": 4.0}, labels, ["a", "b", "c"], False) == {"a": 1.0, "b": 4.0, "c": 1.0}


@pytest.mark.parametrize("value, message", [
    ("pos=0", "the weight of 'pos' must be a number from 1e-06 to 1e\\+06 \\(beyond, float32 losses overflow or "
              "vanish\\), got '0'"), ("pos=-1", "got '-1'"),
    ("pos=inf", "got 'inf'"), ("pos=nan", "got 'nan'"), ("pos", "expected 'balanced' or NAME=WEIGHT pairs"),
    ("pos=1e39", "got '1e39'"), ("pos=1e-50", "got '1e-50'"), ("pos=1_000", "got '1_000'"), ({"pos": 1e7}, "got 1"),
    ("pos=1,pos=2", "the class 'pos' is given twice"), ({"pos": True}, "got True"), ({}, "expected 'balanced'"),
])
def test_bad_weights_are_refused(value, message):
    with pytest.raises(SeqtuneError, match=message):
        parse_class_weights(value)


def test_unknown_class_in_weights():
    with pytest.raises(SeqtuneError, match=r"--class-weights names 'maybe', which is not a label of this data \(neg, "
                                           r"pos\)"):
        class_weights({"maybe": 2.0}, [0, 1], ["neg", "pos"], False)


def test_weighted_loss_is_torchs_weighted_cross_entropy_and_pos_weight_bce():
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    weights = [0.5, 2.0, 1.5]
    expected = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights), label_smoothing=0.1)(logits, labels)
    got = WeightedLoss(weights, multi_label=False, label_smoothing=0.1)({"logits": logits}, labels,
                                                                       num_items_in_batch=6)
    assert torch.allclose(got, expected)
    targets = torch.tensor([[1, 0, 1], [0, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=torch.float)
    bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weights))(logits, targets)
    assert torch.allclose(WeightedLoss(weights, multi_label=True)((logits,), targets), bce)


# ---- end to end from the command line ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """One tiny multi-label run on "|"-joined topic labels."""
    folder = tmp_path_factory.mktemp("multilabel")
    pd.DataFrame(multi_topic_rows(320, seed=1)).to_csv(folder / "train.csv", index=False)
    pd.DataFrame(multi_topic_rows(60, seed=2)).to_csv(folder / "dev.csv", index=False)
    out = folder / "run"
    code = main(["train", "--train", str(folder / "train.csv"), "--validation", str(folder / "dev.csv"),
                 "--model", str(tiny_model_dir), "--epochs", "15", "--batch-size", "16", "--learning-rate", "5e-3",
                 "--output-dir", str(out), "--quiet", "--logging-steps", "50", "--save-total-limit", "1"])
    assert code == 0
    return folder, out


def test_training_writes_a_multi_label_folder_with_tuned_thresholds(trained, capsys):
    _, out = trained
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["id2label"] == {"0": "food", "1": "sports", "2": "tech"}
    saved = json.loads((out / "seqtune.json").read_text())
    assert saved["task_type"] == "multi_label" and saved["label_separator"] == "|"
    assert set(saved["thresholds"]) == {"food", "sports", "tech"} and all(0 < t < 1 for t in
                                                                          saved["thresholds"].values())
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_micro_f1"] > 0.7 and {"eval_f1_food", "eval_hamming_loss"} <= set(results)
    report = (out / "report.md").read_text()
    assert "- thresholds (each label's, tuned on validation): food " in report and "no label: 80" in report
    assert json.loads((out / "run.json").read_text())["thresholds"] == saved["thresholds"]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_predict_writes_label_lists_and_scores(trained, suffix):
    folder, out = trained
    pd.DataFrame([{"text": "goal team today we"}, {"text": "pasta soup and laptop code"}, {"text": "the a we"}]) \
        .to_csv(folder / "new.csv", index=False)
    target = folder / f"p{suffix}"
    assert main(["predict", "--model", str(out), "--input", str(folder / "new.csv"), "--output", str(target),
                 "--all-scores", "--quiet"]) == 0
    if suffix == ".jsonl":
        rows = pd.read_json(target, lines=True)
        assert rows["predicted_labels"].tolist()[:2] == [["sports"], ["food", "tech"]]
    else:
        rows = pd.read_csv(target, keep_default_na=False)
        assert rows["predicted_labels"].tolist()[:2] == ["sports", "food|tech"]
    assert {"probability_food", "probability_sports", "probability_tech"} <= set(rows.columns)
    assert main(["predict", "--model", str(out), "--input", str(folder / "new.csv"), "--output", str(target),
                 "--threshold", "0", "--quiet"]) == 0
    every = pd.read_csv(target)["predicted_labels"] if suffix == ".csv" else \
        pd.read_json(target, lines=True)["predicted_labels"].map("|".join)
    assert every.tolist() == ["food|sports|tech"] * 3


def test_evaluate_on_labels_and_on_zero_one_columns(trained, capsys):
    folder, out = trained
    assert main(["evaluate", "--model", str(out), "--data", str(folder / "dev.csv"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    first = float(printed.split("micro_f1: ")[1].split()[0])
    assert "subset_accuracy:" in printed and "f1_tech:" in printed
    dev = pd.read_csv(folder / "dev.csv", keep_default_na=False)
    for name in TOPICS:
        dev[name] = dev["label"].map(lambda cell, name=name: int(name in cell.split("|")))
    dev.drop(columns="label").to_csv(folder / "columns.csv", index=False)
    assert main(["evaluate", "--model", str(out), "--data", str(folder / "columns.csv"), "--quiet"]) == 0
    assert float(capsys.readouterr().out.split("micro_f1: ")[1].split()[0]) == first
    named = ["--label-column", "tech", "--label-column", "sports", "--label-column", "food"]  # any order
    assert main(["evaluate", "--model", str(out), "--data", str(folder / "columns.csv"), "--quiet", *named]) == 0
    assert float(capsys.readouterr().out.split("micro_f1: ")[1].split()[0]) == first
    assert main(["evaluate", "--model", str(out), "--data", str(folder / "columns.csv"), *named[:4]]) == 2
    err = capsys.readouterr().err  # a label left out would score as never present
    assert "--label-column: one 0/1 column per label of the model (food, sports, tech); food has none" in err


def test_transformers_pipeline_gives_every_labels_sigmoid_score(trained):
    from transformers import pipeline

    _, out = trained
    scores = pipeline("text-classification", model=str(out), top_k=None)(["goal team today we"])[0]
    assert {s["label"] for s in scores} == {"food", "sports", "tech"}
    assert max(scores, key=lambda s: s["score"])["label"] == "sports"
    assert sum(s["score"] for s in scores) != pytest.approx(1.0, abs=1e-3)  # sigmoid scores, not a softmax


@pytest.mark.parametrize("args, message", [
    (["--threshold", "1.5"], "--threshold: expected a number in [0, 1], got 1.5"),
    (["--threshold", "-0.2"], "--threshold: expected a number in [0, 1]"),
])
def test_predict_threshold_outside_zero_one(trained, capsys, args, message):
    folder, out = trained
    assert main(["predict", "--model", str(out), "--input", str(folder / "dev.csv"), "--output",
                 str(folder / "x.csv"), *args]) == 2
    assert message in capsys.readouterr().err


def test_class_weights_balanced_run_saves_and_reports_them(tmp_path, tiny_model_dir, capsys):
    rows = topic_rows(90, seed=3)
    rows = [r for i, r in enumerate(rows) if r["label"] != "tech" or i % 9 == 2]  # tech: the rare class
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "run"
    assert main(["train", "--train", str(tmp_path / "t.csv"), "--validation", str(tmp_path / "t.csv"),
                 "--model", str(tiny_model_dir), "--epochs", "1", "--output-dir", str(out), "--quiet",
                 "--class-weights", "balanced"]) == 0
    counts = pd.Series([r["label"] for r in rows]).value_counts()
    expected = {name: len(rows) / (3 * counts[name]) for name in ["food", "sports", "tech"]}
    assert json.loads((out / "run.json").read_text())["class_weights"] == pytest.approx(expected)
    shown = ", ".join(f"{name} {weight:.3g}" for name, weight in expected.items())
    assert f"- class weights in the loss: {shown}\n" in (out / "report.md").read_text()
    assert main(["train", "--train", str(tmp_path / "t.csv"), "--validation", str(tmp_path / "t.csv"),
                 "--model", str(tiny_model_dir), "--epochs", "1", "--output-dir", str(tmp_path / "r2"),
                 "--class-weights", "tech=3,junk=1"]) == 2
    assert "--class-weights names 'junk', which is not a label of this data (food, sports, tech)" in \
        capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--class-weights", "pos=0"], "--class-weights: the weight of 'pos' must be a number from 1e-06 to 1e+06"),
    (["--task", "glue/mrpc", "--label-separator", "|"], "--label-separator applies to --train files"),
])
def test_bad_options_before_any_data(tmp_path, capsys, args, message):
    train = [] if "--task" in args else ["--train", str(tmp_path / "none.csv"), "--validation-split", "0.2"]
    assert main(["train", *train, *args]) == 2
    assert message in capsys.readouterr().err


def test_class_weights_from_a_yaml_mapping(tmp_path):
    from seqtune.cli import _with_config, build_parser
    from seqtune.options import validate

    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: t.csv\nvalidation-split: 0.2\nclass-weights:\n  pos: 3\n  neg: 1\n")

    parser = build_parser()
    argv = ["train", "--config", str(recipe)]
    options, only = _with_config(parser, argv, parser.parse_args(argv))
    assert validate("train", options, only).class_weights == {"pos": 3.0, "neg": 1.0}
    recipe.write_text("train: t.csv\nvalidation-split: 0.2\nclass-weights:\n  pos: -3\n")
    with pytest.raises(SeqtuneError, match="r.yaml: class-weights: the weight of 'pos' must be a number from 1e-06 "
                                           "to 1e\\+06 .*got -3"):
        _with_config(parser, argv, parser.parse_args(argv))


def test_yaml_spellings_of_class_weights_are_read_or_explained(tmp_path):
    from seqtune.cli import _with_config, build_parser
    from seqtune.options import validate

    recipe, parser = tmp_path / "r.yaml", build_parser()
    argv = ["train", "--config", str(recipe)]
    recipe.write_text("train: t.csv\nvalidation-split: 0.2\nclass-weights:\n  1.0: 3\n  0: 1\n")
    options, only = _with_config(parser, argv, parser.parse_args(argv))
    assert validate("train", options, only).class_weights == {"1": 3.0, "0": 1.0}  # as label cells read 1.0
    recipe.write_text("train: t.csv\nvalidation-split: 0.2\nclass-weights: [1, 3]\n")
    with pytest.raises(SeqtuneError, match=r"class-weights: expected 'balanced' or weights by class such as "
                                           r"'pos=3,neg=1' \(or a YAML mapping\), got a list \[1, 3\]"):
        _with_config(parser, argv, parser.parse_args(argv))
    with pytest.raises(SeqtuneError, match=r"names 'True', which is not a label of this data \(no, yes\); YAML reads "
                                           "yes/no/on/off as true/false: quote the name"):
        class_weights(parse_class_weights({True: 3, False: 1}), [0, 1], ["no", "yes"], False)
