"""seqtune: fine-tune transformers for text classification and regression, fast and offline.

The public names are imported lazily so that `import seqtune` and `seqtune --help` stay instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Trainer": "trainer", "TrainOutput": "trainer", "PredictionOutput": "trainer",
    "EvalPrediction": "trainer", "TrainerState": "state", "set_seed": "trainer",
    "TrainingArguments": "args",
    "load_dataset": "data", "DataCollatorWithPadding": "data.collate",
    "load_files": "data.files", "infer_task": "data.files",
    "load_metric": "metrics",
    "default_model": "models",
    "TrainerCallback": "callbacks", "TrainerControl": "callbacks",
    "EarlyStoppingCallback": "callbacks",
    "SeqtuneError": "errors", "TaskSpec": "task",
    "BestRun": "tune",
    "Predictor": "predictor", "export_onnx": "export",
}
__all__ = [
    "BestRun",
    "DataCollatorWithPadding",
    "EarlyStoppingCallback",
    "EvalPrediction",
    "PredictionOutput",
    "Predictor",
    "SeqtuneError",
    "TaskSpec",
    "TrainOutput",
    "Trainer",
    "TrainerCallback",
    "TrainerControl",
    "TrainerState",
    "TrainingArguments",
    "default_model",
    "export_onnx",
    "infer_task",
    "load_dataset",
    "load_files",
    "load_metric",
    "set_seed",
]

if TYPE_CHECKING:
    from .args import TrainingArguments
    from .callbacks import EarlyStoppingCallback, TrainerCallback, TrainerControl
    from .data import load_dataset
    from .data.collate import DataCollatorWithPadding
    from .data.files import infer_task, load_files
    from .errors import SeqtuneError
    from .metrics import load_metric
    from .models import default_model
    from .state import TrainerState
    from .task import TaskSpec
    from .trainer import EvalPrediction, PredictionOutput, Trainer, TrainOutput, set_seed
    from .tune import BestRun


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'seqtune' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
