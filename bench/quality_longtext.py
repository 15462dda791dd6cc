"""Documents longer than the model's window: transformers' Trainer with truncation (what run_classification.py
does) against seqtune's --long-text truncate, head-tail and chunks, same model (the embedded MiniLM), data,
window, learning rate, epochs and seed (issue 14, "Documents longer than the model's window").

    python -m bench.quality_longtext --layout end --side transformers   # one layout and side per invocation
    python -m bench.quality_longtext --render                           # the table again from the results

Each invocation adds its runs to bench/RESULTS-quality-longtext.json (a run of the same layout, side and seed
replaces the old one) and rewrites bench/RESULTS-quality-longtext.md.

The documents (made from GLUE MRPC sentences, the only labelled text on the machine): 6 to 9 sentences
(about 150-250 tokens) that mention no money, and for label 1 one sentence that does ($, million, billion,
cents, dollars) in place of one of them. That sentence always starts past the window (64 tokens: the first
sentences before it fill at least 64 tokens), so truncation never sees the label:
- layout `end`: it is the last sentence (what head-tail keeps);
- layout `anywhere`: it is at a random place past the window (head-tail keeps it only when it falls in the
  tail). Label 0 documents are built alike, with a money-free sentence in that place.
Scored per document: accuracy and F1 of label 1 (x100: points).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import mrpc_rows

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "RESULTS-quality-longtext.json"
RESULTS_MD = HERE / "RESULTS-quality-longtext.md"
MONEY = re.compile(r"\$|\b(million|billion|cents?|dollars?)\b", re.IGNORECASE)
SIDES = ("transformers-truncate", "seqtune-truncate", "seqtune-head-tail", "seqtune-chunks")
LAYOUTS = ("end", "anywhere")


def _sentences(split: str) -> tuple[list[str], list[str]]:
    """MRPC's sentences of a split, without and with money in them."""
    rows = mrpc_rows(split)
    sentences = sorted({s for r in rows for s in (r[3], r[4])})
    return [s for s in sentences if not MONEY.search(s)], [s for s in sentences if MONEY.search(s)]


