"""CSV/TSV reading: the two TSV dialects (quoted as pandas writes it, plain as GLUE's files are), headers."""

import csv
import os

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtune.data.delimited import has_header, read_delimited, tsv_quoting
from seqtune.data.files import KNOWN_NAMES, read_table

LONG = os.environ.get("SEQTUNE_LONG_TESTS") == "1"


def _plain_tsv(rows: list[list[str]]) -> str:
    return "".join("\t".join(row) + "\n" for row in rows)


def test_a_quote_opened_and_never_closed_is_text_in_a_plain_tsv():
    text = _plain_tsv([["label", "text"], ["1", '"The pie business does not fit.'], ["0", 'He said "100 percent" yes.'],
                       ["1", 'A closing quote."'], ["0", "plain"]])
    assert tsv_quoting(text) == csv.QUOTE_NONE
    frame = read_delimited(text, "\t", True, KNOWN_NAMES)
    assert list(frame["text"]) == ['"The pie business does not fit.', 'He said "100 percent" yes.',
                                   'A closing quote."', "plain"]


def test_quoted_cells_with_tabs_line_breaks_and_quotes_read_as_pandas_wrote_them():
    frame = pd.DataFrame({"text": ['he said "hi"', "a\tb", "two\nlines", '"quoted"'], "label": ["a", "b", "a", "b"]})
    text = frame.to_csv(sep="\t", index=False)
    assert tsv_quoting(text) == csv.QUOTE_MINIMAL
    pd.testing.assert_frame_equal(read_delimited(text, "\t", True, KNOWN_NAMES), frame)


def test_a_one_column_tsv_with_a_quoted_line_break_is_one_row():
    text = 'text\n"first line\nsecond line"\nnext\n'
    assert list(read_delimited(text, "\t", True, KNOWN_NAMES)["text"]) == ["first line\nsecond line", "next"]


def test_a_cell_that_opened_a_quote_and_ran_over_rows_is_read_plain():
    # Quoting would join rows 1 and 2 into one well-formed row whose text holds a tab and a line break.
    text = _plain_tsv([["text", "label"], ['"Hello there', "1"], ['world"', "0"], ["x", "1"]])
    assert tsv_quoting(text) == csv.QUOTE_NONE
    assert list(read_delimited(text, "\t", True, KNOWN_NAMES)["label"]) == ["1", "0", "1"]


def test_glues_mrpc_tsv_reads_every_row_with_its_quotes(glue_dir):
    frame = read_table(glue_dir / "MRPC" / "dev.tsv")
    assert frame.shape == (408, 5) and list(frame.columns)[0] == "Quality"
    assert frame["#2 String"].iloc[0].startswith('"The foodservice pie business')


def test_the_header_is_found_with_the_files_quoting():
    text = _plain_tsv([["Quality", "#1 String", "#2 String"]] +
                      [[str(i % 2), f'"Opening quote {i} with several words', f"The other sentence number {i}."]
                       for i in range(8)])
    assert has_header(text, "\t", KNOWN_NAMES, quoting=tsv_quoting(text))


# No \r: pandas writes a lone \r unquoted, and reads it back as a line end.
_cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=15)


@settings(max_examples=1000 if LONG else 100, deadline=None)
@given(st.lists(st.tuples(_cells, _cells), min_size=1, max_size=8))
def test_any_tsv_pandas_writes_reads_back_as_it_was(rows):
    rows = [row for row in rows if not any("\t" in cell and "\n" in cell for cell in row)]  # the one ambiguity
    frame = pd.DataFrame(rows or [("a", "b")], columns=["text", "label"])
    text = frame.to_csv(sep="\t", index=False)
    pd.testing.assert_frame_equal(read_delimited(text, "\t", True, KNOWN_NAMES), frame)


_plain_cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n\t"), min_size=1,
                       max_size=15).filter(lambda cell: not (len(cell) >= 2 and cell[0] == cell[-1] == '"'))


@settings(max_examples=1000 if LONG else 100, deadline=None)
@given(st.lists(st.tuples(_plain_cells, _plain_cells), min_size=1, max_size=8))
def test_any_plain_tsv_reads_back_cell_for_cell(rows):
    """Cells written as they are, quotes and all; only a cell wrapped whole in quotes reads as quoted."""
    text = _plain_tsv([["text", "label"], *map(list, rows)])
    frame = read_delimited(text, "\t", True, KNOWN_NAMES)
    assert [tuple(row) for row in frame.itertuples(index=False)] == rows


def test_csv_keeps_csv_quoting():
    text = 'text,label\n"a, b",x\n"say ""hi""",y\n'
    assert list(read_delimited(text, ",", True, KNOWN_NAMES)["text"]) == ["a, b", 'say "hi"']
    assert read_delimited(text, ",", None, KNOWN_NAMES).columns[0] == "text"
