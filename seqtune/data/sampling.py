"""Batch orders: seeded per epoch (so a resumed run rebuilds the same order), grouped by length."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

MEGABATCH_MULT = 50  # as transformers' LengthGroupedSampler: random enough, little padding


def train_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                  group_by_length: bool = True, drop_last: bool = False) -> list[list[int]]:
    """The batches of one training epoch, a pure function of (seed, epoch). `drop_last` leaves out
    the short batch (TrainingArguments.dataloader_drop_last).

    With `group_by_length`, a random permutation is cut into mega-batches of 50 batches, each
    sorted by length and cut into batches, and the batches are then shuffled: every batch holds
    sequences of similar length (little padding) while the order stays random.
    """
    generator = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if group_by_length:
        size = batch_size * MEGABATCH_MULT
        order = [i for start in range(0, len(order), size)
                 for i in sorted(order[start:start + size], key=lambda j: -lengths[j])]
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    if group_by_length and len(batches) > 1:
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in shuffled]
    return batches


def groups_by_length(group_by_length: bool | None, model: Any) -> bool:
    """TrainingArguments.group_by_length for this model: None (the default) groups by length for single-label
    classification only. A regression model's targets may follow the length (batches of similar length then
    hold similar targets: 2-3 points of Pearson lost against random batches), and a multi-label model lost
    1.0 point of micro-F1 and 1.5 of subset accuracy (bench/RESULTS-quality-defaults.md)."""
    if group_by_length is not None:
        return group_by_length
    config = getattr(model, "config", None)
    problem = getattr(config, "problem_type", None)
    return problem not in ("regression", "multi_label_classification") and getattr(config, "num_labels", 2) != 1


def eval_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches in order of length, longest first; outputs are put back in dataset order."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
