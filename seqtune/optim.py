"""AdamW (fused where the device has it) and transformers' learning-rate schedules."""

from __future__ import annotations

import math

import torch

from .args import TrainingArguments


def create_optimizer(model: torch.nn.Module, args: TrainingArguments, device: torch.device,
                     allow_fused: bool = True) -> torch.optim.Optimizer:
    """AdamW with no weight decay on biases and LayerNorm weights, as transformers does."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [{"params": decay, "weight_decay": args.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    floating = all(p.dtype.is_floating_point for p in decay + no_decay)
    fused = allow_fused and device.type in ("cuda", "cpu") and floating  # not for FSDP2's DTensors
    return torch.optim.AdamW(groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                             eps=args.adam_epsilon, fused=fused or None)


def warmup_steps(args: TrainingArguments, max_steps: int) -> int:
    """An int is a number of steps; a float below 1 is a fraction of the training steps."""
    if isinstance(args.warmup_steps, float) and args.warmup_steps < 1:
        return math.ceil(args.warmup_steps * max_steps)
    return int(args.warmup_steps)


def create_scheduler(optimizer: torch.optim.Optimizer, args: TrainingArguments,
                     max_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = warmup_steps(args, max_steps)
    kind = args.lr_scheduler_type

    def factor(step: int) -> float:
        if kind != "constant" and step < warmup:
            return step / max(1, warmup)
        if kind in ("constant", "constant_with_warmup"):
            return 1.0
        progress = (step - warmup) / max(1, max_steps - warmup)
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))  # cosine

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
