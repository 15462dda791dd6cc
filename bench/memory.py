"""Peak memory and time per step of a Qwen2-0.5B-shaped classifier: full fine-tuning vs LoRA vs LoRA with
gradient checkpointing, through seqtune's Trainer (fp32, batch 1, sequence length 512).

The model is built from Qwen2-0.5B's shape (Qwen2Config: hidden 896, 24 layers, 14 heads, 2 key/value
heads, intermediate 4864, vocabulary 151936) with random weights: no download. Each case runs in a fresh
process, so its peak resident memory (getrusage's ru_maxrss) is its own.

    python -m bench.memory                        # all three cases, writes bench/RESULTS-memory.md
    python -m bench.memory --case lora --steps 3  # one case, prints its JSON (what the parent reads)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "full": "full fine-tuning",
    "lora": "LoRA (rank 8, q/k/v/o projections; head in full)",
    "lora_gc": "LoRA + gradient checkpointing",
}
QWEN2_05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6,
                 tie_word_embeddings=True, num_labels=2, pad_token_id=151643, attention_dropout=0.0)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_case(case: str, steps: int, length: int) -> dict:
    """One case in this process: build, train `steps` + 1 optimizer steps (the first is warm-up)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    from seqtune import Trainer, TrainerCallback, TrainingArguments
    from seqtune.lora import LoraOptions, apply_lora

    torch.manual_seed(0)
    start = time.perf_counter()
    model = Qwen2ForSequenceClassification(Qwen2Config(**QWEN2_05B))
    built_s, built_mb = time.perf_counter() - start, peak_mb()
    parameters = sum(p.numel() for p in model.parameters())
    if case.startswith("lora"):
        model = apply_lora(model, LoraOptions(rank=8, alpha=16))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    class StepTimes(TrainerCallback):
        def __init__(self) -> None:
            self.times = [time.perf_counter()]

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    generator = torch.Generator().manual_seed(1)
    rows = [{"input_ids": torch.randint(0, 151000, (length,), generator=generator).tolist(),
             "attention_mask": [1] * length, "label": i % 2} for i in range(steps + 1)]
    timer = StepTimes()
    args = TrainingArguments("/tmp/seqtune-bench-memory", max_steps=steps + 1, per_device_train_batch_size=1,
                             bf16=False, save_strategy="no", report_to="none", disable_tqdm=True,
                             logging_steps=10_000, gradient_checkpointing=case == "lora_gc")
    trainer = Trainer(model, args, train_dataset=rows, callbacks=[timer])
    trainer.train()
    step_times = [b - a for a, b in zip(timer.times[1:], timer.times[2:], strict=False)]  # after the warm-up
    return {"case": case, "parameters": parameters, "trainable": trainable, "build_s": built_s,
            "built_peak_mb": built_mb, "peak_mb": peak_mb(), "step_s": sorted(step_times)[len(step_times) // 2],
            "step_times": step_times, "fast_paths": trainer.fast_paths.levers.describe()}


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as info:
            lines = info.read().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        flags = set(next(line.split(":", 1)[1].split() for line in lines if line.startswith("flags")))
    except (OSError, StopIteration):
        pass
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()}-core {cpu}, {vector}, {gpu}, torch {torch.__version__}"


def render(results: list[dict], steps: int, length: int, where: str) -> str:
    full = next((r for r in results if r["case"] == "full"), results[0])
    lines = [
        "# Memory: a Qwen2-0.5B-shaped classifier, full fine-tuning vs LoRA vs LoRA + gradient checkpointing",
        "",
        f"Machine: {where}. `python -m bench.memory` (one fresh process per case; fp32 weights and maths, batch 1, "
        f"sequence length {length}, AdamW, seqtune's Trainer; {steps} timed optimizer steps after one warm-up "
        "step, median shown). Random weights in Qwen2-0.5B's shape "
        f"({full['parameters'] / 1e6:,.0f}M parameters, {QWEN2_05B['vocab_size']:,}-token vocabulary).",
        "",
        "| case | trainable parameters | peak resident memory | of it, the model alone | time per step |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(f"| {CASES[r['case']]} | {r['trainable'] / 1e6:,.2f}M | {r['peak_mb'] / 1024:,.2f} GiB | "
                     f"{r['built_peak_mb'] / 1024:,.2f} GiB | {r['step_s']:,.1f} s |")
    lines += ["", "Fast paths per case:", ""]
    lines += [f"- {CASES[r['case']]}: {r['fast_paths']}; step times "
              f"{', '.join(f'{t:.1f}' for t in r['step_times'])} s" for r in results]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=CASES, help="run one case here and print its JSON")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per case (after a warm-up)")
    parser.add_argument("--length", type=int, default=512, help="tokens per sequence")
    parser.add_argument("--output", default=str(Path(__file__).with_name("RESULTS-memory.md")))
    options = parser.parse_args()
    if options.case:
        print(json.dumps(run_case(options.case, options.steps, options.length)))
        return
    results = []
    for case in CASES:
        command = [sys.executable, "-m", "bench.memory", "--case", case, "--steps", str(options.steps),
                   "--length", str(options.length)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
        if done.returncode != 0:
            sys.exit(f"bench.memory: case {case} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{CASES[case]}: peak {results[-1]['peak_mb'] / 1024:.2f} GiB, {results[-1]['step_s']:.1f} s/step",
              flush=True)
    Path(options.output).write_text(render(results, options.steps, options.length, machine()))
    print(f"wrote {options.output}")


if __name__ == "__main__":
    main()
