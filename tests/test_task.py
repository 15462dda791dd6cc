"""A model's task: default metrics by one rule, metrics that fit the task, seqtune.json read back."""

import pytest

from seqtune import SeqtuneError
from seqtune.task import TaskSpec, default_metrics


def test_default_metrics_by_task():
    assert default_metrics("classification", 2) == ["accuracy", "macro_f1", "f1"]
    assert default_metrics("classification", 3) == ["accuracy", "macro_f1"]
    assert default_metrics("regression", 1) == ["pearson", "spearman"]


@pytest.mark.parametrize("task_type, labels, metric, message", [
    ("classification", ["a", "b", "c"], "f1", "binary F1, but this task has 3 classes; use macro_f1"),
    ("classification", ["a", "b"], "pearson", "scores real values, but this is a classification task"),
    ("regression", [], "accuracy", "scores classes, but this is a regression task"),
    ("classification", ["a", "b"], "acuracy", "'acuracy' is not one of"),
])
def test_a_metric_that_does_not_fit_is_refused_before_training(task_type, labels, metric, message):
    with pytest.raises(SeqtuneError, match=message):
        TaskSpec("t", task_type, labels, ["text"], [metric])


def test_saved_and_read_back(tmp_path):
    from transformers import BertConfig

    spec = TaskSpec("news", "classification", ["a", "b"], [0], ["accuracy"], 128)
    spec.save(tmp_path)
    assert TaskSpec.for_model_folder(tmp_path, BertConfig(num_labels=2)) == spec
    bare = TaskSpec.for_model_folder(tmp_path / "nothing", BertConfig(num_labels=3))  # any transformers folder
    assert bare.label_names == ["LABEL_0", "LABEL_1", "LABEL_2"] and bare.metrics == ["accuracy", "macro_f1"]


@pytest.mark.parametrize("task_type, problem, labels", [
    ("classification", "single_label_classification", [0, 2, 1, 2]),
    ("multi_label", "multi_label_classification", [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1, 1, 1]]),
    ("regression", "regression", [0.5, -1.0, 2.0, 0.0]),
])
def test_loss_is_the_models_own(task_type, problem, labels):
    import torch

    from .conftest import tiny_bert

    names = [] if task_type == "regression" else ["a", "b", "c"]
    model = tiny_bert(num_labels=len(names) or 1, vocab_size=64, problem_type=problem).eval()
    inputs = torch.randint(0, 64, (4, 7))
    target = torch.tensor(labels, dtype=torch.long if task_type == "classification" else torch.float)
    with torch.no_grad():
        output = model(input_ids=inputs, labels=target)
    spec = TaskSpec("t", task_type, names, ["text"])
    assert spec.loss(output.logits.numpy(), target.numpy()) == pytest.approx(output.loss.item(), rel=1e-6)
