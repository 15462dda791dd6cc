"""Do seqtune's speed defaults cost accuracy? seqtune's Trainer with its defaults against transformers'
Trainer with its defaults, same model (the embedded MiniLM), data, learning rate, epochs and seeds, on a
regression task and a multi-label task built from GLUE MRPC (issue 14, "Quality").

    python -m bench.quality_defaults --task regression --seed 1     # one task and seed: both sides
    python -m bench.quality_defaults --render                       # the table again from the results

Each invocation adds its two runs to bench/RESULTS-quality-defaults.json (a run of the same task, side and
seed replaces the old one) and rewrites bench/RESULTS-quality-defaults.md.

The tasks (MRPC is the only labelled text on the machine; neither target is MRPC's own label):
- regression: a pair's word-overlap Jaccard score (|A & B| / |A | B| over lower-cased word sets). A
  cross-encoder sees both sentences in one sequence, so it can learn which words recur; the target is a
  deterministic function of the input (no label noise), spread 0.14-1.0 (mean 0.52, std 0.17) on train.
  Scored by Pearson r (x100: points).
- multi-label: single MRPC sentences with five labels, each a surface cue (number: a digit; money: $,
  million, billion, cents, dollars; speech: said, says, told, added, according; negation: not, no, never,
  without, n't; market: shares, stocks, Nasdaq, percent, index, market), 0 to 5 per sentence, prevalence
  11-38%. Learnable from the tokens; the model must learn five independent detectors. config
  problem_type="multi_label_classification", float multi-hot labels (BCE-with-logits), sigmoid > 0.5.
  Scored by micro F1 (x100), with macro F1 and subset accuracy beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import mrpc_rows

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "RESULTS-quality-defaults.json"
RESULTS_MD = HERE / "RESULTS-quality-defaults.md"
CUES = {"number": r"\d", "money": r"\$|\b(million|billion|cents?|dollars?)\b",
        "speech": r"\b(said|says|told|added|according)\b", "negation": r"\b(not|no|never|without)\b|n't",
        "market": r"\b(shares?|stocks?|Nasdaq|percent|index|market)\b"}
# seqtune with one default switched off, to find which default costs what (--side).
VARIANTS = {"seqtune-ungrouped": "group_by_length=False", "seqtune-bernoulli": "SEQTUNE_FAST_PATHS=-cheap_dropout"}
SIDES = ("transformers", "seqtune", *VARIANTS)


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def jaccard(a: str, b: str) -> float:
    first, second = _words(a), _words(b)
    return len(first & second) / max(len(first | second), 1)


def cues(text: str) -> list[float]:
    return [1.0 if re.search(pattern, text, re.IGNORECASE) else 0.0 for pattern in CUES.values()]


def build(task: str, train_rows: int, eval_rows: int) -> tuple[list[dict], list[dict]]:
    """Train and evaluation rows (text, [text_pair], label), a fixed sample whatever the training seed."""
    rng = np.random.default_rng(0)
    splits = []
    for split, count in (("train", train_rows), ("dev", eval_rows)):
        rows = mrpc_rows(split)
        if task == "regression":
            made = [{"text": r[3], "text_pair": r[4], "label": jaccard(r[3], r[4])} for r in rows]
        else:
            made = [{"text": s, "label": cues(s)} for r in rows for s in (r[3], r[4])]
        picked = rng.permutation(len(made))[:count]
        splits.append([made[i] for i in sorted(picked)])
    return splits[0], splits[1]


def scores(task: str, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Points (x100): Pearson/Spearman for regression; micro/macro F1 and subset accuracy for multi-label."""
    if task == "regression":
        from scipy.stats import pearsonr, spearmanr

        predicted = logits[:, 0]
        return {"pearson": 100 * float(pearsonr(predicted, labels)[0]),
                "spearman": 100 * float(spearmanr(predicted, labels)[0])}
    from sklearn.metrics import f1_score

    predicted = (logits > 0).astype(int)  # sigmoid > 0.5
    gold = labels.astype(int)
    return {"micro_f1": 100 * float(f1_score(gold, predicted, average="micro", zero_division=0)),
            "macro_f1": 100 * float(f1_score(gold, predicted, average="macro", zero_division=0)),
            "subset_accuracy": 100 * float((predicted == gold).all(axis=1).mean())}


