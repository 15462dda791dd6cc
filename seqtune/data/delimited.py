"""CSV and TSV text as a DataFrame: which quoting the file uses, and whether its first row is a header."""

from __future__ import annotations

import csv
import io
import itertools
import re
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class TableError(ValueError):
    """Text that does not read as one table: the message starts with the line at fault."""


def read_delimited(text: str, sep: str, header: bool | None, known_names: set[str],
                   expected: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Every cell as a string; `header=None` decides from the rows (`known_names`, `expected`: column names
    a header would hold). Raises TableError, or pandas' ParserError, on text that is not one table."""
    import pandas as pd

    text = text.replace("\r\n", "\n").replace("\r", "\n")  # old Mac files too: one line end for every reader
    quoting, shape = _dialect(text, sep)
    if header is None:
        header = has_header(text, sep, known_names, expected, quoting=quoting)
    if header and shape.wider:  # its cells would shift under the wrong names
        line, width, names = shape.wider
        raise TableError(f"line {line}: {width} cells, but the header names {names}; a "
                         f"{'tab' if sep == chr(9) else 'comma'} inside a text? put that cell in quotes")
    # index_col=False: rows one cell longer than the header are not taken as an index beside the data. Only
    # empty cells can be past the header's now (checked), so pandas' warning that it drops them says nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        frame = pd.read_csv(io.StringIO(text), sep=sep, header=0 if header else None, dtype=str,
                            keep_default_na=False, quoting=quoting, index_col=False)
    if not header:
        frame.columns = list(range(frame.shape[1]))
    return frame


def tsv_quoting(text: str) -> int:
    """TSV comes in two dialects. Quoted, as pandas and spreadsheets write it: a cell holding a tab, a line
    break or a quote sits between quotes. Plain, as GLUE's files are: a quote is a character like any other,
    and a cell may open one it never closes. Quoted unless quoting breaks the file, or every line holds a row
    of as many cells as the header when read plain; when both readings hold and differ (quoting would join
    lines into one row), which one the writer meant cannot be told: refused."""
    return _dialect(text, "\t")[0]


def _dialect(text: str, sep: str) -> tuple[int, _Shape]:
    """The quoting to read `text` with (tsv_quoting's choice for TSV; CSV's own, checked strictly: pandas reads
    on past a quote that does not close its cell, joining rows), and the shape of its rows so read. One pass
    per reading tried."""
    if sep != "\t" or '"' not in text:
        reader = csv.reader(io.StringIO(text), delimiter=sep, strict=True)
        try:
            return csv.QUOTE_MINIMAL, _shape(reader)
        except csv.Error:
            raise TableError(f"line {reader.line_num}: a quoted cell is not closed where it ends (a quote "
                             "never closed, or text after the closing one); put the whole cell in quotes and "
                             'double the quotes inside it ("")') from None
    plain = _shape(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    try:
        quoted = _shape(csv.reader(io.StringIO(text), delimiter="\t", strict=True))
    except csv.Error:
        return csv.QUOTE_NONE, plain
    if len(plain.widths) != 1 or (quoted.rows, quoted.widths) == (plain.rows, plain.widths):
        return csv.QUOTE_MINIMAL, quoted  # a quoted tab or line break, or quotes that change nothing but their cells
    if quoted.widths != plain.widths:
        return csv.QUOTE_NONE, plain  # quoting would join cells into rows of another width: the quotes are text
    first, last = quoted.joined
    raise TableError(f"line {first}: the quotes in this TSV read two ways: as quoting, lines {first}-{last} "
                     "are one row; as text, every line is a row. Save it as .jsonl or .csv, which read one way")


@dataclass
class _Shape:
    """Rows (blank lines skipped, as pandas skips them), the set of their widths (the first row's trailing
    empty cells not counted: a header that ends in a tab is as wide as its rows), the first row over several
    lines, and the first row with more non-empty cells than the first row has cells: (line, cells, first's)."""

    rows: int = 0
    widths: set[int] = field(default_factory=set)
    joined: tuple[int, int] = (0, 0)
    wider: tuple[int, int, int] | None = None


def _shape(reader: Any) -> _Shape:
    shape, before, names = _Shape(), 0, 0
    for row in reader:
        if row:
            shape.rows += 1
            shape.widths.add(_width(row) if shape.rows == 1 else len(row))
            if shape.rows == 1:
                names = len(row)
            elif shape.wider is None and _width(row) > names:
                shape.wider = (reader.line_num, _width(row), names)
            if reader.line_num - before > 1 and shape.joined == (0, 0):
                shape.joined = (before + 1, reader.line_num)
        before = reader.line_num
    return shape


def _width(row: list[str]) -> int:
    width = len(row)
    while width > 1 and not row[width - 1]:
        width -= 1
    return width


def has_header(text: str, sep: str, known_names: set[str], expected: frozenset[str] = frozenset(),
               rows: int = 1000, quoting: int = csv.QUOTE_MINIMAL) -> bool:
    """A header row names columns; a data row repeats the values under it. In order: a first-row cell that
    recurs lower in its column (a label such as `Business`, or `y`) or is a number is data; a cell above a column of a
    few repeated labels that is not one of them names that column (`polarity` over pos/neg); then known
    names (`text`, `label`, or `expected`, the columns a model was trained on) make a header, while
    sentences and numbers make data; csv.Sniffer decides the rest."""
    table = _first_rows(text, sep, rows, quoting)
    first = [c.strip() for c in (table[0] if table else [])]
    below = [[row[i].strip() for row in table[1:] if i < len(row) and row[i].strip()] for i in range(len(first))]
    if any(c and (c in set(values) or NUMBER.fullmatch(c)) for c, values in zip(first, below, strict=True)):
        return False  # a value seen again below, or a bare number: never a column name
    for cell, values in zip(first, below, strict=True):
        if cell and len(values) >= 4 and len(set(values)) <= max(2, len(values) // 2):  # a label column
            return True
    if expected and expected <= set(first) or {c.lower() for c in first} & known_names:
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


def _first_rows(text: str, sep: str, rows: int, quoting: int) -> list[list[str]]:
    """Up to `rows` parsed rows; a malformed row ends the sample (pandas reports it later, with context)."""
    table: list[list[str]] = []
    # Not a split on newlines: quoted cells span lines.
    reader = csv.reader(io.StringIO(text), delimiter=sep, quoting=quoting)
    try:
        table.extend(itertools.islice(reader, rows))
    except csv.Error:
        pass
    return table


def _reads_as_data(cell: str) -> bool:
    """A sentence (>= 4 words or > 40 characters) or a bare number is a value, never a column name."""
    return len(cell.split()) >= 4 or len(cell) > 40 or NUMBER.fullmatch(cell) is not None


def first_line(err: BaseException) -> str:
    """An exception's first line: messages stay one line."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
