"""Multi-label data from files: label cells parsed (delimited, lists, 0/1 columns, ids), inferred, refused."""

import json
import os

import pandas as pd
import pytest

from seqtune import SeqtuneError
from seqtune.data.files import infer_task, load_files, read_table
from seqtune.data.labels import infer_separator, parse_cell, read_label_names


def _rows(labels, texts=None):
    return [{"text": (texts or {}).get(i, f"some words here {i}"), "label": label} for i, label in enumerate(labels)]


def _write(path, rows):
    frame = pd.DataFrame(rows)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return path


DELIMITED = ["a|b", "a", "", "b|c", "c", "a|c", "b", "a|b|c"]


@pytest.mark.parametrize("cell, separator, expected", [
    ("sports|politics", "|", ["sports", "politics"]), ("8,20", ",", ["8", "20"]), (" a ; b ", ";", ["a", "b"]),
    ("a|a", "|", ["a"]), ("", "|", []), ("  ", ",", []), ("nan", ",", []), (None, None, []), (float("nan"), ",", []),
    ('["x", "y"]', None, ["x", "y"]), ("['x', 'y']", None, ["x", "y"]), ("[x, y]", None, ["x", "y"]),
    ("[]", None, []), (["b", "a"], None, ["b", "a"]), ([1, 2.0], None, ["1", "2"]), (3, None, ["3"]),
    ("a,b", None, ["a,b"]),
])
def test_cells_parse_to_label_names(cell, separator, expected):
    assert parse_cell(cell, separator) == expected


@pytest.mark.parametrize("cell, separator, reason", [
    ("a||b", "|", "has an empty label between separators"), ("a,", ",", "has an empty label"),
    ('["a", "b"', None, "opens a list with \\[ but never closes it"), ("[a, [b]", None, "not a list of names"),
    ([["a"], "b"], None, "nested list"), (["a", None], None, "not a label name"),
])
def test_cells_that_do_not_parse_say_why(cell, separator, reason):
    with pytest.raises(ValueError, match=reason):
        parse_cell(cell, separator)


def test_separator_inferred_only_when_parts_are_labels():
    assert infer_separator(pd.Series(DELIMITED)) == "|"
    assert infer_separator(pd.Series(["8,20", "3", "8", "20,3", "3,8"])) == ","
    # One category with a comma in its name, repeated: its parts are never labels on their own.
    one_name = ["Clothing, Shoes & Jewelry", "Books", "Clothing, Shoes & Jewelry", "Toys", "Books"] * 4
    assert infer_separator(pd.Series(one_name)) is None
    assert infer_separator(pd.Series(["pos", "neg", "pos", "neu"])) is None
    assert infer_separator(pd.Series(["a|b", "c", "d", "e"] + ["f"] * 60)) is None  # one row in 64: not "many"


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_multi_label_inferred_said_and_multi_hot(tmp_path, suffix, capsys):
    lists = suffix != ".csv"
    labels = [cell.split("|") if cell and lists else ([] if lists else cell) for cell in DELIMITED] * 3
    path = _write(tmp_path / f"t{suffix}", _rows(labels))
    splits, task = load_files(path, validation=path)
    assert task.task_type == "multi_label" and task.label_names == ["a", "b", "c"]
    assert task.label_separator == (None if lists else "|")
    assert splits["train"]["label"][:3] == [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    printed = capsys.readouterr().out
    how = "list cells" if lists else "cells split on '|'"
    assert f"seqtune: multi-label classification: 3 labels (a, b, c) from {how}; 3 training rows have no label" \
        in printed


def test_forced_separator_and_task_type(tmp_path):
    path = _write(tmp_path / "t.csv", _rows(["x;y", "x", "y", "z"]))
    splits, task = load_files(path, validation=path, label_separator=";")
    assert task.label_names == ["x", "y", "z"] and splits["train"]["label"][0] == [1.0, 1.0, 0.0]
    _, single = load_files(path, validation=path, task_type="classification")
    assert single.task_type == "classification" and single.label_names == ["x", "x;y", "y", "z"]
    # one row holds ";": no separator is inferred, and "x;y" beside x and y is refused rather than learnt
    with pytest.raises(SeqtuneError, match=r"label 'x;y' is the labels x, y joined by ';', but label cells are "
                                           r"not split"):
        load_files(path, validation=path, task_type="multi_label")


def test_label_ids_named_by_a_file(tmp_path):
    names = tmp_path / "emotions.txt"
    names.write_text("joy\nanger\nfear\n\n")
    assert read_label_names(names) == ["joy", "anger", "fear"]
    path = _write(tmp_path / "t.csv", _rows(["0,2", "1", "", "2,0", "0", "1,2"]))
    splits, task = load_files(path, validation=path, label_names=names)
    assert task.label_names == ["joy", "anger", "fear"] and task.names_file == str(names)
    assert splits["train"]["label"][:3] == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    _, single = load_files(_write(tmp_path / "s.csv", _rows(["0", "2", "1", "0"])), label_names=["a", "b", "c"],
                           validation_split=0.5)
    assert single.task_type == "classification" and single.label_names == ["a", "b", "c"]


def test_zero_one_columns_repeated_label_column(tmp_path):
    rows = [{"text": f"words {i}", "sports": i % 2, "food": int(i % 3 == 0), "tech": 0} for i in range(12)]
    path = _write(tmp_path / "t.csv", rows)
    splits, task = load_files(path, validation=path, label_column=["sports", "food", "tech"])
    assert task.task_type == "multi_label" and task.label_names == ["sports", "food", "tech"]
    assert task.text_columns == ["text"]
    assert splits["validation"]["label"][:4] == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]


