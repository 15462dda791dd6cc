"""Documents longer than the model's window: truncated (transformers' way), cut to their head and tail, or
split into overlapping windows whose logits are put back together, one row per document.

- `truncate`: the tokenizer's truncation to `max_length`, as run_classification.py does.
- `head-tail`: the first quarter of the text budget from the start of the row, the rest from its end (Sun et
  al. 2019, "How to Fine-Tune BERT for Text Classification": 128 head + 382 tail tokens of 512); special
  tokens stay where they are, so a sentence pair keeps the start of its first text and the end of its second.
- `chunks`: windows of `max_length` tokens; `stride` is the overlap between neighbouring windows, in tokens, as
  in transformers' tokenizers (`return_overflowing_tokens=True, stride=N`); default a quarter of the text
  budget. Each window carries its document's label and its index (the `document` column); evaluation and
  prediction average the windows' logits per document (max for multi-label). A sentence pair keeps its first
  text whole in every window and splits the second (transformers' `truncation="only_second"`).
"""

from __future__ import annotations

from typing import Any

from .errors import SeqtuneError

MODES = ("truncate", "head-tail", "chunks")
DOCUMENT = "document"  # the column of a window's input row (0-based, in input order)
REDUCTIONS = ("mean", "max", "first")
_UNSTATED = 10**9  # a tokenizer's model_max_length past this states no maximum (transformers' VERY_LARGE_INTEGER)


def check_long_text(long_text: str, stride: int | None, max_length: int | None) -> None:
    """The mode and stride make sense together (checked before any data or model is loaded)."""
    if long_text not in MODES:
        raise SeqtuneError(f"--long-text {long_text!r} is not one of {', '.join(MODES)}")
    if stride is None:
        return
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 0:
        raise SeqtuneError(f"--stride: expected a whole number >= 0, got {stride!r}")
    if long_text != "chunks":
        raise SeqtuneError("--stride is the overlap of --long-text chunks' windows; add --long-text chunks")
    if max_length is not None and stride >= max_length:
        raise SeqtuneError(f"--stride {stride} is not below the window (--max-length {max_length}): windows that "
                           f"overlap by a whole window never move on; use a stride below {max_length}, "
                           f"e.g. {max_length // 4}")


def reduction(task_type: str) -> str:
    """How a document's windows are combined: the mean of their logits; for multi-label the max (a label
    found in any window is the document's)."""
    return "max" if task_type == "multi_label" else "mean"


def window_of(tokenizer: Any, max_length: int | None) -> int | None:
    """The tokens a row may hold: max_length, else the tokenizer's stated maximum (None if it states none)."""
    if max_length is not None:
        return max_length
    stated = getattr(tokenizer, "model_max_length", None)
    return stated if isinstance(stated, int) and stated < _UNSTATED else None


def tokenize_long_text(splits: Any, tokenizer: Any, long_text: str = "truncate", max_length: int | None = None,
                       stride: int | None = None) -> Any:
    """Tokenize a DatasetDict with `text` (and `text_pair`) columns, handling rows past the window as
    `long_text` says. `chunks` returns more rows than it is given, each with a `document` column."""
    check_long_text(long_text, stride, max_length)
    pair = "text_pair" in splits[next(iter(splits))].column_names

    window = window_of(tokenizer, max_length)
    specials = tokenizer.num_special_tokens_to_add(pair=pair)
    if window is not None and window <= specials:  # every mode: a row of special tokens alone says nothing
        raise SeqtuneError(f"--max-length {window} leaves no room for text: the tokenizer adds {specials} special "
                           f"tokens to each row; use --max-length {specials + 8} or more")
    if long_text == "truncate":
        def truncated(batch: dict) -> dict:
            return tokenizer(batch["text"], batch["text_pair"] if pair else None, truncation=True,
                             max_length=max_length)

        return splits.map(truncated, batched=True, desc="tokenizing")
    if window is None:
        raise SeqtuneError(f"--long-text {long_text} needs a window and the tokenizer states no maximum length; "
                           "pass --max-length N")
    if long_text == "head-tail":
        return splits.map(lambda batch: _head_tail(batch, tokenizer, window, pair), batched=True,
                          desc="tokenizing (head-tail)")
    budget = window - specials
    stride = default_stride(window, specials) if stride is None else stride
    if stride >= budget:
        raise SeqtuneError(f"--stride {stride} is not below the window's {budget} text tokens (--max-length {window} "
                           f"less {specials} special tokens); use a stride below {budget}")
    import datasets

    return datasets.DatasetDict({
        name: split.map(lambda batch, indices, name=name: _windows(batch, indices, tokenizer, window, stride, pair,
                                                                   name),
                        batched=True, with_indices=True, remove_columns=split.column_names,
                        desc="tokenizing (chunks)")
        for name, split in splits.items()})


def default_stride(window: int, specials: int) -> int:
    """A quarter of the window's text tokens."""
    return (window - specials) // 4


