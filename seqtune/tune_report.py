"""tune_report.md and tune_trials.png: a study's trials as a table and a plot (seqtune tune writes them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .atomic import replacing, write_text
from .tune import PLOT_FILE, REPORT_FILE, STUDY_FILE, TRIALS_DIR, _best, _shown
from .tune_space import DEFAULT_SPACE


def counts(study: Any) -> dict[str, int]:
    counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "RUNNING": 0, "WAITING": 0}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    return counts


def write_report(output_dir: Path, study: Any, objective: str, direction: str, task: str) -> None:
    """tune_report.md: the study, the best trial, a table of every trial, and the plot."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name != "WAITING"]
    best = _best(study)
    order = list(DEFAULT_SPACE)
    names = sorted({name for t in trials for name in t.params},
                   key=lambda n: (order.index(n) if n in order else len(order), n))
    states = counts(study)
    shown = objective.removeprefix("eval_")
    lines = [f"# Hyperparameter search: {task}", "",
             f"Optuna study `{STUDY_FILE}`: TPE sampler, median pruner on each epoch's {shown}; objective "
             f"{shown} ({direction}). Trials: {states['COMPLETE']} complete, {states['PRUNED']} pruned, "
             f"{states['FAIL']} failed, {states['RUNNING']} running.", ""]
    if best is not None:
        lines += [f"**Best: trial {best.number}**, {shown} {best.value:.4f}: {_shown(best.params)}. Its model is "
                  f"the one in this folder (from `{TRIALS_DIR}/{best.number}/`; the other trials keep their "
                  "reports, not their weights).", ""]
    if _plot(output_dir / PLOT_FILE, trials, shown):
        lines += [f"![{shown} by trial and by learning rate]({PLOT_FILE})", ""]
    lines += ["| trial | state | " + " | ".join(names) + f" | {shown} | epochs run | seconds |",
              "|---:|---|" + "---:|" * (len(names) + 3)]
    for t in trials:
        value = _value(t)
        epochs = max(t.intermediate_values, default=0) / 100
        cells = [_cell(t.params.get(n)) for n in names]
        shown_value = "" if value is None else f"{value:.4f}"
        lines.append(f"| {t.number} | {t.state.name.lower()} | " + " | ".join(cells)
                     + f" | {shown_value} | {epochs:g} | {t.user_attrs.get('seconds', '')} |")
    write_text(output_dir / REPORT_FILE, "\n".join(lines) + "\n")


def _value(trial: Any) -> float | None:
    """A complete trial's objective; a pruned one's last reported value."""
    if trial.value is not None:
        return trial.value
    steps = trial.intermediate_values
    return steps[max(steps)] if steps else None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _plot(path: Path, trials: list[Any], shown: str) -> bool:
    """The objective against the trial number and against the learning rate (pruned trials at their last
    reported value, as crosses). False if there is nothing to draw."""
    points = [(t, _value(t)) for t in trials if _value(t) is not None]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_rate = any("learning_rate" in t.params for t, _ in points)
    figure, axes = plt.subplots(1, 2 if by_rate else 1, figsize=(10 if by_rate else 5.5, 3.6), squeeze=False)
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        chosen = [(t, v) for t, v in points if t.state.name == state]
        if not chosen:
            continue
        axes[0][0].scatter([t.number for t, _ in chosen], [v for _, v in chosen], marker=marker, label=state.lower())
        if by_rate:
            rated = [(t, v) for t, v in chosen if "learning_rate" in t.params]
            axes[0][1].scatter([t.params["learning_rate"] for t, _ in rated], [v for _, v in rated], marker=marker,
                               label=state.lower())
    axes[0][0].set(xlabel="trial", ylabel=shown, title=f"{shown} by trial")
    axes[0][0].legend()
    if by_rate:
        axes[0][1].set(xlabel="learning rate", ylabel=shown, title=f"{shown} by learning rate", xscale="log")
    figure.tight_layout()
    with replacing(path) as partial:
        figure.savefig(partial, format="png", dpi=100)
    plt.close(figure)
    return True
