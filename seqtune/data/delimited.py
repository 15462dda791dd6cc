"""CSV and TSV text as a DataFrame: which quoting the file uses, and whether its first row is a header."""

from __future__ import annotations

import csv
import io
import itertools
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def read_delimited(text: str, sep: str, header: bool | None, known_names: set[str],
                   expected: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Every cell as a string; `header=None` decides from the rows (`known_names`, `expected`: column names
    a header would hold). Raises pandas' ParserError or csv.Error on text that is not a table."""
    import pandas as pd

    quoting = tsv_quoting(text) if sep == "\t" else csv.QUOTE_MINIMAL
    if header is None:
        header = has_header(text, sep, known_names, expected, quoting=quoting)
    frame = pd.read_csv(io.StringIO(text), sep=sep, header=0 if header else None, dtype=str,
                        keep_default_na=False, quoting=quoting)
    if not header:
        frame.columns = list(range(frame.shape[1]))
    return frame


def tsv_quoting(text: str) -> int:
    """TSV comes in two dialects. Quoted, as pandas and spreadsheets write it: a cell holding a tab, a line
    break or a quote sits between quotes. Plain, as GLUE's files are: a quote is a character like any other,
    and a cell may open one it never closes. Plain when every line has the same number of cells and quoting
    breaks the file or runs a cell over several lines and tabs (a cell that opened a quote and ran on);
    quoted otherwise. Left ambiguous only by a quoted cell holding both a tab and a line break."""
    if '"' not in text:
        return csv.QUOTE_MINIMAL
    plain_rows, widths, _ = _shape(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    if len(widths) != 1:
        return csv.QUOTE_MINIMAL  # a quoted tab or line break: only quoting reads the file
    try:
        quoted_rows, quoted_widths, ran_on = _shape(csv.reader(io.StringIO(text), delimiter="\t", strict=True))
    except csv.Error:
        return csv.QUOTE_NONE
    if quoted_rows == plain_rows and quoted_widths == widths:
        return csv.QUOTE_MINIMAL
    return csv.QUOTE_NONE if ran_on or quoted_widths != widths else csv.QUOTE_MINIMAL


def _shape(reader: Any) -> tuple[int, set[int], bool]:
    """Rows (blank lines skipped, as pandas skips them), the set of row widths, and whether a cell holds both
    a tab and a line break. Row by row: a large file is not held twice."""
    rows, widths, ran_on = 0, set(), False
    for row in reader:
        if row:
            rows += 1
            widths.add(len(row))
            ran_on = ran_on or any("\t" in cell and "\n" in cell for cell in row)
    return rows, widths, ran_on


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