def test_rows_with_no_label_stay_valid_through_a_split(tmp_path):
    path = _write(tmp_path / "t.csv", _rows(DELIMITED * 4))
    splits, _ = load_files(path, validation_split=0.25, drop_unlabelled=True)
    assert len(splits["train"]) + len(splits["validation"]) == 32  # nothing dropped: the empty set is a label
    assert sum(not any(row) for split in splits.values() for row in split["label"]) == 4


# ---- bad input: one line each, the row named -------------------------------------------------------------

@pytest.mark.parametrize("name, labels, kwargs, message", [
    ("t.csv", ["a|b", "a||b", "b", "a|b"], {}, "row 2: the label cell 'a||b' has an empty label between separators"),
    ("t.csv", ["a", "b", '["a", "b"'], {"task_type": "multi_label"},
     """row 3: the label cell '["a", "b"' opens a list with [ but never closes it"""),
    ("t.json", [["a", "b"], "a", ["b"]], {}, "row 2: the label 'a' is a single value, but other rows hold lists "
                                              "(row 1); write every label cell as a list"),
    ("t.csv", ["0,1", "2", "5", "1,2"], {"label_names": ["x", "y", "z"]},
     "row 3: the label cell '5' holds the label id 5, past the 3 names of label_names (ids 0 to 2)"),
    ("t.csv", ["a|b", "a|b", "a|b"], {"label_separator": "|"}, "every row has the labels a, b"),
    ("t.csv", ["", "", ""], {"task_type": "multi_label"}, "no row has a label; there is nothing to train on"),
    ("t.csv", ["a|b", "b", "a"], {"label_separator": "|", "task_type": "regression"},
     "--label-separator applies to multi-label data, but the task type is regression"),
    ("t.json", [["x", "y"], ["x"]], {"task_type": "classification"},
     "row 1: the label ['x', 'y'] is a list, but this task has one label a row; pass --task-type multi_label"),
])
def test_bad_label_cells_are_one_line_with_the_row(tmp_path, name, labels, kwargs, message):
    path = _write(tmp_path / name, _rows(labels))
    with pytest.raises(SeqtuneError) as err:
        load_files(path, validation=path, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_validation_label_never_trained_on(tmp_path):
    train = _write(tmp_path / "t.csv", _rows(["a|b", "b", "a", "a|b"]))
    dev = _write(tmp_path / "v.csv", _rows(["a", "b|c"]))
    with pytest.raises(SeqtuneError, match=r"v\.csv: row 2: label 'c' is not one of the training labels \(a, b\)"):
        load_files(train, validation=dev)


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty; write one label name per line"),
    ("\n\n", "the file is empty"),
    ("joy\n\nfear\n", "line 2 is blank"),
    ("joy\nfear\njoy\n", "line 3 repeats the name 'joy' of line 1; each label is named once"),
])
def test_bad_names_files(tmp_path, content, message):
    names = tmp_path / "names.txt"
    names.write_text(content)
    with pytest.raises(SeqtuneError, match=message):
        read_label_names(names)


