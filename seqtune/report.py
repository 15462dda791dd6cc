"""What a run leaves behind: metrics.jsonl, training_curves.png, report.md and a hub model card."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .atomic import replacing, write_text
from .callbacks import TrainerCallback
from .distributed import is_main
from .errors import SeqtuneError

METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
CURVES_FILE = "training_curves.png"


class MetricsLogCallback(TrainerCallback):
    """Appends every log to metrics.jsonl as it happens (so a run cut short keeps its curve), and
    times each epoch."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = Path(output_dir)
        self.epoch_started = 0.0
        self.epoch_seconds: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs: Any) -> None:
        if not is_main():
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if state.global_step == 0:
            (self.output_dir / METRICS_FILE).write_text("")

    def on_epoch_begin(self, args, state, control, **kwargs: Any) -> None:
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs: Any) -> None:
        self.epoch_seconds.append(round(time.perf_counter() - self.epoch_started, 1))

    def on_log(self, args, state, control, logs: dict | None = None, **kwargs: Any) -> None:
        if not is_main():
            return
        with open(self.output_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(logs) + "\n")


def data_balance(split: Any, label_names: list[str]) -> dict[str, Any]:
    info: dict[str, Any] = {"rows": len(split)}
    if "label" in split.column_names and label_names and len(split) and isinstance(split[0]["label"], list):
        rows = split["label"]  # multi-hot: the rows holding each label, and those with none
        info["labels"] = {name: sum(row[i] > 0.5 for row in rows) for i, name in enumerate(label_names)}
        info["labels"]["no label"] = sum(not any(v > 0.5 for v in row) for row in rows)
    elif "label" in split.column_names and label_names:
        counts = Counter(split["label"])
        info["labels"] = {label_names[i] if 0 <= i < len(label_names) else str(i): n
                          for i, n in sorted(counts.items())}
    return info


def confusion(gold: list[int], predicted: list[int], classes: int) -> list[list[int]]:
    matrix = [[0] * classes for _ in range(classes)]
    for g, p in zip(gold, predicted, strict=True):
        if 0 <= g < classes:
            matrix[g][p] += 1
    return matrix


def read_metrics(output_dir: Path) -> list[dict[str, Any]]:
    path = Path(output_dir) / METRICS_FILE
    if not path.is_file():
        raise SeqtuneError(f"{output_dir} has no {METRICS_FILE}; is it a seqtune output directory?")
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # a run killed mid-write leaves a torn last line: skip it
                break
            raise SeqtuneError(f"{path}: line {number} is not a JSON record; the file was changed or damaged "
                               "after it was written") from None
        if isinstance(record, dict):
            records.append(record)
    return records


def plot_curves(records: list[dict[str, Any]], path: Path) -> list[tuple[str, str, str]]:
    """Training loss and learning rate by step, evaluation metrics at each evaluation, epochs marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if "loss" in r and "step" in r]
    evals = [r for r in records if "eval_loss" in r]
    eval_keys = sorted({k for r in evals for k in r if k.startswith("eval_") and k not in
                        ("eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second")})
    figure, (loss_ax, lr_ax, eval_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="training loss", color="C0")
    if evals:
        loss_ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", label="eval loss",
                     color="C3")
    loss_ax.set(title="Loss", xlabel="optimizer step", ylabel="loss")
    lr_ax.plot([r["step"] for r in train if "learning_rate" in r],
               [r["learning_rate"] for r in train if "learning_rate" in r], color="C2")
    lr_ax.set(title="Learning rate", xlabel="optimizer step", ylabel="learning rate")
    for key in eval_keys:
        eval_ax.plot([r["step"] for r in evals if key in r], [r[key] for r in evals if key in r], "o-",
                     label=key.removeprefix("eval_"))
    eval_ax.set(title="Evaluation metrics", xlabel="optimizer step", ylabel="value")
    steps_per_epoch = _steps_per_epoch(records)
    last_step = max([r.get("step", 0) for r in records] or [0])
    for axis in (loss_ax, lr_ax, eval_ax):
        if steps_per_epoch:
            for epoch in range(1, int(last_step / steps_per_epoch) + 1):
                axis.axvline(epoch * steps_per_epoch, color="grey", linestyle=":", linewidth=1)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="best", fontsize=8)
    figure.suptitle("seqtune run (dotted lines: epoch ends)")
    figure.tight_layout()
    with replacing(path) as partial:
        figure.savefig(partial, dpi=110, format="png")
    plt.close(figure)
    return [(a.get_title(), a.get_xlabel(), a.get_ylabel()) for a in (loss_ax, lr_ax, eval_ax)]


def _steps_per_epoch(records: list[dict[str, Any]]) -> float | None:
    for record in records:
        if record.get("epoch") and record.get("step"):
            return record["step"] / record["epoch"]
    return None


def rebuild_report(output_dir: Path) -> int:
    """`seqtune report DIR`: the plot, report.md and the model card again from the run's files."""
    output_dir = Path(output_dir)
    records = read_metrics(output_dir)
    run_path = output_dir / RUN_FILE
    try:
        run = json.loads(run_path.read_text(encoding="utf-8")) if run_path.is_file() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SeqtuneError(f"{run_path} is damaged (not JSON); train again to rebuild it") from None
    if not isinstance(run, dict):
        raise SeqtuneError(f"{run_path} is damaged (not a JSON object); train again to rebuild it")
    try:
        plot_curves(records, output_dir / CURVES_FILE)
        plotted = True
    except ImportError:  # the report is still written; the model and metrics are already saved
        print("seqtune: note: training_curves.png not drawn: matplotlib is not installed (pip install matplotlib)")
        plotted = False
    write_text(output_dir / "report.md", render_report(records, run, plotted))
    write_text(output_dir / "README.md", render_model_card(run))
    print(f"seqtune: wrote {output_dir / 'report.md'}{', ' + CURVES_FILE if plotted else ''} and the model "
          "card README.md")
    return 0


