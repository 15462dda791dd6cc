"""`seqtune train`: data (a GLUE task or your files) -> tokenized splits -> Trainer -> output folder."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SeqtuneError

TASK_FILE = "seqtune.json"  # how the model folder's inputs and labels are read back by predict/evaluate


@dataclass
class Recipe:
    """What `train` works on: raw splits with `text` (and `text_pair`) and `label`, and how to score."""

    name: str
    splits: Any  # datasets.DatasetDict
    task_type: str
    label_names: list[str]
    metric_names: list[str]
    validation: str
    source_columns: list[Any]


def glue_recipe(task_spec: str, data_dir: str | None) -> Recipe:
    from .data import load_dataset
    from .data.glue import glue_task

    benchmark, _, task_name = task_spec.partition("/")
    if benchmark.lower() != "glue" or not task_name:
        raise SeqtuneError(f"--task {task_spec!r}: expected glue/<task>, e.g. glue/mrpc")
    key, task = glue_task(task_name)
    raw = load_dataset("glue", key, data_dir=data_dir)
    columns = list(task.text_columns)
    renames = dict(zip(columns, ["text", "text_pair"], strict=False))
    raw = raw.rename_columns(renames)
    from .metrics import GLUE_METRICS

    metrics = [scorer.__name__ for scorer in GLUE_METRICS[key]]
    regression = task.label_names is None
    return Recipe(f"glue/{key}", raw, "regression" if regression else "classification",
                  [] if regression else list(task.label_names), metrics,
                  "validation" if "validation" in raw else "validation_matched", columns)


def file_recipe(options: argparse.Namespace) -> Recipe:
    from .data.files import load_files

    splits, task = load_files(
        options.train, options.validation, options.test, text_columns=options.text_column,
        label_column=options.label_column, task_type=options.task_type, fmt=options.format,
        header=options.header, validation_split=options.validation_split if not options.validation else None,
        seed=options.seed)
    if "validation" not in splits:
        raise SeqtuneError("no validation data: pass --validation FILE or --validation-split 0.1")
    if options.metric:
        metrics = options.metric
    elif task.task_type == "regression":
        metrics = ["pearson", "spearman"]
    else:
        metrics = ["accuracy", "macro_f1"] + (["f1"] if task.num_labels == 2 else [])
    path = Path(options.train).resolve()
    name = path.parent.name if path.stem.lower() in ("train", "training", "data") else path.stem
    return Recipe(name, splits, task.task_type, task.label_names, metrics, "validation", task.text_columns)


def metric_for(names: list[str]):
    from .metrics import SINGLE_METRICS, Metric

    unknown = [n for n in names if n not in SINGLE_METRICS]
    if unknown:
        raise SeqtuneError(f"--metric {unknown[0]!r} is not one of {', '.join(sorted(SINGLE_METRICS))}")
    return Metric("+".join(names), [SINGLE_METRICS[n] for n in names])


def make_compute_metrics(recipe: Recipe):
    metric = metric_for(recipe.metric_names)

    def compute_metrics(eval_pred):
        logits, references = eval_pred
        predictions = logits[:, 0] if recipe.task_type == "regression" else logits.argmax(-1)
        return metric.compute(predictions=predictions, references=references)

    return compute_metrics


def tokenize_splits(splits: Any, tokenizer: Any, max_length: int | None) -> Any:
    pair = "text_pair" in splits[next(iter(splits))].column_names

    def tokenize(batch: dict) -> dict:
        return tokenizer(batch["text"], batch["text_pair"] if pair else None, truncation=True,
                         max_length=max_length)

    return splits.map(tokenize, batched=True, desc="tokenizing")


def run_train(options: argparse.Namespace) -> int:
    """Fine-tune, print per-epoch and final validation metrics, save a standard model folder."""
    if options.task and options.train:
        raise SeqtuneError("pass either --task glue/<task> or --train FILE, not both")
    if not options.task and not options.train:
        raise SeqtuneError("nothing to train on: pass --task glue/<task> or --train FILE")
    recipe = glue_recipe(options.task, options.data_dir) if options.task else file_recipe(options)
    output_dir = Path(options.output_dir or f"runs/{recipe.name.replace('/', '-')}")
    check_output_dir(output_dir, options.overwrite_output_dir, options.resume)

    from .args import TrainingArguments
    from .distributed import is_main
    from .models import load_model_and_tokenizer
    from .report import ReportCallback
    from .trainer import Trainer, set_seed

    labels = recipe.label_names
    config = {"id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)}} if labels else {}
    if recipe.task_type == "regression":
        config["problem_type"] = "regression"
    config["ignore_mismatched_sizes"] = True  # a classifier head of another size is replaced, not an error
    set_seed(options.seed)  # the new classifier head is drawn now: the same seed gives the same run
    model, tokenizer = load_model_and_tokenizer(options.model, len(labels) or 1, **config)
    tokenized = tokenize_splits(recipe.splits, tokenizer, options.max_length)
    args = TrainingArguments(
        str(output_dir), overwrite_output_dir=options.overwrite_output_dir, eval_strategy="epoch",
        save_strategy=options.save_strategy, save_total_limit=options.save_total_limit,
        num_train_epochs=options.epochs, max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size, per_device_eval_batch_size=options.eval_batch_size,
        learning_rate=options.learning_rate, weight_decay=options.weight_decay,
        warmup_steps=options.warmup_steps if options.warmup_steps < 1 else int(options.warmup_steps),
        gradient_accumulation_steps=options.gradient_accumulation_steps, seed=options.seed,
        bf16=options.bf16, group_by_length=options.group_by_length, use_cpu=options.use_cpu,
        logging_steps=options.logging_steps, disable_tqdm=options.quiet, report_to=options.report_to,
        fsdp=options.fsdp)
    report = ReportCallback(output_dir, recipe, tokenized)
    trainer = Trainer(model, args, train_dataset=tokenized["train"], eval_dataset=tokenized[recipe.validation],
                      processing_class=tokenizer, compute_metrics=make_compute_metrics(recipe), callbacks=[report])
    result = trainer.train(resume_from_checkpoint=options.resume)
    trainer.save_model(str(output_dir))  # every process calls the collectives below; rank 0 writes
    last_eval = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h), None)
    final = {k: v for k, v in last_eval.items() if k.startswith("eval_")} if last_eval else trainer.evaluate()
    if "test" in tokenized and "label" in tokenized["test"].column_names and min(tokenized["test"]["label"]) >= 0:
        final.update(trainer.predict(tokenized["test"]).metrics)
    report.finish(trainer, final)
    if not is_main():
        return 0
    (output_dir / TASK_FILE).write_text(json.dumps({
        "text_columns": recipe.source_columns, "task_type": recipe.task_type, "label_names": labels,
        "metrics": recipe.metric_names, "max_length": options.max_length, "task": recipe.name}, indent=2))
    (output_dir / "all_results.json").write_text(json.dumps({**result.metrics, **final}, indent=2))
    shown = "  ".join(f"{k.removeprefix('eval_')}={v:.4f}" for k, v in final.items()
                      if k.removeprefix("eval_") in ("accuracy", "f1", "macro_f1", "matthews_correlation",
                                                     "pearson", "spearmanr"))
    print(f"seqtune: final {recipe.validation} ({len(tokenized[recipe.validation])} examples): {shown}")
    print(f"seqtune: model, report.md and training_curves.png in {output_dir}/ "
          f"(train time {result.metrics['train_runtime']:.0f} s)")
    return 0


def check_output_dir(output_dir: Path, overwrite: bool, resume: Any) -> None:
    """Refuse a file, or another run's checkpoints, unless asked to overwrite or resume."""
    if output_dir.exists() and not output_dir.is_dir():
        raise SeqtuneError(f"--output-dir {output_dir} is a file; choose a folder")
    found = sorted(output_dir.glob("checkpoint-*")) if output_dir.is_dir() else []
    if found and not resume:
        if not overwrite:
            raise SeqtuneError(
                f"--output-dir {output_dir} already holds checkpoints ({', '.join(p.name for p in found[:3])}) "
                "from another run; pass --resume to continue it, --overwrite-output-dir to replace it, "
                "or another folder")
        for old in found:
            shutil.rmtree(old)
    existing = next(p for p in (output_dir, *output_dir.parents, Path(".")) if p.exists())
    if not os.access(existing, os.W_OK):
        raise SeqtuneError(f"--output-dir {output_dir} is not writable ({existing})")
