"""`seqtune predict` and `seqtune evaluate`: a trained output folder applied to a file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .atomic import replacing
from .errors import SeqtuneError
from .task import TASK_FILE, TaskSpec


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
          label_column: str | list[str] | None, needs_label: bool, header: bool | None):
    """The file as a frame, and which of its columns hold the texts (and the label). A multi-label model's
    labels: cells as it was trained on (its separator, ids), or its labels' 0/1 columns."""
    from .data.files import TextTask, indicator_frame, infer_task, read_table

    if header is None and spec.text_columns and all(isinstance(c, int) for c in spec.text_columns):
        header = False  # trained on headerless files: files to label are read the same way
    frame = read_table(path, fmt, header, expected_columns=spec.text_columns)
    columns = text_columns or [c for c in spec.text_columns if c in frame.columns] or None
    label_column = label_column[0] if isinstance(label_column, list) and len(label_column) == 1 else label_column
    multi = spec.task_type == "multi_label"
    given = set(map(str, label_column)) if multi and needs_label and isinstance(label_column, list) else None
    if given is not None and given != set(spec.label_names):  # a label left out would score as never present
        missing = [name for name in spec.label_names if name not in given]
        raise SeqtuneError(f"--label-column: one 0/1 column per label of the model ({', '.join(spec.label_names)}); "
                           + (f"{', '.join(missing)} has none" if missing else "the others are not its labels"))
    if needs_label and multi and (isinstance(label_column, list) or label_column is None and spec.label_names and
                                  set(spec.label_names) <= set(map(str, frame.columns))):
        frame, label_column = indicator_frame(frame, label_column or spec.label_names, path)  # 0/1 columns
    found = infer_task(frame, columns, label_column if needs_label else None, spec.task_type, where=path,
                       label_separator=spec.label_separator if multi else None,
                       names=spec.label_names if multi else None)
    if needs_label and found.label_column is None:
        raise SeqtuneError(f"{path}: no label column found; pass --label-column NAME")
    return frame, TextTask(found.text_columns, found.label_column if needs_label else None, spec.task_type,
                           spec.label_names, spec.label_separator if multi else None,
                           "the model's label names" if spec.label_ids else None)


def _predict(options: argparse.Namespace, path: str, needs_label: bool):
    """The folder's model run over the file: (frame, predictor, dataset of its texts and labels, logits
    one row per file row)."""
    from .data.files import to_dataset
    from .predictor import Predictor

    predictor = Predictor(options.model, engine=getattr(options, "engine", "torch"), batch_size=options.batch_size,
                          quiet=options.quiet)
    frame, text_task = _read(path, options.format, predictor.spec, options.text_column,
                             getattr(options, "label_column", None), needs_label, options.header)
    pairs = len(text_task.text_columns) == 2
    if predictor.pairs_expected is not None and pairs != predictor.pairs_expected:
        raise SeqtuneError(f"{path}: the model reads " + (
            f"text pairs ({' + '.join(map(str, predictor.spec.text_columns))}), but only the text column "
            f"{text_task.text_columns[0]!r} was found; pass --text-column twice" if predictor.pairs_expected else
            f"single texts, but the columns {' + '.join(map(str, text_task.text_columns))} were taken as a pair; "
            "pass --text-column once"))
    # 0/1 label cells are the model's ids only where its id order is the data's own: a GLUE task's, or a plain
    # transformers folder's id2label. A run on files numbered its classes in sorted order, which no file knows.
    canonical = predictor.spec.name.startswith("glue/") or not (Path(options.model) / TASK_FILE).is_file()
    dataset = to_dataset(frame, text_task, path, ids_for_names=canonical)
    return frame, predictor, dataset, predictor.dataset_logits(dataset)


def run_predict(options: argparse.Namespace) -> int:
    """Write the input rows plus the predicted label and its probability (or the predicted value)."""
    output = Path(options.output)
    if output.suffix.lower() not in (".csv", ".tsv", ".jsonl"):
        raise SeqtuneError(f"--output {output}: write .csv, .tsv or .jsonl")
    _check_writable(output)  # before any inference runs
    if output.resolve() == Path(options.input).resolve():
        raise SeqtuneError(f"--output {output} is the --input file; write the predictions to another file")
    frame, predictor, _, logits = _predict(options, options.input, needs_label=False)
    result = frame.copy()
    columns = predictor.spec.prediction_columns(logits, options.all_scores, getattr(options, "threshold", None))
    for column, values in columns.items():
        result[column] = values
    if "predicted_labels" in columns and output.suffix.lower() != ".jsonl":  # a list a row: JSON in .jsonl
        joiner = predictor.spec.label_separator or "|"  # a CSV cell: joined as the training cells were
        result["predicted_labels"] = [joiner.join(names) for names in columns["predicted_labels"]]
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


def _write_errors(path: str, spec: TaskSpec, dataset: Any, logits: Any) -> None:
    """evaluate --errors: every wrong row (regression: every row), surest mistake or largest error first."""
    import numpy as np

    from .errors_analysis import error_rows, write_errors
    from .trainer import PredictionOutput

    pairs = dataset["text_pair"] if "text_pair" in dataset.column_names else None
    rows = error_rows(PredictionOutput(logits, np.asarray(dataset["label"]), {}), dataset["text"],
                      task_type=spec.task_type, label_names=spec.label_names, thresholds=spec.thresholds,
                      text_pairs=pairs)
    # The file's data rows counted from 1, as seqtune's messages count them (error_rows' are 0-based positions).
    write_errors([{**row, "row": row["row"] + 1} for row in rows], path, spec.label_separator or "|")
    what = "rows, largest error first" if spec.task_type == "regression" else "wrong rows, most confident first"
    print(f"seqtune: wrote {len(rows):,} {what} to {path}")


def run_evaluate(options: argparse.Namespace) -> int:
    """Print the metrics the model was trained with, on a labelled file."""
    import time

    import numpy as np

    if getattr(options, "errors", None):
        from .errors_analysis import check_errors_path

        check_errors_path(options.errors, options.data)  # before any inference runs
    start = time.perf_counter()
    frame, predictor, dataset, logits = _predict(options, options.data, needs_label=True)
    labels = np.asarray(dataset["label"])
    metrics = {"loss": predictor.spec.loss(logits, labels), **predictor.spec.compute_metrics()((logits, labels))}
    runtime = time.perf_counter() - start
    if getattr(options, "errors", None):
        _write_errors(options.errors, predictor.spec, dataset, logits)
    print(f"seqtune: {options.data} ({len(frame):,} rows, {predictor.engine} engine)")
    for key, value in {**metrics, "runtime": runtime, "samples_per_second": len(frame) / runtime}.items():
        print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    return 0
