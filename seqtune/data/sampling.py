"""Batch orders: seeded per epoch (so a resumed run rebuilds the same order), grouped by length."""

from __future__ import annotations

from collections.abc import Sequence

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


def eval_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches in order of length, longest first; outputs are put back in dataset order."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
