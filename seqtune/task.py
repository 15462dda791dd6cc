"""The task a model folder is trained for: text columns, label names, metrics, tokenisation. One home,
used by `train` (which writes it as seqtune.json), `predict` and `evaluate` (which read it back)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import SeqtuneError

TASK_FILE = "seqtune.json"


def default_metrics(task_type: str, num_labels: int) -> list[str]:
    """What a run reports when no --metric is given."""
    if task_type == "regression":
        return ["pearson", "spearman"]
    if task_type == "multi_label":  # micro F1 first: the metric the best checkpoint is chosen by
        from .multilabel import MULTI_LABEL_METRICS

        return list(MULTI_LABEL_METRICS)
    return ["accuracy", "macro_f1"] + (["f1"] if num_labels == 2 else [])


def check_metric_names(names: list[str]) -> None:
    """Known metric names; checking them loads no metric library."""
    from .metrics import SINGLE_METRICS

    unknown = [n for n in names if n not in SINGLE_METRICS]
    if unknown:
        raise SeqtuneError(f"--metric {unknown[0]!r} is not one of {', '.join(sorted(SINGLE_METRICS))}")


def metric_for(names: list[str]):
    """`load_metric`'s Metric for several single metrics at once."""
    from .metrics import SINGLE_METRICS, Metric

    check_metric_names(names)
    return Metric("+".join(names), [SINGLE_METRICS[n] for n in names])


CLASSIFICATION_ONLY = {"accuracy", "f1", "macro_f1", "matthews", "matthews_correlation", "micro_f1",
                       "subset_accuracy", "hamming_loss"}
REGRESSION_ONLY = {"pearson", "pearsonr", "spearman", "spearmanr"}


def check_metrics(names: list[str], task_type: str, num_labels: int) -> None:
    """Metrics that fit the task, known before any training (not found wanting after the first epoch)."""
    check_metric_names(names)
    for name in names:
        if task_type == "multi_label" and name not in ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss"):
            raise SeqtuneError(f"--metric {name} does not score label sets; for multi-label use micro_f1, macro_f1, "
                               "subset_accuracy or hamming_loss")
        if task_type == "regression" and name in CLASSIFICATION_ONLY:
            raise SeqtuneError(f"--metric {name} scores classes, but this is a regression task; use pearson or "
                               "spearman")
        if task_type == "classification" and name in REGRESSION_ONLY:
            raise SeqtuneError(f"--metric {name} scores real values, but this is a classification task; use "
                               "accuracy, macro_f1 or matthews")
        if name == "f1" and task_type == "classification" and num_labels != 2:
            raise SeqtuneError(f"--metric f1 is binary F1, but this task has {num_labels} classes; use macro_f1")


