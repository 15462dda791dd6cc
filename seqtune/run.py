"""`seqtune train`: data (a GLUE task or your files) -> tokenized splits -> Trainer -> output folder."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .atomic import write_text
from .errors import SeqtuneError
from .task import TaskSpec


@dataclass
class Recipe:
    """What `train` works on: raw splits with `text` (and `text_pair`) and `label`, and the task."""

    spec: TaskSpec
    splits: Any  # datasets.DatasetDict
    validation: str  # the split scored after each epoch


def glue_recipe(task_spec: str, data_dir: str | None, max_length: int | None = None) -> Recipe:
    from .data import load_dataset
    from .data.glue import glue_task
    from .metrics import GLUE_METRICS

    benchmark, _, task_name = task_spec.partition("/")
    if benchmark.lower() != "glue" or not task_name:
        raise SeqtuneError(f"--task {task_spec!r}: expected glue/<task>, e.g. glue/mrpc")
    key, task = glue_task(task_name)
    raw = load_dataset("glue", key, data_dir=data_dir)
    columns = list(task.text_columns)
    raw = raw.rename_columns(dict(zip(columns, ["text", "text_pair"], strict=False)))
    regression = task.label_names is None
    spec = TaskSpec(f"glue/{key}", "regression" if regression else "classification",
                    [] if regression else list(task.label_names), columns,
                    [scorer.__name__ for scorer in GLUE_METRICS[key]], max_length)
    return Recipe(spec, raw, "validation" if "validation" in raw else "validation_matched")


def file_recipe(options: argparse.Namespace) -> Recipe:
    from .data.files import load_files

    splits, task = load_files(
        options.train, options.validation, options.test, text_columns=options.text_column,
        label_column=options.label_column, task_type=options.task_type, fmt=options.format,
        header=options.header, validation_split=options.validation_split if not options.validation else None,
        seed=options.seed, label_separator=getattr(options, "label_separator", None),
        label_names=getattr(options, "label_names", None))
    if "validation" not in splits and not getattr(options, "folds", None):  # --folds makes its own
        raise SeqtuneError("no validation data: pass --validation FILE or --validation-split 0.1")
    path = Path(options.train).resolve()
    name = path.parent.name if path.stem.lower() in ("train", "training", "data") else path.stem
    spec = TaskSpec(name, task.task_type, task.label_names, task.text_columns, options.metric or [],
                    options.max_length, label_separator=task.label_separator, label_ids=bool(task.names_file))
    return Recipe(spec, splits, "validation")


def run_train(options: argparse.Namespace) -> int:
    """Fine-tune, print per-epoch and final validation metrics, save a standard model folder. `options`
    have passed `options.validate` (the command line does that first)."""
    if getattr(options, "folds", None) or getattr(options, "seeds", None):
        from .crossval import run_crossval

        return run_crossval(options)
    recipe = load_recipe(options)
    output_dir = Path(options.output_dir or f"runs/{recipe.spec.name.replace('/', '-')}")
    from .outdir import check_output_dir, hold

    with hold(output_dir):  # a second run into the same folder is refused while this one lives
        check_output_dir(output_dir, options.overwrite_output_dir, options.resume)
        return _train(options, recipe, output_dir)


def load_recipe(options: argparse.Namespace) -> Recipe:
    """The task and raw splits that train's options name (tune and cross-validation start here too)."""
    recipe = (glue_recipe(options.task, options.data_dir, options.max_length) if options.task
              else file_recipe(options))
    recipe.spec = replace(recipe.spec, long_text=options.long_text, stride=options.stride)  # checked again
    return recipe


