"""auto_find_batch_size: on a CUDA out-of-memory error during training, halve the batch and train again."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from .args import TrainingArguments
from .errors import SeqtuneError

T = TypeVar("T")
# Messages of out-of-memory errors that reach Python as a plain RuntimeError (as accelerate's
# should_reduce_batch_size lists them): cuDNN and cuBLAS fail this way when they cannot allocate.
_OOM_MESSAGES = ("CUDA out of memory.", "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED.",
                 "DefaultCPUAllocator: can't allocate memory")


def is_out_of_memory(err: BaseException) -> bool:
    """torch's OutOfMemoryError, or a RuntimeError that says it ran out of memory."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and len(err.args) == 1 and any(m in str(err.args[0]) for m in _OOM_MESSAGES)


def applies(args: TrainingArguments, device: torch.device) -> bool:
    """Only a GPU runs out of memory this way; on a CPU the operating system decides, and there is nothing to do."""
    return args.auto_find_batch_size and device.type == "cuda"


def train_halving(trainer: Any, train: Callable[[], T]) -> T:
    """`halving` for a Trainer: each retry starts from the weights the first try started from, and from a new
    optimizer and schedule (those given to the Trainer are kept)."""
    start = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}

    def restart() -> None:
        trainer.model.load_state_dict(start)
        trainer.optimizer, trainer.lr_scheduler = trainer._given_optimizers

    return halving(train, trainer.args, restart, trainer._print)


def halving(train: Callable[[], T], args: TrainingArguments, restart: Callable[[], None],
            say: Callable[[str], None]) -> T:
    """`train()`; on out-of-memory, halve per_device_train_batch_size, `restart()` (weights, optimizer back to the
    start) and train again, down to a batch of 1."""
    while True:
        try:
            return train()
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            size = args.per_device_train_batch_size
            if size == 1:
                raise SeqtuneError("out of memory with per_device_train_batch_size=1 (auto_find_batch_size halved "
                                   "it down to 1); use a smaller model, shorter inputs, gradient_checkpointing=True "
                                   "or bf16") from None
        _free_memory()  # out of the except block: the error's traceback, which holds the step's tensors, is gone
        args.per_device_train_batch_size = size // 2
        say(f"seqtune: out of memory at per_device_train_batch_size={size}; auto_find_batch_size halves it to "
            f"{size // 2} and trains again from the start")
        restart()


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
