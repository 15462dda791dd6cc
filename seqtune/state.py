"""The loop's state: what a checkpoint keeps (TrainerState), how a run is cut (Geometry), and the
running numbers a step adds to (Tally)."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import torch


@dataclasses.dataclass
class TrainerState:
    """What a checkpoint needs to continue the run exactly (saved as trainer_state.json)."""

    global_step: int = 0
    epoch: float = 0.0
    max_steps: int = 0
    num_train_epochs: int = 0
    batches_seen_in_epoch: int = 0  # position inside the current epoch, for resume
    epoch_index: int = 0
    log_history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best_metric: float | None = None
    best_model_checkpoint: str | None = None
    loss_since_log: float = 0.0
    steps_since_log: int = 0
    total_loss: float = 0.0
    train_batch_size: int = 0
    num_examples: int = 0
    world_size: int = 1
    train_fingerprint: str | None = None  # a digest of the rows trained on (data.prepare.fingerprint)
    # Callbacks that keep state across evaluations (EarlyStoppingCallback), by class name.
    stateful_callbacks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


class Geometry(NamedTuple):
    """How a training run is cut: per-device batches per epoch (all ranks together), steps, epochs."""

    batches_per_epoch: int
    steps_per_epoch: int
    max_steps: int
    num_epochs: int


@dataclasses.dataclass
class Tally:
    """The loop's running numbers, kept on the device so that a step never waits to read them."""

    loss_since_log: torch.Tensor
    total_loss: torch.Tensor
    bad_step: torch.Tensor  # the first optimizer step with a non-finite micro-batch loss; -1: none
    scaler: torch.amp.GradScaler
    grad_norm: torch.Tensor | None = None

    @classmethod
    def start(cls, state: TrainerState, device: torch.device, scaler: torch.amp.GradScaler) -> Tally:
        return cls(torch.tensor(state.loss_since_log, device=device), torch.tensor(state.total_loss, device=device),
                   torch.tensor(-1, device=device), scaler)

    def add(self, loss: torch.Tensor, step: int) -> None:
        """One micro-batch's (already divided) loss: a NaN is pinned to its step as soon as it appears."""
        self.loss_since_log += loss
        self.total_loss += loss
        self.bad_step = torch.where((self.bad_step < 0) & ~torch.isfinite(loss), step, self.bad_step)

    def save_into(self, state: TrainerState) -> None:
        state.loss_since_log, state.total_loss = self.loss_since_log.item(), self.total_loss.item()
