"""seqtune train --folds K and --seeds: stratified folds, out-of-fold predictions once per row, mean and standard
deviation, and bad input in one line."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from seqtune.cli import main
from seqtune.crossval import fold_indices, mean_std, parse_seeds
from seqtune.errors import SeqtuneError

from .conftest import multi_topic_rows, topic_rows, write_csv


def _train(tmp_path: Path, tiny_model_dir: Path, *extra: str) -> list[str]:
    return ["train", "--train", write_csv(tmp_path / "train.csv", topic_rows(30, 0)), "--model", str(tiny_model_dir),
            "--epochs", "1", "--learning-rate", "3e-3", "--output-dir", str(tmp_path / "out"), "--quiet", *extra]


def test_folds_give_each_row_one_out_of_fold_prediction_and_the_mean_and_std(tmp_path, tiny_model_dir):
    assert main(_train(tmp_path, tiny_model_dir, "--folds", "3")) == 0
    out = tmp_path / "out"
    oof = pd.read_csv(out / "oof_predictions.csv")
    assert sorted(oof["row"]) == list(range(1, 31)) and sorted(set(oof["fold"])) == [1, 2, 3]
    assert {"text", "label", "predicted_label", "probability_sports"} <= set(oof.columns)
    rows = pd.read_csv(tmp_path / "train.csv")
    assert list(oof.sort_values("row")["text"]) == list(rows["text"])  # each row's own text and label
    assert list(oof.sort_values("row")["label"]) == list(rows["label"])
    results = json.loads((out / "crossval.json").read_text())
    accuracies = [run["metrics"]["eval_accuracy"] for run in results["runs"]]
    flat = json.loads((out / "all_results.json").read_text())
    assert flat["eval_accuracy_mean"] == pytest.approx(statistics.mean(accuracies))
    assert flat["eval_accuracy_std"] == pytest.approx(statistics.stdev(accuracies))
    for fold in (1, 2, 3):  # the OOF file holds what each fold's model scored
        held = oof[oof["fold"] == fold]
        assert (held["label"] == held["predicted_label"]).mean() == pytest.approx(accuracies[fold - 1])
        assert (out / "folds" / str(fold) / "model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()
    report = (out / "cv_report.md").read_text()
    assert "3-fold cross-validation (stratified by label" in report and report.count("\n| ") >= 5


def test_multi_label_folds_write_label_sets_as_cells(tmp_path, tiny_model_dir):
    train = write_csv(tmp_path / "multi.csv", multi_topic_rows(24, 0))
    assert main(["train", "--train", train, "--model", str(tiny_model_dir), "--epochs", "1", "--folds", "2",
                 "--output-dir", str(tmp_path / "out"), "--quiet"]) == 0
    oof = pd.read_csv(tmp_path / "out" / "oof_predictions.csv", keep_default_na=False).sort_values("row")
    assert list(oof["label"]) == list(pd.read_csv(train, keep_default_na=False)["label"])  # as the user wrote them
    labels = {"sports", "food", "tech"}
    assert all(set(filter(None, cell.split("|"))) <= labels for cell in oof["predicted_labels"])
    assert {"probability_sports", "probability_food", "probability_tech"} <= set(oof.columns)


def test_seeds_train_on_one_split_once_per_seed(tmp_path, tiny_model_dir):
    val = write_csv(tmp_path / "val.csv", topic_rows(12, 1))
    assert main(_train(tmp_path, tiny_model_dir, "--validation", val, "--seeds", "1,2")) == 0
    results = json.loads((tmp_path / "out" / "crossval.json").read_text())
    assert [run["seed"] for run in results["runs"]] == [1, 2]
    assert {run["validation_rows"] for run in results["runs"]} == {12}
    for seed in (1, 2):
        args = json.loads((tmp_path / "out" / "seeds" / str(seed) / "training_args.json").read_text())
        assert args["seed"] == seed


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2]), min_size=12, max_size=60), st.integers(2, 4), st.integers(0, 99))
def test_folds_are_stratified_and_cover_each_row_once(labels, folds, seed):
    counts = Counter(labels)
    assume(len(counts) >= 2)  # one class is refused when the data is read
    if min(counts.values()) < folds:
        smallest = min(counts.values())
        advice = f"use at most {smallest} folds" if smallest >= 2 else "drop or merge it"
        with pytest.raises(SeqtuneError, match=advice):
            fold_indices(labels, "classification", folds, seed)
        return
    splits = fold_indices(labels, "classification", folds, seed)
    held = sorted(i for _, validation in splits for i in validation)
    assert held == list(range(len(labels)))
    for train, validation in splits:
        assert not set(train) & set(validation)
        for label, count in counts.items():  # each class spread evenly over the folds
            assert abs(sum(labels[i] == label for i in validation) - count / folds) < 1


def test_a_class_of_one_row_gets_advice_that_can_be_followed():
    with pytest.raises(SeqtuneError, match=r"the smallest class \(rare\) has 1 row in the training data, so some "
                                           "folds would hold none of it; a class needs 2 rows for 2 folds: drop or "
                                           "merge it, or use --seeds on a fixed split"):
        fold_indices([0, 1, 2] * 10 + [3], "classification", 3, 0, ["a", "b", "c", "rare"])


def test_regression_folds_and_mean_std():
    splits = fold_indices([0.1 * i for i in range(10)], "regression", 5, 0)
    assert sorted(i for _, v in splits for i in v) == list(range(10))
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))


@pytest.mark.parametrize(("text", "seeds"), [("1,2,3", [1, 2, 3]), (" 4, 5", [4, 5])])
def test_seeds_parse(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(("extra", "message"), [
    (["--folds", "1"], "--folds: expected a whole number >= 2, got 1"),
    (["--folds", "11"], "--folds 11: the smallest class (food) has 10 rows"),
    (["--folds", "3", "--validation-split", "0.2"], "drop --validation-split"),
    (["--folds", "3", "--seeds", "1,2"], "not both"),
    (["--seeds", "1", "--validation-split", "0.2"], "two or more different seeds"),
    (["--seeds", "1,x", "--validation-split", "0.2"], "--seeds '1,x': expected whole numbers"),
    (["--seeds", "1,1", "--validation-split", "0.2"], "two or more different seeds"),
    (["--folds", "3", "--resume"], "--resume does not apply to --folds"),
])
def test_bad_estimate_options_are_one_line_and_exit_2(tmp_path, tiny_model_dir, capsys, extra, message):
    assert main(_train(tmp_path, tiny_model_dir, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
