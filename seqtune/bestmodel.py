"""Which model `seqtune train` ends with, and why: the best evaluation by the task's first metric
(transformers' load_best_model_at_end + metric_for_best_model, loaded from its checkpoint), or, with
`--save-strategy no` or `steps`, the best weights kept in memory; early stopping (transformers' EarlyStoppingCallback);
and the one line that says what was kept ("best model: epoch 2 (checkpoint-230), accuracy 0.8162; stopped
early at epoch 4: no improvement > 0.001 for 2 evaluations")."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .callbacks import EarlyStoppingCallback, TrainerCallback

# A metric's name as --metric gives it -> its key in evaluate()'s results (without "eval_").
RESULT_KEYS = {"matthews": "matthews_correlation", "spearman": "spearmanr", "pearsonr": "pearson"}


def best_metric_name(metrics: list[str]) -> str:
    """metric_for_best_model: the run's first metric, as evaluate() names it."""
    return RESULT_KEYS.get(metrics[0], metrics[0])


def training_arguments(options: argparse.Namespace, metrics: list[str]) -> dict[str, Any]:
    """The TrainingArguments of best-model keeping. The best checkpoint is tracked (and never rotated away)
    whether or not it is loaded; it is loaded from disk when checkpoints follow the evaluations (epoch);
    with --save-strategy no or steps (checkpoints at other steps), KeepBestInMemory keeps it instead."""
    return {"metric_for_best_model": best_metric_name(metrics),
            "load_best_model_at_end": _load_best(options) and options.save_strategy == "epoch"}


def _load_best(options: argparse.Namespace) -> bool:
    return getattr(options, "load_best", True)  # options built by code for train (tune, cross-validation)


def callbacks(options: argparse.Namespace, model: Any) -> tuple[EarlyStoppingCallback | None,
                                                                 KeepBestInMemory | None]:
    """The early-stopping callback (with --early-stopping-patience) and the in-memory keeper (with
    --save-strategy no or steps and the best model wanted)."""
    patience = getattr(options, "early_stopping_patience", None)
    stopper = (EarlyStoppingCallback(patience, getattr(options, "early_stopping_threshold", None) or 0.0)
               if patience else None)
    keeper = KeepBestInMemory(model) if _load_best(options) and options.save_strategy != "epoch" else None
    return stopper, keeper


