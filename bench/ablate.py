"""Each seqtune speed lever switched off on its own, on the course recipe (embedded MiniLM, MRPC):

    python -m bench.ablate [--steps 120] [--rounds 2]

Training samples/s is timed over optimizer steps 20..steps (after warm-up), evaluation on the 408
dev pairs (second call, warm). Variants run in separate processes, alternating, median of rounds.
The numbers go into bench/levers.md by hand, with the machine they ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = ("all levers", "no CPU attention", "no cheap dropout masks", "no pooled last layer",
            "clipping not folded", "freed memory returned to the OS", "no bf16 evaluation weights",
            "evaluation batch 8", "batch lengths rounded up to multiples of 8",
            "batch lengths not rounded up")


# Variants that are one fast path switched off (seqtune.levers reads SEQTUNE_FAST_PATHS).
LEVER_OF = {"no CPU attention": "cpu_attention", "no cheap dropout masks": "cheap_dropout",
            "no pooled last layer": "pooled_last_layer", "clipping not folded": "folded_clipping",
            "no bf16 evaluation weights": "bf16_eval_weights"}


def switch_off(variant: str) -> dict:
    """Switch one lever off; returns TrainingArguments overrides."""
    if variant in LEVER_OF:
        os.environ["SEQTUNE_FAST_PATHS"] = f"-{LEVER_OF[variant]}"
    elif variant == "evaluation batch 8":
        return {"per_device_eval_batch_size": 8}
    elif variant.startswith("batch lengths"):  # one of the two is the default (seqtune.device.length_multiple)
        import seqtune.trainer

        multiple = 8 if variant.endswith("8") else None
        seqtune.trainer.length_multiple = lambda device, dtype: multiple
    return {}


def run_variant(variant: str, steps: int) -> dict:
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import seqtune
    from seqtune.callbacks import TrainerCallback

    overrides = switch_off(variant)
    checkpoint = seqtune.default_model()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    raw = seqtune.load_dataset("glue", "mrpc")
    tokenized = raw.map(lambda ex: tokenizer(ex["sentence1"], ex["sentence2"], truncation=True), batched=True)
    torch.manual_seed(42)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=2)
    metric = seqtune.load_metric("glue", "mrpc")
    timer: dict[str, float] = {}

    class StepTimer(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (20, steps):
                timer[state.global_step] = time.perf_counter()

    args = seqtune.TrainingArguments(tempfile.mkdtemp(prefix="seqtune-ablate-"), max_steps=steps, report_to="none",
                                     save_strategy="no", logging_steps=10_000, disable_tqdm=True, **overrides)
    trainer = seqtune.Trainer(model, args, train_dataset=tokenized["train"], eval_dataset=tokenized["validation"],
                              processing_class=tokenizer, callbacks=[StepTimer()],
                              compute_metrics=lambda p: metric.compute(predictions=np.argmax(p[0], -1),
                                                                       references=p[1]))
    trainer.train()
    trainer.evaluate()
    start = time.perf_counter()
    trainer.evaluate()
    return {"train": 8 * (steps - 20) / (timer[steps] - timer[20]), "eval": 408 / (time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="run only these ('all levers' is always run, as the base)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    options = parser.parse_args()
    os.environ.setdefault("GLUE_DIR", str(HERE.parent.parent / "shared" / "datasets" / "glue"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if options.variant:
        if options.variant == "freed memory returned to the OS":
            os.environ["SEQTUNE_KEEP_FREED_MEMORY"] = "0"
        print(json.dumps(run_variant(options.variant, options.steps)))
        return
    variants = [v for v in VARIANTS if v == "all levers" or v in options.variants]
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for round_index in range(options.rounds):
        for variant in variants if round_index % 2 == 0 else variants[::-1]:
            out = subprocess.run([sys.executable, "-m", "bench.ablate", "--variant", variant, "--steps",
                                  str(options.steps)], check=True, capture_output=True, text=True, cwd=HERE.parent)
            results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(variant, results[variant][-1], flush=True)
    base = {k: statistics.median(r[k] for r in results["all levers"]) for k in ("train", "eval")}
    print("\n| variant | training samples/s | evaluation samples/s |\n| --- | ---: | ---: |")
    for variant in variants:
        train = statistics.median(r["train"] for r in results[variant])
        evaluation = statistics.median(r["eval"] for r in results[variant])
        print(f"| {variant} | {train:.1f} ({train / base['train'] - 1:+.0%}) | "
              f"{evaluation:.1f} ({evaluation / base['eval'] - 1:+.0%}) |")


if __name__ == "__main__":
    main()
