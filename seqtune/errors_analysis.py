"""Where a model goes wrong: the rows it got wrong, most confident mistake first (regression: every row, the
largest error first), the few per class that the report shows, per-class precision/recall/F1/support, and
the errors file that `seqtune evaluate --errors` writes.

From Python, on any `Trainer.predict` output whose rows carry labels::

    from seqtune.errors_analysis import error_rows, worst_rows, write_errors
    output = trainer.predict(validation)                       # logits and label ids, one row per text
    rows = error_rows(output, validation["text"], label_names=["neg", "pos"])
    write_errors(rows, "errors.csv")                           # or .tsv / .jsonl
    worst_rows(rows, "classification", per_class=3)            # what the report lists

(A dataset of chunked long documents: pass `spec.per_row_output(output, rows)`, one row per document.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import SeqtuneError

ERROR_SUFFIXES = (".csv", ".tsv", ".jsonl")
TASK_TYPES = ("classification", "regression", "multi_label")


def _logits_and_labels(prediction: Any) -> tuple[Any, Any]:
    import numpy as np

    logits = prediction.predictions
    logits = np.asarray(logits[0] if isinstance(logits, (tuple, list)) else logits)
    if logits.dtype.kind != "f":  # in their own precision otherwise: the classes predict would write
        logits = logits.astype(np.float64)
    if prediction.label_ids is None:
        raise SeqtuneError("error analysis needs labelled rows: this prediction output has no label_ids")
    labels = prediction.label_ids
    labels = np.asarray(labels[0] if isinstance(labels, (tuple, list)) else labels)
    if len(logits) != len(labels):
        raise SeqtuneError(f"error analysis: {len(logits)} rows of logits but {len(labels)} labels; pass one "
                           "row per text (for chunked documents, TaskSpec.per_row_output)")
    return logits, labels


def _names(label_names: Sequence[str] | None, width: int) -> list[str]:
    return list(label_names) if label_names else [str(i) for i in range(width)]


def _softmax(logits: Any) -> Any:
    import numpy as np

    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def error_rows(prediction: Any, texts: Sequence[str], *, task_type: str = "classification",
               label_names: Sequence[str] | None = None, thresholds: Mapping[str, float] | None = None,
               text_pairs: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The rows of a `PredictionOutput` (logits and labels, one row per text) that the model got wrong.

    classification: `label`, `predicted`, `score` (the predicted class's probability) and `label_score`
    (the true class's), most confident mistake first. regression: every row with `label`, `predicted` and
    `error` (absolute), largest first. multi_label (sigmoid, `thresholds` per label name, else 0.5): rows
    whose predicted set differs, with `label` and `predicted` as lists of names, `missed` and `extra`, and
    `score` (the confidence of the surest wrong decision), surest first. Each row starts with `row` (its
    0-based position) and `text` (and `text_pair`). Unlabelled rows (class id < 0, NaN) are left out.
    """
    import numpy as np

    if task_type not in TASK_TYPES:
        raise SeqtuneError(f"error analysis: task_type {task_type!r} is not one of {', '.join(TASK_TYPES)}")
    logits, labels = _logits_and_labels(prediction)
    if len(texts) != len(logits) or (text_pairs is not None and len(text_pairs) != len(logits)):
        raise SeqtuneError(f"error analysis: {len(logits)} predicted rows but {len(texts)} texts")

    def start(i: int) -> dict[str, Any]:
        row: dict[str, Any] = {"row": i, "text": texts[i]}
        if text_pairs is not None:
            row["text_pair"] = text_pairs[i]
        return row

    rows: list[dict[str, Any]] = []
    if task_type == "regression":
        predicted, gold = logits.reshape(len(logits), -1)[:, 0], labels.astype(np.float64).reshape(len(labels))
        for i in np.flatnonzero(np.isfinite(gold)):
            rows.append({**start(int(i)), "label": float(gold[i]), "predicted": float(predicted[i]),
                         "error": float(abs(predicted[i] - gold[i]))})
        return sorted(rows, key=lambda r: -r["error"])
    names = _names(label_names, logits.shape[-1])
    if task_type == "multi_label":
        from .multilabel import decide

        probabilities, chosen = decide(logits, names, thresholds)
        truth = labels.astype(np.float64) > 0.5
        chosen = chosen.astype(bool)
        for i in np.flatnonzero((chosen != truth).any(axis=1)):
            wrong = chosen[i] != truth[i]
            confidence = np.where(chosen[i], probabilities[i], 1 - probabilities[i])
            rows.append({**start(int(i)), "label": [n for n, t in zip(names, truth[i], strict=True) if t],
                         "predicted": [n for n, c in zip(names, chosen[i], strict=True) if c],
                         "missed": [n for j, n in enumerate(names) if truth[i, j] and not chosen[i, j]],
                         "extra": [n for j, n in enumerate(names) if chosen[i, j] and not truth[i, j]],
                         "score": float(confidence[wrong].max())})
        return sorted(rows, key=lambda r: -r["score"])
    probabilities = _softmax(logits)
    gold = labels.astype(np.int64).reshape(len(labels))
    best = probabilities.argmax(-1)
    for i in np.flatnonzero((gold >= 0) & (gold < len(names)) & (best != gold)):
        rows.append({**start(int(i)), "label": names[gold[i]], "predicted": names[best[i]],
                     "score": float(probabilities[i, best[i]]), "label_score": float(probabilities[i, gold[i]])})
    return sorted(rows, key=lambda r: -r["score"])


