"""Your own data: CSV, TSV, JSON, JSON Lines, Parquet; text/label columns and the task type inferred."""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SeqtuneError

if TYPE_CHECKING:
    import datasets
    import pandas as pd

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
TEXT_PAIRS = (("sentence1", "sentence2"), ("text_a", "text_b"), ("question", "answer"),
              ("premise", "hypothesis"), ("question1", "question2"), ("query", "passage"),
              ("question", "sentence"), ("text1", "text2"))
TEXT_SINGLES = ("text", "sentence", "review", "content", "document", "comment", "body", "utterance")
LABEL_NAMES = ("label", "labels", "score", "target", "class", "category", "sentiment", "rating", "stars", "y")
MAX_CLASSES = 1000
KNOWN_NAMES = set(TEXT_SINGLES) | set(LABEL_NAMES) | {c for pair in TEXT_PAIRS for c in pair}
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass
class TextTask:
    """What the data asks for: which columns hold the text(s) and the label, and how to learn it."""

    text_columns: list[str]
    label_column: str | None
    task_type: str  # "classification" or "regression"
    label_names: list[str] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        return 1 if self.task_type == "regression" else len(self.label_names)

    def to_dict(self) -> dict[str, Any]:
        return {"text_columns": self.text_columns, "label_column": self.label_column,
                "task_type": self.task_type, "label_names": self.label_names}


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
            return pd.read_parquet(path)
        except Exception as err:  # pyarrow raises several types for a non-Parquet file
            raise SeqtuneError(f"{path}: not a Parquet file ({_first_line(err)})") from None
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
                               f"({_first_line(err)})") from None
        return frame
    sep = "\t" if kind == "tsv" else ","
    if header is None:
        header = _has_header(text, sep, expected=frozenset(c for c in expected_columns or [] if isinstance(c, str)))
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, header=0 if header else None, dtype=str,
                            keep_default_na=False, quoting=csv.QUOTE_MINIMAL)
    except (pd.errors.ParserError, csv.Error) as err:
        raise SeqtuneError(f"{path}: not valid {kind.upper()} ({_first_line(err)})") from None
    if not header:
        frame.columns = list(range(frame.shape[1]))
    return frame


