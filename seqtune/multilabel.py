"""Multi-label outputs and class weights: sigmoid scores, a threshold per label tuned on validation, the
multi-label metrics (micro/macro F1, per-label F1, subset accuracy, Hamming loss), and weighted losses for
imbalanced classes passed to the Trainer as transformers' `compute_loss_func`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import SeqtuneError

if TYPE_CHECKING:  # numpy is imported where it is used: options.py checks --class-weights through this module
    import numpy as np

DEFAULT_THRESHOLD = 0.5
MULTI_LABEL_METRICS = ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss")


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Each label's probability, as transformers' multi_label_classification reads logits (no overflow)."""
    import numpy as np

    return np.exp(-np.logaddexp(0.0, -np.asarray(logits, dtype=np.float64)))


def check_threshold(value: Any, where: str) -> float:
    """A threshold: a finite number in [0, 1]."""
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= value <= 1:
        raise SeqtuneError(f"{where}: a threshold is a number in [0, 1], got {value!r:.40}")
    return float(value)


def check_thresholds(thresholds: Mapping[str, Any] | None, label_names: list[str], task_type: str) -> None:
    """TaskSpec.thresholds: one per known label, each in [0, 1]; only for multi-label tasks."""

    if thresholds is None:
        return
    if task_type != "multi_label":
        raise SeqtuneError(f"thresholds apply to multi-label tasks; this task is {task_type}")
    if not isinstance(thresholds, Mapping):
        raise SeqtuneError(f"thresholds must map label names to numbers in [0, 1], got {thresholds!r:.60}")
    for name, value in thresholds.items():
        if name not in label_names:
            raise SeqtuneError(f"thresholds names {name!r}, which is not a label ({', '.join(label_names[:10])})")
        check_threshold(value, f"the threshold of {name!r}")


def cutoffs(label_names: list[str], thresholds: Mapping[str, float] | None,
            override: float | None = None) -> np.ndarray:
    """Each label's threshold: `override` for all, else the tuned one, else 0.5."""
    import numpy as np

    if override is not None:
        return np.full(len(label_names), check_threshold(override, "--threshold"))
    saved = thresholds or {}
    return np.array([float(saved.get(name, DEFAULT_THRESHOLD)) for name in label_names])


def tune_thresholds(probabilities: np.ndarray, references: np.ndarray, label_names: list[str]) -> dict[str, float]:
    """For each label, the threshold that maximises its F1 on these rows: half-way between two neighbouring
    scores, the one nearest 0.5 among equals. A label with no positive row, or none the model finds, keeps 0.5."""
    import numpy as np

    probabilities, truth = np.asarray(probabilities, dtype=np.float64), np.asarray(references) > 0.5
    tuned = {}
    for j, name in enumerate(label_names):
        scores, positives = probabilities[:, j], int(truth[:, j].sum())
        tuned[name] = DEFAULT_THRESHOLD
        if positives == 0:
            continue
        order = np.argsort(-scores, kind="stable")
        ranked = scores[order]
        hits = np.cumsum(truth[order, j])
        f1 = 2 * hits / (np.arange(1, len(ranked) + 1) + positives)  # predicting the top k positive
        # A cut only between distinct scores; the last one predicts every row positive.
        below = np.append(ranked[1:], 0.0)
        valid = np.append(ranked[:-1] > ranked[1:], True)
        f1 = np.where(valid, f1, -1.0)
        best = f1.max()
        if best <= 0:
            continue
        cuts = (ranked + below) / 2
        candidates = cuts[f1 >= best - 1e-12]
        tuned[name] = float(candidates[np.argmin(np.abs(candidates - DEFAULT_THRESHOLD))])
    return tuned


