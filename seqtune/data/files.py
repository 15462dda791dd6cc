"""Your own data: CSV, TSV, JSON, JSON Lines, Parquet; text/label columns and the task type inferred."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SeqtuneError
from .delimited import NUMBER, TableError, first_line, read_delimited
from .labels import is_list_cell as _is_list

if TYPE_CHECKING:
    import datasets
    import numpy as np
    import pandas as pd

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
TEXT_PAIRS = (("sentence1", "sentence2"), ("text_a", "text_b"), ("question", "answer"),
              ("premise", "hypothesis"), ("question1", "question2"), ("query", "passage"),
              ("question", "sentence"), ("text1", "text2"), ("#1 string", "#2 string"))  # the last: GLUE's MRPC TSVs
TEXT_SINGLES = ("text", "sentence", "review", "content", "document", "comment", "body", "utterance")
LABEL_NAMES = ("label", "labels", "score", "target", "class", "category", "sentiment", "rating", "stars", "y",
               "quality")
MAX_CLASSES = 1000
KNOWN_NAMES = set(TEXT_SINGLES) | set(LABEL_NAMES) | {c for pair in TEXT_PAIRS for c in pair}
# Label cells that mean "no label": the spellings pandas reads as missing by default (CSV/TSV are read as text,
# so they arrive as strings), matched after trimming. Case matters, as in pandas: a class `none` stays a class.
NA_SPELLINGS = frozenset({"", "nan", "NaN", "-nan", "-NaN", "NA", "N/A", "n/a", "#N/A", "#NA", "<NA>", "NULL",
                          "null", "None"})
SHOWN_ROWS = 5  # row numbers quoted in one message
TASK_TYPES = ("classification", "multi_label", "regression")


@dataclass
class TextTask:
    """What the data asks for: which columns hold the text(s) and the label, and how to learn it."""

    text_columns: list[str]
    label_column: str | None
    task_type: str  # "classification", "multi_label" or "regression"
    label_names: list[str] = field(default_factory=list)
    label_separator: str | None = None  # multi-label cells split on it ("a|b"); None: lists, or one label a cell
    names_file: str | None = None  # cells hold ids into label_names, read from this file (--label-names)

    @property
    def num_labels(self) -> int:
        return 1 if self.task_type == "regression" else len(self.label_names)

    def to_dict(self) -> dict[str, Any]:
        return {"text_columns": self.text_columns, "label_column": self.label_column,
                "task_type": self.task_type, "label_names": self.label_names,
                "label_separator": self.label_separator, "names_file": self.names_file}


def file_format(path: str | Path, override: str | None = None) -> str:
    if override:
        if override not in set(FORMATS.values()):
            raise SeqtuneError(f"--format {override!r} is not one of {', '.join(sorted(set(FORMATS.values())))}")
        return override
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise SeqtuneError(f"{path}: cannot tell the format from {suffix or 'no extension'!r}; "
                           f"use one of {', '.join(FORMATS)} or pass --format")
    return FORMATS[suffix]


def read_table(path: str | Path, fmt: str | None = None, header: bool | None = None,
               expected_columns: list | None = None) -> pd.DataFrame:
    """One file as a DataFrame of its columns (unnamed columns are called 0, 1, ...). `expected_columns`:
    names a header would hold (a trained model's text columns), a hint for telling a header from data."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise SeqtuneError(f"{path}: no such file")
    kind = file_format(path, fmt)
    if kind == "parquet":
        try:
            # A stored pandas index is dropped (predict writes index=False anyway): index i is always data row i + 1.
            return pd.read_parquet(path).reset_index(drop=True)
        except Exception as err:  # pyarrow raises several types for a non-Parquet file
            raise SeqtuneError(f"{path}: not a Parquet file ({first_line(err)})") from None
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise SeqtuneError(f"{path}: line {line}: not UTF-8 text (byte {err.start}); re-save the file as "
                           "UTF-8") from None
    if not text.strip():
        raise SeqtuneError(f"{path}: the file is empty")
    if kind in ("json", "jsonl"):
        lines = kind == "jsonl" or not text.lstrip().startswith("[")
        try:
            frame = pd.read_json(io.StringIO(text), lines=lines, dtype=False)
        except ValueError as err:
            raise SeqtuneError(f"{path}: not valid {'JSON Lines' if lines else 'JSON'} "
                               f"({first_line(err)})") from None
        return frame
    try:
        frame = read_delimited(text, "\t" if kind == "tsv" else ",", header, KNOWN_NAMES,
                               frozenset(c for c in expected_columns or [] if isinstance(c, str)))
    except TableError as err:
        raise SeqtuneError(f"{path}: {err}") from None
    except (pd.errors.ParserError, csv.Error) as err:
        raise SeqtuneError(f"{path}: not valid {kind.upper()} ({first_line(err)})") from None
    return frame


def infer_task(frame: pd.DataFrame, text_columns: list[str] | None = None, label_column: str | None = None,
               task_type: str | None = None, where: str = "the data", *, label_separator: str | None = None,
               names: list[str] | None = None, names_file: str | None = None) -> TextTask:
    """Pick the text and label columns (the obvious names first) and the task type: classification,
    multi_label (list cells, or a separator inside many label cells) or regression. `names` (read from
    `names_file`): the label names when the cells hold ids."""
    columns = list(frame.columns)
    label = _column(columns, label_column, where) if label_column is not None else _guess_label(frame, where)
    if text_columns:
        texts = [_column(columns, c, where) for c in text_columns]
    else:
        texts = _guess_texts(frame, label, where)
    if len(texts) > 2:
        raise SeqtuneError(f"{where}: {len(texts)} text columns given; seqtune takes one text or a pair")
    if label is not None and label in texts:
        raise SeqtuneError(f"{where}: column {label!r} is given as both a text and the label; a model that "
                           "reads its answer learns nothing")
    if label is None:
        return TextTask(texts, None, task_type or "classification")
    values = frame[label]
    kind = task_type or ("multi_label" if label_separator else _guess_type(values))
    if kind not in TASK_TYPES:
        raise SeqtuneError(f"--task-type {kind!r} is not one of {', '.join(map(repr, TASK_TYPES))}")
    if label_separator and kind != "multi_label":
        raise SeqtuneError(f"--label-separator applies to multi-label data, but the task type is {kind}; pass "
                           "--task-type multi_label or drop --label-separator")
    if names and kind == "regression":
        raise SeqtuneError("--label-names names classes, but this is a regression task")
    if kind == "multi_label":
        from .labels import infer_separator, sorted_names

        task = TextTask(texts, label, kind, list(names or []), label_separator or infer_separator(values),
                        names_file if names else None)
        if not names:
            task.label_names = sorted_names(label_sets(values, task, where), task.label_separator, where)
        return task
    if names:
        return TextTask(texts, label, kind, list(names), names_file=names_file)
    return TextTask(texts, label, kind, label_names(values, where, label) if kind == "classification" else [])


def _column(columns: list, wanted: str | int, where: str) -> Any:
    if wanted in columns:
        return wanted
    if isinstance(wanted, str) and wanted.isdigit() and int(wanted) in columns:
        return int(wanted)
    if isinstance(wanted, str) and wanted.isdigit() and int(wanted) < len(columns):
        return columns[int(wanted)]
    raise SeqtuneError(f"{where}: no column {wanted!r}; the columns are {_listed(columns)}")


def _listed(columns: list) -> str:
    return ", ".join(repr(c) for c in columns)


def _guess_label(frame: pd.DataFrame, where: str) -> Any:
    by_lower = {str(c).lower(): c for c in frame.columns}
    for name in LABEL_NAMES:
        if name in by_lower:
            return by_lower[name]
    if all(isinstance(c, int) for c in frame.columns):  # no header: the one short, repetitive column
        # astype(str): list cells (JSON arrays) are unhashable, and are refused later with their own message
        candidates = [c for c in frame.columns if frame[c].astype(str).nunique() <= max(MAX_CLASSES, 1) and
                      frame[c].astype(str).str.len().mean() < 12]
        if len(candidates) == 1:
            return candidates[0]
    return None


def _guess_texts(frame: pd.DataFrame, label: Any, where: str) -> list:
    by_lower = {str(c).lower(): c for c in frame.columns}
    for first, second in TEXT_PAIRS:
        if first in by_lower and second in by_lower:
            return [by_lower[first], by_lower[second]]
    for name in TEXT_SINGLES:
        if name in by_lower:
            return [by_lower[name]]
    if len(frame.columns) == 1 and label is None:  # a file of texts alone (to label): its one column
        return [frame.columns[0]]
    from pandas.api.types import is_numeric_dtype

    textual = [c for c in frame.columns if c != label and not is_numeric_dtype(frame[c])
               and frame[c].astype(str).str.len().mean() >= 12]
    if 1 <= len(textual) <= 2 and all(isinstance(c, int) for c in frame.columns):
        return textual
    raise SeqtuneError(
        f"{where}: cannot tell which columns hold the text; found {_listed(list(frame.columns))}; "
        "pass --text-column NAME (twice for a sentence pair) and --label-column NAME")


def _guess_type(values: pd.Series) -> str:
    """Regression for fractional (or very many distinct) numbers, judged on the labelled rows only: one `nan`
    or empty cell must not turn a score column into a classifier with a class per value."""
    import pandas as pd

    from .labels import infer_separator

    present = values[~_missing(values)]
    if any(_is_list(v) for v in present) or infer_separator(present):
        return "multi_label"
    numbers = pd.to_numeric(present.map(lambda v: v.strip() if isinstance(v, str) else v), errors="coerce")
    if numbers.notna().all():
        if (numbers % 1 != 0).any():
            return "regression"
        return "classification" if numbers.nunique() <= MAX_CLASSES else "regression"
    return "classification"


def label_names(values: pd.Series, where: str, column: Any) -> list[str]:
    """Class names in a stable order: numbers numerically, strings alphabetically. Built from _label_key, the
    key to_dataset looks up, so the two always agree (" pos" and "pos" are one class; missing cells none)."""
    keys = {_label_key(v) for v in values[~_missing(values)]}
    if all(NUMBER.fullmatch(k) for k in keys):
        return sorted(keys, key=float)
    return sorted(keys)


def _missing(values: pd.Series) -> np.ndarray:
    """Which cells hold no label: None/NaN (JSON, Parquet) or an NA spelling or blank (CSV, TSV)."""
    import numpy as np

    spelled = [isinstance(v, str) and v.strip() in NA_SPELLINGS for v in values]
    return values.isna().to_numpy(dtype=bool) | np.array(spelled, dtype=bool)


def _rows(index: pd.Index, mask: np.ndarray) -> list[int]:
    """1-based rows of the user's file for the cells in `mask`. read_table numbers data rows 0, 1, ... in the
    index, and splits and drops keep it, so a message names the row in the file, not in a shuffled part."""
    import numpy as np
    from pandas.api.types import is_integer_dtype

    positions = np.flatnonzero(mask)
    if is_integer_dtype(index):
        return [int(index[p]) + 1 for p in positions]
    return [int(p) + 1 for p in positions]  # a frame built by hand: its positions


def _check_labels(values: pd.Series, where: str) -> None:
    """Refuse multi-label cells, then cells with no label: training on either is training on garbage."""
    import numpy as np

    lists = np.array([_is_list(v) for v in values], dtype=bool)
    if lists.any():
        shown = _shown_cell(values.iloc[int(np.flatnonzero(lists)[0])])
        raise SeqtuneError(f"{where}: row {_rows(values.index, lists)[0]}: the label {shown} is a list, but this "
                           "task has one label a row; pass --task-type multi_label to read lists")
    rows = _rows(values.index, _missing(values))
    if rows:
        many = len(rows) > 1
        listed = ", ".join(map(str, rows[:SHOWN_ROWS])) + (", ..." if len(rows) > SHOWN_ROWS else "")
        raise SeqtuneError(f"{where}: {len(rows)} row{'s have' if many else ' has'} no label "
                           f"(row{'s' if many else ''} {listed}); fill or drop {'them' if many else 'it'}")


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds (np.str_('a') -> 'a'), for a readable message."""
    return value.item() if hasattr(value, "item") else value


def _shown_cell(cell: Any) -> str:
    """A label cell as a message quotes it: a list as a list, at most 60 characters."""
    shown = repr(cell.strip() if isinstance(cell, str) else
                 [_plain(x) for x in cell] if _is_list(cell) else _plain(cell))
    return shown if len(shown) <= 60 else shown[:57] + "..."


def label_sets(values: pd.Series, task: TextTask, where: str) -> list[list[str]]:
    """Each multi-label cell as its label names (ids through the names file); blank cells are empty sets.
    A cell that does not parse, an id past the names, or list cells beside single values: refused with the row."""
    import numpy as np

    from .labels import parse_cell, resolve_ids

    rows = _rows(values.index, np.ones(len(values), dtype=bool))
    lists = np.array([_is_list(v) for v in values], dtype=bool)
    single = ~lists & ~_missing(values)
    if lists.any() and single.any():
        first = int(np.flatnonzero(single)[0])
        raise SeqtuneError(f"{where}: row {rows[first]}: the label {_shown_cell(values.iloc[first])} is a single "
                           f"value, but other rows hold lists (row {rows[int(np.flatnonzero(lists)[0])]}); write "
                           "every label cell as a list")
    sets = []
    for position, cell in enumerate(values):
        try:
            names = parse_cell(cell, task.label_separator)
            sets.append(resolve_ids(names, task.label_names, task.names_file) if task.names_file else names)
        except ValueError as err:
            raise SeqtuneError(f"{where}: row {rows[position]}: the label cell {_shown_cell(cell)} {err}") from None
    return sets


def _check_variety(values: pd.Series, task: TextTask, where: str) -> None:
    """Refuse a training set with one class (or one target): its model would answer the same thing always."""
    import pandas as pd

    if task.task_type == "multi_label":
        sets = {tuple(sorted(names)) for names in label_sets(values, task, where)}
        if not any(sets):
            raise SeqtuneError(f"{where}: no row has a label; there is nothing to train on")
        if len(sets) == 1:
            raise SeqtuneError(f"{where}: every row has the labels {', '.join(next(iter(sets)))}; a multi-label "
                               "classifier needs rows that differ")
        return
    if task.task_type == "classification":
        keys = sorted({_label_key(v) for v in values})
        if not keys:
            raise SeqtuneError(f"{where}: no row is left with a label; there is nothing to train on")
        if len(keys) == 1:
            raise SeqtuneError(f"{where}: every row has the label {keys[0]!r}; a classifier needs at least "
                               "two classes")
        return
    numbers = pd.to_numeric(values.map(lambda v: v.strip() if isinstance(v, str) else v), errors="coerce")
    if len(values) and numbers.nunique(dropna=False) == 1 and numbers.notna().all():
        raise SeqtuneError(f"{where}: every row has the target {float(numbers.iloc[0]):g}; a regression model "
                           "needs targets that vary")


def to_dataset(frame: pd.DataFrame, task: TextTask, where: str, ids_for_names: bool = False) -> datasets.Dataset:
    """Texts and label ids (or floats) as a datasets.Dataset; empty texts and unknown labels refused.
    `ids_for_names`: label cells that are all ids (0 .. classes - 1) and never a name are a trained model's
    label ids, as GLUE's files hold them."""
    import datasets
    import numpy as np
    import pandas as pd

    out: dict[str, list] = {}
    for index, column in enumerate(task.text_columns):
        texts = frame[column]
        nested = texts.map(lambda v: isinstance(v, (dict, list, tuple, np.ndarray))).to_numpy(dtype=bool)
        if nested.any():  # a JSON object or list: its printed form is not the text anyone meant
            raise SeqtuneError(f"{where}: row {_rows(frame.index, nested)[0]}: the text in column {column!r} is a "
                               f"{type(texts[nested].iloc[0]).__name__}, not text; give each row its text as a string")
        missing = (texts.isna() | (texts.astype(str).str.strip() == "")).to_numpy(dtype=bool)
        if missing.any():
            raise SeqtuneError(f"{where}: row {_rows(frame.index, missing)[0]}: the text in column {column!r} is "
                               "missing or empty; fill or drop such rows")
        out["text" if len(task.text_columns) == 1 else ("text", "text_pair")[index]] = texts.astype(str).tolist()
    if task.label_column is not None and task.label_column in frame.columns:
        values = frame[task.label_column]
        if task.task_type == "multi_label":
            out["label"] = _multi_hot(values, task, where)
            return datasets.Dataset.from_dict(out)
        _check_labels(values, where)
        if task.task_type == "regression":
            numbers = pd.to_numeric(values.map(lambda v: v.strip() if isinstance(v, str) else v), errors="coerce")
            bad = ~np.isfinite(numbers.to_numpy(dtype=float))  # words, and inf: no loss can be learnt from them
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise SeqtuneError(f"{where}: row {_rows(frame.index, bad)[0]}: label {values.iloc[first]!r} is not "
                                   "a finite number, and this is a regression task")
            out["label"] = numbers.astype(float).tolist()
        else:
            ids = {name: i for i, name in enumerate(task.label_names)}
            keys = [_label_key(v) for v in values]
            if task.names_file:  # ids into the names file, each checked with its row
                keys = [names[0] for names in label_sets(values, task, where)]
            id_keys = {str(i) for i in range(len(ids))}
            if ids_for_names and not any(v in ids for v in keys) and all(v in id_keys for v in keys):
                keys = [task.label_names[int(v)] for v in keys]  # the model's label ids (0, 1), as GLUE's files hold
            unknown = np.array([v not in ids for v in keys], dtype=bool)
            if unknown.any():
                value = keys[int(np.flatnonzero(unknown)[0])]
                raise SeqtuneError(
                    f"{where}: row {_rows(frame.index, unknown)[0]}: label {value!r} is not one of the training labels "
                    f"({', '.join(task.label_names[:10])}{', ...' if len(task.label_names) > 10 else ''})")
            out["label"] = [ids[v] for v in keys]
    return datasets.Dataset.from_dict(out)


def _multi_hot(values: pd.Series, task: TextTask, where: str) -> list[list[float]]:
    """Float multi-hot rows in label_names order; a label the training data never had is refused with its row."""
    import numpy as np

    from .labels import multi_hot

    sets = label_sets(values, task, where)
    known = set(task.label_names)
    unknown = np.array([any(n not in known for n in names) for names in sets], dtype=bool)
    if unknown.any():
        first = int(np.flatnonzero(unknown)[0])
        name = next(n for n in sets[first] if n not in known)
        listed = ", ".join(task.label_names[:10]) + (", ..." if len(task.label_names) > 10 else "")
        raise SeqtuneError(f"{where}: row {_rows(values.index, unknown)[0]}: label {name!r} is not one of the training "
                           f"labels ({listed})")
    return multi_hot(sets, task.label_names)


def _label_key(value: Any) -> str:
    """The class a cell names: trimmed (" pos" is "pos"), and a number in one spelling ("1", 1.0 -> "1")."""
    text = str(value).strip()
    if isinstance(value, str) and not NUMBER.fullmatch(text):
        return text  # a word, even one float() would read ("inf", "1_000")
    try:
        number = float(text if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return text
    return str(int(number)) if number.is_integer() else str(number)


def stratified_split(frame: pd.DataFrame, task: TextTask, fraction: float,
                     seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded validation split, stratified by label for classification when every class can spare rows."""
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise SeqtuneError(f"--validation-split must be between 0 and 1, got {fraction}")
    held = math.ceil(fraction * len(frame))  # as scikit-learn rounds
    if held < 1 or len(frame) - held < 1:
        raise SeqtuneError(f"--validation-split {fraction} of {len(frame)} rows leaves no row for "
                           f"{'validation' if held < 1 else 'training'}; pass --validation FILE or more data")
    stratify = None
    if task.task_type == "classification" and task.label_column is not None:
        keys = frame[task.label_column].map(_label_key)
        classes = keys.nunique()
        # Stratifying needs a row of every class on both sides; otherwise a plain seeded split.
        if keys.value_counts().min() >= 2 and held >= classes and len(frame) - held >= classes:
            stratify = keys
    # The index is kept (no reset_index): it is the row in the user's file, which later messages name.
    return train_test_split(frame, test_size=fraction, random_state=seed, stratify=stratify)


def load_files(train: str | Path, validation: str | Path | None = None, test: str | Path | None = None, *,
               text_columns: list[str] | None = None, label_column: str | list[str] | None = None,
               task_type: str | None = None, fmt: str | None = None, header: bool | None = None,
               validation_split: float | None = None, seed: int = 42, drop_unlabelled: bool = False,
               label_separator: str | None = None,
               label_names: str | Path | list[str] | None = None) -> tuple[datasets.DatasetDict, TextTask]:
    """Read the files, infer the task from the training file, and return (splits, task). Rows with no label
    are refused, or with `drop_unlabelled` dropped (and counted); so is a training file with one class (or one
    regression target). Multi-label data (`task_type="multi_label"`, or inferred from list cells or a separator
    in many cells) gives a float multi-hot `label`; there a row with no label is the empty set. Its labels come
    from delimited cells (`label_separator`), lists, several 0/1 columns (`label_column` a list), or ids into
    `label_names` (a file of one name per line, or the list)."""
    import datasets

    from .labels import checked_names, read_label_names

    columns = [label_column] if label_column is not None and not isinstance(label_column, (list, tuple)) else \
        list(label_column or [])
    indicators = columns if len(columns) > 1 else None
    names_file = str(label_names) if isinstance(label_names, (str, Path)) else "label_names"
    names = (read_label_names(label_names) if isinstance(label_names, (str, Path)) else
             checked_names(label_names) if label_names is not None else None)
    frames = {"train": read_table(train, fmt, header)}
    wheres = {"train": str(train), "validation": str(validation or train), "test": str(test)}
    if indicators:
        if task_type not in (None, "multi_label") or label_separator or names:
            raise SeqtuneError("several --label-column are the 0/1 columns of a multi-label task, one a label; "
                               "they take no --task-type other than multi_label, no --label-separator and no "
                               "--label-names (the columns name the labels)")
        frames["train"], names = _indicator_column(frames["train"], indicators, wheres["train"])
        columns, task_type, names_file = [_INDICATORS], "multi_label", None
    task = infer_task(frames["train"], text_columns, columns[0] if columns else None, task_type, where=str(train),
                      label_separator=label_separator, names=names, names_file=names_file)
    if task.label_column is None:
        raise SeqtuneError(f"{train}: cannot tell which column holds the label; found "
                           f"{_listed(list(frames['train'].columns))}; pass --label-column NAME")
    if validation is not None:
        frames["validation"] = read_table(validation, fmt, header)
    if test is not None:
        frames["test"] = read_table(test, fmt, header)
    if indicators:
        for split in ("validation", "test"):
            if split in frames and (split == "validation" or set(indicators) & set(map(str, frames[split].columns))):
                frames[split] = _indicator_column(frames[split], indicators, wheres[split])[0]
    if task.task_type == "multi_label":
        _say_multi_label(task, frames["train"], indicators, str(train))
    if drop_unlabelled and task.task_type != "multi_label":  # there a row with no label is the empty set
        for split, frame in frames.items():
            if task.label_column in frame.columns:
                frames[split] = _drop_unlabelled(frame, task.label_column, wheres[split])
    # The whole training file is judged before any split, so its messages count and name all its rows.
    whole = frames["train"]
    if task.task_type != "multi_label":  # multi-label cells are parsed, with their rows, by _check_variety
        _check_labels(whole[task.label_column], str(train))
    if validation is None and validation_split:  # split first: a split too small for the file says so
        frames["train"], frames["validation"] = stratified_split(whole, task, validation_split, seed)
    _check_variety(whole[task.label_column], task, str(train))
    if validation is None and validation_split:
        how = ", stratified by label" if task.task_type == "classification" else ""
        print(f"seqtune: no validation file; holding out {len(frames['validation'])} of the training rows "
              f"({validation_split:.0%}, seed {seed}{how})")
        # A class with one row can land wholly in validation (no stratifying then), leaving training one class.
        _check_variety(frames["train"][task.label_column], task,
                       f"{train} (the training rows left by --validation-split {validation_split})")
    splits = {}
    for split in ("train", "validation", "test"):
        if split in frames:
            _check_columns(frames[split], task, wheres[split], needs_label=split != "test")
            splits[split] = to_dataset(frames[split], task, wheres[split])
    return datasets.DatasetDict(splits), task


_INDICATORS = "labels from 0/1 columns"  # the column that gathers them (a name no file column is likely to have)


def _indicator_column(frame: pd.DataFrame, columns: list, where: str) -> tuple[pd.DataFrame, list[str]]:
    """The frame with one more column, the list of the 0/1 columns set in each row; and their names."""
    from .labels import indicator_sets

    found = [_column(list(frame.columns), c, where) for c in columns]
    if len(set(found)) < len(found):
        raise SeqtuneError(f"{where}: --label-column names one column twice ({_listed(found)})")
    import numpy as np

    sets = indicator_sets(frame, found, where, _rows(frame.index, np.ones(len(frame), dtype=bool)))
    frame = frame.copy()
    frame[_INDICATORS] = sets
    return frame, [str(c) for c in found]


def indicator_frame(frame: pd.DataFrame, columns: list, where: str) -> tuple[pd.DataFrame, str]:
    """A file of 0/1 label columns (one a label) with those columns gathered into one list column, and its name."""
    return _indicator_column(frame, columns, where)[0], _INDICATORS


def _say_multi_label(task: TextTask, frame: pd.DataFrame, indicators: list | None, where: str) -> None:
    """The header line: which labels, read how, and how many training rows have none."""
    how = (f"the 0/1 columns {', '.join(map(str, indicators))}" if indicators else
           f"ids named by {task.names_file}" if task.names_file else
           f"cells split on {task.label_separator!r}" if task.label_separator else "list cells")
    empty = sum(not names for names in label_sets(frame[task.label_column], task, where))
    shown = ", ".join(task.label_names[:8]) + (", ..." if len(task.label_names) > 8 else "")
    print(f"seqtune: multi-label classification: {len(task.label_names)} labels ({shown}) from {how}"
          + (f"; {empty} training row{'s have' if empty != 1 else ' has'} no label" if empty else ""))


def _drop_unlabelled(frame: pd.DataFrame, column: Any, where: str) -> pd.DataFrame:
    """The rows that have a label (the index, their row in the file, kept), the others counted aloud."""
    missing = _missing(frame[column])
    if missing.any():
        count = int(missing.sum())
        print(f"seqtune: dropped {count} row{'s' if count > 1 else ''} with no label from {where}")
    return frame[~missing]


def _check_columns(frame: pd.DataFrame, task: TextTask, where: str, needs_label: bool) -> None:
    wanted = task.text_columns + ([task.label_column] if needs_label else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise SeqtuneError(f"{where}: no column {missing[0]!r} (the training file has it); the columns are "
                           f"{_listed(list(frame.columns))}")
