"""Operators dispatched per training step, transformers.Trainer against seqtune.Trainer (course recipe):

    python -m bench.ops [--steps 30] [--profiled 10] [--as-on-gpu]

On a GPU every operator is at least one kernel launch, and classifier-sized steps are bound by those
launches; the torch profiler counts them on the CPU just as well. Counted over the last `--profiled`
optimizer steps of a short run: top-level operators (what Python dispatches, the launch count's
driver) and all aten operators (with the ones they call inside). Each side runs in its own process.
`--as-on-gpu` switches off seqtune's CPU-only levers (its attention kernel and dropout masks), so that
seqtune dispatches what it would on CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent


def course_setup():
    """The course recipe's pieces, the same for every side: tokenizer, tokenized MRPC train, seeded model."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    import seqtune

    hf_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(seqtune.default_model())
    raw = seqtune.load_dataset("glue", "mrpc")
    train = raw["train"].map(lambda ex: tokenizer(ex["sentence1"], ex["sentence2"], truncation=True), batched=True)
    torch.manual_seed(42)
    model = AutoModelForSequenceClassification.from_pretrained(seqtune.default_model(), num_labels=2)
    return tokenizer, train, model


def count(side: str, steps: int, profiled: int) -> dict:
    from torch.profiler import ProfilerActivity, profile

    import seqtune

    tokenizer, train, model = course_setup()
    profiler = profile(activities=[ProfilerActivity.CPU])
    first = steps - profiled
    common = dict(per_device_train_batch_size=8, learning_rate=5e-5, max_steps=steps, save_strategy="no",
                  logging_steps=10_000, report_to="none", disable_tqdm=True)
    workdir = tempfile.mkdtemp(prefix="seqtune-ops-")
    if side == "transformers":
        import transformers as library
    else:
        library = seqtune

    class Window(library.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == first:
                profiler.start()
            elif state.global_step == steps:
                profiler.stop()

    trainer = library.Trainer(model, library.TrainingArguments(workdir, **common), train_dataset=train,
                              data_collator=library.DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                              callbacks=[Window()])
    trainer.train()
    events = [e for e in profiler.events() if e.name.startswith("aten::")]
    top = [e for e in events if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    names = Counter(e.name for e in top)
    return {"top_level_ops_per_step": len(top) / profiled, "all_aten_ops_per_step": len(events) / profiled,
            "most_frequent": {k: round(v / profiled, 1) for k, v in names.most_common(12)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--profiled", type=int, default=10)
    parser.add_argument("--as-on-gpu", action="store_true", help="seqtune without its CPU-only levers")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # internal: count one side, print JSON
    options = parser.parse_args()
    if options.as_on_gpu:
        os.environ["SEQTUNE_FAST_PATHS"] = "-cpu_attention,-eager_attention,-cheap_dropout"
    os.environ.setdefault("GLUE_DIR", str(HERE.parent.parent / "shared" / "datasets" / "glue"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if options.side:
        print(json.dumps(count(options.side, options.steps, options.profiled)))
        return
    results = {}
    for side in ("transformers", "seqtune"):
        out = subprocess.run([sys.executable, "-m", "bench.ops", "--side", side, "--steps", str(options.steps),
                              "--profiled", str(options.profiled)], check=True, capture_output=True, text=True,
                             cwd=HERE.parent)
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    theirs, ours = results["transformers"], results["seqtune"]
    print("| operators per training step (MiniLM, MRPC, batch 8) | transformers | seqtune | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for key in ("top_level_ops_per_step", "all_aten_ops_per_step"):
        print(f"| {key.replace('_', ' ')} | {theirs[key]:.0f} | {ours[key]:.0f} | {ours[key] / theirs[key]:.2f}x |")
    for side, result in results.items():
        print(f"\n{side}, most frequent top-level operators per step: "
              + ", ".join(f"{k.removeprefix('aten::')} {v}" for k, v in result["most_frequent"].items()))


if __name__ == "__main__":
    main()