def _head_tail(batch: dict, tokenizer: Any, window: int, pair: bool) -> dict:
    encoded = tokenizer(batch["text"], batch["text_pair"] if pair else None, return_special_tokens_mask=True,
                        verbose=False)
    masks = encoded.pop("special_tokens_mask")
    out: dict[str, list] = {key: [] for key in encoded}
    for row, mask in enumerate(masks):
        keep = range(len(mask))
        if len(mask) > window:
            text = [i for i, special in enumerate(mask) if not special]
            room = max(0, len(text) - (len(mask) - window))  # the text tokens that fit beside the specials
            head = room // 4
            dropped = set(text[head:len(text) - (room - head)])
            keep = [i for i in range(len(mask)) if i not in dropped]
        for key, values in encoded.items():
            out[key].append([values[row][i] for i in keep])
    return out


def _windows(batch: dict, indices: list[int], tokenizer: Any, window: int, stride: int, pair: bool,
             split: str) -> dict:
    if pair:  # the first text is kept whole in every window: it must leave room to move on
        room = window - tokenizer.num_special_tokens_to_add(pair=True)
        for index, ids in zip(indices, tokenizer(batch["text"], add_special_tokens=False, verbose=False)["input_ids"],
                              strict=True):
            if room - len(ids) <= stride:
                raise SeqtuneError(
                    f"{split}: row {index + 1}: the first text takes {len(ids)} of the window's {window} tokens, "
                    f"leaving {max(room - len(ids), 0)} for the second, not more than the stride ({stride}); "
                    "raise --max-length or lower --stride")
    encoded = tokenizer(batch["text"], batch["text_pair"] if pair else None,
                        truncation="only_second" if pair else True, max_length=window, stride=stride,
                        return_overflowing_tokens=True, verbose=False)
    if "overflow_to_sample_mapping" not in encoded:
        raise SeqtuneError(f"--long-text chunks needs a fast (Rust) tokenizer; {type(tokenizer).__name__} does "
                           "not say which row a window comes from; use --long-text head-tail")
    mapping = encoded.pop("overflow_to_sample_mapping")
    out = {key: list(values) for key, values in encoded.items()}
    for column, values in batch.items():  # the label and any other column, repeated for each window
        out[column] = [values[m] for m in mapping]
    out[DOCUMENT] = [indices[m] for m in mapping]
    return out


def documents_of(rows: Any) -> Any:
    """The `document` column of tokenized rows as a NumPy array, or None when each row is its own document."""
    import numpy as np

    if DOCUMENT not in (getattr(rows, "column_names", None) or ()):
        return None
    return np.asarray(rows[DOCUMENT], dtype=np.int64)


def aggregate(values: Any, documents: Any, reduce: str = "mean") -> Any:
    """One row per document, in document order, from one row per window: the windows' mean, max, or the
    first window's row (labels)."""
    import numpy as np

    if reduce not in REDUCTIONS:
        raise SeqtuneError(f"reduce {reduce!r} is not one of {', '.join(REDUCTIONS)}")
    values, documents = np.asarray(values), np.asarray(documents)
    if len(values) != len(documents):
        raise SeqtuneError(f"{len(values)} rows of outputs for {len(documents)} windows; score the rows the "
                           "windows were made for")
    _, first, inverse, counts = np.unique(documents, return_index=True, return_inverse=True, return_counts=True)
    if reduce == "first":
        return values[first]
    if reduce == "max":
        out = np.full((len(first), *values.shape[1:]), -np.inf, dtype=np.float64)
        np.maximum.at(out, inverse, values)
        return out.astype(values.dtype)
    sums = np.zeros((len(first), *values.shape[1:]), dtype=np.float64)
    np.add.at(sums, inverse, values)
    return (sums / counts.reshape(-1, *[1] * (values.ndim - 1))).astype(values.dtype)


def per_document(values: Any, rows: Any, reduce: str = "mean") -> Any:
    """`values` (one row per tokenized row) put back one row per document when `rows` are windows."""
    documents = documents_of(rows)
    return values if documents is None else aggregate(values, documents, reduce)


def describe(raw: Any, tokenizer: Any, long_text: str, max_length: int | None, stride: int | None,
             windows: int) -> str | None:
    """The run header's line on rows past the window: how many, by how much, and what is done with them
    (None when nothing is past the window under truncation, or the window is unknown)."""
    import numpy as np

    window = window_of(tokenizer, max_length)
    if window is None or len(raw) == 0:
        return None
    pair = "text_pair" in raw.column_names
    lengths = np.asarray([len(ids) for batch in raw.iter(batch_size=1024)
                          for ids in tokenizer(batch["text"], batch["text_pair"] if pair else None,
                                               verbose=False)["input_ids"]])
    past = lengths > window
    if not past.any() and long_text == "truncate":
        return None
    unseen, total = int((lengths[past] - window).sum()), int(lengths.sum())
    line = (f"long text: {int(past.sum()):,} of {len(lengths):,} training rows are past {window:,} tokens "
            f"(longest {int(lengths.max()):,})")
    share = f"{unseen:,} of {total:,} tokens ({unseen / total:.1%}) unseen"
    if long_text == "truncate":
        return f"{line}; truncated, {share} (--long-text head-tail or chunks reads them)"
    specials = tokenizer.num_special_tokens_to_add(pair=pair)
    if long_text == "head-tail":
        room = window - specials
        return f"{line}; head-tail keeps the first {room // 4} and last {room - room // 4} text tokens, {share}"
    stride = default_stride(window, specials) if stride is None else stride
    return f"{line}; chunks: {windows:,} windows of up to {window:,} tokens overlapping by {stride}, every token seen"
