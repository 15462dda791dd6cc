"""Where a training step's time goes, transformers.Trainer against seqtune.Trainer (course recipe):

    python -m bench.profile [--steps 40] [--profiled 10] [--torch-compile MODE]

Each side trains in its own process; the torch profiler records the last `--profiled` optimizer steps.
A step's wall time is split into categories:
- matmul: the self time of the matrix multiply operators (mm, addmm, bmm, baddbmm, oneDNN/MKL ones);
- attention: softmax and the fused attention kernels (the attention's two batched matmuls count as matmul);
- elementwise: every other operator of the forward and backward (LayerNorm, GELU, dropout, adds, casts, ...);
- optimizer: everything inside `Optimizer.step` (seqtune's folded clipping included);
- clip and bookkeeping: the operators outside forward, backward and the optimizer (gradient clipping,
  loss sums, zero_grad, the scheduler);
- data/collate: the collator, from raw rows to padded tensors;
- Python/dispatch: what is left of the wall time, outside every operator (the loop, hooks, autograd's
  engine, the dispatcher between operators).
And by phase (forward, backward, optimizer): time per step, and for forward (2 x N per real token) and
backward (4 x N) the model FLOP rate and its MFU against the matmul peak measured on the spot in the
precision the side ran in (N = non-embedding parameters, as in `python -m bench`). The profiler adds its
own cost to every operator, so the categories are shares of a profiled step, not of a plain one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MATMUL = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_mkldnn", "mkldnn::", "aten::mkldnn")
ATTENTION = ("softmax", "scaled_dot_product", "flash_attention", "_efficient_attention")
CATEGORIES = ("matmul", "attention", "elementwise", "optimizer", "clip and bookkeeping", "data/collate",
              "Python/dispatch")
PHASES = ("forward", "backward", "optimizer")


def _phase(event) -> str:
    """The phase an event runs in, from its chain of parents (the markers set below, autograd's, torch's)."""
    while event is not None:
        name = event.name
        if name == "bench::forward":
            return "forward"
        if name.startswith("autograd::engine::evaluate_function"):
            return "backward"
        if name.startswith("Optimizer.step"):
            return "optimizer"
        if name == "bench::collate":
            return "data"
        event = event.cpu_parent
    return "other"


def _category(name: str, phase: str) -> str:
    if phase == "optimizer":
        return "optimizer"
    if phase == "other":
        return "clip and bookkeeping"
    if name.startswith(MATMUL):
        return "matmul"
    if any(part in name for part in ATTENTION):
        return "attention"
    return "elementwise"


def profile_side(side: str, steps: int, profiled: int, compile_mode: str | None = None) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    import seqtune
    from bench.ops import course_setup

    tokenizer, train, model = course_setup()
    library = seqtune if side == "seqtune" else __import__("transformers")
    profiler = profile(activities=[ProfilerActivity.CPU])
    first, window = steps - profiled, {"tokens": 0, "on": False}

    class Window(library.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == first:
                window.update(on=True, start=time.perf_counter())
                profiler.start()
            elif state.global_step == steps:
                profiler.stop()
                window.update(on=False, wall=time.perf_counter() - window["start"])

    class TimedCollator:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, features):
            with record_function("bench::collate"):
                batch = self.inner(features)
            if window["on"]:
                window["tokens"] += int(batch["attention_mask"].sum())
            return batch

    if compile_mode is None:  # hooks inside a compiled call would be traced into its graph
        markers = []

        def enter(module, args):  # returns None: a pre-hook's return value would replace the inputs
            markers.append(record_function("bench::forward"))
            markers[-1].__enter__()

        model.register_forward_pre_hook(enter)
        model.register_forward_hook(lambda module, args, output: markers.pop().__exit__(None, None, None))
    common = dict(per_device_train_batch_size=8, learning_rate=5e-5, max_steps=steps, save_strategy="no",
                  logging_steps=10_000, report_to="none", disable_tqdm=True, torch_compile=compile_mode is not None,
                  torch_compile_mode=None if compile_mode in (None, "default") else compile_mode)
    trainer = library.Trainer(model, library.TrainingArguments(tempfile.mkdtemp(prefix="seqtune-profile-"), **common),
                              train_dataset=train, data_collator=library.DataCollatorWithPadding(tokenizer),
                              processing_class=tokenizer, callbacks=[Window()])
    trainer.data_collator = TimedCollator(trainer.data_collator)
    trainer.train()
    if side == "seqtune":
        precision = "bf16" if trainer.autocast_dtype == torch.bfloat16 else "fp32"
    else:
        precision = "bf16" if trainer.args.bf16 else "fp32"

    seconds = {name: 0.0 for name in CATEGORIES}
    phase_seconds = {name: 0.0 for name in PHASES}
    for event in profiler.events():
        phase = _phase(event)
        if event.name == "bench::collate":
            seconds["data/collate"] += event.cpu_time_total / 1e6
        elif phase in PHASES and _phase(event.cpu_parent) != phase:  # the phase's outermost event
            phase_seconds[phase] += event.cpu_time_total / 1e6
        if event.name.startswith("aten::") and phase != "data":
            seconds[_category(event.name, phase)] += event.self_cpu_time_total / 1e6
    wall = window["wall"]
    seconds["Python/dispatch"] = max(0.0, wall - sum(seconds.values()))
    dense = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    return {"side": side, "precision": precision, "wall_per_step": wall / profiled,
            "per_step": {k: v / profiled for k, v in seconds.items()},
            "phase_per_step": {k: v / profiled for k, v in phase_seconds.items()},
            "flops_per_step": {"forward": 2 * dense * window["tokens"] / profiled,
                               "backward": 4 * dense * window["tokens"] / profiled}}


def run(steps: int, profiled: int, compile_mode: str | None = None) -> dict[str, dict]:
    """Each side in its own process, one after the other."""
    results = {}
    for side in ("transformers", "seqtune"):
        compiled = ["--torch-compile", compile_mode] if compile_mode else []
        out = subprocess.run([sys.executable, "-m", "bench.profile", "--side", side, "--steps", str(steps),
                              "--profiled", str(profiled), *compiled], check=True, capture_output=True, text=True,
                             cwd=HERE.parent)
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def render(results: dict[str, dict], peaks: dict[str, float]) -> str:
    theirs, ours = results["transformers"], results["seqtune"]
    lines = [f"| where a training step's time goes (ms per step, profiled) | transformers ({theirs['precision']}) "
             f"| share | seqtune ({ours['precision']}) | share |", "| --- | ---: | ---: | ---: | ---: |"]
    for name in CATEGORIES:
        cells = [f"{r['per_step'][name] * 1e3:.1f} | {r['per_step'][name] / r['wall_per_step']:.0%}"
                 for r in (theirs, ours)]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    lines.append(f"| **step (wall)** | {theirs['wall_per_step'] * 1e3:.1f} | 100% | {ours['wall_per_step'] * 1e3:.1f} "
                 "| 100% |")
    lines += ["", "| phase (ms per step; MFU vs the measured peak in the precision used) | transformers | MFU "
              "| seqtune | MFU |", "| --- | ---: | ---: | ---: | ---: |"]
    for phase in PHASES:
        cells = []
        for r in (theirs, ours):
            spent = r["phase_per_step"][phase]
            flops = r["flops_per_step"].get(phase)
            rate = f"{flops / spent / 1e9 / peaks[r['precision']]:.0%}" if flops and spent else "-"
            cells.append(f"{spent * 1e3:.1f} | {rate}")
        lines.append(f"| {phase} | {cells[0]} | {cells[1]} |")
    for r in (theirs, ours):
        r["step_mfu"] = sum(r["flops_per_step"].values()) / r["wall_per_step"] / 1e9 / peaks[r["precision"]]
    lines.append(f"| **whole step** | {theirs['wall_per_step'] * 1e3:.1f} | {theirs['step_mfu']:.0%} | "
                 f"{ours['wall_per_step'] * 1e3:.1f} | {ours['step_mfu']:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--profiled", type=int, default=10)
    parser.add_argument("--torch-compile", default=None, metavar="MODE", help="both sides compiled, in this mode")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # internal: profile one side, print JSON
    options = parser.parse_args()
    os.environ.setdefault("GLUE_DIR", str(HERE.parent.parent / "shared" / "datasets" / "glue"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if options.side:
        print(json.dumps(profile_side(options.side, options.steps, options.profiled, options.torch_compile)))
        return
    from bench.__main__ import measure_peak_gflops

    results = run(options.steps, options.profiled, options.torch_compile)
    peaks = {name: measure_peak_gflops(name) for name in {r["precision"] for r in results.values()}}
    print(render(results, peaks))


if __name__ == "__main__":
    main()
