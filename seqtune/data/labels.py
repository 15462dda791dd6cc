"""Multi-label cells: a delimited string ("8,20", "sports|politics"), a list (JSON, Parquet, "[a, b]" in a CSV)
or several 0/1 columns, read into sets of label names, then into float multi-hot rows (transformers'
multi_label_classification convention). A blank cell is the empty set: a row with no label is valid here."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SeqtuneError

if TYPE_CHECKING:
    import pandas as pd

SEPARATORS = (",", "|", ";")  # tried in this order when none is given
INFER_SHARE = 0.05  # a separator is inferred when at least this share of the labelled cells (and 2) hold it
INDICATOR_VALUES = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0, "false": 0.0, "true": 1.0}


def is_list_cell(value: Any) -> bool:
    """A list/array (JSON, Parquet), or a list written as text ("[a, b]")."""
    import numpy as np

    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        return True
    return isinstance(value, str) and value.strip().startswith("[") and value.strip().endswith("]")


def parse_cell(value: Any, separator: str | None = None) -> list[str]:
    """The label names of one cell, in first-seen order without repeats; [] for a blank or missing cell.
    ValueError (its message says what is wrong) for a cell that does not parse."""
    from .files import NA_SPELLINGS, _label_key

    if _is_missing_scalar(value) or isinstance(value, str) and value.strip() in NA_SPELLINGS:
        return []
    if isinstance(value, str) and value.strip().startswith("["):
        items = _listed_text(value.strip())
    elif is_list_cell(value):
        items = list(value)
    elif isinstance(value, str):
        text = value.strip()
        items = text.split(separator) if separator else [text]
    else:
        items = [value]
    names: list[str] = []
    for item in items:
        if isinstance(item, (list, tuple, dict, set)) or hasattr(item, "__len__") and not isinstance(item, str):
            raise ValueError("holds a nested list; a label cell is a flat list of names")
        if _is_missing_scalar(item) or isinstance(item, bool):
            raise ValueError(f"holds {item!r}, which is not a label name")
        key = _label_key(item)
        if not key:
            raise ValueError(f"has an empty label{' between separators' if separator else ''}")
        if key not in names:
            names.append(key)
    return names


def _is_missing_scalar(value: Any) -> bool:
    return value is None or isinstance(value, float) and value != value


def _listed_text(text: str) -> list[Any]:
    """`["a", "b"]` (JSON), `['a', 'b']` (Python) or `[a, b]` (bare words) as its items."""
    if not text.endswith("]"):
        raise ValueError("opens a list with [ but never closes it")
    for reader in (json.loads, ast.literal_eval):
        try:
            items = reader(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(items, list):
            return items
    inner = text[1:-1].strip()
    if any(c in inner for c in "[]{}\"'"):
        raise ValueError("is not a list of names (unbalanced brackets or quotes)")
    return [part.strip() for part in inner.split(",")] if inner else []


def infer_separator(values: pd.Series) -> str | None:
    """The separator of delimited multi-label cells, when the data makes it plain: at least 2 (and 5%) of the
    labelled cells hold it, and its parts are labels, not pieces of one name: ids (`8,20`), fewer than the
    distinct cells holding it (combinations of a few labels), or most of them whole cells elsewhere
    (`a` and `b` beside `a,b`). `Clothing, Shoes & Jewelry`, one category, is not split."""
    from .files import NA_SPELLINGS

    cells = [v.strip() for v in values if isinstance(v, str) and v.strip() not in NA_SPELLINGS]
    if not cells or any(c.startswith("[") for c in cells):
        return None
    whole = set(cells)
    best, best_count = None, 0
    for separator in SEPARATORS:
        holding = [c for c in cells if separator in c]
        if len(holding) < max(2, INFER_SHARE * len(cells)) or len(holding) <= best_count:
            continue
        parts = {p.strip() for c in set(holding) for p in c.split(separator)} - {""}  # "a,,b": refused later
        ids = all(p.isdigit() for p in parts)  # "8,20": label ids (a decimal comma would not be a class either)
        if ids or len(parts) < len(set(holding)) or sum(p in whole for p in parts) * 2 >= len(parts):
            best, best_count = separator, len(holding)
    return best


def read_label_names(path: str | Path) -> list[str]:
    """`--label-names FILE`: one name per line, line i naming id i - 1 (trailing blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise SeqtuneError(f"--label-names {path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise SeqtuneError(f"--label-names {path}: not UTF-8 text (byte {err.start}); re-save it as UTF-8") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise SeqtuneError(f"--label-names {path}: the file is empty; write one label name per line")
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        name = line.strip()
        if not name:
            raise SeqtuneError(f"--label-names {path}: line {number} is blank; write one label name per line "
                               f"(line i names label id i - 1)")
        if name in seen:
            raise SeqtuneError(f"--label-names {path}: line {number} repeats the name {name!r} of line "
                               f"{seen[name]}; each label is named once")
        seen[name] = number
    return list(seen)


def checked_names(names: Any) -> list[str]:
    """`label_names=[...]` from Python: a non-empty list of distinct, non-blank names."""
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names:
        raise SeqtuneError(f"label_names must be a file or a non-empty list of names, got {names!r:.60}")
    cleaned = [str(n).strip() for n in names]
    if not all(cleaned):
        raise SeqtuneError("label_names holds a blank name; name every label")
    repeated = next((n for i, n in enumerate(cleaned) if n in cleaned[:i]), None)
    if repeated is not None:
        raise SeqtuneError(f"label_names repeats the name {repeated!r}; each label is named once")
    return cleaned


def resolve_ids(names: list[str], label_names: list[str], names_file: str) -> list[str]:
    """Cells that hold ids into a names file: each id as its name (a name itself is taken as it is).
    ValueError for an id past the file."""
    out = []
    for name in names:
        if name.isdigit() or name.startswith("-") and name[1:].isdigit():
            index = int(name)
            if not 0 <= index < len(label_names):
                raise ValueError(f"holds the label id {index}, past the {len(label_names)} names of {names_file} "
                                 f"(ids 0 to {len(label_names) - 1})")
            name = label_names[index]
        elif name not in label_names:
            raise ValueError(f"holds {name!r}, which is neither an id nor a name of {names_file}")
        if name not in out:
            out.append(name)
    return out


def sorted_names(sets: list[list[str]], separator: str | None = None, where: str = "labels") -> list[str]:
    """Every label of the data in a stable order: numbers numerically, words alphabetically. A label that is
    other labels joined by another separator (cells written with two separators) is refused, not learnt."""
    from .delimited import NUMBER

    keys = {name for names in sets for name in names}
    for name in sorted(keys):
        for other in (s for s in SEPARATORS if s != separator and s in name):
            parts = [part.strip() for part in name.split(other)]
            if len(parts) > 1 and all(part in keys for part in parts):
                split = f"split on {separator!r}" if separator else "not split (one label per cell)"
                raise SeqtuneError(f"{where}: label {name!r} is the labels {', '.join(parts)} joined by {other!r}, "
                                   f"but label cells are {split}; write every cell with one separator (or pass "
                                   "--label-separator)")
    if keys and all(NUMBER.fullmatch(k) for k in keys):
        return sorted(keys, key=float)
    return sorted(keys)


def multi_hot(sets: list[list[str]], label_names: list[str]) -> list[list[float]]:
    """Float rows, 1.0 where the row has the label (BCE-with-logits targets); every name must be known."""
    ids = {name: i for i, name in enumerate(label_names)}
    rows = []
    for names in sets:
        row = [0.0] * len(label_names)
        for name in names:
            row[ids[name]] = 1.0
        rows.append(row)
    return rows


def indicator_sets(frame: pd.DataFrame, columns: list, where: str, rows: list[int]) -> list[list[str]]:
    """Several 0/1 columns (`--label-column` repeated) as sets of the column names; `rows`: each row's number
    in the file, for messages."""
    import numbers

    import numpy as np

    sets: list[list[str]] = [[] for _ in range(len(frame))]
    for column in columns:
        for position, value in enumerate(frame[column]):
            key = None
            if isinstance(value, str):
                key = value.strip().lower()
            elif isinstance(value, (bool, np.bool_)):
                key = "1" if value else "0"
            elif isinstance(value, numbers.Real) and not _is_missing_scalar(value):
                key = str(float(value))
            number = INDICATOR_VALUES.get(key) if key is not None else None
            if number is None:
                shown = repr(value.strip() if isinstance(value, str) else _plain(value))
                raise SeqtuneError(f"{where}: row {rows[position]}: column {column!r} holds {shown:.40}; label "
                                   "columns given as several --label-column hold 0 or 1")
            if number:
                sets[position].append(str(column))
    return sets


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
