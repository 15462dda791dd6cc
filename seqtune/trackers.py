"""Experiment trackers for `report_to`: TensorBoard, MLflow and Weights & Biases, as transformers' integrations.

The tracker packages are imported inside the classes, so importing this module costs nothing.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from .callbacks import TrainerCallback
from .errors import SeqtuneError

TRACKERS = ("tensorboard", "wandb", "mlflow")
# Logged once, at the end of training: W&B keeps them in the run's summary, not as a curve (as transformers).
_SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss")


def _numbers(logs: dict | None) -> dict[str, float]:
    """The numeric entries of a log; `step` is the x-axis itself, not a curve."""
    return {k: float(v) for k, v in (logs or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}


def _grouped(logs: dict[str, float]) -> dict[str, float]:
    """transformers' rewrite_logs: eval_x -> eval/x, test_x -> test/x, anything else -> train/x."""
    out = {}
    for key, value in logs.items():
        prefix, _, rest = key.partition("_")
        out[f"{prefix}/{rest}" if prefix in ("eval", "test") and rest else f"train/{key}"] = value
    return out


def default_logdir(output_dir: Path, run_name: str | None = None) -> Path:
    """output_dir/runs/<run_name>, else output_dir/runs/<Mon01_12-00-00_host> as PyTorch and transformers name a
    run; never an existing one."""
    import socket
    from datetime import datetime

    base = Path(output_dir) / "runs" / (run_name or f"{datetime.now():%b%d_%H-%M-%S}_{socket.gethostname()}")
    path, n = base, 1
    while path.exists():  # two runs within one second must not share (and mix) a folder
        n += 1
        path = base.with_name(f"{base.name}_{n}")
    return path