def render_report(records: list[dict[str, Any]], run: dict[str, Any], plotted: bool = True) -> str:
    args = run.get("args", {})
    summary = next((r for r in reversed(records) if "train_runtime" in r), {})
    lines = [f"# seqtune run: {run.get('task', 'unknown task')}", "",
             *([f"![training curves]({CURVES_FILE})", ""] if plotted else []), "## Recipe", "",
             f"- model: `{run.get('model', '?')}`; task type: {run.get('task_type', '?')}",
             f"- epochs {args.get('num_train_epochs')}, max steps {args.get('max_steps')}, batch "
             f"{args.get('per_device_train_batch_size')} x {args.get('gradient_accumulation_steps')} accumulation, "
             f"learning rate {args.get('learning_rate')} ({args.get('lr_scheduler_type')}, warmup "
             f"{args.get('warmup_steps')}), weight decay {args.get('weight_decay')}, seed {args.get('seed')}",
             f"- device and precision: {run.get('device', '?')}",
             *(["- class weights in the loss: " + ", ".join(
                 f"{k} {v:.3g}" for k, v in run["class_weights"].items())] if run.get("class_weights") else []),
             *(["- thresholds (each label's, tuned on validation): " + ", ".join(
                 f"{k} {v:.2f}" for k, v in run["thresholds"].items())] if run.get("thresholds") else []),
             "", "## Data", ""]
    for split, info in run.get("data", {}).items():
        balance = ", ".join(f"{k}: {v}" for k, v in info.get("labels", {}).items())
        lines.append(f"- {split}: {info['rows']:,} rows" + (f" ({balance})" if balance else ""))
    lines += ["", "## Speed", ""]
    if summary:
        lines.append(f"- training: {summary.get('train_runtime', 0):.1f} s, "
                     f"{summary.get('train_samples_per_second', 0):.1f} samples/s")
    if run.get("epoch_seconds"):
        lines.append("- time per epoch (s): " + ", ".join(f"{s:.1f}" for s in run["epoch_seconds"]))
    lines += ["", "## Results", ""]
    for key, value in run.get("final", {}).items():
        if not key.endswith(("runtime", "per_second")):
            lines.append(f"- {key}: {value:.4f}" if isinstance(value, float) else f"- {key}: {value}")
    if run.get("best_model"):
        from .bestmodel import describe

        lines.append(f"- model kept: {describe(run['best_model'])}")
    elif run.get("best_model_checkpoint"):
        lines.append(f"- best checkpoint: `{run['best_model_checkpoint']}` "
                     f"({args.get('metric_for_best_model')} = {run.get('best_metric')})")
    if run.get("confusion"):
        names = run.get("label_names") or [str(i) for i in range(len(run["confusion"]))]
        lines += ["", "## Confusion matrix (validation; rows: true label, columns: predicted)", "",
                  "| true \\ predicted | " + " | ".join(names) + " |",
                  "| --- |" + " ---: |" * len(names)]
        for name, row in zip(names, run["confusion"], strict=True):
            lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines + _per_class_lines(run) + _error_lines(run)) + "\n"