def test_bad_zero_one_columns(tmp_path):
    rows = [{"text": f"words {i}", "x": i % 2, "y": "maybe" if i == 3 else 1} for i in range(6)]
    path = _write(tmp_path / "t.csv", rows)
    with pytest.raises(SeqtuneError, match="row 4: column 'y' holds 'maybe'; label columns given as several "
                                           "--label-column hold 0 or 1"):
        load_files(path, validation=path, label_column=["x", "y"])
    with pytest.raises(SeqtuneError, match="no --label-separator"):
        load_files(path, validation=path, label_column=["x", "y"], label_separator="|")


def test_headerless_and_infer_task_alone(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("".join(f"some longer words number {i},{cell}\n" for i, cell in enumerate(DELIMITED * 2)))
    frame = read_table(path, header=False)
    task = infer_task(frame, text_columns=["0"], label_column="1")
    assert task.task_type == "multi_label" and task.label_names == ["a", "b", "c"]


# ---- properties of the cell parser -------------------------------------------------------------------------

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # an optional dev dependency: the example tests above still run
    given = None

if given is not None:
    from seqtune.data.files import NA_SPELLINGS

    LONG = os.environ.get("SEQTUNE_LONG_TESTS") == "1"
    NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters=",|;[]"),
                    min_size=1, max_size=8).filter(lambda n: n.strip() == n and n not in NA_SPELLINGS
                                                   and not n.replace(".", "").replace("-", "").replace("+", "")
                                                   .replace("e", "").replace("E", "").isdigit())

    def _unique(names):
        return list(dict.fromkeys(names))

    @settings(max_examples=500 if LONG else 80, deadline=None)
    @given(names=st.lists(NAMES, max_size=6), separator=st.sampled_from([",", "|", ";"]),
           pad=st.sampled_from(["", " ", "  ", "\t"]))
    def test_a_joined_cell_round_trips(names, separator, pad):
        cell = (pad + separator + pad).join(names)
        assert parse_cell(pad + cell + pad, separator) == _unique(names)

    @settings(max_examples=500 if LONG else 80, deadline=None)
    @given(names=st.lists(NAMES, max_size=6))
    def test_a_list_round_trips_as_a_list_json_and_python_text(names):
        assert parse_cell(names) == _unique(names)
        assert parse_cell(json.dumps(names)) == _unique(names)
        assert parse_cell(repr(names)) == _unique(names)

    @settings(max_examples=500 if LONG else 100, deadline=None)
    @given(cell=st.text(max_size=20), separator=st.sampled_from([None, ",", "|", ";"]))
    def test_any_cell_parses_to_clean_names_or_says_why(cell, separator):
        try:
            names = parse_cell(cell, separator)
        except ValueError as err:
            assert str(err) and "\n" not in str(err)
            return
        assert all(name and name == name.strip() for name in names) and len(set(names)) == len(names)
        if separator and not cell.strip().startswith("["):
            assert all(separator not in name for name in names)


def test_labels_joined_by_another_separator_are_refused_not_learnt():
    from seqtune.data.labels import sorted_names

    with pytest.raises(SeqtuneError, match=r"label 'sports,tech' is the labels sports, tech joined by ','"):
        sorted_names([["sports"], ["tech"], ["sports,tech"]], "|", "ml.csv")
    # a name holding a comma is fine when its parts are not labels of their own
    assert sorted_names([["Smith, J."], ["Doe"]], "|", "ml.csv") == ["Doe", "Smith, J."]
