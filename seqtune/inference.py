"""`seqtune predict` and `seqtune evaluate`: a trained output folder applied to a file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .atomic import replacing
from .errors import SeqtuneError
from .task import TaskSpec


def load_trained(model_dir: str) -> tuple[Any, Any, TaskSpec]:
    """The model, its tokenizer and its task (how inputs are read and outputs scored); a LoRA output folder
    (adapter_config.json) or a standard model folder (the merged one included)."""
    from .lora import is_adapter_folder, load_adapter_model
    from .models import load_model_and_tokenizer

    folder = Path(model_dir)
    if is_adapter_folder(folder):  # a LoRA run's folder: its base model, with the adapters folded in
        model, tokenizer = load_adapter_model(folder, merge=True)
        return model, tokenizer, TaskSpec.for_model_folder(folder, model.config)
    if not (folder / "config.json").is_file():
        raise SeqtuneError(f"--model {folder}: not a trained model folder (no config.json, no adapter_config.json)")
    model, tokenizer = load_model_and_tokenizer(str(folder), num_labels=None)
    return model, tokenizer, TaskSpec.for_model_folder(folder, model.config)


def _read(path: str, fmt: str | None, spec: TaskSpec, text_columns: list[str] | None,
          label_column: str | None, needs_label: bool, header: bool | None):
    """The file as a frame, and which of its columns hold the texts (and the label)."""
    from .data.files import TextTask, infer_task, read_table

    if header is None and spec.text_columns and all(isinstance(c, int) for c in spec.text_columns):
        header = False  # trained on headerless files: files to label are read the same way
    frame = read_table(path, fmt, header, expected_columns=spec.text_columns)
    columns = text_columns or [c for c in spec.text_columns if c in frame.columns] or None
    found = infer_task(frame, columns, label_column if needs_label else None, spec.task_type, where=path)
    if needs_label and found.label_column is None:
        raise SeqtuneError(f"{path}: no label column found; pass --label-column NAME")
    return frame, TextTask(found.text_columns, found.label_column if needs_label else None, spec.task_type,
                           spec.label_names)


def _predict(options: argparse.Namespace, path: str, needs_label: bool, prefix: str):
    """The folder's model run over the file: (frame, task, tokenized rows, PredictionOutput)."""
    import datasets

    from .args import TrainingArguments
    from .data.files import to_dataset
    from .trainer import Trainer

    model, tokenizer, spec = load_trained(options.model)
    frame, text_task = _read(path, options.format, spec, options.text_column,
                             getattr(options, "label_column", None), needs_label, options.header)
    rows = spec.tokenize(datasets.DatasetDict({"rows": to_dataset(frame, text_task, path)}), tokenizer)["rows"]
    # Nothing is written: the model folder stands in as output_dir, and no save ever happens.
    # A model stored in bf16 predicts in bf16 (keep_model_dtype): nothing is trained here.
    args = TrainingArguments(options.model, per_device_eval_batch_size=options.batch_size, disable_tqdm=options.quiet,
                             save_strategy="no", report_to="none", keep_model_dtype=True)
    trainer = Trainer(model, args, processing_class=tokenizer,
                      compute_metrics=spec.compute_metrics() if needs_label else None)
    return frame, spec, rows, trainer.predict(rows, metric_key_prefix=prefix)


def run_predict(options: argparse.Namespace) -> int:
    """Write the input rows plus the predicted label and its probability (or the predicted value)."""
    output = Path(options.output)
    if output.suffix.lower() not in (".csv", ".tsv", ".jsonl"):
        raise SeqtuneError(f"--output {output}: write .csv, .tsv or .jsonl")
    _check_writable(output)  # before any inference runs
    if output.resolve() == Path(options.input).resolve():
        raise SeqtuneError(f"--output {output} is the --input file; write the predictions to another file")
    frame, spec, rows, prediction = _predict(options, options.input, needs_label=False, prefix="test")
    result = frame.copy()
    for column, values in spec.prediction_columns(spec.per_row(prediction.predictions, rows),
                                                  options.all_scores).items():
        result[column] = values
    output.parent.mkdir(parents=True, exist_ok=True)
    # Written beside, then renamed into place: killed or out of disk half-way, the old file stays whole.
    try:
        with replacing(output) as partial:
            if output.suffix.lower() == ".jsonl":
                result.to_json(partial, orient="records", lines=True, force_ascii=False)
            else:
                result.to_csv(partial, sep="\t" if output.suffix.lower() == ".tsv" else ",", index=False)
    except OSError as err:
        raise SeqtuneError(f"--output {output}: could not write the predictions ({err.strerror or err}); "
                           "any earlier file there is untouched") from None
    print(f"seqtune: wrote {len(result):,} predictions to {output}")
    return 0


def _check_writable(output: Path) -> None:
    from .outdir import check_writable

    if output.is_dir():
        raise SeqtuneError(f"--output {output} is a folder; name a file")
    check_writable(output, "--output", start=output.parent)  # the file itself may exist: it is replaced


def run_evaluate(options: argparse.Namespace) -> int:
    """Print the metrics the model was trained with, on a labelled file."""
    frame, _, _, prediction = _predict(options, options.data, needs_label=True, prefix="eval")
    print(f"seqtune: {options.data} ({len(frame):,} rows)")
    for key, value in prediction.metrics.items():
        print(f"  {key.removeprefix('eval_')}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    return 0
