"""Tuning on MRPC: the course's recipe (lr 5e-5, batch 8, 3 epochs) over seeds, a `seqtune tune` study, then the
best trial's parameters over the same seeds; prints a markdown table (mean ± sample std of dev accuracy / F1).

    python -m bench.tune_mrpc --trials 20 --seeds 1,2,3 --output runs/tune-mrpc
    python -m bench.tune_mrpc --trials 2 --seeds 1,2 --max-train-rows 200 --max-eval-rows 100   # a quick check

Runs on CUDA unchanged (the trainer picks the device). GLUE from $GLUE_DIR (default ../shared/datasets/glue).
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

ROOT = Path(__file__).resolve().parent.parent


def _subset(glue_dir: Path, train_rows: int | None, eval_rows: int | None, into: Path) -> Path:
    """MRPC's TSVs cut to their first rows (header kept), for a quick check; the full data otherwise."""
    if train_rows is None and eval_rows is None:
        return glue_dir
    (into / "MRPC").mkdir(parents=True)
    for name in sorted(n for n in os.listdir(glue_dir / "MRPC") if n.endswith(".tsv")):
        lines = (glue_dir / "MRPC" / name).read_text(encoding="utf-8").splitlines(keepends=True)
        keep = train_rows if name.startswith("train") else eval_rows
        (into / "MRPC" / name).write_text("".join(lines[:1 + keep] if keep else lines), encoding="utf-8")
    return into


def _seqtune(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "seqtune", *args, "--quiet"], cwd=ROOT, check=True)
    return time.perf_counter() - start


def _spread(folder: Path) -> dict[str, str]:
    results = json.loads((folder / "all_results.json").read_text())
    return {m: f"{results[f'eval_{m}_mean']:.4f} ± {results[f'eval_{m}_std']:.4f}" for m in ("accuracy", "f1")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--output", default="runs/tune-mrpc")
    parser.add_argument("--timeout", default=None, help="the study's --timeout")
    parser.add_argument("--max-train-rows", type=int, default=None, help="a quick check on the first rows only")
    parser.add_argument("--max-eval-rows", type=int, default=None)
    options = parser.parse_args()
    output = Path(options.output).resolve()
    glue = Path(os.environ.get("GLUE_DIR", ROOT.parent / "shared" / "datasets" / "glue"))
    with tempfile.TemporaryDirectory() as scratch:
        data = ["--task", "glue/mrpc", "--data-dir",
                str(_subset(glue, options.max_train_rows, options.max_eval_rows, Path(scratch)) / "MRPC")]
        started = time.perf_counter()
        course_s = _seqtune("train", *data, "--learning-rate", "5e-5", "--batch-size", "8", "--epochs", "3",
                            "--seeds", options.seeds, "--output-dir", str(output / "course"), "--overwrite-output-dir")
        study = ["tune", *data, "--trials", str(options.trials), "--output-dir", str(output / "study")]
        tune_s = _seqtune(*study, *(["--timeout", options.timeout] if options.timeout else []))
        best = json.loads((output / "study" / "best_params.json").read_text())
        flags = [f"--{name.replace('_', '-')}={value}" for name, value in best["params"].items()]
        best_s = _seqtune("train", *data, *flags, "--seeds", options.seeds, "--output-dir", str(output / "best"),
                          "--overwrite-output-dir")
        total = time.perf_counter() - started
    import optuna
    import torch

    trials = optuna.load_study(study_name="seqtune", storage=f"sqlite:///{output / 'study' / 'tune.db'}").trials
    states = [t.state.name for t in trials]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    course, tuned = _spread(output / "course"), _spread(output / "best")
    shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
    rows = [
        f"MRPC dev, all-MiniLM-L6-v2, seeds {options.seeds}; device: {device}"
        + (f"; first {options.max_train_rows} training rows only" if options.max_train_rows else ""), "",
        "| recipe | accuracy (mean ± std) | F1 (mean ± std) | wall time |", "|---|---:|---:|---:|",
        f"| course (lr 5e-5, batch 8, 3 epochs) | {course['accuracy']} | {course['f1']} | {course_s:.0f} s |",
        f"| best trial's ({shown}) | {tuned['accuracy']} | {tuned['f1']} | {best_s:.0f} s |", "",
        f"Study: {len(trials)} trials ({states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned, "
        f"{states.count('FAIL')} failed) in {tune_s:.0f} s; best trial {best['trial']}: accuracy "
        f"{best['value']:.4f} (seed 42). Total wall time {total:.0f} s.",
    ]
    print("\n".join(rows))


if __name__ == "__main__":
    main()