@dataclass
class TaskSpec:
    """How a model's inputs are made and its outputs read and scored."""

    name: str
    task_type: str  # "classification" or "regression"
    label_names: list[str]
    text_columns: list[Any]  # the source columns, in the order they are fed (one text or a pair)
    metrics: list[str] = field(default_factory=list)
    max_length: int | None = None
    long_text: str = "truncate"  # rows past the window: truncate, head-tail or chunks (seqtune.longtext)
    stride: int | None = None  # chunks: the overlap of neighbouring windows, in tokens
    thresholds: dict[str, float] | None = None  # multi-label: each label's, tuned on validation (else 0.5)
    label_separator: str | None = None  # multi-label cells of files to evaluate: split on it
    label_ids: bool = False  # label cells hold ids into label_names (--label-names)

    def __post_init__(self) -> None:
        if not self.metrics:
            self.metrics = default_metrics(self.task_type, len(self.label_names))
        check_metrics(self.metrics, self.task_type, len(self.label_names))
        from .multilabel import check_thresholds

        check_thresholds(self.thresholds, self.label_names, self.task_type)
        from .longtext import check_long_text

        check_long_text(self.long_text, self.stride, self.max_length)

    def compute_metrics(self, rows: Any = None) -> Callable:
        """A `compute_metrics` for the Trainer: class ids (or values) from logits, then the metrics. Given the
        tokenized `rows` it scores and they are chunks' windows, it scores one row per document."""
        from .longtext import aggregate, documents_of, reduction

        metric = metric_for(self.metrics)
        regression = self.task_type == "regression"
        documents = documents_of(rows)

        def compute_metrics(eval_pred):
            logits, references = eval_pred
            if documents is not None:  # windows' logits to their documents'; a document's windows share its label
                logits = aggregate(logits, documents, reduction(self.task_type))
                references = aggregate(references, documents, "first")
            if self.task_type == "multi_label":  # sigmoid scores over each label's threshold
                from .multilabel import metrics

                return metrics(metric, logits, references, self.label_names, self.thresholds)
            predictions = logits[:, 0] if regression else logits.argmax(-1)
            return metric.compute(predictions=predictions, references=references)

        return compute_metrics

    def loss(self, logits: Any, labels: Any) -> float:
        """The loss transformers' classification heads compute (cross-entropy; BCE with logits for
        multi-label; MSE for regression), over rows of logits and their labels."""
        import torch
        import torch.nn.functional as F

        logits, labels = torch.as_tensor(logits, dtype=torch.float32), torch.as_tensor(labels)
        if self.task_type == "regression":
            return float(F.mse_loss(logits.reshape(-1), labels.float().reshape(-1)))
        if self.task_type == "multi_label":
            return float(F.binary_cross_entropy_with_logits(logits, labels.float()))
        return float(F.cross_entropy(logits, labels.long()))

    def per_row(self, logits: Any, rows: Any) -> Any:
        """One row of logits per input row, in input order, from the logits of the tokenized `rows`."""
        from .longtext import per_document, reduction

        return per_document(logits, rows, reduction(self.task_type))

    def per_row_output(self, output: Any, rows: Any) -> Any:
        """A `Trainer.predict` output over the tokenized `rows` with one row per input row: chunks' windows
        joined (logits as `per_row`, each document's label once)."""
        from .longtext import aggregate, documents_of

        documents = documents_of(rows)
        if documents is None:
            return output
        labels = None if output.label_ids is None else aggregate(output.label_ids, documents, "first")
        return output._replace(predictions=self.per_row(output.predictions, rows), label_ids=labels)

    def prediction_columns(self, logits: Any, all_scores: bool = False,
                           threshold: float | None = None) -> dict[str, Any]:
        """What `predict` writes for each row, by column: the label and its probability (every class's with
        `all_scores`), or the predicted value; multi-label: `predicted_labels`, the list of labels whose sigmoid
        score reaches its threshold (the tuned ones, or `threshold` for all). The one reading of logits, shared
        by every engine and the server."""
        import numpy as np

        if self.task_type == "regression":
            return {"prediction": logits[:, 0]}
        if self.task_type == "multi_label":
            from .multilabel import decide

            probabilities, chosen = decide(logits, self.label_names, self.thresholds, threshold)
            columns = {"predicted_labels": [[n for n, on in zip(self.label_names, row, strict=True) if on]
                                            for row in chosen]}
            for i, name in enumerate(self.label_names if all_scores else []):
                columns[f"probability_{name}"] = probabilities[:, i]
            return columns
        if threshold is not None:
            raise SeqtuneError("--threshold applies to multi-label models; this one picks one class a row")
        shifted = logits - logits.max(-1, keepdims=True)
        probabilities = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
        best = probabilities.argmax(-1)
        columns = {"predicted_label": [self.label_names[i] for i in best],
                   "probability": probabilities[np.arange(len(best)), best]}
        if all_scores:
            for i, name in enumerate(self.label_names):
                columns[f"probability_{name}"] = probabilities[:, i]
        return columns

    def tokenize(self, splits: Any, tokenizer: Any) -> Any:
        """Tokenize a DatasetDict with `text` (and `text_pair`) columns to max_length, rows past it handled as
        `long_text` says (chunks: several rows per document, with a `document` column)."""
        from .longtext import tokenize_long_text

        return tokenize_long_text(splits, tokenizer, self.long_text, self.max_length, self.stride)

    def save(self, folder: Path) -> None:
        from .atomic import write_text

        write_text(Path(folder) / TASK_FILE, json.dumps(asdict(self), indent=2))

    @classmethod
    def for_model_folder(cls, folder: Path, config: Any) -> TaskSpec:
        """seqtune.json if the folder has one; else what the model's config says (any transformers folder)."""
        path = Path(folder) / TASK_FILE
        saved = json.loads(path.read_text()) if path.is_file() else {}
        problem = getattr(config, "problem_type", None)
        regression = problem == "regression" or config.num_labels == 1
        task_type = saved.get("task_type") or ("regression" if regression else "multi_label"
                                               if problem == "multi_label_classification" else "classification")
        labels = saved.get("label_names") or ([] if task_type == "regression"
                                              else [config.id2label[i] for i in range(config.num_labels)])
        return cls(name=saved.get("name") or saved.get("task") or Path(folder).name, task_type=task_type,
                   label_names=labels, text_columns=saved.get("text_columns", []),
                   metrics=saved.get("metrics", []), max_length=saved.get("max_length"),
                   long_text=saved.get("long_text", "truncate"), stride=saved.get("stride"),
                   thresholds=saved.get("thresholds"), label_separator=saved.get("label_separator"),
                   label_ids=bool(saved.get("label_ids", False)))
