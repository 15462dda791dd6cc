import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

from seqtune import SeqtuneError, load_metric


def test_mrpc_accuracy_and_f1_by_hand():
    # TP=2, FP=1, FN=1, TN=1: accuracy 3/5, precision 2/3, recall 2/3, F1 2/3.
    result = load_metric("glue", "mrpc").compute(predictions=[1, 1, 1, 0, 0], references=[1, 1, 0, 1, 0])
    assert result == pytest.approx({"accuracy": 0.6, "f1": 2 / 3})


def test_each_glue_task_metric_set_matches_sklearn_and_scipy():
    rng = np.random.default_rng(0)
    predictions, references = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    assert load_metric("glue", "cola").compute(predictions=predictions, references=references) == pytest.approx(
        {"matthews_correlation": matthews_corrcoef(references, predictions)})
    qqp = load_metric("glue", "qqp").compute(predictions=predictions, references=references)
    assert qqp["f1"] == pytest.approx(f1_score(references, predictions))
    for task in ("sst2", "mnli", "qnli", "rte", "wnli"):
        assert set(load_metric("glue", task).compute(predictions=predictions, references=references)) == {"accuracy"}
    scores, gold = rng.normal(size=50), rng.normal(size=50)
    assert load_metric("glue", "stsb").compute(predictions=scores, references=gold) == pytest.approx(
        {"pearson": pearsonr(scores, gold)[0], "spearmanr": spearmanr(scores, gold)[0]})


def test_matthews_by_hand():
    # TP=1 TN=1 FP=1 FN=1 -> MCC 0; all right -> 1.
    metric = load_metric("glue", "cola")
    assert metric.compute(predictions=[1, 0, 1, 0], references=[1, 0, 0, 1])["matthews_correlation"] == 0
    assert metric.compute(predictions=[1, 0], references=[1, 0])["matthews_correlation"] == 1


def test_errors():
    with pytest.raises(SeqtuneError, match="unknown GLUE metric config"):
        load_metric("glue", "nope")
    with pytest.raises(SeqtuneError, match="argmax"):
        load_metric("glue", "mrpc").compute(predictions=np.zeros((3, 2)), references=[0, 1, 0])
    assert load_metric("accuracy").compute(predictions=[1, 0], references=[1, 1]) == {"accuracy": 0.5}
