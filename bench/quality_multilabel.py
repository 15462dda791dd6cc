"""Multi-label and class weights: `seqtune train` on files against transformers' Trainer given the same recipe
(the embedded all-MiniLM-L6-v2, the same rows, learning rate, batch size, epochs, max length and seed; both keep
the best epoch by the first metric), issue 14's "Quality".

    python -m bench.quality_multilabel --part multilabel     # (a) about 4-6 min on a 2-core CPU
    python -m bench.quality_multilabel --part weights        # (b) about 6 min
    python -m bench.quality_multilabel --render              # the table again from the saved results

Each part writes its rows to bench/RESULTS-quality-multilabel.json and rewrites bench/RESULTS-quality-multilabel.md.

The data (MRPC is the only labelled text on this machine; neither target is MRPC's own label):
- (a) multi-label: the distinct sentences of MRPC (both sides of each pair), each labelled with the topics whose
  keywords it holds (regular expressions below: finance, law, politics, tech, health), 0 to 5 topics a row; the
  model must learn five independent keyword detectors from the words. Labels written as "|"-joined cells, as a
  user's CSV would hold them (seqtune infers multi-label and the separator). Train/validation/test: 2,000 / 500 /
  500 sentences from MRPC train, test from MRPC test. Scored on the test split: micro and macro F1, subset accuracy,
  at 0.5, and with each label's threshold tuned on validation (seqtune does this itself; for transformers the
  same tuning function is applied to its validation scores).
- (b) class weights: single-label and imbalanced: MRPC sentences labelled `finance` (the finance keywords above)
  or `other`; 1,500 training sentences of which 120 (8%) finance; scored on 500 held-out sentences (natural share,
  about 18% finance) by accuracy, macro F1 and the minority class's F1.
  seqtune `--class-weights balanced` against transformers' Trainer with `compute_loss_func` = cross-entropy with
  scikit-learn's balanced weights; seqtune without weights beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import random
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import mrpc_rows

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "RESULTS-quality-multilabel.json"
RESULTS_MD = HERE / "RESULTS-quality-multilabel.md"
TOPICS = {
    "finance": r"\$|\b(shares?|stocks?|percent|market|Nasdaq|index|million|billion|profit|revenue|earnings)\b",
    "law": r"\b(court|police|judge|charged|prosecutors?|lawsuit|trial|attorney|jury|sentenced|arrested)\b",
    "politics": r"\b(President|Bush|government|Senate|minister|election|Congress|Democrats?|Republicans?|House)\b",
    "tech": r"\b(computers?|software|Microsoft|Internet|technology|Intel|chips?|online|Web|Linux|IBM)\b",
    "health": r"\b(health|hospital|patients?|drugs?|disease|medical|virus|SARS|cancer|doctors?)\b",
}
RECIPE = {"learning_rate": 1e-4, "batch_size": 16, "epochs": 3, "max_length": 64, "seed": 42}
WEIGHTS_RECIPE = {"learning_rate": 1e-4, "batch_size": 16, "epochs": 3, "max_length": 64, "seed": 42}
MACHINE = "2-core AMD EPYC Zen 3 (AVX2, no AVX-512 BF16: both sides in fp32), CPU only"


def topics_of(sentence: str) -> list[str]:
    return [name for name, pattern in TOPICS.items() if re.search(pattern, sentence)]


def multilabel_files(folder: Path) -> dict[str, Path]:
    """train/validation/test CSVs of MRPC sentences with "|"-joined topic cells."""
    def sentences(split: str) -> list[str]:
        seen = dict.fromkeys(s for row in mrpc_rows(split) for s in (row[3], row[4]))
        return sorted(seen)

    rng = random.Random(0)
    pool = sentences("train")
    rng.shuffle(pool)
    test = sentences("test")
    rng.shuffle(test)
    parts = {"train": pool[:2000], "validation": pool[2000:2500], "test": test[:500]}
    paths = {}
    for split, rows in parts.items():
        paths[split] = folder / f"{split}.csv"
        with open(paths[split], "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows([s, "|".join(topics_of(s))] for s in rows)
    return paths


def weights_files(folder: Path) -> dict[str, Path]:
    """Single-label, imbalanced: MRPC sentences labelled `finance` (the finance keywords) or `other`, the
    training rows cut to 8% finance; validation keeps the natural share (about 18%)."""
    rng = random.Random(0)
    sentences = sorted(dict.fromkeys(s for row in mrpc_rows("train") for s in (row[3], row[4])))
    rng.shuffle(sentences)
    label = lambda s: "finance" if re.search(TOPICS["finance"], s) else "other"  # noqa: E731
    pool, validation = sentences[:-500], sentences[-500:]
    finance = [s for s in pool if label(s) == "finance"][:120]
    chosen = finance + [s for s in pool if label(s) == "other"][:1380]
    rng.shuffle(chosen)
    paths = {"train": folder / "train.csv", "validation": folder / "dev.csv"}
    for split, rows in (("train", chosen), ("validation", validation)):
        with open(paths[split], "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows([s, label(s)] for s in rows)
    return paths


# ---- seqtune: the command line on the files ---------------------------------------------------------------

def run_seqtune(paths: dict[str, Path], recipe: dict, out: Path, extra: list[str]) -> tuple[float, dict]:
    from seqtune.cli import main

    argv = ["train", "--train", str(paths["train"]), "--validation", str(paths["validation"]),
            "--output-dir", str(out), "--epochs", str(recipe["epochs"]), "--batch-size", str(recipe["batch_size"]),
            "--learning-rate", str(recipe["learning_rate"]), "--max-length", str(recipe["max_length"]),
            "--seed", str(recipe["seed"]), "--quiet", "--logging-steps", "1000", "--overwrite-output-dir", *extra]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = main(argv)
    if code != 0:
        raise SystemExit(f"seqtune train failed ({code}):\n{printed.getvalue()[-2000:]}")
    return time.perf_counter() - start, json.loads((out / "seqtune.json").read_text())


def seqtune_scores(folder: Path, data: Path) -> dict[str, float]:
    """`seqtune evaluate`'s metrics (the folder's thresholds, for multi-label)."""
    from seqtune.cli import main

    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(["evaluate", "--model", str(folder), "--data", str(data), "--quiet"]) == 0
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s+(\w+): ([-\d.]+)$", printed.getvalue(), re.M)}


# ---- transformers: its Trainer, the same recipe -----------------------------------------------------------

def run_transformers(paths: dict[str, Path], recipe: dict, out: Path, multi_label: bool,
                     class_weights: list[float] | None = None) -> tuple[float, object, dict]:
    import pandas as pd
    import torch
    import torch.nn.functional as F
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from seqtune import default_model
    from seqtune.data.labels import parse_cell

    frames = {split: pd.read_csv(path, keep_default_na=False) for split, path in paths.items()}
    if multi_label:
        names = sorted({n for cell in frames["train"]["label"] for n in parse_cell(cell, "|")})
        encode = lambda cell: [float(n in parse_cell(cell, "|")) for n in names]  # noqa: E731
    else:
        names = sorted(set(frames["train"]["label"]))
        encode = names.index
    tokenizer = AutoTokenizer.from_pretrained(default_model())
    pair = "sentence2" in frames["train"].columns

    def dataset(frame):
        texts = {"text": frame["sentence1" if pair else "text"].tolist(), "label": frame["label"].map(encode).tolist()}
        if pair:
            texts["text_pair"] = frame["sentence2"].tolist()
        return Dataset.from_dict(texts).map(
            lambda b: tokenizer(b["text"], b["text_pair"] if pair else None, truncation=True,
                                max_length=recipe["max_length"]), batched=True)

    splits = {split: dataset(frame) for split, frame in frames.items()}
    set_seed(recipe["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(
        default_model(), num_labels=len(names), id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        problem_type="multi_label_classification" if multi_label else "single_label_classification")
    first = "micro_f1" if multi_label else "accuracy"

    def compute_metrics(prediction):
        from sklearn.metrics import f1_score

        logits, labels = prediction
        if multi_label:
            return {"micro_f1": f1_score(labels, logits >= 0, average="micro", zero_division=0)}
        return {"accuracy": float((logits.argmax(-1) == labels).mean()),
                "macro_f1": f1_score(labels, logits.argmax(-1), average="macro")}

    loss_func = None
    if class_weights is not None:
        weight = torch.tensor(class_weights)

        def loss_func(outputs, labels, num_items_in_batch=None):
            return F.cross_entropy(outputs.logits, labels, weight=weight.to(outputs.logits.device))

    args = TrainingArguments(str(out), eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
                             metric_for_best_model=first, save_total_limit=2, num_train_epochs=recipe["epochs"],
                             learning_rate=recipe["learning_rate"], per_device_train_batch_size=recipe["batch_size"],
                             seed=recipe["seed"], report_to="none", disable_tqdm=True, use_cpu=True,
                             logging_steps=1000)
    trainer = Trainer(model, args, train_dataset=splits["train"], eval_dataset=splits["validation"],
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics,
                      compute_loss_func=loss_func)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    outputs = {split: trainer.predict(splits[split]) for split in splits if split != "train"}
    return seconds, outputs, {"label_names": names}


# ---- the two parts ---------------------------------------------------------------------------------------

def part_multilabel(work: Path) -> list[dict]:
    from seqtune.metrics import hamming_loss, micro_f1, subset_accuracy
    from seqtune.multilabel import sigmoid, tune_thresholds

    paths = multilabel_files(work)
    rows = []
    seconds, saved = run_seqtune(paths, RECIPE, work / "seqtune", [])
    tuned = seqtune_scores(work / "seqtune", paths["test"])
    saved["thresholds"], thresholds = None, saved["thresholds"]
    (work / "seqtune" / "seqtune.json").write_text(json.dumps(saved))  # the same folder at 0.5
    half = seqtune_scores(work / "seqtune", paths["test"])
    rows.append({"side": "seqtune train", "seconds": seconds, "at_half": half, "tuned": tuned,
                 "thresholds": thresholds})
    seconds, outputs, info = run_transformers(paths, RECIPE, work / "transformers", multi_label=True)
    names = info["label_names"]
    cut = tune_thresholds(sigmoid(outputs["validation"].predictions), outputs["validation"].label_ids, names)
    test = outputs["test"]

    def scores(threshold: np.ndarray) -> dict[str, float]:
        from sklearn.metrics import f1_score

        predicted = (sigmoid(test.predictions) >= threshold).astype(int)
        truth = test.label_ids.astype(int)
        return {**micro_f1(predicted, truth), "macro_f1": float(f1_score(truth, predicted, average="macro",
                                                                         zero_division=0)),
                **subset_accuracy(predicted, truth), **hamming_loss(predicted, truth)}

    rows.append({"side": "transformers Trainer", "seconds": seconds, "at_half": scores(np.full(len(names), 0.5)),
                 "tuned": scores(np.array([cut[n] for n in names])), "thresholds": cut})
    return rows


def part_weights(work: Path) -> list[dict]:
    from sklearn.metrics import f1_score
    from sklearn.utils.class_weight import compute_class_weight

    paths = weights_files(work)
    rows = []
    for side, extra in (("seqtune train --class-weights balanced", ["--class-weights", "balanced"]),
                        ("seqtune train (no weights)", [])):
        seconds, saved = run_seqtune(paths, WEIGHTS_RECIPE, work / side.split()[-1].strip("()"), extra)
        folder = work / side.split()[-1].strip("()")
        run = json.loads((folder / "run.json").read_text())
        scores = seqtune_scores(folder, paths["validation"])
        minority = next(s for s in run.get("per_class", []) if s["label"] == "finance")["f1"] \
            if run.get("per_class") else None
        rows.append({"side": side, "seconds": seconds, "weights": run.get("class_weights"),
                     "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"], "minority_f1": minority})
    import pandas as pd

    labels = pd.read_csv(paths["train"])["label"]
    names = sorted(set(labels))
    weights = compute_class_weight("balanced", classes=np.array(names), y=labels.to_numpy()).tolist()
    seconds, outputs, _ = run_transformers(paths, WEIGHTS_RECIPE, work / "transformers", multi_label=False,
                                           class_weights=weights)
    dev = outputs["validation"]
    predicted = dev.predictions.argmax(-1)
    rows.insert(1, {"side": "transformers Trainer + compute_loss_func (weighted CE)", "seconds": seconds,
                    "weights": dict(zip(names, weights, strict=True)),
                    "accuracy": float((predicted == dev.label_ids).mean()),
                    "macro_f1": float(f1_score(dev.label_ids, predicted, average="macro")),
                    "minority_f1": float(f1_score(dev.label_ids, predicted, pos_label=names.index("finance")))})
    return rows


def render(results: dict) -> str:
    lines = ["# Multi-label and class weights: seqtune against transformers' Trainer", "",
             f"Machine: {MACHINE}. Written by `python -m bench.quality_multilabel` (the data and recipes are "
             "described in its docstring). Both sides: the embedded all-MiniLM-L6-v2, the same rows, learning "
             "rate, batch size, epochs, max length and seed, the best epoch kept by the first metric; seqtune with "
             "its defaults (length-grouped batches, cheap dropout masks), transformers with its own.", ""]
    if "multilabel" in results:
        r = RECIPE
        lines += ["## (a) Multi-label: MRPC sentences, five keyword topics", "",
                  f"lr {r['learning_rate']}, batch {r['batch_size']}, {r['epochs']} epochs, max length "
                  f"{r['max_length']}, seed {r['seed']}; 2,000 train / 500 validation / 500 test sentences. "
                  "Test-split scores; \"tuned\": each label's threshold tuned on validation (F1-best), then "
                  "applied to test.", "",
                  "| side | micro F1 @0.5 | macro F1 @0.5 | subset acc. @0.5 | micro F1 tuned | macro F1 tuned | "
                  "subset acc. tuned | train s |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for row in results["multilabel"]:
            h, t = row["at_half"], row["tuned"]
            lines.append(f"| {row['side']} | {h['micro_f1']:.4f} | {h['macro_f1']:.4f} | {h['subset_accuracy']:.4f} "
                         f"| {t['micro_f1']:.4f} | {t['macro_f1']:.4f} | {t['subset_accuracy']:.4f} | "
                         f"{row['seconds']:.0f} |")
        lines.append("")
    if "weights" in results:
        r = WEIGHTS_RECIPE
        lines += ["## (b) Class weights: MRPC sentences, finance or other, 8% finance in training", "",
                  f"lr {r['learning_rate']}, batch {r['batch_size']}, {r['epochs']} epochs, max length "
                  f"{r['max_length']}, seed {r['seed']}; 1,500 training sentences (120 finance); scored on 500 "
                  "held-out sentences with the natural share of finance.", "",
                  "| side | weights | accuracy | macro F1 | minority F1 | train s |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for row in results["weights"]:
            weights = ", ".join(f"{k} {v:.3g}" for k, v in (row["weights"] or {}).items()) or "none"
            minority = f"{row['minority_f1']:.4f}" if row["minority_f1"] is not None else "-"
            lines.append(f"| {row['side']} | {weights} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} | "
                         f"{minority} | {row['seconds']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("multilabel", "weights"))
    parser.add_argument("--render", action="store_true", help="rewrite the table from the saved results")
    options = parser.parse_args()
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {}
    if options.part:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        with tempfile.TemporaryDirectory() as work:
            results[options.part] = (part_multilabel if options.part == "multilabel" else part_weights)(Path(work))
        RESULTS_JSON.write_text(json.dumps(results, indent=2))
    table = render(results)
    RESULTS_MD.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
