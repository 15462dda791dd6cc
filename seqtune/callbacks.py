"""Hooks at the few places people need them, in the shape of transformers' callbacks."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any


@dataclass
class TrainerControl:
    """Flags a callback may set to steer the loop."""

    should_training_stop: bool = False
    should_evaluate: bool = False
    should_save: bool = False
    should_log: bool = False


class TrainerCallback:
    """Override the events you need; each gets (args, state, control, **kwargs)."""

    def on_train_begin(self, args, state, control, **kwargs: Any) -> None: ...
    def on_train_end(self, args, state, control, **kwargs: Any) -> None: ...
    def on_epoch_begin(self, args, state, control, **kwargs: Any) -> None: ...
    def on_epoch_end(self, args, state, control, **kwargs: Any) -> None: ...
    def on_step_end(self, args, state, control, **kwargs: Any) -> None: ...
    def on_log(self, args, state, control, logs: dict | None = None, **kwargs: Any) -> None: ...
    def on_evaluate(self, args, state, control, metrics: dict | None = None, **kwargs: Any) -> None: ...
    def on_save(self, args, state, control, **kwargs: Any) -> None: ...


class CallbackHandler:
    """Calls every callback for an event, in order."""

    def __init__(self, callbacks: list[TrainerCallback]) -> None:
        self.callbacks = list(callbacks)

    def add(self, callback: TrainerCallback) -> None:
        self.callbacks.append(callback)

    def fire(self, event: str, args, state, control, **kwargs: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(args, state, control, **kwargs)

    def states(self) -> dict[str, dict[str, Any]]:
        """What callbacks with a `state()` method need kept in a checkpoint, by class name."""
        return {type(c).__name__: c.state() for c in self.callbacks if hasattr(c, "state")}

    def load_states(self, states: dict[str, dict[str, Any]]) -> None:
        for callback in self.callbacks:
            if hasattr(callback, "load_state") and type(callback).__name__ in states:
                callback.load_state(states[type(callback).__name__])


class ProgressCallback(TrainerCallback):
    """A tqdm bar over optimizer steps; logs are written above it, readable in non-TTY logs too."""

    def __init__(self) -> None:
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs: Any) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=state.max_steps, initial=state.global_step, unit="step",
                        dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30.0)

    def on_step_end(self, args, state, control, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs: dict | None = None, **kwargs: Any) -> None:
        from tqdm.auto import tqdm

        tqdm.write(format_logs(logs or {}))

    def on_train_end(self, args, state, control, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class PrintCallback(TrainerCallback):
    """Logs as plain lines, for disable_tqdm=True."""

    def on_log(self, args, state, control, logs: dict | None = None, **kwargs: Any) -> None:
        print(format_logs(logs or {}), flush=True)


def format_logs(logs: dict) -> str:
    parts = []
    for key, value in logs.items():
        if isinstance(value, float):
            value = f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4f}"
        parts.append(f"{key}={value}")
    return "  ".join(parts)


class EarlyStoppingCallback(TrainerCallback):
    """Stop when `metric_for_best_model` has not improved by more than the threshold for
    `early_stopping_patience` evaluations in a row."""

    def __init__(self, early_stopping_patience: int = 1, early_stopping_threshold: float = 0.0) -> None:
        self.patience = early_stopping_patience
        self.threshold = early_stopping_threshold
        self.bad_evaluations = 0
        self.best: float | None = None

    def state(self) -> dict[str, Any]:
        """Kept in checkpoints: a resumed run continues its patience where it stood."""
        return {"bad_evaluations": self.bad_evaluations, "best": self.best}

    def load_state(self, saved: dict[str, Any]) -> None:
        self.bad_evaluations, self.best = saved["bad_evaluations"], saved["best"]

    def on_train_begin(self, args, state, control, **kwargs: Any) -> None:
        if self.bad_evaluations >= self.patience:  # resumed from the checkpoint where it stopped: nothing to do
            control.should_training_stop = True

    def on_evaluate(self, args, state, control, metrics: dict | None = None, **kwargs: Any) -> None:
        key = args.best_metric_key()
        if not metrics or key not in metrics:
            return
        value = metrics[key]
        if args.is_better(value, self.best, self.threshold):
            self.best = value
            self.bad_evaluations = 0
        else:
            self.bad_evaluations += 1
            if self.bad_evaluations >= self.patience:
                control.should_training_stop = True