class TensorBoardCallback(TrainerCallback):
    """Every logged number as a scalar (train/<key>, eval/<key>) in args.logging_dir if set, else under
    output_dir/runs/<run_name or time_host>/."""

    def __init__(self, output_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # fails early, in Trainer(), when it cannot work

        self._SummaryWriter = SummaryWriter
        self.output_dir = Path(output_dir)
        self.log_dir: Path | None = None
        self.writer = None

    def _open(self, args: Any) -> None:
        # Chosen once: an evaluate() after training writes a new event file into the same run folder.
        if self.log_dir is None:
            logging_dir = getattr(args, "logging_dir", None)
            self.log_dir = Path(logging_dir) if logging_dir else default_logdir(self.output_dir,
                                                                               getattr(args, "run_name", None))
        self.writer = self._SummaryWriter(log_dir=str(self.log_dir))

    def on_train_begin(self, args, state, control, model: Any = None, **kwargs: Any) -> None:
        if self.writer is None:
            self._open(args)
        self.writer.add_text("args", _as_code(json.dumps(args.to_dict(), indent=2, default=str)))
        config = getattr(model, "config", None)
        if hasattr(config, "to_json_string"):
            self.writer.add_text("model_config", _as_code(config.to_json_string()))

    def on_log(self, args, state, control, logs: dict | None = None, **kwargs: Any) -> None:
        if self.writer is None:
            self._open(args)
        for tag, value in _grouped(_numbers(logs)).items():
            self.writer.add_scalar(tag, value, state.global_step)
        self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _as_code(text: str) -> str:
    """TensorBoard renders text as Markdown: indented, JSON keeps its lines."""
    return "\n".join("    " + line for line in text.splitlines())


class MLflowCallback(TrainerCallback):
    """Params once, numbers at every log, in MLflow.

    MLFLOW_TRACKING_URI (or mlflow.set_tracking_uri) picks the store; without one, a local file store in
    output_dir/mlruns (logging_dir/mlruns when set), so that nothing leaves the machine (read it with
    MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri output_dir/mlruns). MLFLOW_EXPERIMENT_NAME picks
    the experiment, run_name names the run. A run the user already started (mlflow.start_run) is logged into
    and left open.
    """

    def __init__(self, output_dir: Path) -> None:
        # MLflow's usage telemetry phones home on import; an offline-first tool asks first (opt back in
        # with MLFLOW_DISABLE_TELEMETRY=false).
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow

        self._mlflow = mlflow
        self.output_dir = Path(output_dir)
        self.client = None
        self.run_id: str | None = None
        self.started = False  # we created the run, so we end it
        self.ended = False

    def _setup(self, args: Any) -> None:
        mlflow = self._mlflow
        active = mlflow.active_run()
        if active is not None:
            self.client = mlflow.MlflowClient()
            self.run_id, self.started = active.info.run_id, False
        else:
            # Our own client rather than mlflow.set_tracking_uri: a global URI would send the next Trainer's
            # run (another output_dir) into this one's store.
            uri = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else self.local_store_uri(args)
            self.client = mlflow.MlflowClient(tracking_uri=uri)
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "Default"
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            run = self.client.create_run(experiment_id, tags={"mlflow.source.name": "seqtune"},
                                         run_name=getattr(args, "run_name", None))
            self.run_id, self.started = run.info.run_id, True
        self.ended = False
        self._log_params(args.to_dict())

    def local_store_uri(self, args: Any = None) -> str:
        """output_dir/mlruns (logging_dir/mlruns) as a file: URI (MLflow's file store; no server, no database)."""
        # MLflow >= 3.7 refuses its file store unless opted in; the flag only allows it (a user's
        # explicit "false" stays, and MLflow then says how to migrate).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        path = (Path(getattr(args, "logging_dir", None) or self.output_dir) / "mlruns").resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path.as_uri()

    def _log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.utils import validation

        # MLflow stores strings, refuses values longer than its limit, and takes at most 100 per call.
        limit = validation.MAX_PARAM_VAL_LENGTH
        items = [Param(key, str(value)[:limit]) for key, value in params.items()]
        step = validation.MAX_PARAMS_TAGS_PER_BATCH
        for i in range(0, len(items), step):
            self.client.log_batch(self.run_id, params=items[i:i + step])

    def on_train_begin(self, args, state, control, **kwargs: Any) -> None:
        if self.run_id is None or self.ended:  # a second train() is a second run
            self._setup(args)

    def on_log(self, args, state, control, logs: dict | None = None, **kwargs: Any) -> None:
        from mlflow.entities import Metric

        if self.run_id is None:  # evaluate() before (or without) train()
            self._setup(args)
        now = int(time.time() * 1000)
        # MLflow accepts letters, digits and _ - . space : / in metric names (transformers sanitises the same way).
        metrics = [Metric(re.sub(r"[^0-9A-Za-z_\-. :/]", "_", key), value, now, state.global_step)
                   for key, value in _numbers(logs).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def on_train_end(self, args, state, control, **kwargs: Any) -> None:
        if self.started and self.run_id is not None and not self.ended:
            self.client.set_terminated(self.run_id, "FINISHED")
        # The run id is kept: an evaluate() after training adds its numbers to this run (MLflow allows
        # logging to a finished run) instead of opening a run nobody ends.
        self.ended = True


class WandbCallback(TrainerCallback):
    """Numbers at every log to Weights & Biases, grouped train/ and eval/ as transformers does.

    WANDB_PROJECT names the project (default "seqtune"); WANDB_MODE=offline keeps the run on disk
    (wandb reads both itself). The run lives under WANDB_DIR if set, else logging_dir, else output_dir;
    run_name names it.
    """

    def __init__(self, output_dir: Path) -> None:
        import wandb

        self._wandb = wandb
        self.output_dir = Path(output_dir)
        self.run = None
        self.started = False

    def _setup(self, args: Any) -> None:
        wandb = self._wandb
        if wandb.run is None:
            run_dir = Path(os.environ.get("WANDB_DIR") or getattr(args, "logging_dir", None) or self.output_dir)
            run_dir.mkdir(parents=True, exist_ok=True)  # wandb falls back to a temp folder when it is missing
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "seqtune"), dir=str(run_dir),
                                  config=args.to_dict(), name=getattr(args, "run_name", None))
            self.started = True
        else:  # a run the user started: add the recipe to it, leave it open
            self.run, self.started = wandb.run, False
            self.run.config.update(args.to_dict(), allow_val_change=True)

    def on_train_begin(self, args, state, control, **kwargs: Any) -> None:
        if self.run is None:
            self._setup(args)

    def on_log(self, args, state, control, logs: dict | None = None, **kwargs: Any) -> None:
        if self.run is None:  # evaluate() outside train(): a run of its own, as transformers does
            self._setup(args)
        numbers = _numbers(logs)
        for key in _SUMMARY_KEYS:
            if key in numbers:
                self.run.summary[key] = numbers.pop(key)
        if numbers:
            self.run.log(_grouped(numbers), step=state.global_step)

    def on_train_end(self, args, state, control, **kwargs: Any) -> None:
        if self.started and self.run is not None:
            self.run.finish()
        self.run, self.started = None, False


_CALLBACKS = {"tensorboard": TensorBoardCallback, "mlflow": MLflowCallback, "wandb": WandbCallback}


def tracker_callbacks(report_to: list[str], output_dir: Path) -> list[TrainerCallback]:
    """The callbacks for `report_to`; a tracker that is not installed is said, not silently skipped."""
    import importlib.util

    wanted = list(TRACKERS) if "all" in report_to else [r for r in report_to if r != "none"]
    callbacks: list[TrainerCallback] = []
    for name in wanted:
        if importlib.util.find_spec(name) is None:
            if "all" in report_to:
                continue  # "all" means whichever are installed
            raise SeqtuneError(f"report_to={name!r} needs the {name} package, which is not installed: "
                               f"pip install {name}")
        callbacks.append(_CALLBACKS[name](Path(output_dir)))
    return callbacks