def run_side(side: str, task: str, seed: int, train: list[dict], dev: list[dict], options) -> dict:
    """One training run with that trainer's own defaults; returns its scores and what it ran with."""
    import datasets
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import seqtune
    from seqtune.data.sampling import groups_by_length

    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    checkpoint = seqtune.default_model()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    pair = "text_pair" in train[0]

    def tokenized(rows: list[dict]) -> datasets.Dataset:
        data = datasets.Dataset.from_list(rows)
        return data.map(lambda b: tokenizer(b["text"], b["text_pair"] if pair else None, truncation=True,
                                            max_length=128), batched=True, remove_columns=["text"] +
                        (["text_pair"] if pair else []))

    train_set, dev_set = tokenized(train), tokenized(dev)
    config = ({"num_labels": 1, "problem_type": "regression"} if task == "regression" else
              {"num_labels": len(CUES), "problem_type": "multi_label_classification"})
    torch.manual_seed(seed)  # the same new head on both sides
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, **config)
    common = dict(per_device_train_batch_size=options.batch_size, learning_rate=options.learning_rate,
                  num_train_epochs=options.epochs, seed=seed, eval_strategy="no", save_strategy="no",
                  logging_steps=10_000, report_to="none", disable_tqdm=True)
    workdir = tempfile.mkdtemp(prefix="seqtune-quality-")
    library = transformers if side == "transformers" else seqtune
    if side == "seqtune-ungrouped":
        common["group_by_length"] = False
    args = library.TrainingArguments(workdir, **common)
    trainer = library.Trainer(model, args, train_dataset=train_set,
                              data_collator=library.DataCollatorWithPadding(tokenizer), processing_class=tokenizer)
    before = os.environ.get("SEQTUNE_FAST_PATHS")
    if side == "seqtune-bernoulli":
        os.environ["SEQTUNE_FAST_PATHS"] = "-cheap_dropout"  # read when the loop starts
    try:
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    finally:
        os.environ.pop("SEQTUNE_FAST_PATHS", None)
        if before is not None:
            os.environ["SEQTUNE_FAST_PATHS"] = before
    output = trainer.predict(dev_set)
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    result = {"task": task, "side": side, "seed": seed, "train_seconds": round(seconds, 1),
              **scores(task, np.asarray(logits, dtype=np.float32), np.asarray(dev_set["label"]))}
    if side != "transformers":
        result["defaults"] = (f"precision {'bf16' if trainer.autocast_dtype == torch.bfloat16 else 'fp32'}, "
                              f"group_by_length={groups_by_length(args.group_by_length, model)}, "
                              f"{trainer.fast_paths.levers.describe()}")
    else:
        result["defaults"] = (f"precision {'bf16' if args.bf16 else 'fp32'}, batch order "
                              f"{args.train_sampling_strategy}, attention {model.config._attn_implementation}")
    return result


def machine() -> str:
    from bench.__main__ import machine as facts

    m = facts()
    return (f"{m['cpu']}, {m['cores']} cores, native bf16 on CPU {m['native bf16 on CPU']}, GPU {m['gpu']}, "
            f"torch {m['torch']}")


def load_results() -> list[dict]:
    return json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else []