def _train(options: argparse.Namespace, recipe: Recipe, output_dir: Path, callbacks: Any = ()) -> int:
    from .args import TrainingArguments
    from .bestmodel import callbacks as best_model_callbacks
    from .bestmodel import describe as describe_kept
    from .bestmodel import kept_evaluation, outcome, training_arguments
    from .distributed import is_main
    from .models import load_model_and_tokenizer
    from .outdir import clear_old_run, drop_stale_merged
    from .report import MetricsLogCallback
    from .trainer import Trainer, set_seed

    # The options first (a typo costs nothing), then the model and the data.
    args = TrainingArguments(
        str(output_dir), overwrite_output_dir=options.overwrite_output_dir, eval_strategy="epoch",
        save_strategy=options.save_strategy, save_total_limit=options.save_total_limit,
        num_train_epochs=options.epochs, max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size, per_device_eval_batch_size=options.eval_batch_size,
        learning_rate=options.learning_rate, weight_decay=options.weight_decay,
        warmup_steps=options.warmup_steps if options.warmup_steps < 1 else int(options.warmup_steps),
        warmup_ratio=options.warmup_ratio, lr_scheduler_type=options.lr_scheduler, optim=options.optim,
        lr_scheduler_kwargs=options.lr_scheduler_kwargs, label_smoothing_factor=options.label_smoothing,
        gradient_accumulation_steps=options.gradient_accumulation_steps, seed=options.seed,
        bf16=options.bf16, group_by_length=options.group_by_length, use_cpu=options.use_cpu,
        logging_steps=options.logging_steps, disable_tqdm=options.quiet, report_to=options.report_to,
        fsdp=options.fsdp, keep_model_dtype=options.keep_model_dtype,
        gradient_checkpointing=options.gradient_checkpointing, **training_arguments(options, recipe.spec.metrics),
        torch_compile=options.torch_compile is not None,
        torch_compile_mode=None if options.torch_compile in (None, "default") else options.torch_compile)
    from .optim import check_scheduler

    check_scheduler(args)  # a schedule missing its options is said before the model and data load
    spec = recipe.spec
    labels = spec.label_names
    if options.resume:
        _check_same_labels(output_dir, options.resume, labels)
    config = {"id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)}} if labels else {}
    if spec.task_type == "regression":
        config["problem_type"] = "regression"
    elif spec.task_type == "multi_label":  # transformers' BCE-with-logits loss and sigmoid scores
        config["problem_type"] = "multi_label_classification"
    config["ignore_mismatched_sizes"] = True  # a classifier head of another size is replaced, not an error
    set_seed(options.seed)  # the new classifier head is drawn now: the same seed gives the same run
    model, tokenizer = load_model_and_tokenizer(options.model, len(labels) or 1, **config)
    positions = getattr(model.config, "max_position_embeddings", None)
    if options.max_length is not None and positions and options.max_length > positions:
        raise SeqtuneError(f"--max-length {options.max_length} is past the model's {positions} positions; "
                           f"use at most {positions}")
    if options.lora:
        from .lora import LoraOptions, apply_lora

        model = apply_lora(model, LoraOptions(options.lora_rank, options.lora_alpha, options.lora_dropout,
                                              options.lora_targets))
    if options.quiet:
        import datasets

        datasets.disable_progress_bars()
    tokenized = spec.tokenize(recipe.splits, tokenizer)
    _say_long_text(spec, recipe, tokenizer, len(tokenized["train"]))
    metrics_log = MetricsLogCallback(output_dir)
    validation = tokenized[recipe.validation]
    # Given the rows it scores, compute_metrics scores documents, not chunks' windows.
    from .multilabel import loss_for

    loss_func, class_weights = loss_for(getattr(options, "class_weights", None), spec.task_type, labels,
                                        recipe.splits["train"], options.label_smoothing)
    stopper, keeper = best_model_callbacks(options, model)  # early stopping; the best weights without checkpoints
    trainer = Trainer(model, args, train_dataset=tokenized["train"], eval_dataset=validation,
                      processing_class=tokenizer, compute_metrics=spec.compute_metrics(validation),
                      callbacks=[metrics_log, *callbacks, *filter(None, (stopper, keeper))],
                      compute_loss_func=loss_func)
    if options.overwrite_output_dir and not options.resume:
        clear_old_run(output_dir, lora=options.lora)  # last: options, data and model have all been checked
    result = trainer.train(resume_from_checkpoint=options.resume)
    trainer.save_model(str(output_dir))  # every process calls the collectives below; rank 0 writes
    kept = outcome(trainer, stopper, keeper, getattr(options, "load_best", True))
    last_eval = kept_evaluation(trainer.state.log_history, kept)  # the kept model's evaluation
    final = {k: v for k, v in last_eval.items() if k.startswith("eval_")} if last_eval else trainer.evaluate()
    if "test" in tokenized and "label" in tokenized["test"].column_names and (
            spec.task_type == "multi_label" or min(tokenized["test"]["label"]) >= 0):
        trainer.compute_metrics = spec.compute_metrics(tokenized["test"])  # the test rows' documents
        final.update(trainer.predict(tokenized["test"]).metrics)
        trainer.compute_metrics = spec.compute_metrics(validation)
    validation_output = spec.per_row_output(trainer.predict(validation), validation)
    if not is_main():
        return 0
    extra: dict[str, Any] = {"class_weights": class_weights} if class_weights else {}
    if spec.task_type == "multi_label":
        from .multilabel import tune_on_validation

        extra.update(tune_on_validation(spec, validation_output))  # spec.thresholds, saved with it below
    # The model and its results first: a report that cannot be drawn loses nothing.
    spec.save(output_dir)
    write_text(output_dir / "all_results.json", json.dumps({**result.metrics, **final}, indent=2))
    shown = "  ".join(f"{k.removeprefix('eval_')}={v:.4f}" for k, v in final.items()
                      if k.removeprefix("eval_") in ("accuracy", "f1", "macro_f1", "matthews_correlation",
                                                     "pearson", "spearmanr", "micro_f1", "subset_accuracy"))
    print(f"seqtune: {describe_kept(kept)}")
    print(f"seqtune: final {recipe.validation} ({len(recipe.splits[recipe.validation])} examples): {shown}")
    from .errors_analysis import validation_report

    extra.update(validation_report(spec, validation_output, recipe.splits[recipe.validation]), best_model=kept)
    _write_report(output_dir, trainer, spec, recipe.splits, metrics_log.epoch_seconds, final, validation_output,
                  extra)
    if options.merge_lora:  # last: merging folds the adapters into the model the trainer holds
        from .lora import MERGED_DIR, save_merged

        save_merged(trainer.model, output_dir / MERGED_DIR, tokenizer)
        spec.save(output_dir / MERGED_DIR)
        print(f"seqtune: merged model (LoRA folded into the weights) in {output_dir / MERGED_DIR}/")
    else:
        drop_stale_merged(output_dir)
    print(f"seqtune: model, report.md and training_curves.png in {output_dir}/ "
          f"(train time {result.metrics['train_runtime']:.0f} s)")
    return 0


def _say_long_text(spec: TaskSpec, recipe: Recipe, tokenizer: Any, windows: int) -> None:
    """The header line on training rows past the window: how many, by how much, what is done with them."""
    from .distributed import is_main
    from .longtext import describe

    line = describe(recipe.splits["train"], tokenizer, spec.long_text, spec.max_length, spec.stride, windows)
    if line and is_main():
        print(f"seqtune: {line}")


def _check_same_labels(output_dir: Path, resume: Any, labels: list[str]) -> None:
    """A checkpoint's classes are its labels in id order: resuming with other names (even as many) would
    train its heads under the wrong ones."""
    from . import checkpoint as ckpt

    found = [Path(resume)] if isinstance(resume, str) else ckpt.list_checkpoints(output_dir)[-1:]
    # A LoRA checkpoint keeps the classifier's config beside the adapter.
    config = next((found[0] / n for n in ("config.json", "classifier_config.json") if (found[0] / n).is_file()),
                  None) if found else None
    if config is None:
        return  # nothing to compare; the resume itself says what is missing
    try:
        saved = json.loads(config.read_text(encoding="utf-8")).get("id2label") or {}
        before = [saved[str(i)] for i in range(len(saved))]
    except (ValueError, KeyError, AttributeError):
        return
    if labels and before != labels:
        raise SeqtuneError(f"resume: {found[0]} was trained on the labels {', '.join(before[:6])}; this data has "
                           f"{', '.join(labels[:6])}; resume with the same labels, or start a new output folder")


def _write_report(output_dir: Path, trainer: Any, spec: TaskSpec, splits: Any, epoch_seconds: list[float],
                  final: dict[str, float], validation_output: Any, extra: dict[str, Any] | None = None) -> None:
    """run.json (what the report needs besides metrics.jsonl), then report.md, the plot and the card."""
    from .device import describe
    from .report import RUN_FILE, confusion, data_balance, rebuild_report

    run: dict[str, Any] = {
        "task": spec.name, "task_type": spec.task_type, "label_names": spec.label_names,
        "model": getattr(getattr(trainer.model, "config", None), "_name_or_path", "") or "custom model",
        "device": describe(trainer.device, trainer.autocast_dtype), "args": trainer.args.to_dict(),
        "data": {split: data_balance(splits[split], spec.label_names) for split in splits},
        "epoch_seconds": epoch_seconds, "final": final,
        "best_model_checkpoint": trainer.state.best_model_checkpoint, "best_metric": trainer.state.best_metric}
    run.update(extra or {})  # multi-label thresholds, class weights
    if validation_output is not None and spec.task_type == "classification":
        predicted = validation_output.predictions.argmax(-1).tolist()
        run["confusion"] = confusion(validation_output.label_ids.tolist(), predicted, len(spec.label_names))
    write_text(output_dir / RUN_FILE, json.dumps(run, indent=2, default=str))
    rebuild_report(output_dir)
