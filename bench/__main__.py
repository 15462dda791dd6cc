"""Side-by-side benchmark: transformers.Trainer vs seqtune.Trainer on the course recipe (MRPC).

    python -m bench            # quick: a fixed number of optimizer steps each, alternating, 2 rounds
    python -m bench --full     # 3 full epochs each, taking turns epoch by epoch, with dev accuracy / F1
    python -m bench --full --seeds 42 43 44
    python -m bench --full --output bench/RESULTS-avx2-fp32.md   # another machine's table beside this one

Each side runs in its own process (peak memory is its own). Results go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIDES = ("transformers", "seqtune")


def measure_peak_gflops(dtype_name: str, seconds: float = 3.0) -> float:
    """Best sustained matmul rate on this machine, in the given precision (our MFU denominator)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = 4096 if device == "cuda" else 1024
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 10 * 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def machine() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from seqtune.device import cpu_has_native_bf16

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return {"cpu": cpu, "cores": str(os.cpu_count()), "native bf16 on CPU": str(cpu_has_native_bf16()),
            "gpu": gpu, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def side_command(side: str, steps: int, seed: int, extra: list[str]) -> tuple[list[str], Path]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    command = [sys.executable, "-m", "bench.run_one", "--trainer", side, "--steps", str(steps),
               "--seed", str(seed), "--out", str(out), *extra]
    print(f"bench: {' '.join(command[1:])}", flush=True)
    return command, out


def run_side(side: str, steps: int, seed: int, extra: list[str]) -> dict:
    command, out = side_command(side, steps, seed, extra)
    subprocess.run(command, check=True, cwd=HERE.parent)
    return json.loads(out.read_text())


def run_taking_turns(steps: int, seed: int, extra: list[str]) -> dict[str, dict]:
    """Both sides alive at once, one running at a time: each stops itself after setting up and at
    each epoch's end, and is continued in turn (transformers first). A full run is ~12 minutes and
    this machine's speed drifts by ~10% over minutes; run back to back, the drift lands on one side."""
    children, stopped = {}, []  # stopped: alive, waiting for its turn
    try:
        for side in SIDES:
            command, out = side_command(side, steps, seed, [*extra, "--take-turns"])
            children[side] = (subprocess.Popen(command, cwd=HERE.parent), out)
            _run_until_stopped(children[side][0].pid, side, stopped, resume=False)  # set up alone
        while stopped:
            for side in list(stopped):
                stopped.remove(side)
                _run_until_stopped(children[side][0].pid, side, stopped, resume=True)
    finally:
        for side in stopped:  # only after a failure: leave no stopped process behind
            os.kill(children[side][0].pid, signal.SIGKILL)
            os.waitpid(children[side][0].pid, 0)
    return {side: json.loads(out.read_text()) for side, (_, out) in children.items()}


def _run_until_stopped(pid: int, side: str, stopped: list[str], resume: bool) -> None:
    """(Continue and) wait for the child: it stops itself (back on `stopped`) or exits (checked)."""
    if resume:
        os.kill(pid, signal.SIGCONT)
    _, status = os.waitpid(pid, os.WUNTRACED)
    if os.WIFSTOPPED(status):
        stopped.append(side)
    elif os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: the {side} process failed (exit status {os.waitstatus_to_exitcode(status)})")


def summarise(runs: list[dict]) -> dict:
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    merged = {k: statistics.median(r[k] for r in runs if r[k] is not None) if runs[0][k] is not None else None
              for k in keys}
    merged.update({k: v for k, v in runs[0].items() if k not in merged})
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="3 full epochs each (accuracy comparable)")
    parser.add_argument("--steps", type=int, default=150, help="quick mode: optimizer steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="quick mode: alternating rounds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--no-profile", action="store_true", help="skip the step profile (bench.profile) first")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="passed to bench.run_one")
    options = parser.parse_args()
    os.environ.setdefault("GLUE_DIR", str(HERE.parent.parent / "shared" / "datasets" / "glue"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from bench import profile

    # Where each side's step time goes, by category (the embedded model's recipe, whatever --extra says).
    step_profile = None if options.no_profile else profile.run(steps=40, profiled=10)
    steps = -1 if options.full else options.steps
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    order = []
    for seed in options.seeds:
        if options.full and hasattr(signal, "SIGSTOP"):  # POSIX; elsewhere one side after the other
            for side, result in run_taking_turns(steps, seed, options.extra).items():
                runs[side].append(result)
            order.append("both taking turns epoch by epoch (transformers first)")
            continue
        for round_index in range(1 if options.full else options.rounds):
            sides = SIDES if (round_index + len(order)) % 2 == 0 else SIDES[::-1]  # alternate who goes first
            for side in sides:
                runs[side].append(run_side(side, steps, seed, options.extra))
                order.append(side)
    peaks = {name: measure_peak_gflops(name) for name in ("fp32", "bf16")}
    profiled = profile.render(step_profile, peaks) if step_profile else ""
    report = render(options, runs, peaks, machine(), order, profiled)
    print(report)
    Path(options.output).write_text(report)




def target_lines(theirs: dict, ours: dict, full: bool) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    train = ours["train_samples_per_s"] / theirs["train_samples_per_s"]
    evaluation = min(ours["eval_samples_per_s"] / theirs["eval_samples_per_s"],
                     ours["predict_samples_per_s"] / theirs["predict_samples_per_s"])
    memory = ours["peak_rss_mb"] <= theirs["peak_rss_mb"]
    accuracy = min(ours["accuracy"] - theirs["accuracy"], ours["f1"] - theirs["f1"])
    mfu = ours["train_mfu"]
    return [f"training >= 2.5x: {train:.2f}x, {verdict(train >= 2.5)}",
            f"evaluate/predict >= 4x: {evaluation:.2f}x, {verdict(evaluation >= 4)}",
            f"peak memory no higher: {verdict(memory)}",
            f"accuracy and F1 within 1 point: {accuracy * 100:+.2f} points, "
            + (verdict(accuracy >= -0.01) if full else "not judged in quick mode (a few steps, not 3 epochs)"),
            f"(issue 17, CPUs without native bf16) training MFU >= 55% of the fp32 peak: {mfu:.1%}, "
            + (verdict(mfu >= 0.55) if ours["precision"] == "fp32" else "not judged here (bf16 run)")]


def render(options, runs: dict[str, list[dict]], peaks: dict[str, float], info: dict[str, str],
           order: list[str], step_profile: str) -> str:
    theirs, ours = summarise(runs["transformers"]), summarise(runs["seqtune"])

    def mfu(result: dict, flops_key: str, seconds_key: str) -> float:
        return result[flops_key] / result[seconds_key] / 1e9 / peaks[result["precision"]]

    for result in (theirs, ours):
        result["train_mfu"] = mfu(result, "train_flops", "train_seconds")
        result["eval_mfu"] = mfu(result, "eval_flops", "eval_seconds")
    rows = [
        ("training samples/s", "train_samples_per_s", "{:.1f}", True),
        ("training real tokens/s", "train_real_tokens_per_s", "{:.0f}", True),
        ("padding fraction fed to the model", "padding_fraction", "{:.1%}", False),
        ("training MFU (vs measured peak)", "train_mfu", "{:.1%}", True),
        ("evaluate() samples/s (408 dev pairs)", "eval_samples_per_s", "{:.1f}", True),
        ("predict() samples/s (408 dev pairs)", "predict_samples_per_s", "{:.1f}", True),
        ("evaluation MFU", "eval_mfu", "{:.1%}", True),
        ("peak resident memory (MB)", "peak_rss_mb", "{:.0f}", False),
        ("training time (s)", "train_seconds", "{:.1f}", False),
        ("dev accuracy", "accuracy", "{:.4f}", True),
        ("dev F1", "f1", "{:.4f}", True),
    ]
    if theirs.get("peak_gpu_mb") is not None:
        rows.insert(8, ("peak GPU memory (MB)", "peak_gpu_mb", "{:.0f}", False))
    mode = "full: 3 epochs" if options.full else f"quick: {options.steps} optimizer steps, {options.rounds} rounds"
    command = "python -m bench " + " ".join(sys.argv[1:])
    lines = [
        "# Benchmark: seqtune.Trainer vs transformers.Trainer",
        "",
        f"Command: `{command.strip()}` ({mode}; seeds {', '.join(map(str, options.seeds))}; "
        f"medians where runs repeat; run order: {', '.join(order)}).",
        "",
        "Recipe on both sides: embedded all-MiniLM-L6-v2, GLUE MRPC train (3,668 pairs), lr 5e-5, batch 8, "
        "linear schedule, no warmup, dynamic padding, the same tokenized data, seed and number of optimizer "
        f"steps ({theirs['steps']:.0f}).",
        "",
        "Where the two differ by default (as each run reported it): " + "; ".join(
            f"{key} (transformers: {theirs['settings'][key]}; seqtune: {ours['settings'][key]})"
            for key in ours["settings"] if ours["settings"][key] != theirs["settings"].get(key)) + ".",
        "",
        "| figure | transformers | seqtune | ratio seqtune/transformers |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, key, fmt, _ in rows:
        ratio = ours[key] / theirs[key] if theirs[key] else float("nan")
        lines.append(f"| {label} | {fmt.format(theirs[key])} | {fmt.format(ours[key])} | {ratio:.2f}x |")
    lines += ["", "Targets (issue 3): " + "; ".join(target_lines(theirs, ours, options.full)) + "."]
    lines += [
        "",
        f"Measured matmul peak on this machine: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s "
        "(MFU uses the peak of the precision each side ran in; model FLOPs = 6 x non-embedding parameters x "
        "real tokens for training, 2 x for evaluation).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
        "## Step profile (`python -m bench.profile`: optimizer steps 31-40 of the recipe, torch profiler)",
        "",
        step_profile,
        "",
    ]
    lines += [(HERE / "levers.md").read_text()]  # measured once, lever by lever; see the file
    if len(options.seeds) > 1:
        lines += ["Per seed (accuracy / F1):", ""]
        for side in SIDES:
            lines.append(f"- {side}: " + ", ".join(f"seed {s}: {r['accuracy']:.4f} / {r['f1']:.4f}"
                                                    for s, r in zip(options.seeds, runs[side], strict=True)))
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