def _has_header(text: str, sep: str, rows: int = 1000, expected: frozenset[str] = frozenset()) -> bool:
    """A header row names columns; a data row repeats the values under it. In order: a first-row cell that
    recurs lower in its column (a label such as `Business`, or `y`) or is a number is data; a cell above a column of a
    few repeated labels that is not one of them names that column (`polarity` over pos/neg); then known
    names (`text`, `label`, or `expected`, the columns a model was trained on) make a header, while
    sentences and numbers make data; csv.Sniffer decides the rest."""
    table = _first_rows(text, sep, rows)
    first = [c.strip() for c in (table[0] if table else [])]
    below = [[row[i].strip() for row in table[1:] if i < len(row) and row[i].strip()] for i in range(len(first))]
    if any(c and (c in set(values) or NUMBER.fullmatch(c)) for c, values in zip(first, below, strict=True)):
        return False  # a value seen again below, or a bare number: never a column name
    for cell, values in zip(first, below, strict=True):
        if cell and len(values) >= 4 and len(set(values)) <= max(2, len(values) // 2):  # a label column
            return True
    if expected and expected <= set(first) or {c.lower() for c in first} & KNOWN_NAMES:
        return True
    if any(c and _reads_as_data(c) for c in first):
        return False
    # Short names over a column of sentences or numbers: Sniffer misses this when lengths vary (news texts).
    if any(values and sum(map(_reads_as_data, values)) > len(values) / 2 for values in below):
        return True
    try:
        return csv.Sniffer().has_header(text[:20000])
    except csv.Error:
        return False


def _first_rows(text: str, sep: str, rows: int) -> list[list[str]]:
    """Up to `rows` parsed rows; a malformed row ends the sample (pandas reports it later, with context)."""
    table: list[list[str]] = []
    reader = csv.reader(io.StringIO(text), delimiter=sep)  # not a split on newlines: quoted cells span lines
    try:
        table.extend(itertools.islice(reader, rows))
    except csv.Error:
        pass
    return table


def _reads_as_data(cell: str) -> bool:
    """A sentence (>= 4 words or > 40 characters) or a bare number is a value, never a column name."""
    return len(cell.split()) >= 4 or len(cell) > 40 or NUMBER.fullmatch(cell) is not None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def infer_task(frame: pd.DataFrame, text_columns: list[str] | None = None, label_column: str | None = None,
               task_type: str | None = None, where: str = "the data") -> TextTask:
    """Pick the text and label columns (the obvious names first) and classification vs regression."""
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
    kind = task_type or _guess_type(values)
    if kind not in ("classification", "regression"):
        raise SeqtuneError(f"--task-type {kind!r} is not 'classification' or 'regression'")
    names: list[str] = []
    if kind == "classification":
        names = label_names(values, where, label)
    return TextTask(texts, label, kind, names)


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
        candidates = [c for c in frame.columns if frame[c].nunique() <= max(MAX_CLASSES, 1) and
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
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        if (numbers % 1 != 0).any():
            return "regression"
        return "classification" if numbers.nunique() <= MAX_CLASSES else "regression"
    return "classification"


def label_names(values: pd.Series, where: str, column: Any) -> list[str]:
    """Class names in a stable order: numbers numerically, strings alphabetically."""
    import pandas as pd

    present = values.dropna()
    present = present[present.astype(str).str.strip() != ""]
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().all():
        return [str(int(v)) if float(v).is_integer() else str(v) for v in sorted(set(numbers))]
    return sorted({str(v) for v in present})


def to_dataset(frame: pd.DataFrame, task: TextTask, where: str) -> datasets.Dataset:
    """Texts and label ids (or floats) as a datasets.Dataset; empty texts and unknown labels refused."""
    import datasets
    import pandas as pd

    out: dict[str, list] = {}
    for index, column in enumerate(task.text_columns):
        texts = frame[column]
        missing = texts.isna() | (texts.astype(str).str.strip() == "")
        if missing.any():
            row = int(missing.to_numpy().nonzero()[0][0])
            raise SeqtuneError(f"{where}: row {row + 1}: the text in column {column!r} is missing or empty; "
                               "fill or drop such rows")
        out["text" if len(task.text_columns) == 1 else ("text", "text_pair")[index]] = texts.astype(str).tolist()
    if task.label_column is not None and task.label_column in frame.columns:
        values = frame[task.label_column]
        if task.task_type == "regression":
            numbers = pd.to_numeric(values, errors="coerce")
            if numbers.isna().any():
                row = int(numbers.isna().to_numpy().nonzero()[0][0])
                raise SeqtuneError(f"{where}: row {row + 1}: label {values.iloc[row]!r} is not a number, "
                                   "and this is a regression task")
            out["label"] = numbers.astype(float).tolist()
        else:
            ids = {name: i for i, name in enumerate(task.label_names)}
            keys = [_label_key(v) for v in values]
            unknown = [(row, v) for row, v in enumerate(keys) if v not in ids]
            if unknown:
                row, value = unknown[0]
                raise SeqtuneError(
                    f"{where}: row {row + 1}: label {value!r} is not one of the training labels "
                    f"({', '.join(task.label_names[:10])}{', ...' if len(task.label_names) > 10 else ''})")
            out["label"] = [ids[v] for v in keys]
    return datasets.Dataset.from_dict(out)


def _label_key(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(value)


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
    train, validation = train_test_split(frame, test_size=fraction, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), validation.reset_index(drop=True)


def load_files(train: str | Path, validation: str | Path | None = None, test: str | Path | None = None, *,
               text_columns: list[str] | None = None, label_column: str | None = None,
               task_type: str | None = None, fmt: str | None = None, header: bool | None = None,
               validation_split: float | None = None, seed: int = 42) -> tuple[datasets.DatasetDict, TextTask]:
    """Read the files, infer the task from the training file, and return (splits, task)."""
    import datasets

    frames = {"train": read_table(train, fmt, header)}
    task = infer_task(frames["train"], text_columns, label_column, task_type, where=str(train))
    if task.label_column is None:
        raise SeqtuneError(f"{train}: cannot tell which column holds the label; found "
                           f"{_listed(list(frames['train'].columns))}; pass --label-column NAME")
    if validation is not None:
        frames["validation"] = read_table(validation, fmt, header)
    elif validation_split:
        frames["train"], frames["validation"] = stratified_split(frames["train"], task, validation_split, seed)
        how = ", stratified by label" if task.task_type == "classification" else ""
        print(f"seqtune: no validation file; holding out {len(frames['validation'])} of the training rows "
              f"({validation_split:.0%}, seed {seed}{how})")
    if test is not None:
        frames["test"] = read_table(test, fmt, header)
    splits = {}
    for split, frame in frames.items():
        where = {"train": str(train), "validation": str(validation or train), "test": str(test)}[split]
        _check_columns(frame, task, where, needs_label=split != "test")
        splits[split] = to_dataset(frame, task, where)
    return datasets.DatasetDict(splits), task


def _check_columns(frame: pd.DataFrame, task: TextTask, where: str, needs_label: bool) -> None:
    wanted = task.text_columns + ([task.label_column] if needs_label else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise SeqtuneError(f"{where}: no column {missing[0]!r} (the training file has it); the columns are "
                           f"{_listed(list(frame.columns))}")
