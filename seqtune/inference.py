"""`seqtune predict` and `seqtune evaluate`: a trained output folder applied to a file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .errors import SeqtuneError


def load_trained(model_dir: str) -> tuple[Any, Any, dict[str, Any]]:
    """The model, its tokenizer and what training recorded about inputs and labels."""
    from .models import load_model_and_tokenizer
    from .run import TASK_FILE

    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise SeqtuneError(f"--model {folder}: not a trained model folder (no config.json)")
    task_path = folder / TASK_FILE
    task = json.loads(task_path.read_text()) if task_path.is_file() else {}
    model, tokenizer = load_model_and_tokenizer(str(folder), num_labels=None)
    config = model.config
    if not task.get("label_names") and getattr(config, "problem_type", None) != "regression":
        task["label_names"] = [config.id2label[i] for i in range(config.num_labels)]
    task.setdefault("task_type", "regression" if config.num_labels == 1 else "classification")
    return model, tokenizer, task


def _frame_and_task(path: str, fmt: str | None, task: dict[str, Any], text_columns: list[str] | None,
                    label_column: str | None, needs_label: bool):
    from .data.files import TextTask, infer_task, read_table

    frame = read_table(path, fmt)
    columns = text_columns or [c for c in task.get("text_columns", []) if c in frame.columns] or None
    if needs_label:
        inferred = infer_task(frame, columns, label_column, task["task_type"], where=path)
        if inferred.label_column is None:
            raise SeqtuneError(f"{path}: no label column found; pass --label-column NAME")
        inferred.label_names = task.get("label_names", [])
        return frame, inferred
    texts = infer_task(frame, columns, None, task["task_type"], where=path).text_columns
    return frame, TextTask(texts, None, task["task_type"], task.get("label_names", []))


def _trainer(model: Any, tokenizer: Any, batch_size: int, quiet: bool):
    import tempfile

    from .args import TrainingArguments
    from .trainer import Trainer

    args = TrainingArguments(tempfile.mkdtemp(prefix="seqtune-predict-"), per_device_eval_batch_size=batch_size,
                             disable_tqdm=quiet, save_strategy="no")
    return Trainer(model, args, processing_class=tokenizer)


def run_predict(options: argparse.Namespace) -> int:
    """Write the input rows plus the predicted label and its probability (or the predicted value)."""
    import numpy as np

    from .data.files import to_dataset
    from .run import tokenize_splits

    output = Path(options.output)
    if output.suffix.lower() not in (".csv", ".tsv", ".jsonl"):
        raise SeqtuneError(f"--output {output}: write .csv, .tsv or .jsonl")
    model, tokenizer, task = load_trained(options.model)
    frame, text_task = _frame_and_task(options.input, options.format, task, options.text_column, None, False)
    import datasets

    dataset = to_dataset(frame, text_task, options.input)
    tokenized = tokenize_splits(datasets.DatasetDict({"input": dataset}), tokenizer, task.get("max_length"))
    logits = _trainer(model, tokenizer, options.batch_size, options.quiet).predict(tokenized["input"]).predictions
    result = frame.copy()
    if task["task_type"] == "regression":
        result["prediction"] = logits[:, 0]
    else:
        shifted = logits - logits.max(-1, keepdims=True)
        probabilities = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
        names = task["label_names"]
        best = probabilities.argmax(-1)
        result["predicted_label"] = [names[i] for i in best]
        result["probability"] = probabilities[np.arange(len(best)), best]
        if options.all_scores:
            for i, name in enumerate(names):
                result[f"probability_{name}"] = probabilities[:, i]
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".jsonl":
        result.to_json(output, orient="records", lines=True, force_ascii=False)
    else:
        result.to_csv(output, sep="\t" if output.suffix.lower() == ".tsv" else ",", index=False)
    print(f"seqtune: wrote {len(result):,} predictions to {output}")
    return 0


def run_evaluate(options: argparse.Namespace) -> int:
    """Print the metrics the model was trained with, on a labelled file."""
    from .data.files import to_dataset
    from .run import make_compute_metrics, tokenize_splits

    model, tokenizer, task = load_trained(options.model)
    frame, text_task = _frame_and_task(options.data, options.format, task, options.text_column,
                                       options.label_column, True)
    import datasets

    dataset = to_dataset(frame, text_task, options.data)
    tokenized = tokenize_splits(datasets.DatasetDict({"data": dataset}), tokenizer, task.get("max_length"))
    metric_names = task.get("metrics") or (["pearson", "spearman"] if task["task_type"] == "regression"
                                           else ["accuracy", "macro_f1"])
    recipe = argparse.Namespace(metric_names=metric_names, task_type=task["task_type"])
    trainer = _trainer(model, tokenizer, options.batch_size, options.quiet)
    trainer.compute_metrics = make_compute_metrics(recipe)
    metrics = trainer.predict(tokenized["data"], metric_key_prefix="eval").metrics
    print(f"seqtune: {options.data} ({len(dataset):,} rows)")
    for key, value in metrics.items():
        print(f"  {key.removeprefix('eval_')}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    return 0
