"""Dynamic padding: each batch padded to its own longest sequence, straight into tensors."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch

LABEL_KEYS = ("label", "labels", "label_ids")


class DataCollatorWithPadding:
    """Pad token-level columns to the longest sequence of the batch; rename `label` to `labels`.

    Columns that are not token sequences or labels (raw sentences, `idx`) are left out, so a
    tokenized dataset can be fed as it is. `pad_to_multiple_of` rounds the padded length up
    (tensor cores, fewer distinct shapes for compiled models).
    """

    def __init__(self, tokenizer: Any = None, pad_to_multiple_of: int | None = None,
                 padding: bool | str = True, return_tensors: str = "pt") -> None:
        if return_tensors != "pt":
            raise ValueError("DataCollatorWithPadding returns PyTorch tensors only (return_tensors='pt')")
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of
        self.padding = padding

    # Read from the tokenizer at each call, as transformers' tokenizer.pad does: a pad token chosen after
    # this collator was made (seqtune.models.set_padding for a decoder without one) counts.
    @property
    def pad_token_id(self) -> int:
        return getattr(self.tokenizer, "pad_token_id", None) or 0

    @property
    def padding_side(self) -> str:
        return getattr(self.tokenizer, "padding_side", "right")

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        first = features[0]
        if "input_ids" not in first:
            raise ValueError(
                f"DataCollatorWithPadding: the rows have no 'input_ids' (columns: {', '.join(first)}); "
                "tokenize the dataset first, e.g. dataset.map(tokenize_function, batched=True)"
            )
        lengths = [len(f["input_ids"]) for f in features]
        width = max(lengths)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        buckets = getattr(self, "length_buckets", None)  # set by with_length_buckets for CUDA graphs
        if buckets and width <= buckets[-1]:
            width = next(bucket for bucket in buckets if bucket >= width)
        batch: dict[str, torch.Tensor] = {}
        for key, value in first.items():
            if key in LABEL_KEYS:
                if value is not None:
                    batch["labels"] = _labels([f[key] for f in features])
            elif _is_token_column(value, lengths[0]):
                fill = self.pad_token_id if key == "input_ids" else 0
                batch[key] = self._pad([f[key] for f in features], width, fill)
        return batch

    def _pad(self, rows: list, width: int, fill: int) -> torch.Tensor:
        # Filled in NumPy, handed to torch once: a torch slice assignment per row dispatched three
        # operators per row and column (72 of a MiniLM step's ~1,170 at batch 8, bench.ops).
        out = np.full((len(rows), width), fill, dtype=np.int64)
        for i, row in enumerate(rows):
            if len(row) == 0:
                continue
            if self.padding_side == "left":
                out[i, width - len(row):] = row
            else:
                out[i, : len(row)] = row
        return torch.from_numpy(out)


def _is_token_column(value: Any, length: int) -> bool:
    """A list (or 1-d tensor) of integers as long as input_ids: input_ids, masks, token types."""
    if isinstance(value, torch.Tensor):
        return value.ndim == 1 and len(value) == length and not value.is_floating_point()
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and len(value) == length and value.dtype.kind in "iu"
    return isinstance(value, (list, tuple)) and len(value) == length and (
        length == 0 or isinstance(value[0], Integral))


def _labels(values: list) -> torch.Tensor:
    if isinstance(values[0], torch.Tensor):
        return torch.stack(values)
    if isinstance(values[0], (float, np.floating)):
        return torch.tensor(values, dtype=torch.float)
    return torch.tensor(values)


def with_length_buckets(collator: Any, multiple: int | None, buckets: Sequence[int] = ()) -> Any:
    """Our collator padding to a multiple of `multiple`, then up to the first of `buckets` that holds
    the batch (a copy; the caller's object is left alone). None or 1 and no buckets leave it as it is;
    so does a collator that is not ours, or one with its own multiple."""
    if ((multiple or 1) > 1 or buckets) and isinstance(collator, DataCollatorWithPadding) and (
            collator.pad_to_multiple_of is None):
        collator = copy.copy(collator)
        collator.pad_to_multiple_of = multiple if (multiple or 1) > 1 else None
        collator.length_buckets = tuple(sorted(buckets))
    return collator
