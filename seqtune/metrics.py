"""Metrics computed locally (scikit-learn, scipy): GLUE's metric sets and the usual single metrics."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import SeqtuneError


def accuracy(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    return {"accuracy": float(np.mean(predictions == references))}


def f1(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score

    return {"f1": float(f1_score(references, predictions))}


def macro_f1(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score

    return {"macro_f1": float(f1_score(references, predictions, average="macro", zero_division=0))}


def micro_f1(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """F1 over every (row, label) decision pooled: multi-label's headline metric (for one label a row, accuracy)."""
    from sklearn.metrics import f1_score

    return {"micro_f1": float(f1_score(references, predictions, average="micro", zero_division=0))}


def subset_accuracy(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """The share of rows whose predicted label set is exactly right (scikit-learn's multi-label accuracy)."""
    exact = predictions == references
    return {"subset_accuracy": float(np.mean(exact.all(-1) if exact.ndim > 1 else exact))}


def hamming_loss(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """The share of (row, label) decisions that are wrong; lower is better."""
    return {"hamming_loss": float(np.mean(predictions != references))}


def matthews(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import matthews_corrcoef

    return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}


def pearson(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    from scipy.stats import pearsonr

    return {"pearson": float(pearsonr(predictions, references)[0])}


def spearman(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    from scipy.stats import spearmanr

    return {"spearmanr": float(spearmanr(predictions, references)[0])}


Scorer = Callable[[np.ndarray, np.ndarray], dict[str, float]]
GLUE_METRICS: dict[str, tuple[Scorer, ...]] = {
    "cola": (matthews,),
    "sst2": (accuracy,),
    "mrpc": (accuracy, f1),
    "qqp": (accuracy, f1),
    "stsb": (pearson, spearman),
    "mnli": (accuracy,),
    "mnli_matched": (accuracy,),
    "mnli_mismatched": (accuracy,),
    "qnli": (accuracy,),
    "rte": (accuracy,),
    "wnli": (accuracy,),
    "ax": (matthews,),
}
SINGLE_METRICS: dict[str, Scorer] = {
    "accuracy": accuracy, "f1": f1, "macro_f1": macro_f1, "matthews": matthews, "matthews_correlation": matthews,
    "pearson": pearson, "pearsonr": pearson, "spearman": spearman, "spearmanr": spearman,
    "micro_f1": micro_f1, "subset_accuracy": subset_accuracy, "hamming_loss": hamming_loss,
}


# Imported when the metric is loaded, as `evaluate.load` does: importing scikit-learn takes ~0.8 s,
# which would otherwise land inside the first evaluation.
LIBRARIES: dict[Scorer, str] = {f1: "sklearn.metrics", macro_f1: "sklearn.metrics", matthews: "sklearn.metrics",
                                micro_f1: "sklearn.metrics",
                                pearson: "scipy.stats", spearman: "scipy.stats"}


class Metric:
    """What `load_metric` returns: `compute(predictions=, references=)` gives a dict of floats."""

    def __init__(self, name: str, scorers: Sequence[Scorer]) -> None:
        self.name = name
        self.scorers = tuple(scorers)
        for library in {LIBRARIES[s] for s in self.scorers if s in LIBRARIES}:
            importlib.import_module(library)

    def compute(self, *, predictions: Any, references: Any) -> dict[str, float]:
        predictions, references = np.asarray(predictions), np.asarray(references)
        if predictions.shape != references.shape:
            raise SeqtuneError(
                f"metric {self.name}: {predictions.shape[0] if predictions.ndim else 1} predictions "
                f"but {references.shape[0] if references.ndim else 1} references (shapes "
                f"{predictions.shape} and {references.shape}); pass class ids, e.g. np.argmax(logits, -1)"
            )
        results: dict[str, float] = {}
        for scorer in self.scorers:
            results.update(scorer(predictions, references))
        return results

    def __repr__(self) -> str:
        return f"Metric({self.name!r})"


def load_metric(path: str, config_name: str | None = None) -> Metric:
    """`load_metric("glue", "mrpc")`, or a single metric by name (`load_metric("accuracy")`)."""
    from .data.glue import ALIASES

    if path.lower() in ("glue", "nyu-mll/glue"):
        task = ALIASES.get((config_name or "").lower(), (config_name or "").lower())
        if task not in GLUE_METRICS:
            raise SeqtuneError(f"unknown GLUE metric config {config_name!r}; known: "
                               f"{', '.join(sorted(GLUE_METRICS))}")
        return Metric(f"glue/{task}", GLUE_METRICS[task])
    if path.lower() in SINGLE_METRICS:
        return Metric(path.lower(), (SINGLE_METRICS[path.lower()],))
    raise SeqtuneError(f"unknown metric {path!r}; seqtune computes locally: glue (with a task), "
                       f"{', '.join(sorted(SINGLE_METRICS))}")