def decide(logits: np.ndarray, label_names: list[str], thresholds: Mapping[str, float] | None,
           override: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, 0/1 predictions) of multi-label logits under the thresholds."""

    probabilities = sigmoid(logits)
    return probabilities, (probabilities >= cutoffs(label_names, thresholds, override)).astype(int)


def metrics(metric: Any, logits: np.ndarray, references: np.ndarray, label_names: list[str],
            thresholds: Mapping[str, float] | None = None) -> dict[str, float]:
    """The task's metrics on label sets, plus each label's F1 (`f1_<label>`)."""
    import numpy as np
    from sklearn.metrics import f1_score

    _, predictions = decide(logits, label_names, thresholds)
    truth = (np.asarray(references) > 0.5).astype(int)
    results = metric.compute(predictions=predictions, references=truth)
    per_label = f1_score(truth, predictions, average=None, zero_division=0)
    results.update({f"f1_{name}": float(value) for name, value in zip(label_names, per_label, strict=True)})
    return results


# ---- class weights ------------------------------------------------------------------------------------------

# A weight's bounds: a class weighted 1e39 (inf in float32) or 1e-50 (zero) turns the loss into NaN at once.
MIN_WEIGHT, MAX_WEIGHT = 1e-6, 1e6


def parse_class_weights(value: Any, where: str = "--class-weights") -> str | dict[str, float]:
    """`balanced`, or explicit weights: "pos=3,neg=1" or a YAML mapping; each finite and > 0."""
    if isinstance(value, str) and value.strip() == "balanced":
        return "balanced"
    if isinstance(value, str):
        pairs: dict[str, Any] = {}
        for part in value.split(","):
            name, equals, number = part.partition("=")
            if not equals or not name.strip():
                raise SeqtuneError(f"{where}: expected 'balanced' or NAME=WEIGHT pairs such as 'pos=3,neg=1', "
                                   f"got {value!r:.60}")
            if name.strip() in pairs:
                raise SeqtuneError(f"{where}: the class {name.strip()!r} is given twice")
            pairs[name.strip()] = number.strip()
        value = pairs
    if not isinstance(value, Mapping) or not value:
        raise SeqtuneError(f"{where}: expected 'balanced' or a mapping of class: weight, got {value!r:.60}")
    from .data.delimited import NUMBER

    weights = {}
    for name, weight in value.items():
        plain = isinstance(weight, (int, float)) and not isinstance(weight, bool) or (
            isinstance(weight, str) and NUMBER.fullmatch(weight.strip()))  # not float()'s "1_000" or "inf"
        number = float(weight) if plain else math.nan
        if not MIN_WEIGHT <= number <= MAX_WEIGHT:
            raise SeqtuneError(f"{where}: the weight of {str(name)!r} must be a number from {MIN_WEIGHT:g} to "
                               f"{MAX_WEIGHT:g} (beyond, float32 losses overflow or vanish), got {weight!r:.40}")
        # A YAML key 1.0 names the class 1, as a label cell 1.0 does.
        weights[str(int(name)) if isinstance(name, float) and name.is_integer() else str(name).strip()] = number
    return weights


def class_weights(spec: str | Mapping[str, float], labels: Any, label_names: list[str],
                  multi_label: bool) -> dict[str, float]:
    """One weight per label, by name. `balanced`: scikit-learn's n_samples / (n_classes * count) for classes
    (a class with no training row: 1), negatives / positives per label for multi-label (BCE's pos_weight;
    a label never or always present: 1). Explicit weights: the classes named; the others 1."""
    import numpy as np

    if spec != "balanced":
        unknown = [name for name in spec if name not in label_names]
        if unknown:
            hint = ("; YAML reads yes/no/on/off as true/false: quote the name ('yes': 3)"
                    if unknown[0] in ("True", "False") else "")
            raise SeqtuneError(f"--class-weights names {unknown[0]!r}, which is not a label of this data "
                               f"({', '.join(label_names[:10])}{', ...' if len(label_names) > 10 else ''}){hint}")
        return {name: float(spec.get(name, 1.0)) for name in label_names}
    if multi_label:
        matrix = np.asarray(labels, dtype=np.float64) > 0.5
        positives = matrix.sum(0)
        negatives = len(matrix) - positives
        return {name: float(negatives[j] / positives[j]) if positives[j] and negatives[j] else 1.0
                for j, name in enumerate(label_names)}
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(label_names))
    present = int((counts > 0).sum())
    total = int(counts.sum())
    return {name: float(total / (present * counts[j])) if counts[j] else 1.0 for j, name in enumerate(label_names)}


class WeightedLoss:
    """A `compute_loss_func(outputs, labels, num_items_in_batch=None)`: cross-entropy with class weights (and
    label smoothing, as torch's cross_entropy has it), or for multi-label BCE-with-logits with `pos_weight`.
    The mean over the micro-batch, as `torch.nn.CrossEntropyLoss(weight=...)` gives it."""

    def __init__(self, weights: list[float], multi_label: bool, label_smoothing: float = 0.0) -> None:
        self.weights = list(weights)
        self.multi_label = multi_label
        self.label_smoothing = label_smoothing
        self._tensor: Any = None

    def __call__(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        import torch
        import torch.nn.functional as F

        from .loss import logits_of

        logits = logits_of(outputs, has_loss=False).float()
        if self._tensor is None or self._tensor.device != logits.device:
            self._tensor = torch.tensor(self.weights, dtype=torch.float32, device=logits.device)
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=self._tensor)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), weight=self._tensor,
                               label_smoothing=self.label_smoothing)

    def __repr__(self) -> str:
        return f"WeightedLoss({self.weights}, multi_label={self.multi_label})"


def loss_for(option: Any, task_type: str, label_names: list[str], train: Any,
             label_smoothing: float = 0.0) -> tuple[WeightedLoss | None, dict[str, float] | None]:
    """`--class-weights` as (compute_loss_func, the weights by label name) from the raw training split's
    `label` column; (None, None) without it."""
    if option is None:
        return None, None
    if task_type not in ("classification", "multi_label"):
        raise SeqtuneError(f"--class-weights weighs classes, but this is a {task_type} task")
    weights = class_weights(parse_class_weights(option), train["label"], label_names, task_type == "multi_label")
    return WeightedLoss(list(weights.values()), task_type == "multi_label", label_smoothing), weights


def tune_on_validation(spec: Any, output: Any) -> dict[str, Any]:
    """Set `spec.thresholds` to each label's F1-best threshold on the validation predictions; say the change in
    the first metric (optimistic: tuned on the rows it is measured on). Returns what run.json keeps."""
    from .task import metric_for

    metric = metric_for(spec.metrics)
    before = metrics(metric, output.predictions, output.label_ids, spec.label_names)
    spec.thresholds = tune_thresholds(sigmoid(output.predictions), output.label_ids, spec.label_names)
    after = metrics(metric, output.predictions, output.label_ids, spec.label_names, spec.thresholds)
    first = spec.metrics[0]
    shown = ", ".join(f"{name} {value:.2f}" for name, value in list(spec.thresholds.items())[:8])
    print(f"seqtune: thresholds tuned on validation (each label's best F1): {shown}"
          f"{', ...' if len(spec.thresholds) > 8 else ''}; validation {first} {before[first]:.4f} at 0.5, "
          f"{after[first]:.4f} tuned (measured on the rows they were tuned on)")
    return {"thresholds": spec.thresholds, "tuned_validation": {k: after[k] for k in spec.metrics}}
