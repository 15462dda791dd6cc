"""Make a tokenized dataset ready for the loop: model columns only, labels checked, lengths known."""

from __future__ import annotations

from typing import Any

from ..errors import SeqtuneError
from .collate import LABEL_KEYS


def prepare_dataset(dataset: Any, what: str, forward_args: set[str], remove_unused: bool,
                    num_labels: int | None) -> tuple[Any, list[int]]:
    """Return (rows to index, length of each row's input_ids)."""
    if dataset is None or len(dataset) == 0:
        purpose = "train" if what.startswith("train") else "evaluate"
        raise SeqtuneError(f"{what} is empty: there is nothing to {purpose} on")
    try:
        import datasets
    except ImportError:  # plain lists and torch datasets need no `datasets`
        datasets = None
    if datasets is not None and isinstance(dataset, datasets.Dataset):
        return _prepare_arrow(dataset, what, forward_args, remove_unused, num_labels)
    first = dataset[0]
    if not isinstance(first, dict) or "input_ids" not in first:
        raise SeqtuneError(f"{what}: rows must be dicts with 'input_ids'; tokenize the dataset first")
    return dataset, [len(dataset[i]["input_ids"]) for i in range(len(dataset))]


def _prepare_arrow(dataset: Any, what: str, forward_args: set[str], remove_unused: bool,
                   num_labels: int | None) -> tuple[Any, list[int]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if "input_ids" not in dataset.column_names:
        raise SeqtuneError(
            f"{what} has no 'input_ids' column (columns: {', '.join(dataset.column_names)}); tokenize "
            "it first, e.g. dataset.map(tokenize_function, batched=True)")
    if remove_unused and "kwargs" not in forward_args:
        unused = [c for c in dataset.column_names if c not in forward_args and c not in LABEL_KEYS]
        if unused:
            dataset = dataset.remove_columns(unused)
    if dataset._indices is not None:  # a select()/shuffle() view: make the table match the rows
        dataset = dataset.flatten_indices()
    label_key = next((k for k in LABEL_KEYS if k in dataset.column_names), None)
    if label_key is not None:
        labels = dataset.data.column(label_key)
        if labels.null_count:
            raise SeqtuneError(f"{what}: {labels.null_count} rows have no {label_key!r}; fill or drop them")
        listed = pa.types.is_list(labels.type) or pa.types.is_large_list(labels.type)  # multi-hot (multi-label)
        bounds = {} if listed else pc.min_max(labels).as_py()
        if not listed and bounds["min"] == bounds["max"] == -1:  # unlabelled split (GLUE test): predict only
            dataset = dataset.remove_columns(label_key)
        elif listed:
            widths = pc.unique(pc.list_value_length(labels)).to_pylist()
            if num_labels and widths != [num_labels]:
                raise SeqtuneError(f"{what}: the {label_key!r} rows hold {', '.join(map(str, widths))} values but the "
                                   f"model has num_labels={num_labels}; give one 0/1 value per label")
        elif num_labels and num_labels > 1:
            if not pa.types.is_integer(labels.type):
                raise SeqtuneError(f"{what}: the {label_key!r} column holds {labels.type} values but the "
                                   f"model classifies into {num_labels} classes; map labels to ids 0..{num_labels - 1}")
            if bounds["min"] < 0 or bounds["max"] >= num_labels:
                raise SeqtuneError(
                    f"{what}: labels range from {bounds['min']} to {bounds['max']}, outside [0, {num_labels}) "
                    f"for a model with num_labels={num_labels}; set num_labels to the number of classes")
    lengths = pc.list_value_length(dataset.data.column("input_ids")).to_pylist()
    return dataset, lengths


def fingerprint(dataset: Any, lengths: list[int]) -> str:
    """A digest of the rows a run trains on, in order (token ids and labels): a checkpoint resumed on other rows
    (another file, split, seed, tokenization or labels) would train on where it never was."""
    import hashlib

    import numpy as np

    digest = hashlib.blake2b(np.asarray(lengths, dtype=np.int64).tobytes(), digest_size=16)
    try:
        import datasets
    except ImportError:
        datasets = None
    if datasets is not None and isinstance(dataset, datasets.Dataset):
        import pyarrow as pa
        import pyarrow.compute as pc

        for name in sorted({"input_ids", *LABEL_KEYS} & set(dataset.column_names)):
            column = dataset.data.column(name)
            while pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
                column = pc.list_flatten(column)
            for chunk in column.chunks:
                digest.update(chunk.to_numpy(zero_copy_only=False).tobytes())
        return digest.hexdigest()
    for row in dataset:  # plain rows (lists, torch datasets): small in practice
        for key in ("input_ids", *LABEL_KEYS):
            if key in row:
                digest.update(np.asarray(row[key]).tobytes())
    return digest.hexdigest()