def build(layout: str, count: int, split: str, window: int, tokenizer) -> list[dict]:
    """`count` documents (half of each label), a fixed sample whatever the training seed."""
    rng = np.random.default_rng({"train": 0, "dev": 1}[split])
    plain, money = _sentences(split)
    docs = []
    for i in range(count):
        label = i % 2
        sentences = [plain[j] for j in rng.choice(len(plain), int(rng.integers(6, 10)), replace=False)]
        while True:  # the first sentence that starts past the window, and at least one there
            lengths = np.cumsum([len(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in sentences])
            first = int(np.searchsorted(lengths, window)) + 1
            if first < len(sentences):
                break
            sentences.append(plain[int(rng.integers(len(plain)))])
        place = len(sentences) - 1 if layout == "end" else int(rng.integers(first, len(sentences)))
        if label:
            sentences[place] = money[int(rng.integers(len(money)))]
        docs.append({"text": " ".join(sentences), "label": label})
    return docs


def scores(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score

    predicted = logits.argmax(-1)
    return {"accuracy": 100 * float((predicted == labels).mean()),
            "f1": 100 * float(f1_score(labels, predicted, zero_division=0))}


def run_side(side: str, seed: int, train: list[dict], dev: list[dict], options) -> dict:
    import datasets
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import seqtune
    from seqtune.task import TaskSpec

    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    checkpoint = seqtune.default_model()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(train),
                                   "dev": datasets.Dataset.from_list(dev)})
    mode = side.split("-", 1)[1]
    spec = TaskSpec("long", "classification", ["plain", "money"], ["text"], max_length=options.window,
                    long_text=mode)
    if side == "transformers-truncate":  # run_classification.py: tokenizer(..., truncation=True, max_length)
        tokenized = splits.map(lambda b: tokenizer(b["text"], truncation=True, max_length=options.window),
                               batched=True)
    else:
        tokenized = spec.tokenize(splits, tokenizer)
    torch.manual_seed(seed)  # the same new head on both sides
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=2)
    library = transformers if side.startswith("transformers") else seqtune
    args = library.TrainingArguments(
        tempfile.mkdtemp(prefix="seqtune-longtext-"), per_device_train_batch_size=options.batch_size,
        learning_rate=options.learning_rate, num_train_epochs=options.epochs, seed=seed, eval_strategy="no",
        save_strategy="no", logging_steps=10_000, report_to="none", disable_tqdm=True)
    trainer = library.Trainer(model, args, train_dataset=tokenized["train"].remove_columns(["text"]),
                              data_collator=library.DataCollatorWithPadding(tokenizer), processing_class=tokenizer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    dev_rows = tokenized["dev"].remove_columns(["text"])
    logits = np.asarray(trainer.predict(dev_rows).predictions, dtype=np.float32)
    logits = spec.per_row(logits, tokenized["dev"])  # chunks: windows' mean per document; else unchanged
    return {"side": side, "seed": seed, "train_seconds": round(seconds, 1), "train_windows": len(tokenized["train"]),
            **scores(logits, np.array([d["label"] for d in dev]))}


def machine() -> str:
    from bench.__main__ import machine as facts

    m = facts()
    return f"{m['cpu']}, {m['cores']} cores, GPU {m['gpu']}, torch {m['torch']}"


def load_results() -> list[dict]:
    return json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else []


def render(results: list[dict]) -> str:
    lines = ["# Documents longer than the window: transformers' Trainer (truncation) vs seqtune --long-text", "",
             "Command: `python -m bench.quality_longtext --layout {end,anywhere} --side SIDE` (one invocation per "
             "layout and side; `--render` rebuilds this file from `RESULTS-quality-longtext.json`). The module's "
             "docstring says how the documents are built: the label is decided by a sentence that starts past "
             "the window.", ""]
    for layout in LAYOUTS:
        runs = [r for r in results if r["layout"] == layout]
        if not runs:
            continue
        first = runs[0]
        lines += [f"## layout `{layout}` ({first['train_rows']} training documents, {first['eval_rows']} evaluation "
                  f"documents, {first['tokens']}; window {first['window']} tokens, {first['epochs']} epochs, batch "
                  f"{first['batch_size']}, lr {first['learning_rate']})", "", f"Machine: {first['machine']}.", "",
                  "| side | accuracy | F1 (money) | training rows (windows) | training s | seed |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in sorted(runs, key=lambda r: (SIDES.index(r["side"]), r["seed"])):
            lines.append(f"| {r['side']} | {r['accuracy']:.2f} | {r['f1']:.2f} | {r['train_windows']:,} | "
                         f"{r['train_seconds']:.0f} | {r['seed']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=LAYOUTS)
    parser.add_argument("--side", choices=SIDES, action="append", help="repeatable (default: all four)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train-rows", type=int, default=600)
    parser.add_argument("--eval-rows", type=int, default=300)
    parser.add_argument("--window", type=int, default=64, help="max_length, in tokens")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    options = parser.parse_args()
    if not options.render:
        if options.layout is None:
            parser.error("--layout is required (or --render)")
        from transformers import AutoTokenizer

        from seqtune import default_model

        tokenizer = AutoTokenizer.from_pretrained(default_model())
        train = build(options.layout, options.train_rows, "train", options.window, tokenizer)
        dev = build(options.layout, options.eval_rows, "dev", options.window, tokenizer)
        lengths = [len(tokenizer(d["text"])["input_ids"]) for d in train]
        tokens = f"{int(np.median(lengths))} tokens median, {min(lengths)}-{max(lengths)}"
        where = machine()
        for side in options.side or SIDES:
            result = run_side(side, options.seed, train, dev, options)
            result.update(layout=options.layout, machine=where, train_rows=len(train), eval_rows=len(dev),
                          tokens=tokens, window=options.window, epochs=options.epochs, batch_size=options.batch_size,
                          learning_rate=options.learning_rate)
            print(json.dumps(result), flush=True)
            kept = [r for r in load_results()
                    if (r["layout"], r["side"], r["seed"]) != (options.layout, side, options.seed)]
            RESULTS_JSON.write_text(json.dumps(kept + [result], indent=1) + "\n")
    text = render(load_results())
    RESULTS_MD.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