def render(results: list[dict]) -> str:
    lines = ["# Quality of seqtune's defaults: three seeds against transformers' Trainer defaults", "",
             "Command: `python -m bench.quality_defaults --task {regression,multilabel} --seed {1,2,3}` "
             "(one invocation per task and seed, both sides in it; `--render` rebuilds this file from "
             "`RESULTS-quality-defaults.json`). See the module's docstring for how each task is built.", ""]
    for task in ("regression", "multilabel"):
        runs = [r for r in results if r["task"] == task]
        if not runs:
            continue
        first = runs[0]
        present = [side for side in SIDES if any(r["side"] == side for r in runs)]
        lines += [f"## {task} ({first['train_rows']} training rows, {first['eval_rows']} evaluation rows, "
                  f"{first['epochs']} epochs, batch {first['batch_size']}, lr {first['learning_rate']})", "",
                  f"Machine: {first['machine']}." + (
                      " No AVX-512 BF16/AMX: seqtune's bf16=None picks fp32 here, as transformers runs, so bf16 is "
                      "not exercised; length grouping and cheap dropout masks are on." if "native bf16 on CPU False"
                      in first["machine"] else ""), "",
                  "| metric (points) | " + " | ".join(_heading(side) for side in present)
                  + " | seqtune - transformers | seeds |", "| --- |" + " ---: |" * (len(present) + 1) + " --- |"]
        keys = [k for k in ("pearson", "spearman", "micro_f1", "macro_f1", "subset_accuracy") if k in first]
        for key in keys:
            values = {side: [r[key] for r in runs if r["side"] == side] for side in present}
            mean = {side: statistics.mean(v) for side, v in values.items()}
            cells = [f"{mean[side]:.2f}" + (f" ± {statistics.stdev(v):.2f}" if len(v) > 1 else "") + f" (n={len(v)})"
                     for side, v in values.items()]
            difference = (f"{mean['seqtune'] - mean['transformers']:+.2f}" if {"seqtune", "transformers"} <= set(mean)
                          else "")
            lines.append(f"| {key} | " + " | ".join(cells) + f" | {difference} | "
                         f"{', '.join(map(str, sorted({r['seed'] for r in runs})))} |")
        if "transformers" in present:
            for key in keys[:1]:
                base = statistics.mean(r[key] for r in runs if r["side"] == "transformers")
                lines += ["", f"{key}, each side minus transformers (points): " + ", ".join(
                    f"{_heading(side)} {statistics.mean(r[key] for r in runs if r['side'] == side) - base:+.2f}"
                    for side in present if side != "transformers") + "."]
        if "seqtune-ungrouped" in present:
            lines += ["", f"seqtune's default for {task} models is now random batches: `group_by_length=None` "
                      "resolves to False for regression and multi-label models (seqtune/data/sampling.py), so the "
                      "`seqtune, group_by_length=False` column is seqtune's default here; the `seqtune defaults` "
                      "column ran with the earlier default, length-grouped batches. Grouping is kept for "
                      "single-label classification (MRPC: bench/RESULTS-avx2-fp32.md)."]
        lines += ["", "| seed | side | " + " | ".join(keys) + " | training s | what it ran with |",
                  "| --- | --- |" + " ---: |" * (len(keys) + 1) + " --- |"]
        for r in sorted(runs, key=lambda r: (r["seed"], SIDES.index(r["side"]))):
            lines.append(f"| {r['seed']} | {r['side']} | " + " | ".join(f"{r[k]:.2f}" for k in keys)
                         + f" | {r['train_seconds']:.0f} | {r['defaults']} |")
        lines.append("")
    return "\n".join(lines)


def _heading(side: str) -> str:
    if side in VARIANTS:
        return f"seqtune, {VARIANTS[side]}"
    return f"{side} defaults"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("regression", "multilabel"))
    parser.add_argument("--seed", type=int, action="append", help="repeatable (default: 1, 2, 3)")
    parser.add_argument("--side", choices=("both", *SIDES), action="append",
                        help="repeatable (default: both = transformers and seqtune); the seqtune-* variants switch "
                             "one default off")
    parser.add_argument("--train-rows", type=int, default=1000)
    parser.add_argument("--eval-rows", type=int, default=400)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    options = parser.parse_args()
    if not options.render:
        if options.task is None:
            parser.error("--task is required (or --render)")
        train, dev = build(options.task, options.train_rows, options.eval_rows)
        chosen = options.side or ["both"]
        sides = [s for s in SIDES if s in chosen or (s in ("transformers", "seqtune") and "both" in chosen)]
        where = machine()
        for seed in options.seed or [1, 2, 3]:
            for side in sides:
                result = run_side(side, options.task, seed, train, dev, options)
                result.update(machine=where, train_rows=len(train), eval_rows=len(dev), epochs=options.epochs,
                              batch_size=options.batch_size, learning_rate=options.learning_rate)
                print(json.dumps(result), flush=True)
                kept = [r for r in load_results() if (r["task"], r["side"], r["seed"]) != (options.task, side, seed)]
                RESULTS_JSON.write_text(json.dumps(kept + [result], indent=1) + "\n")
    text = render(load_results())
    RESULTS_MD.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
