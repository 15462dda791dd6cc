"""The command line: `seqtune train --task glue/mrpc`. Heavy imports happen inside the commands."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqtune",
        description="Fine-tune transformer models for text classification and regression.",
        epilog="Example: seqtune train --task glue/mrpc   (GLUE data from $GLUE_DIR/MRPC/)")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser(
        "train", help="fine-tune a model", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Fine-tune a model on a GLUE task and report the dev metrics after each epoch.")
    data = train.add_argument_group("data")
    data.add_argument("--task", required=True, help="glue/<task>, e.g. glue/mrpc")
    data.add_argument("--data-dir", help="folder with the task's GLUE TSVs (default: $GLUE_DIR/<TASK>)")
    data.add_argument("--max-length", type=int, default=None, help="truncate pairs to this many tokens "
                      "(default: the model's maximum)")
    model = train.add_argument_group("model")
    model.add_argument("--model", default="default", help="hub id or local folder; 'default' is the "
                       "embedded all-MiniLM-L6-v2")
    training = train.add_argument_group("training")
    training.add_argument("--epochs", type=float, default=3.0, help="number of training epochs")
    training.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps")
    training.add_argument("--batch-size", type=int, default=8, help="per-device training batch size")
    training.add_argument("--eval-batch-size", type=int, default=8, help="per-device evaluation batch size")
    training.add_argument("--learning-rate", type=float, default=5e-5, help="peak AdamW learning rate")
    training.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    training.add_argument("--warmup-steps", type=float, default=0,
                          help="linear warmup: steps, or a fraction of all steps if < 1")
    training.add_argument("--gradient-accumulation-steps", type=int, default=1,
                          help="micro-batches per optimizer step")
    training.add_argument("--seed", type=int, default=42, help="seed for weights init, order, dropout")
    training.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                          help="bf16 autocast (default: where the hardware runs it natively)")
    training.add_argument("--no-group-by-length", dest="group_by_length", action="store_false",
                          help="plain random batches instead of length-grouped ones")
    training.add_argument("--use-cpu", action="store_true", help="train on the CPU even if a GPU is there")
    checkpoints = train.add_argument_group("checkpoints and output")
    checkpoints.add_argument("--output-dir", default=None, help="default: runs/<task>")
    checkpoints.add_argument("--overwrite-output-dir", action="store_true",
                             help="allow an output directory that holds another run's checkpoints")
    checkpoints.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                             help="continue the newest checkpoint in the output directory, or CHECKPOINT")
    checkpoints.add_argument("--save-strategy", choices=("no", "steps", "epoch"), default="epoch",
                             help="when to write a checkpoint")
    checkpoints.add_argument("--save-total-limit", type=int, default=2,
                             help="checkpoints kept (the best and the newest are never deleted)")
    checkpoints.add_argument("--logging-steps", type=float, default=50, help="log the training loss every N steps")
    checkpoints.add_argument("--quiet", action="store_true", help="no progress bar; plain log lines")
    checkpoints.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _version() -> str:
    from . import __version__

    return f"seqtune {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.command is None:
        parser.print_help()
        return 2
    from .errors import SeqtuneError

    try:
        return {"train": run_train}[options.command](options)
    except SeqtuneError as err:
        if getattr(options, "debug", False):
            raise
        print(f"seqtune: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqtune: interrupted; resume with --resume", file=sys.stderr)
        return 130


def run_train(options: argparse.Namespace) -> int:
    """Fine-tune on a GLUE task; print per-epoch and final dev metrics; save the model."""
    from .errors import SeqtuneError

    benchmark, _, task_name = options.task.partition("/")
    if benchmark.lower() != "glue" or not task_name:
        raise SeqtuneError(f"--task {options.task!r}: expected glue/<task>, e.g. glue/mrpc")
    from .data.glue import glue_task

    task_key, task = glue_task(task_name)
    output_dir = Path(options.output_dir or f"runs/{task_key}")
    _check_output_dir(output_dir, options)

    from .args import TrainingArguments
    from .data import load_dataset
    from .metrics import load_metric
    from .models import load_model_and_tokenizer
    from .trainer import Trainer

    raw = load_dataset("glue", task_key, data_dir=options.data_dir)
    labels = task.label_names
    config = {} if labels is None else {"id2label": dict(enumerate(labels)),
                                        "label2id": {name: i for i, name in enumerate(labels)}}
    model, tokenizer = load_model_and_tokenizer(options.model, len(labels) if labels else 1, **config)
    text_columns = task.text_columns

    def tokenize(batch: dict) -> dict:
        return tokenizer(*(batch[c] for c in text_columns), truncation=True, max_length=options.max_length)

    tokenized = raw.map(tokenize, batched=True, desc="tokenizing")
    validation = "validation" if "validation" in tokenized else "validation_matched"
    metric = load_metric("glue", task_key)

    def compute_metrics(eval_pred):
        logits, references = eval_pred
        predictions = logits[:, 0] if labels is None else logits.argmax(-1)
        return metric.compute(predictions=predictions, references=references)

    args = TrainingArguments(
        str(output_dir), overwrite_output_dir=options.overwrite_output_dir, eval_strategy="epoch",
        save_strategy=options.save_strategy, save_total_limit=options.save_total_limit,
        num_train_epochs=options.epochs, max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size, per_device_eval_batch_size=options.eval_batch_size,
        learning_rate=options.learning_rate, weight_decay=options.weight_decay,
        warmup_steps=options.warmup_steps if options.warmup_steps < 1 else int(options.warmup_steps),
        gradient_accumulation_steps=options.gradient_accumulation_steps, seed=options.seed,
        bf16=options.bf16, group_by_length=options.group_by_length, use_cpu=options.use_cpu,
        logging_steps=options.logging_steps, disable_tqdm=options.quiet)
    trainer = Trainer(model, args, train_dataset=tokenized["train"], eval_dataset=tokenized[validation],
                      processing_class=tokenizer, compute_metrics=compute_metrics)
    result = trainer.train(resume_from_checkpoint=options.resume)
    trainer.save_model(str(output_dir))
    last_eval = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h), None)
    final = {k: v for k, v in last_eval.items() if k.startswith("eval_")} if last_eval else trainer.evaluate()
    results = {**result.metrics, **final}
    (output_dir / "all_results.json").write_text(json.dumps(results, indent=2))
    shown = "  ".join(f"{k.removeprefix('eval_')}={v:.4f}" for k, v in final.items()
                      if k.removeprefix("eval_") in ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr"))
    print(f"seqtune: final dev ({validation}, {len(tokenized[validation])} examples): {shown}")
    print(f"seqtune: model and results in {output_dir}/ (train time {result.metrics['train_runtime']:.0f} s)")
    return 0


def _check_output_dir(output_dir: Path, options: argparse.Namespace) -> None:
    """Refuse a file, or another run's checkpoints, unless asked to overwrite or resume."""
    from .errors import SeqtuneError

    if output_dir.exists() and not output_dir.is_dir():
        raise SeqtuneError(f"--output-dir {output_dir} is a file; choose a folder")
    found = sorted(output_dir.glob("checkpoint-*")) if output_dir.is_dir() else []
    if found and not options.resume:
        if not options.overwrite_output_dir:
            raise SeqtuneError(
                f"--output-dir {output_dir} already holds checkpoints ({', '.join(p.name for p in found[:3])}) "
                "from another run; pass --resume to continue it, --overwrite-output-dir to replace it, "
                "or another folder")
        for old in found:
            shutil.rmtree(old)
    existing = next(p for p in (output_dir, *output_dir.parents, Path(".")) if p.exists())
    if not os.access(existing, os.W_OK):
        raise SeqtuneError(f"--output-dir {output_dir} is not writable ({existing})")


if __name__ == "__main__":
    sys.exit(main())
