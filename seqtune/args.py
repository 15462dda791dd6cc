"""TrainingArguments: transformers' names and defaults for what seqtune offers, checked up front."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

from .argfields import check_refused, refused_fields
from .errors import SeqtuneError

STRATEGIES = ("no", "steps", "epoch")
# transformers' SchedulerType, each built by transformers.get_scheduler (seqtune/optim.py).
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
              "warmup_stable_decay", "greedy")
METRIC_SCHEDULERS = ("reduce_lr_on_plateau", "greedy")  # stepped on metric_for_best_model after each evaluation
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adagrad", "rmsprop")
REPORTERS = ("none", "all", "tensorboard", "wandb", "mlflow")
HUB_STRATEGIES = ("end", "every_save", "checkpoint", "all_checkpoints")
SAMPLING = ("random", "group_by_length")
FSDP_WORDS = ("full_shard", "auto_wrap")  # transformers' FSDPOption words that FSDP2's fully_shard does
# The keyword arguments of torch.utils.checkpoint.checkpoint (preserve_rng_state through its **kwargs).
CHECKPOINT_KWARGS = {"use_reentrant": "True, False or None", "preserve_rng_state": "True or False",
                     "determinism_check": "'default' or 'none'", "debug": "True or False",
                     "context_fn": "a function", "early_stop": "True or False"}
PATH_FIELDS = ("output_dir", "logging_dir", "resume_from_checkpoint")  # also a pathlib.Path, kept as its text
OWN_TYPE_CHECK = ("label_names",)  # checked with a message of its own
# What each annotation word takes, as the one sentence says it.
KINDS = {"None": "None", "bool": "True or False", "int": "a whole number", "float": "a number", "str": "a string",
         "list[str]": "a list of strings", "dict[str, Any]": "a dict"}
_NO_FIT = object()


def _plain(value: Any) -> Any:
    """Accept transformers' enum members (IntervalStrategy.EPOCH) as well as strings."""
    return getattr(value, "value", value)


