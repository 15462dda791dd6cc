"""Where the model goes wrong: error rows (classification, regression, multi-label), per-class scores, the
errors file of `seqtune evaluate --errors`, and the report's sections."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtune.cli import main
from seqtune.errors import SeqtuneError
from seqtune.errors_analysis import check_errors_path, error_rows, per_class_scores, worst_rows, write_errors
from seqtune.trainer import PredictionOutput

from .conftest import topic_rows

NAMES = ["food", "sports", "tech"]


def output(logits, labels) -> PredictionOutput:
    return PredictionOutput(np.asarray(logits, dtype=np.float32), np.asarray(labels), {})


def test_classification_rows_are_the_wrong_ones_surest_first():
    logits = [[3, 0, 0], [0, 5, 0], [0, 0, 1], [2, 0, 0], [0, 0, 0]]
    rows = error_rows(output(logits, [0, 2, 2, 1, -100]), ["a", "b", "c", "d", "e"], label_names=NAMES)
    assert [(r["row"], r["label"], r["predicted"]) for r in rows] == [(1, "tech", "sports"), (3, "sports", "food")]
    assert rows[0]["score"] == pytest.approx(np.exp(5) / (np.exp(5) + 2))  # the predicted class's probability
    assert rows[0]["label_score"] == pytest.approx(1 / (np.exp(5) + 2))
    assert rows[0]["score"] > rows[1]["score"]


def test_regression_lists_every_labelled_row_by_absolute_error():
    rows = error_rows(output([[0.5], [2.0], [1.0]], [0.4, 0.0, np.nan]), ["a", "b", "c"], task_type="regression",
                      text_pairs=["x", "y", "z"])
    assert [(r["row"], r["text_pair"]) for r in rows] == [(1, "y"), (0, "x")]  # the NaN label is left out
    assert rows[0]["error"] == pytest.approx(2.0) and rows[1]["predicted"] == pytest.approx(0.5)


def test_multi_label_rows_differ_in_their_set_under_each_labels_threshold():
    logits = np.log([[0.9 / 0.1, 0.2 / 0.8, 0.35 / 0.65], [0.6 / 0.4, 0.99 / 0.01, 0.1 / 0.9]])  # sigmoid = these
    labels = [[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    rows = error_rows(output(logits, labels), ["a", "b"], task_type="multi_label", label_names=NAMES,
                      thresholds={"tech": 0.3})  # row 0: tech 0.35 >= 0.3, so its set is right
    assert len(rows) == 1 and rows[0]["row"] == 1
    assert rows[0]["label"] == ["food"] and rows[0]["predicted"] == ["food", "sports"]
    assert rows[0]["extra"] == ["sports"] and rows[0]["missed"] == [] and rows[0]["score"] == pytest.approx(0.99)


def test_worst_rows_takes_a_few_per_true_class():
    rows = [{"label": "a", "score": 0.9}, {"label": "a", "score": 0.8}, {"label": "b", "score": 0.7},
            {"label": "a", "score": 0.6}]
    assert worst_rows(rows, "classification", per_class=2) == rows[:3]
    assert worst_rows(rows, "regression", limit=1) == rows[:1]


def test_per_class_scores_are_precision_recall_f1_support():
    scores = per_class_scores(output([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]], [0, 1, 1, 1]), label_names=NAMES)
    assert scores[0] == {"label": "food", "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert scores[1]["precision"] == 1.0 and scores[1]["recall"] == pytest.approx(2 / 3) and scores[1]["support"] == 3
    assert scores[2] == {"label": "tech", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    multi = per_class_scores(output([[2, -2, 2]], [[1.0, 1.0, 0.0]]), task_type="multi_label", label_names=NAMES)
    assert [(s["precision"], s["recall"], s["support"]) for s in multi] == [(1, 1, 1), (0, 0, 1), (0, 0, 0)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5), st.floats(-5, 5), st.integers(0, 1)), min_size=1, max_size=30))
def test_every_wrong_row_and_only_those_in_order(cases):
    logits = np.array([[a, b] for a, b, _ in cases], dtype=np.float32)
    labels = np.array([label for *_, label in cases])
    rows = error_rows(output(logits, labels), [str(i) for i in range(len(cases))])
    # The predicted class as predict reads it: the most probable one (logits a denormal apart tie there).
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    predicted = (shifted / shifted.sum(-1, keepdims=True)).argmax(-1)
    assert {r["row"] for r in rows} == set(np.flatnonzero(predicted != labels).tolist())
    assert all(first["score"] >= second["score"] for first, second in zip(rows, rows[1:], strict=False))
    assert all(r["score"] >= 0.5 for r in rows)  # the predicted class of two is at least as likely as the other


def test_mismatched_inputs_are_one_sentence():
    with pytest.raises(SeqtuneError, match="2 predicted rows but 1 texts"):
        error_rows(output([[1, 0], [0, 1]], [0, 1]), ["a"])
    with pytest.raises(SeqtuneError, match="no label_ids"):
        error_rows(PredictionOutput(np.zeros((1, 2)), None, {}), ["a"])


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_errors_file_round_trip(tmp_path, suffix):
    rows = [{"row": 3, "text": 'say "hi", ok', "label": ["a", "b"], "predicted": [], "score": 0.75}]
    target = tmp_path / f"errors{suffix}"
    target.write_text("old")
    write_errors(rows, target)
    if suffix == ".jsonl":
        back = pd.read_json(target, lines=True)
        assert back["label"][0] == ["a", "b"] and back["predicted"][0] == []
    else:
        back = pd.read_csv(target, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False)
        assert back["label"][0] == "a|b" and back["predicted"][0] == ""
    assert back["text"][0] == 'say "hi", ok' and back["row"][0] == 3
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no partial file left beside it


def test_errors_path_is_checked_before_anything_runs(tmp_path):
    data = tmp_path / "dev.csv"
    data.write_text("text,label\n")
    with pytest.raises(SeqtuneError, match="is the input file"):
        check_errors_path(data, data)
    with pytest.raises(SeqtuneError, match="write .csv, .tsv or .jsonl"):
        check_errors_path(tmp_path / "e.xlsx", data)
    with pytest.raises(SeqtuneError, match="is a folder"):
        (tmp_path / "e.csv").mkdir()
        check_errors_path(tmp_path / "e.csv", data)
    with pytest.raises(SeqtuneError, match="is a file, not a folder"):
        check_errors_path(data / "e.csv", tmp_path / "other.csv")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("errors")
    pd.DataFrame(topic_rows(90, seed=1)).to_csv(folder / "train.csv", index=False)
    pd.DataFrame(topic_rows(30, seed=2)).to_csv(folder / "dev.csv", index=False)
    out = folder / "run"
    assert main(["train", "--train", str(folder / "train.csv"), "--validation", str(folder / "dev.csv"), "--model",
                 str(tiny_model_dir), "--epochs", "1", "--batch-size", "16", "--learning-rate", "1e-3",
                 "--output-dir", str(out), "--quiet", "--save-strategy", "no"]) == 0
    return folder, out


def test_report_lists_per_class_scores_and_the_surest_mistakes(trained):
    _, out = trained
    run = json.loads((out / "run.json").read_text())
    assert [s["label"] for s in run["per_class"]] == NAMES and sum(s["support"] for s in run["per_class"]) == 30
    errors = run["errors"]
    assert errors["rows"] == 30 and errors["wrong"] == sum(map(sum, run["confusion"])) - sum(
        run["confusion"][i][i] for i in range(3))
    assert len(errors["shown"]) <= 9 and all(r["label"] != r["predicted"] for r in errors["shown"])
    report = (out / "report.md").read_text()
    assert "## Per-class scores (validation)" in report and "| food |" in report
    assert f"## Most confident mistakes (validation: {errors['wrong']} of 30 rows wrong" in report


def test_evaluate_writes_every_wrong_row(trained, capsys):
    folder, out = trained
    target = folder / "wrong.csv"
    assert main(["evaluate", "--model", str(out), "--data", str(folder / "dev.csv"), "--errors", str(target),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    accuracy = float(next(line for line in printed.splitlines() if "accuracy:" in line).split(":")[1])
    wrong = pd.read_csv(target)
    assert len(wrong) == round((1 - accuracy) * 30) and f"wrote {len(wrong)} wrong rows" in printed
    dev = pd.read_csv(folder / "dev.csv")  # rows counted from 1, as messages count them
    assert (dev["text"][wrong["row"] - 1].tolist() == wrong["text"].tolist())
    assert (dev["label"][wrong["row"] - 1].tolist() == wrong["label"].tolist())
    assert (wrong["label"] != wrong["predicted"]).all() and wrong["score"].is_monotonic_decreasing


def test_evaluate_refuses_to_write_errors_over_its_input(trained, capsys):
    folder, out = trained
    before = (folder / "dev.csv").read_bytes()
    assert main(["evaluate", "--model", str(out), "--data", str(folder / "dev.csv"), "--errors",
                 str(folder / "dev.csv")]) == 2
    err = capsys.readouterr().err
    assert "is the input file" in err and err.count("\n") == 1
    assert (folder / "dev.csv").read_bytes() == before


def test_regression_report_and_errors_list_the_largest_errors(tmp_path, tiny_model_dir, capsys):
    rows = [{"text": f"{'very ' * (i % 4)}good", "score": (i % 4) / 3 + (i % 7) / 100} for i in range(48)]
    pd.DataFrame(rows).to_csv(tmp_path / "scores.csv", index=False)
    out = tmp_path / "run"
    assert main(["train", "--train", str(tmp_path / "scores.csv"), "--validation-split", "0.25", "--model",
                 str(tiny_model_dir), "--epochs", "1", "--batch-size", "8", "--output-dir", str(out), "--quiet",
                 "--save-strategy", "no"]) == 0
    report = (out / "report.md").read_text()
    assert "## Largest errors (validation: the 10 largest of 12 rows)" in report
    assert main(["evaluate", "--model", str(out), "--data", str(tmp_path / "scores.csv"), "--errors",
                 str(tmp_path / "e.jsonl"), "--quiet"]) == 0
    written = pd.read_json(tmp_path / "e.jsonl", lines=True)
    assert len(written) == 48 and written["error"].is_monotonic_decreasing
    assert np.allclose(written["error"], (written["predicted"] - written["label"]).abs())


def test_multi_label_report_and_errors_show_true_and_predicted_sets(tmp_path, tiny_model_dir, capsys):
    import random

    from .conftest import FILLER, TOPICS

    rng = random.Random(0)
    rows = []
    for _ in range(60):
        labels = [t for t in TOPICS if rng.random() < 0.4]
        words = rng.sample(FILLER, 3) + [w for t in labels for w in rng.sample(TOPICS[t], 2)]
        rows.append({"text": " ".join(words), "labels": "|".join(labels)})
    pd.DataFrame(rows).to_csv(tmp_path / "ml.csv", index=False)
    out = tmp_path / "run"
    assert main(["train", "--train", str(tmp_path / "ml.csv"), "--validation-split", "0.25", "--model",
                 str(tiny_model_dir), "--epochs", "1", "--output-dir", str(out), "--quiet", "--save-strategy",
                 "no"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert [s["label"] for s in run["per_class"]] == NAMES
    assert "## Per-label scores (validation, at the saved thresholds)" in (out / "report.md").read_text()
    assert main(["evaluate", "--model", str(out), "--data", str(tmp_path / "ml.csv"), "--errors",
                 str(tmp_path / "e.tsv"), "--quiet"]) == 0
    wrong = pd.read_csv(tmp_path / "e.tsv", sep="\t", keep_default_na=False)
    assert len(wrong) > 0 and (wrong["label"] != wrong["predicted"]).all()
    source = pd.read_csv(tmp_path / "ml.csv", keep_default_na=False)
    truth = source["labels"][wrong["row"] - 1]  # rows counted from 1
    assert [set(v.split("|")) for v in wrong["label"]] == [set(v.split("|")) for v in truth]
    for _, row in wrong.iterrows():
        true, predicted = set(filter(None, row["label"].split("|"))), set(filter(None, row["predicted"].split("|")))
        assert set(filter(None, row["missed"].split("|"))) == true - predicted
        assert set(filter(None, row["extra"].split("|"))) == predicted - true
