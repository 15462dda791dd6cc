"""The optimizers `optim` names (with `optim_args`) and transformers' learning-rate schedules, built as transformers
builds them."""

from __future__ import annotations

import math
from typing import Any

import torch

from .args import TrainingArguments, parse_optim_args
from .errors import SeqtuneError

# optim_args keys each optimizer reads, as transformers' trainer_optimizer.py reads them (all floats but nesterov).
_OPTIM_ARG_KEYS = {"sgd": ("momentum", "dampening", "weight_decay", "nesterov"),
                   "adagrad": ("lr_decay", "weight_decay", "eps"),
                   "rmsprop": ("momentum", "alpha", "eps", "weight_decay")}


def create_optimizer(model: torch.nn.Module, args: TrainingArguments, device: torch.device,
                     allow_fused: bool = True) -> torch.optim.Optimizer:
    """`args.optim`, with no weight decay on biases and LayerNorm weights, as transformers does."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [{"params": decay, "weight_decay": args.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    kwargs: dict[str, Any] = {"lr": args.learning_rate}
    if args.optim == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(groups, scale_parameter=False, relative_step=False, **kwargs)
    if args.optim in _OPTIM_ARG_KEYS:
        return _OPTIMIZERS[args.optim](groups, **kwargs, **_optim_kwargs(args))
    floating = all(p.dtype.is_floating_point for p in decay + no_decay)
    # adamw_torch_fused where the device has the kernel (not for FSDP2's DTensors); adamw_torch is torch's default.
    fused = args.optim == "adamw_torch_fused" and allow_fused and device.type in ("cuda", "cpu") and floating
    return torch.optim.AdamW(groups, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
                             fused=fused or None, **kwargs)


_OPTIMIZERS = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop}
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _optim_kwargs(args: TrainingArguments) -> dict[str, Any]:
    """optim_args for sgd, adagrad or rmsprop as keyword arguments: keys it reads, finite numbers, a true/false
    nesterov."""
    kwargs: dict[str, Any] = {}
    for key, value in parse_optim_args(args.optim_args).items():
        if key not in _OPTIM_ARG_KEYS[args.optim]:
            raise SeqtuneError(f"TrainingArguments: optim_args key {key!r} is not read by optim="
                               f"{args.optim!r}; it reads {', '.join(_OPTIM_ARG_KEYS[args.optim])}")
        if key == "nesterov":
            if value.lower() not in _TRUE + _FALSE:
                raise SeqtuneError(f"TrainingArguments: optim_args nesterov={value!r} is not true or false")
            kwargs[key] = value.lower() in _TRUE
        else:
            kwargs[key] = _number(key, value)
    return kwargs


def check_optim_args(args: TrainingArguments) -> None:
    """Build optim's torch optimizer with optim_args on a throwaway parameter: what torch refuses (a negative
    momentum, nesterov without momentum, ...) is one sentence when the arguments are made, not at the first step."""
    kwargs = _optim_kwargs(args)
    try:
        _OPTIMIZERS[args.optim]([torch.nn.Parameter(torch.zeros(1))], lr=args.learning_rate, **kwargs)
    except ValueError as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SeqtuneError(f"TrainingArguments: optim_args={args.optim_args!r} is refused by optim="
                           f"{args.optim!r}: {detail}") from None


def _number(key: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SeqtuneError(f"TrainingArguments: optim_args {key}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise SeqtuneError(f"TrainingArguments: optim_args {key}={value!r} is not a finite number")
    return number


def warmup_steps(args: TrainingArguments, max_steps: int) -> int:
    """An int is a number of steps; a float below 1 (or transformers 4's warmup_ratio) a fraction of them."""
    if args.warmup_steps == 0 and args.warmup_ratio > 0:
        return math.ceil(args.warmup_ratio * max_steps)
    if isinstance(args.warmup_steps, float) and args.warmup_steps < 1:
        return math.ceil(args.warmup_steps * max_steps)
    return int(args.warmup_steps)


def create_scheduler(optimizer: torch.optim.Optimizer, args: TrainingArguments, max_steps: int) -> Any:
    """transformers.get_scheduler(lr_scheduler_type, ...) with lr_scheduler_kwargs: the same curves as transformers."""
    from transformers.optimization import get_scheduler

    try:
        return get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=warmup_steps(args, max_steps),
                             num_training_steps=max_steps,
                             scheduler_specific_kwargs=dict(args.lr_scheduler_kwargs or {}))
    except (TypeError, ValueError, ArithmeticError) as err:  # a kwarg the schedule does not take, or one it needs
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SeqtuneError(f"TrainingArguments: lr_scheduler_type={args.lr_scheduler_type!r} with lr_scheduler_kwargs="
                           f"{args.lr_scheduler_kwargs or {}!r}: {detail}") from None


def check_scheduler(args: TrainingArguments) -> None:
    """Build the schedule on a throwaway optimizer: a schedule missing an option it needs is one sentence now."""
    create_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.learning_rate), args, 100)


def steps_on_metrics(scheduler: Any) -> bool:
    """ReduceLROnPlateau and transformers' GreedyLR step on an evaluation metric, not after every optimizer step."""
    from transformers.optimization import GreedyLR

    return isinstance(scheduler, (torch.optim.lr_scheduler.ReduceLROnPlateau, GreedyLR))


def current_lr(optimizer: torch.optim.Optimizer, scheduler: Any) -> float:
    """The learning rate now (metric-driven schedules have no get_last_lr before their first step)."""
    if steps_on_metrics(scheduler):
        return float(optimizer.param_groups[0]["lr"])
    return float(scheduler.get_last_lr()[0])


def step_on_metrics(scheduler: Any, args: TrainingArguments, metrics: dict[str, float]) -> None:
    """After an evaluation: the metric-driven schedule steps on metric_for_best_model, as transformers."""
    if not steps_on_metrics(scheduler):
        return
    key = args.best_metric_key()
    if key not in metrics:
        raise SeqtuneError(f"lr_scheduler_type={args.lr_scheduler_type!r} steps on metric_for_best_model="
                           f"{args.metric_for_best_model!r}, which evaluation does not report (it reports "
                           f"{', '.join(k for k in metrics if k.startswith('eval_'))})")
    scheduler.step(metrics[key])
