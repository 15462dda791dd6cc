"""CSV/TSV reading: the two TSV dialects (quoted as pandas writes it, plain as GLUE's files are), headers."""

import csv
import os

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtune.data.delimited import TableError, has_header, read_delimited, tsv_quoting
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


@pytest.mark.parametrize("text", [
    'text\n"first line\nsecond line"\nnext\n',  # one column: a two-line text, or two lines with quotes?
    'text\tlabel\n"Hello there\t1\nworld"\t0\nx\t1\n',  # a text with a tab and a line break, or a stray quote?
])
def test_quotes_that_read_two_ways_are_refused_with_the_lines(text):
    with pytest.raises(TableError, match="line 2: the quotes in this TSV read two ways: as quoting, lines 2-3 are "
                                         "one row; as text, every line is a row"):
        read_delimited(text, "\t", True, KNOWN_NAMES)


def test_a_header_ending_in_a_tab_is_as_wide_as_its_plain_rows():
    text = 'text\tlabel\t\n"Worst film ever\tneg\nI would call it "fine\tpos\nok\tpos\n'
    frame = read_delimited(text, "\t", True, KNOWN_NAMES)
    assert list(frame["text"]) == ['"Worst film ever', 'I would call it "fine', "ok"]
    assert list(frame["label"]) == ["neg", "pos", "pos"]


@pytest.mark.parametrize("sep", [",", "\t"])
def test_rows_wider_than_the_header_are_refused_and_trailing_separators_are_not(sep):
    with pytest.raises(TableError, match="line 2: 3 cells, but the header names 2"):
        read_delimited(f"text{sep}label\na b{sep}neg{sep}3\nc d{sep}pos{sep}4\n", sep, True, KNOWN_NAMES)
    frame = read_delimited(f"text{sep}label\na b{sep}neg{sep}\nc d{sep}pos{sep}\n", sep, True, KNOWN_NAMES)
    assert list(frame["text"]) == ["a b", "c d"] and list(frame["label"]) == ["neg", "pos"]


@pytest.mark.parametrize("sep", [",", "\t"])
def test_old_mac_line_ends_read_with_their_header(sep):
    text = f"text{sep}label\r" + "".join(f"review {i} was fine{sep}{['neg', 'pos'][i % 2]}\r" for i in range(6))
    frame = read_delimited(text, sep, None, KNOWN_NAMES)
    assert list(frame.columns) == ["text", "label"] and len(frame) == 6


def test_a_csv_quote_that_does_not_close_its_cell_is_refused():
    text = 'text,label\nfine,1\n"I said hi,1\nbye" he said,0\nok,1\n'
    with pytest.raises(TableError, match="line 4: a quoted cell is not closed where it ends"):
        read_delimited(text, ",", True, KNOWN_NAMES)


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
def test_any_tsv_pandas_writes_reads_back_as_it_was_or_is_refused_as_ambiguous(rows):
    frame = pd.DataFrame(rows, columns=["text", "label"])
    text = frame.to_csv(sep="\t", index=False)
    try:
        read = read_delimited(text, "\t", True, KNOWN_NAMES)
    except TableError as err:  # only a cell over several lines can make the two readings both hold
        assert "read two ways" in str(err) and any("\n" in cell for row in rows for cell in row)
        return
    pd.testing.assert_frame_equal(read, frame)


_plain_cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n\t"),
                       min_size=1, max_size=15).filter(
    lambda cell: cell.strip() and not (len(cell) >= 2 and cell[0] == cell[-1] == '"'))


@settings(max_examples=1000 if LONG else 100, deadline=None)
@given(st.lists(st.tuples(_plain_cells, _plain_cells), min_size=1, max_size=8))
def test_any_plain_tsv_reads_back_cell_for_cell_or_is_refused_as_ambiguous(rows):
    """Cells written as they are, quotes and all; only a cell wrapped whole in quotes reads as quoted."""
    text = _plain_tsv([["text", "label"], *map(list, rows)])
    try:
        frame = read_delimited(text, "\t", True, KNOWN_NAMES)
    except TableError as err:  # a quote opening a cell, closed at the end of a cell lines below
        assert "read two ways" in str(err) and any(cell.startswith('"') for row in rows for cell in row)
        return
    assert [tuple(row) for row in frame.itertuples(index=False)] == rows


def test_csv_keeps_csv_quoting():
    text = 'text,label\n"a, b",x\n"say ""hi""",y\n'
    assert list(read_delimited(text, ",", True, KNOWN_NAMES)["text"]) == ["a, b", 'say "hi"']
    assert read_delimited(text, ",", None, KNOWN_NAMES).columns[0] == "text"
