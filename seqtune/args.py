"""TrainingArguments: transformers' names and defaults for what seqtune offers, checked up front."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

from .errors import SeqtuneError

STRATEGIES = ("no", "steps", "epoch")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
REPORTERS = ("none", "all", "tensorboard", "wandb", "mlflow")


def _plain(value: Any) -> Any:
    """Accept transformers' enum members (IntervalStrategy.EPOCH) as well as strings."""
    return getattr(value, "value", value)


@dataclass
class TrainingArguments:
    """The recipe of a run. Defaults follow `transformers.TrainingArguments` except where noted."""

    output_dir: str = "trainer_output"
    overwrite_output_dir: bool = False
    eval_strategy: str = "no"
    eval_steps: float | None = None
    logging_strategy: str = "steps"
    logging_steps: float = 500
    logging_first_step: bool = False
    save_strategy: str = "steps"
    save_steps: float = 500
    save_total_limit: int | None = None
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    # seqtune default 32 (transformers: 8): a forward has ~9 ms of fixed cost on a CPU; fewer, larger batches.
    per_device_eval_batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    warmup_steps: float = 0
    lr_scheduler_type: str = "linear"
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    seed: int = 42
    # None = automatic (transformers: False): bf16 autocast where it pays, see device.pick_precision.
    bf16: bool | None = None
    fp16: bool = False
    # None = automatic (transformers: None, torch's own setting): TF32 matmuls for fp32 work on CUDA.
    tf32: bool | None = None
    # seqtune: weights loaded in bf16/fp16 are trained as fp32 master weights unless this is True
    # (then they train in the dtype they have: pure bf16 for a bf16 model).
    keep_model_dtype: bool = False
    use_cpu: bool = False
    dataloader_num_workers: int = 0
    dataloader_drop_last: bool = False
    report_to: str | list[str] = "none"
    disable_tqdm: bool = False
    # seqtune default True (transformers: False): batches of similar length, in a random order.
    group_by_length: bool = True
    remove_unused_columns: bool = True
    label_names: list[str] | None = None
    # Accepted for compatibility: seqtune already moves predictions off the device after every batch.
    eval_accumulation_steps: int | None = None
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    # FSDP2 (torch.distributed.fsdp.fully_shard) under torchrun: True, or transformers' "full_shard".
    fsdp: bool | str = False
    # Deprecated spelling from the course; moved into eval_strategy with a warning.
    evaluation_strategy: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.evaluation_strategy is not None:
            warnings.warn(
                "`evaluation_strategy` is deprecated; use `eval_strategy` instead",
                FutureWarning,
                stacklevel=3,
            )
            self.eval_strategy = self.evaluation_strategy
            self.evaluation_strategy = None
        for name in ("eval_strategy", "logging_strategy", "save_strategy", "lr_scheduler_type"):
            setattr(self, name, _plain(getattr(self, name)))
        self._check_choice("eval_strategy", STRATEGIES)
        self._check_choice("logging_strategy", STRATEGIES)
        self._check_choice("save_strategy", STRATEGIES)
        self._check_choice("lr_scheduler_type", SCHEDULERS)
        if isinstance(self.report_to, str):
            self.report_to = [self.report_to]
        self.report_to = [_plain(r) for r in self.report_to or ["none"]]
        for reporter in self.report_to:
            if reporter not in REPORTERS:
                raise SeqtuneError(
                    f"TrainingArguments: report_to={reporter!r} is not one of {_listed(REPORTERS)}"
                )
        if self.eval_steps is None:
            self.eval_steps = self.logging_steps
        for name in ("logging_steps", "eval_steps", "save_steps"):
            self._check_positive(name)
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size",
                     "gradient_accumulation_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SeqtuneError(f"TrainingArguments: {name} must be a whole number >= 1, got {value!r}")
        if not isinstance(self.max_steps, int) or (self.max_steps < 1 and self.max_steps != -1):
            raise SeqtuneError(
                f"TrainingArguments: max_steps must be a whole number >= 1, or -1 to use num_train_epochs; "
                f"got {self.max_steps!r}"
            )
        if self.max_steps == -1 and not self.num_train_epochs > 0:
            raise SeqtuneError(
                f"TrainingArguments: num_train_epochs must be > 0, got {self.num_train_epochs!r}"
            )
        for name in ("learning_rate", "adam_epsilon"):
            if not getattr(self, name) > 0:
                raise SeqtuneError(f"TrainingArguments: {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("weight_decay", "max_grad_norm"):
            if not getattr(self, name) >= 0:
                raise SeqtuneError(f"TrainingArguments: {name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise SeqtuneError(f"TrainingArguments: {name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.warmup_steps < 0 or (isinstance(self.warmup_steps, float) and not self.warmup_steps < 1
                                     and not float(self.warmup_steps).is_integer()):
            raise SeqtuneError(
                "TrainingArguments: warmup_steps must be a whole number of steps >= 0, "
                f"or a float in [0, 1) meaning a fraction of the training steps; got {self.warmup_steps!r}"
            )
        if self.bf16 and self.fp16:
            raise SeqtuneError("TrainingArguments: bf16 and fp16 cannot both be True; choose one")
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise SeqtuneError(
                f"TrainingArguments: save_total_limit must be >= 1 or None, got {self.save_total_limit!r}"
            )
        if self.dataloader_num_workers < 0:
            raise SeqtuneError(
                f"TrainingArguments: dataloader_num_workers must be >= 0, got {self.dataloader_num_workers!r}"
            )
        if self.load_best_model_at_end:
            if self.eval_strategy == "no":
                raise SeqtuneError(
                    "TrainingArguments: load_best_model_at_end needs an eval_strategy other than 'no'"
                )
            if self.save_strategy != self.eval_strategy or (
                self.eval_strategy == "steps" and self.save_steps % self.eval_steps != 0
            ):
                raise SeqtuneError(
                    "TrainingArguments: load_best_model_at_end needs save_strategy equal to eval_strategy "
                    f"(got save_strategy={self.save_strategy!r}, eval_strategy={self.eval_strategy!r}) and, "
                    "for 'steps', save_steps a multiple of eval_steps"
                )
        self.fsdp = bool(self.fsdp)
        if self.metric_for_best_model is None and self.load_best_model_at_end:
            self.metric_for_best_model = "loss"
        if self.metric_for_best_model is not None and self.greater_is_better is None:
            self.greater_is_better = greater_is_better_for(self.metric_for_best_model)
        if self.label_names is not None and (isinstance(self.label_names, str) or not self.label_names):
            raise SeqtuneError(f"TrainingArguments: label_names must be a non-empty list of input names, "
                               f"got {self.label_names!r}")

    def _check_choice(self, name: str, allowed: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value not in allowed:
            raise SeqtuneError(f"TrainingArguments: {name}={value!r} is not one of {_listed(allowed)}")

    def _check_positive(self, name: str) -> None:
        value = getattr(self, name)
        if not isinstance(value, (int, float)) or value <= 0:
            raise SeqtuneError(f"TrainingArguments: {name} must be > 0 (a float < 1 is a fraction "
                               f"of the training steps), got {value!r}")

    def best_metric_key(self) -> str:
        """The key of `metric_for_best_model` in evaluate()'s metrics ("loss" when unset)."""
        return metric_key(self.metric_for_best_model or "loss")

    def is_better(self, value: float, best: float | None, threshold: float = 0.0) -> bool:
        """Whether `value` improves on `best` by more than `threshold`, in the direction the metric goes."""
        greater = (self.greater_is_better if self.greater_is_better is not None
                   else greater_is_better_for(self.metric_for_best_model or "loss"))
        return best is None or (value - best > threshold if greater else best - value > threshold)

    def to_dict(self) -> dict[str, Any]:
        """The arguments as JSON-ready values (checkpoints and reports record them)."""
        values = dataclasses.asdict(self)
        values.pop("evaluation_strategy")
        return values


def metric_key(name: str) -> str:
    """evaluate()'s key for a metric name: `accuracy` and `eval_accuracy` are the same metric."""
    return name if name.startswith("eval_") else f"eval_{name}"


def greater_is_better_for(name: str) -> bool:
    """transformers' rule: a loss is better lower, any other metric higher."""
    return not name.endswith("loss")


def _listed(choices: tuple[str, ...]) -> str:
    return ", ".join(repr(c) for c in choices)