@dataclass
@refused_fields
class TrainingArguments:
    """The recipe of a run. Defaults follow `transformers.TrainingArguments` except where noted.

    Every name transformers takes is accepted: seqtune/argfields.py says which ones seqtune implements and
    which are refused (accepted at their default, one sentence at any other value); see docs/arguments.md.
    """

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
    report_to: str | list[str] | None = "none"
    disable_tqdm: bool = False
    # seqtune default None (transformers: False): batches of similar length, in a random order, for single-label
    # classifiers; not for regression or multi-label models, where length-sorted batches cost 2-3 points of
    # Pearson and 1 of micro-F1 (bench/RESULTS-quality-defaults.md); True or False decides for every model.
    group_by_length: bool | None = None
    remove_unused_columns: bool = True
    label_names: list[str] | None = None
    # Accepted for compatibility: seqtune already moves predictions off the device after every batch.
    eval_accumulation_steps: int | None = None
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    # FSDP2 (torch.distributed.fsdp.fully_shard) under torchrun: True, or transformers' "full_shard".
    fsdp: bool | str | list[str] | None = None
    lr_scheduler_kwargs: dict[str, Any] | str | None = None
    # transformers 4's spelling of a fractional warmup (5: warmup_steps < 1); warmup_steps wins when both are set.
    warmup_ratio: float = 0.0
    optim: str = "adamw_torch_fused"  # fused where the device has it
    optim_args: str | None = None
    adafactor: bool = False  # transformers 4: True is optim="adafactor"
    label_smoothing_factor: float = 0.0
    # transformers 5's name for gradient_checkpointing(_kwargs), which it overrides when set.
    activation_checkpointing: bool | None = None
    activation_checkpointing_kwargs: dict[str, Any] | str | None = None
    auto_find_batch_size: bool = False
    run_name: str | None = None
    logging_dir: str | None = None  # transformers 4: TensorBoard's folder (default output_dir/runs/<time_host>)
    eval_delay: float = 0
    eval_on_start: bool = False
    save_only_model: bool = False
    # seqtune default True (transformers: False): SIGTERM/SIGUSR1 always finish the step and save.
    enable_jit_checkpoint: bool = True
    # seqtune default True (transformers: False): stateful callbacks always get their saved state back.
    restore_callback_states_from_checkpoint: bool = True
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_token: str | None = field(default=None, repr=False)
    hub_private_repo: bool | None = None
    hub_strategy: str = "end"  # seqtune default (transformers: "every_save"): one upload, at the end
    hub_revision: str | None = None
    full_determinism: bool = False
    data_seed: int | None = None  # the batch order's seed (default: seed)
    dataloader_pin_memory: bool = True
    dataloader_persistent_workers: bool = False
    dataloader_prefetch_factor: int | None = None
    dataloader_multiprocessing_context: str | None = None
    # seqtune default None: as group_by_length ("group_by_length" unless group_by_length=False).
    train_sampling_strategy: str | None = None
    # For scripts, as in transformers: the Trainer reads none of them.
    do_train: bool = False
    do_eval: bool = False
    do_predict: bool = False
    resume_from_checkpoint: str | None = None
    local_rank: int = -1
    # Deprecated spelling from the course; moved into eval_strategy with a warning.
    evaluation_strategy: str | None = field(default=None, repr=False)
    # torch.compile of the model (seqtune/compiled.py); a backend or mode alone implies it, as in transformers.
    torch_compile: bool = False
    torch_compile_backend: str | None = None
    torch_compile_mode: str | None = None
    # Activations recomputed in backward instead of kept (seqtune.models.enable_gradient_checkpointing);
    # the kwargs go to torch.utils.checkpoint (default use_reentrant=False, as transformers).
    gradient_checkpointing: bool = False
    gradient_checkpointing_kwargs: dict[str, Any] | str | None = None

    def __post_init__(self) -> None:
        if self.evaluation_strategy is not None:
            warnings.warn(
                "`evaluation_strategy` is deprecated; use `eval_strategy` instead",
                FutureWarning,
                stacklevel=3,
            )
            self.eval_strategy = self.evaluation_strategy
            self.evaluation_strategy = None
        if self.output_dir is None:  # as transformers
            self.output_dir = "trainer_output"
        self._check_types()
        check_refused({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        for name in ("eval_strategy", "logging_strategy", "save_strategy", "lr_scheduler_type", "optim",
                     "hub_strategy"):
            setattr(self, name, _plain(getattr(self, name)))
        self._check_choice("eval_strategy", STRATEGIES)
        self._check_choice("logging_strategy", STRATEGIES)
        self._check_choice("save_strategy", STRATEGIES)
        self._check_choice("lr_scheduler_type", SCHEDULERS)
        if self.adafactor:
            self.optim = "adafactor"
        self._check_choice("optim", OPTIMIZERS)
        self._check_choice("hub_strategy", HUB_STRATEGIES)
        self._check_recipe_extras()
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
        for name in ("num_train_epochs", "learning_rate", "weight_decay", "adam_epsilon", "eval_delay"):
            if not math.isfinite(getattr(self, name)):
                raise SeqtuneError(f"TrainingArguments: {name} must be a finite number, got {getattr(self, name)!r}")
        for name in ("logging_steps", "eval_steps", "save_steps"):
            self._check_positive(name)
        if not 0 <= self.seed < 2**32:
            raise SeqtuneError(f"TrainingArguments: seed must be a whole number in [0, 2**32), got {self.seed!r}")
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
        self._check_fsdp()
        if self.metric_for_best_model is None and (self.load_best_model_at_end
                                                   or self.lr_scheduler_type in METRIC_SCHEDULERS):
            self.metric_for_best_model = "loss"
        if self.metric_for_best_model is not None and self.greater_is_better is None:
            self.greater_is_better = greater_is_better_for(self.metric_for_best_model)
        if self.label_names is not None and (not isinstance(self.label_names, (list, tuple)) or not self.label_names
                                             or not all(isinstance(n, str) for n in self.label_names)):
            raise SeqtuneError(f"TrainingArguments: label_names must be a non-empty list of input names, "
                               f"got {self.label_names!r}")

    def _check_recipe_extras(self) -> None:
        """The arguments of seqtune/argfields.py beyond the original recipe: types, ranges, combinations."""
        if isinstance(self.lr_scheduler_kwargs, str):  # transformers takes its JSON text too
            try:
                self.lr_scheduler_kwargs = json.loads(self.lr_scheduler_kwargs)
            except ValueError:
                raise SeqtuneError(f"TrainingArguments: lr_scheduler_kwargs={self.lr_scheduler_kwargs!r} is not "
                                   "JSON; pass a dict such as {'num_cycles': 2}") from None
        if self.lr_scheduler_kwargs is not None and not isinstance(self.lr_scheduler_kwargs, dict):
            raise SeqtuneError("TrainingArguments: lr_scheduler_kwargs must be a dict, "
                               f"got {self.lr_scheduler_kwargs!r}")
        check_scheduler_kwargs(self.lr_scheduler_kwargs or {})
        if self.lr_scheduler_type in METRIC_SCHEDULERS and self.eval_strategy == "no":
            raise SeqtuneError(f"TrainingArguments: lr_scheduler_type={self.lr_scheduler_type!r} steps on evaluation "
                               "metrics, so it needs an eval_strategy other than 'no'")
        if self.optim_args and self.optim in ("sgd", "adagrad", "rmsprop"):
            from .optim import check_optim_args  # torch builds the optimizer once, on a throwaway parameter

            check_optim_args(self)
        else:
            parse_optim_args(self.optim_args)
        for name in ("warmup_ratio", "label_smoothing_factor"):
            if not 0 <= getattr(self, name) < 1:
                raise SeqtuneError(f"TrainingArguments: {name} must be in [0, 1), got {getattr(self, name)!r}")
        if not self.eval_delay >= 0:
            raise SeqtuneError(f"TrainingArguments: eval_delay must be >= 0, got {self.eval_delay!r}")
        if self.warmup_ratio and self.warmup_steps:
            warnings.warn(f"warmup_steps={self.warmup_steps} and warmup_ratio={self.warmup_ratio} are both set; "
                          "warmup_steps wins (as in transformers)", UserWarning, stacklevel=4)
        for name in ("enable_jit_checkpoint", "restore_callback_states_from_checkpoint"):
            if getattr(self, name) is not True:
                raise SeqtuneError(f"TrainingArguments: {name}={getattr(self, name)!r} is not supported by seqtune, "
                                   "which always does it (see docs/arguments.md)")
        if self.push_to_hub and not self.hub_model_id:
            raise SeqtuneError("TrainingArguments: push_to_hub=True needs hub_model_id, the repo to upload to "
                               "('user/name', or 'name' in your namespace)")
        if self.push_to_hub and self.hub_strategy != "end":
            raise SeqtuneError(f"TrainingArguments: hub_strategy={self.hub_strategy!r} is not supported by seqtune, "
                               "which uploads the final model once, at the end of training; pass hub_strategy='end'")
        if self.data_seed is not None and (not isinstance(self.data_seed, int) or self.data_seed < 0):
            raise SeqtuneError(f"TrainingArguments: data_seed must be a whole number >= 0, got {self.data_seed!r}")
        if self.dataloader_prefetch_factor is not None and self.dataloader_prefetch_factor < 1:
            raise SeqtuneError("TrainingArguments: dataloader_prefetch_factor must be a whole number >= 1 or None, "
                               f"got {self.dataloader_prefetch_factor!r}")
        if self.dataloader_num_workers == 0:
            for name in ("dataloader_persistent_workers", "dataloader_prefetch_factor",
                         "dataloader_multiprocessing_context"):
                if getattr(self, name):
                    raise SeqtuneError(f"TrainingArguments: {name} applies to worker processes; "
                                       "set dataloader_num_workers > 0 as well")
        if self.train_sampling_strategy is not None:
            self.train_sampling_strategy = _plain(self.train_sampling_strategy)
            self._check_choice("train_sampling_strategy", SAMPLING)
            self.group_by_length = self.train_sampling_strategy == "group_by_length"
        if self.activation_checkpointing is not None:  # transformers 5's name wins over the deprecated one
            self.gradient_checkpointing = self.activation_checkpointing
        if self.activation_checkpointing_kwargs is not None:
            self.gradient_checkpointing_kwargs = self.activation_checkpointing_kwargs
        self._check_checkpoint_kwargs()

    def _check_types(self) -> None:
        """Each field against its annotation: bools are bools, numbers numbers (not bools), strings strings
        (enum members by their value), None where the annotation has it. One sentence for the first that is not."""
        for f in dataclasses.fields(self):
            if not isinstance(f.type, str) or f.name in OWN_TYPE_CHECK:
                continue  # refused names (annotated Any) are argfields' to check
            kinds = [kind.strip() for kind in f.type.split(" | ")]
            value = getattr(self, f.name)
            if f.name in PATH_FIELDS and isinstance(value, os.PathLike):
                value = os.fspath(value)
            fitted = _fit(kinds, value)
            if fitted is _NO_FIT:
                described = [KINDS[kind] if kind != "bool" or len(kinds) == 1 else "True, False" for kind in kinds]
                wanted = described[0] if len(described) == 1 else ", ".join(described[:-1]) + " or " + described[-1]
                shown = "<HUB_TOKEN>" if f.name == "hub_token" else _shown(value)  # a token never in a message
                raise SeqtuneError(f"TrainingArguments: {f.name} must be {wanted}, got {shown} "
                                   f"({type(value).__name__})")
            setattr(self, f.name, fitted)

    def _check_fsdp(self) -> None:
        """fsdp: True, or transformers' words for what FSDP2's fully_shard does ('full_shard', 'auto_wrap')."""
        if isinstance(self.fsdp, (str, list)):
            words = self.fsdp.split() if isinstance(self.fsdp, str) else self.fsdp
            other = [w for w in words if w not in FSDP_WORDS]
            if other:
                raise SeqtuneError(f"TrainingArguments: fsdp={self.fsdp!r} is not supported by seqtune, which shards "
                                   "fully with FSDP2; pass fsdp=True or 'full_shard'")
            self.fsdp = bool(words)
        self.fsdp = bool(self.fsdp)

    def _check_checkpoint_kwargs(self) -> None:
        """gradient_checkpointing_kwargs: None, or a dict (or its JSON text) of torch.utils.checkpoint's options."""
        value = self.gradient_checkpointing_kwargs
        if isinstance(value, str):  # transformers reads its JSON text too
            try:
                value = json.loads(value)
            except ValueError:
                value = self.gradient_checkpointing_kwargs
        if value is None:
            return
        if not isinstance(value, dict):
            raise SeqtuneError("TrainingArguments: gradient_checkpointing_kwargs must be a dict of "
                               f"torch.utils.checkpoint options or None, got {_shown(value)}")
        for key, item in value.items():
            if key not in CHECKPOINT_KWARGS:
                raise SeqtuneError(f"TrainingArguments: gradient_checkpointing_kwargs key {key!r} is not an option "
                                   f"of torch.utils.checkpoint.checkpoint; it takes {', '.join(CHECKPOINT_KWARGS)}")
            if key == "context_fn":
                fits = callable(item)
            elif key == "determinism_check":
                fits = isinstance(item, str) and item in ("default", "none")
            else:
                fits = isinstance(item, bool) or (item is None and key == "use_reentrant")
            if not fits:
                raise SeqtuneError(f"TrainingArguments: gradient_checkpointing_kwargs {key}={_shown(item)} is not "
                                   f"{CHECKPOINT_KWARGS[key]}")
        self.gradient_checkpointing_kwargs = value
        if self.activation_checkpointing_kwargs is not None:
            self.activation_checkpointing_kwargs = value

    def _check_choice(self, name: str, allowed: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value not in allowed:
            raise SeqtuneError(f"TrainingArguments: {name}={value!r} is not one of {_listed(allowed)}")

    def _check_positive(self, name: str) -> None:
        value = getattr(self, name)
        if not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise SeqtuneError(f"TrainingArguments: {name} must be > 0 (a float < 1 is a fraction "
                               f"of the training steps), got {value!r}")
        if value > 1 and not float(value).is_integer():  # as transformers
            raise SeqtuneError(f"TrainingArguments: {name} must be a whole number of steps when above 1 (a float "
                               f"< 1 is a fraction of the training steps), got {value!r}")

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
        if values.get("hub_token"):
            values["hub_token"] = "<HUB_TOKEN>"  # never written into checkpoints, reports or trackers
        return values


def check_scheduler_kwargs(kwargs: dict[str, Any]) -> None:
    """lr_scheduler_kwargs' values: finite numbers >= 0, strings, bools or None (power and timescale > 0), so that
    no schedule divides by zero, takes a NaN, or runs at a rate of 0 without a word."""
    for key, value in kwargs.items():
        if value is None or isinstance(value, (str, bool)):
            continue
        if not isinstance(value, numbers.Real):
            raise SeqtuneError(f"TrainingArguments: lr_scheduler_kwargs {key}={_shown(value)} must be a number, a "
                               f"string, True/False or None, got a {type(value).__name__}")
        low = "> 0" if key in ("power", "timescale") else ">= 0"
        if not math.isfinite(value) or value < 0 or (low == "> 0" and value == 0):
            raise SeqtuneError(f"TrainingArguments: lr_scheduler_kwargs {key} must be a finite number {low}, "
                               f"got {value!r}")


def parse_optim_args(text: str | None) -> dict[str, str]:
    """transformers' optim_args: 'key=value,key=value' (spaces ignored), read into a dict of strings."""
    if not text:
        return {}
    pairs = [item.split("=") for item in str(text).replace(" ", "").split(",")]
    if any(len(pair) != 2 or not pair[0] for pair in pairs):
        raise SeqtuneError(f"TrainingArguments: optim_args={text!r} is not 'key=value,key=value'")
    return dict(pairs)


def metric_key(name: str) -> str:
    """evaluate()'s key for a metric name: `accuracy` and `eval_accuracy` are the same metric."""
    return name if name.startswith("eval_") else f"eval_{name}"


def greater_is_better_for(name: str) -> bool:
    """transformers' rule: a loss is better lower, any other metric higher."""
    return not name.endswith("loss")


def _listed(choices: tuple[str, ...]) -> str:
    return ", ".join(repr(c) for c in choices)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fit(kinds: list[str], value: Any) -> Any:
    """`value` as the annotation's `kinds` take it (numpy numbers as Python's, enum members as their value), or
    _NO_FIT."""
    if value is None or isinstance(value, bool):
        return value if ("None" if value is None else "bool") in kinds else _NO_FIT
    if isinstance(value, numbers.Integral) and ("int" in kinds or "float" in kinds):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and "float" in kinds:
        return float(value)
    plain = _plain(value)
    if isinstance(plain, str) and "str" in kinds:
        return str(plain)
    if isinstance(value, (list, tuple)) and "list[str]" in kinds and all(isinstance(_plain(v), str) for v in value):
        return [str(_plain(v)) for v in value]
    if isinstance(value, dict) and "dict[str, Any]" in kinds:
        return value
    return _NO_FIT