class KeepBestInMemory(TrainerCallback):
    """With no checkpoints to load the best model from: a CPU copy of the trainable weights at the best
    evaluation, put back when training ends (frozen weights never change, so a LoRA run copies its adapters)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.best: float | None = None
        self.step: int | None = None
        self.epoch: float | None = None
        self.weights: dict[str, Any] | None = None

    def state(self) -> dict[str, Any]:
        """Kept in checkpoints, the weights not: resumed, the run knows the best it cannot give back."""
        return {"best": self.best, "step": self.step, "epoch": self.epoch}

    def load_state(self, saved: dict[str, Any]) -> None:
        self.best, self.step, self.epoch = saved["best"], saved["step"], saved["epoch"]

    @property
    def lost(self) -> bool:
        """The best evaluation came before a resume: its weights were in the memory of the earlier process."""
        return self.step is not None and self.weights is None

    def on_evaluate(self, args, state, control, metrics: dict | None = None, **kwargs: Any) -> None:
        value = (metrics or {}).get(args.best_metric_key())
        if value is None or not args.is_better(value, self.best) or state.global_step == 0:
            return
        self.best, self.step, self.epoch = value, state.global_step, state.epoch
        self.weights = {name: p.detach().to("cpu", copy=True) for name, p in self.model.named_parameters()
                        if p.requires_grad}

    def on_train_end(self, args, state, control, **kwargs: Any) -> None:
        import torch

        if self.weights is None or self.step == state.global_step:
            return  # the last evaluation was the best: the model already holds it
        with torch.no_grad():
            for name, parameter in self.model.named_parameters():
                if name in self.weights:
                    parameter.copy_(self.weights[name])


def _epoch(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _evaluation_at(log_history: list[dict[str, Any]], step: int) -> dict[str, Any] | None:
    return next((h for h in reversed(log_history) if "eval_loss" in h and h.get("step") == step), None)


def outcome(trainer: Any, stopper: EarlyStoppingCallback | None, keeper: KeepBestInMemory | None,
            load_best: bool) -> dict[str, Any]:
    """What the run kept and why, for run.json and the line printed: the metric, the best evaluation (its
    epoch, step, value and checkpoint), which model was kept, and whether early stopping ended the run."""
    state, args = trainer.state, trainer.args
    best = None
    if keeper is not None and keeper.step is not None:
        best = {"epoch": keeper.epoch, "step": keeper.step, "value": keeper.best, "checkpoint": None,
                "lost": keeper.lost and keeper.step != state.global_step}
    elif state.best_model_checkpoint:
        step = int(Path(state.best_model_checkpoint).name.rsplit("-", 1)[-1])
        found = _evaluation_at(state.log_history, step)
        best = {"epoch": found.get("epoch") if found else None, "step": step, "value": state.best_metric,
                "checkpoint": Path(state.best_model_checkpoint).name}
    result: dict[str, Any] = {"metric": args.metric_for_best_model, "best": best, "load_best": load_best,
                              "kept": "best" if load_best and best and not best.get("lost") else "last",
                              "last_epoch": state.epoch,
                              "last_step": state.global_step, "early_stopping": None,
                              "evaluations": sum("eval_loss" in h for h in state.log_history)}
    if stopper is not None:
        stopped = stopper.bad_evaluations >= stopper.patience and state.global_step < state.max_steps
        result["early_stopping"] = {"patience": stopper.patience, "threshold": stopper.threshold, "stopped": stopped,
                                    "epoch": state.epoch if stopped else None}
    return result


def kept_evaluation(log_history: list[dict[str, Any]], kept: dict[str, Any]) -> dict[str, Any] | None:
    """The evaluation of the model the run ended with: the best one's when it was loaded, else the last."""
    if kept["kept"] == "best":
        found = _evaluation_at(log_history, kept["best"]["step"])
        if found is not None:
            return found
    return next((h for h in reversed(log_history) if "eval_loss" in h), None)


def describe(kept: dict[str, Any]) -> str:
    """One line: which model the run ended with, and why training stopped when early stopping stopped it."""
    best, metric = kept.get("best"), kept.get("metric")
    if best:
        where = f"checkpoint {best['checkpoint']}" if best.get("checkpoint") else "its weights kept in memory"
        value = f"{best['value']:.4f}" if isinstance(best.get("value"), (int, float)) else best.get("value")
        found = f"epoch {_epoch(best['epoch'])} ({where}), {metric} {value}"
        last = f"last model kept (epoch {_epoch(kept.get('last_epoch'))}"
        if best.get("lost"):
            found = f"epoch {_epoch(best['epoch'])}, {metric} {value}"
            line = f"{last}): the best, {found}, came before the resume and its weights were only in memory"
        else:
            line = (f"best model: {found}" if kept["kept"] == "best" else
                    f"{last}, --no-load-best); the best was {found}")
    elif kept.get("evaluations") and not kept.get("load_best", True):
        line = f"last model kept (epoch {_epoch(kept.get('last_epoch'))}, --no-load-best)"
    else:
        line = f"last model kept (epoch {_epoch(kept.get('last_epoch'))}): no evaluation to choose a best one by"
    stopping = kept.get("early_stopping")
    if stopping:
        rule = f"no improvement > {stopping['threshold']:g} for {stopping['patience']} evaluations"
        line += (f"; stopped early at epoch {_epoch(stopping['epoch'])}: {rule}" if stopping["stopped"]
                 else f"; early stopping ({rule}) did not trigger")
    return line