def _per_class_lines(run: dict[str, Any]) -> list[str]:
    """Precision, recall, F1 and support of each class (multi-label: each label) on the validation split."""
    if not run.get("per_class"):
        return []
    kind = "label" if run.get("task_type") == "multi_label" else "class"
    where = "validation, at the saved thresholds" if kind == "label" else "validation"
    lines = ["", f"## Per-{kind} scores ({where})", "", f"| {kind} | precision | recall | F1 | support |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for score in run["per_class"]:
        lines.append(f"| {score['label']} | {score['precision']:.4f} | {score['recall']:.4f} | {score['f1']:.4f} | "
                     f"{score['support']} |")
    return lines


def _cell(value: Any) -> str:
    """A value as one markdown table cell: label sets joined, pipes escaped, line breaks as spaces."""
    if isinstance(value, list):
        value = ", ".join(value) or "(none)"
    if isinstance(value, float):
        value = f"{value:.4g}"
    return " ".join(str(value).split()).replace("|", "\\|")


def _error_lines(run: dict[str, Any]) -> list[str]:
    """The validation rows the model got most confidently wrong (regression: the largest errors)."""
    errors = run.get("errors")
    if not errors or not errors.get("shown"):
        return []
    regression = run.get("task_type") == "regression"
    shown = errors["shown"]
    if regression:
        title = f"## Largest errors (validation: the {len(shown)} largest of {errors['rows']:,} rows)"
    elif run.get("task_type") == "multi_label":
        title = (f"## Most confident mistakes (validation: {errors['wrong']:,} of {errors['rows']:,} rows with "
                 f"a wrong label set; the {len(shown)} surest)")
    else:
        title = (f"## Most confident mistakes (validation: {errors['wrong']:,} of {errors['rows']:,} rows wrong; "
                 "the surest few of each true label)")
    last = "absolute error" if regression else "score"
    lines = ["", title, "", f"| row | text | true | predicted | {last} |", "| ---: | --- | --- | --- | ---: |"]
    for row in shown:
        text = row["text"] + (f" ‖ {row['text_pair']}" if row.get("text_pair") is not None else "")
        lines.append(f"| {row['row']} | {_cell(text)} | {_cell(row['label'])} | {_cell(row['predicted'])} | "
                     f"{_cell(row['error'] if regression else row['score'])} |")
    return lines


def render_model_card(run: dict[str, Any]) -> str:
    """A README.md with the YAML front matter the Hugging Face hub reads (model-index with results)."""
    final = {k.removeprefix("eval_"): v for k, v in run.get("final", {}).items()
             if k.startswith("eval_") and isinstance(v, float) and not k.endswith(("loss", "runtime", "per_second"))}
    metric_lines = "".join(f"      - type: {k}\n        value: {v:.4f}\n" for k, v in final.items())
    task = run.get("task", "text classification")
    base = run.get("model", "")
    front = ("---\nlibrary_name: transformers\npipeline_tag: text-classification\ntags:\n- seqtune\n"
             "- text-classification\n" + (f"base_model: {base}\n" if base and "/" in base and
                                          not base.startswith("/") else "") +
             f"model-index:\n- name: {task.replace('/', '-')}-seqtune\n  results:\n  - task:\n"
             "      type: text-classification\n    dataset:\n"
             f"      name: {task}\n      type: {task}\n    metrics:\n{metric_lines}---\n")
    labels = ", ".join(run.get("label_names", [])) or "a real value (regression)"
    args = run.get("args", {})
    return front + (
        f"\n# {task} fine-tuned with seqtune\n\nFine-tuned from `{base}` on {task} ({run.get('task_type')}; "
        f"outputs: {labels}).\n\n## Use\n\n```python\nfrom transformers import pipeline\n"
        "classifier = pipeline(\"text-classification\", model=\"PATH_TO_THIS_FOLDER\")\n```\n\n"
        f"## Training\n\nlearning rate {args.get('learning_rate')}, batch {args.get('per_device_train_batch_size')}, "
        f"epochs {args.get('num_train_epochs')}, seed {args.get('seed')}, on {run.get('device', '?')}.\n\n"
        "## Results (validation)\n\n" + "".join(f"- {k}: {v:.4f}\n" for k, v in final.items()))