def worst_rows(rows: list[dict[str, Any]], task_type: str, per_class: int = 3, limit: int = 10) -> list[dict]:
    """What the report lists: the `per_class` surest mistakes of each true class (classification), or the
    `limit` largest errors (regression) or surest wrong label sets (multi-label). `rows` as error_rows
    orders them."""
    if task_type != "classification":
        return rows[:limit]
    kept: dict[str, list[dict]] = {}
    for row in rows:
        group = kept.setdefault(row["label"], [])
        if len(group) < per_class:
            group.append(row)
    return [row for label in sorted(kept) for row in kept[label]]


def per_class_scores(prediction: Any, *, task_type: str = "classification",
                     label_names: Sequence[str] | None = None,
                     thresholds: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support of each class (each label, multi-label), by scikit-learn's
    precision_recall_fscore_support; an empty list for regression."""
    import numpy as np
    from sklearn.metrics import precision_recall_fscore_support

    if task_type == "regression":
        return []
    logits, labels = _logits_and_labels(prediction)
    names = _names(label_names, logits.shape[-1])
    if task_type == "multi_label":
        from .multilabel import decide

        _, predicted = decide(logits, names, thresholds)
        gold = (labels.astype(np.float64) > 0.5).astype(int)
    else:
        gold = labels.astype(np.int64).reshape(len(labels))
        keep = (gold >= 0) & (gold < len(names))
        gold, predicted = gold[keep], logits.argmax(-1)[keep]
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=list(range(len(names))), zero_division=0)
    return [{"label": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)]


def check_errors_path(path: str | Path, *inputs: str | Path) -> Path:
    """An errors file to write: .csv, .tsv or .jsonl, not a folder, not one of the `inputs`, in a folder
    that can be written; said before any inference runs."""
    from .outdir import check_writable

    target = Path(path)
    if target.suffix.lower() not in ERROR_SUFFIXES:
        raise SeqtuneError(f"--errors {target}: write .csv, .tsv or .jsonl")
    if target.is_dir():
        raise SeqtuneError(f"--errors {target} is a folder; name a file")
    if any(target.resolve() == Path(source).resolve() for source in inputs):
        raise SeqtuneError(f"--errors {target} is the input file; write the errors to another file")
    check_writable(target, "--errors", start=target.parent)
    return target


def write_errors(rows: list[dict[str, Any]], path: str | Path, separator: str = "|") -> None:
    """The rows as .csv, .tsv or .jsonl, written beside and renamed into place (an earlier file stays whole
    if this fails). Label sets are lists in JSON Lines and names joined by `separator` in CSV/TSV (as
    `seqtune predict` writes them)."""
    import pandas as pd

    from .atomic import replacing

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in ERROR_SUFFIXES:
        raise SeqtuneError(f"--errors {target}: write .csv, .tsv or .jsonl")
    frame = pd.DataFrame(rows)
    if suffix != ".jsonl":
        for column in frame.columns:
            if frame[column].map(lambda v: isinstance(v, list)).any():
                frame[column] = frame[column].map(lambda v: separator.join(v) if isinstance(v, list) else v)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(target) as partial:
            if suffix == ".jsonl":
                frame.to_json(partial, orient="records", lines=True, force_ascii=False)
            else:
                frame.to_csv(partial, sep="\t" if suffix == ".tsv" else ",", index=False)
    except OSError as err:
        raise SeqtuneError(f"--errors {target}: could not write the errors ({err.strerror or err}); any earlier "
                           "file there is untouched") from None


def validation_report(spec: Any, output: Any, split: Any, per_class: int = 3, limit: int = 10,
                      width: int = 300) -> dict[str, Any]:
    """run.json's error analysis of a run's validation split (`output`: one row per row of the raw `split`,
    which has `text`, maybe `text_pair`): per-class scores, and the rows the report lists, texts cut to
    `width` characters."""
    pairs = split["text_pair"] if "text_pair" in split.column_names else None
    rows = error_rows(output, split["text"], task_type=spec.task_type, label_names=spec.label_names,
                      thresholds=spec.thresholds, text_pairs=pairs)
    shown = []
    for row in worst_rows(rows, spec.task_type, per_class, limit):
        shown.append({k: v[:width] + ("…" if len(v) > width else "") if isinstance(v, str) and k.startswith("text")
                      else v for k, v in row.items()})
    return {"per_class": per_class_scores(output, task_type=spec.task_type, label_names=spec.label_names,
                                          thresholds=spec.thresholds),
            "errors": {"rows": len(split), "wrong": None if spec.task_type == "regression" else len(rows),
                       "shown": shown}}
