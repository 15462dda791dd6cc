import json

import pandas as pd
import pytest

from seqtune import SeqtuneError
from seqtune.data.files import TextTask, infer_task, load_files, read_table, to_dataset

from ..conftest import topic_rows


def _write(path, rows, fmt, header=True):
    frame = pd.DataFrame(rows)
    if fmt == "csv":
        frame.to_csv(path, index=False, header=header)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t", header=header)
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_every_format_reads_and_infers(tmp_path, fmt):
    path = _write(tmp_path / f"data.{fmt}", topic_rows(30), fmt)
    splits, task = load_files(path, validation_split=0.2, seed=1)
    assert task.text_columns == ["text"] and task.label_column == "label"
    assert task.task_type == "classification" and task.label_names == ["food", "sports", "tech"]
    assert len(splits["train"]) == 24 and len(splits["validation"]) == 6
    assert sorted(splits["validation"]["label"]) == [0, 0, 1, 1, 2, 2]  # stratified


def test_no_header_infers_text_and_label_by_content(tmp_path):
    path = _write(tmp_path / "data.csv", topic_rows(12), "csv", header=False)
    frame = read_table(path)
    assert list(frame.columns) == [0, 1]
    task = infer_task(frame)
    assert task.text_columns == [0] and task.label_column == 1
    explicit = infer_task(read_table(path, header=False), text_columns=["0"], label_column="1")
    assert explicit.text_columns == [0]


def test_pairs_integer_labels_and_regression(tmp_path):
    pairs = [{"premise": f"p {i} words here", "hypothesis": f"h {i} words", "label": i % 2} for i in range(10)]
    task = infer_task(read_table(_write(tmp_path / "p.csv", pairs, "csv")))
    assert task.text_columns == ["premise", "hypothesis"] and task.label_names == ["0", "1"]
    scores = [{"sentence1": "a b c", "sentence2": "d e f", "score": i / 3} for i in range(9)]
    regression = infer_task(read_table(_write(tmp_path / "s.jsonl", scores, "jsonl")))
    assert regression.task_type == "regression" and regression.num_labels == 1
    forced = infer_task(read_table(tmp_path / "p.csv"), task_type="regression")
    assert forced.task_type == "regression"


def test_string_labels_round_trip_to_ids_in_sorted_order(tmp_path):
    path = _write(tmp_path / "d.csv", [{"text": "x y z", "label": lab} for lab in ["pos", "neg", "pos"]], "csv")
    splits, task = load_files(path, validation=path)
    assert task.label_names == ["neg", "pos"] and splits["train"]["label"] == [1, 0, 1]


@pytest.mark.parametrize("content, name, message", [
    ("colA,colB\nfoo bar baz qux quux,1\n", "d.csv", "cannot tell which columns hold the text; found 'colA', 'colB'"),
    ("text,label\n,1\nok text,0\n", "d.csv", "row 1: the text in column 'text' is missing or empty"),
    ("text,label\na,1\n", "d.json", "not valid JSON"),
    ("", "d.csv", "the file is empty"),
    ("text,label\n", "d.txt", "cannot tell the format from '.txt'"),
])
def test_errors_say_what_and_where(tmp_path, content, name, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(SeqtuneError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_files(path, validation=path)


def test_non_utf8_and_unknown_validation_label(tmp_path):
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("text,label\ncaf\xe9 au lait,1\n".encode("latin-1"))
    with pytest.raises(SeqtuneError, match=r"line 2: not UTF-8 text"):
        load_files(bad, validation=bad)
    train = _write(tmp_path / "t.csv", [{"text": "abc def", "label": "a"}, {"text": "ghi jkl", "label": "b"}], "csv")
    dev = _write(tmp_path / "v.csv", [{"text": "abc def", "label": "c"}], "csv")
    with pytest.raises(SeqtuneError, match="row 1: label 'c' is not one of the training labels"):
        load_files(train, validation=dev)
    missing = _write(tmp_path / "m.csv", [{"sentence": "abc def", "label": "a"}], "csv")
    with pytest.raises(SeqtuneError, match="no column 'text'"):
        load_files(train, validation=missing)


def test_id_cells_are_a_trained_models_ids_only_when_asked(tmp_path):
    """A validation file of 0/1 beside training names is refused (its ids' order is unknown); a trained model's
    ids (evaluate) map to its names, in the model's order."""
    rows = [{"text": "abc def", "label": "pos"}, {"text": "ghi jkl", "label": "neg"}]
    train = _write(tmp_path / "t.csv", rows, "csv")
    dev = _write(tmp_path / "v.csv", [{"text": "abc def", "label": 1}, {"text": "ghi", "label": 0}], "csv")
    with pytest.raises(SeqtuneError, match="row 1: label '1' is not one of the training labels"):
        load_files(train, validation=dev)
    task = TextTask(["text"], "label", "classification", ["not_equivalent", "equivalent"])
    frame = read_table(dev)
    assert to_dataset(frame, task, "v.csv", ids_for_names=True)["label"] == [1, 0]
    with pytest.raises(SeqtuneError, match="row 1: label '1' is not one of the training labels"):  # all or none
        to_dataset(frame.assign(label=["1", "2"]), task, "v.csv", ids_for_names=True)


def test_python_api_passes_files_to_datasets(tmp_path):
    from seqtune import load_dataset

    path = _write(tmp_path / "d.parquet", topic_rows(6), "parquet")
    assert load_dataset("parquet", data_files=str(path))["train"].num_rows == 6


TOPIC_NEWS = {
    "Business": ["Stocks rallied on Tuesday after the central bank held rates",
                 "The retailer cut its profit forecast as shoppers spent less on clothing this spring",
                 "Oil prices slipped for a third day, weighed down by rising stockpiles in the US",
                 "A merger between the two airlines would create the largest carrier in Europe"],
    "Sports": ["The home side scored twice in the final ten minutes to win the derby",
               "She retained her title in straight sets and now eyes a record tenth crown",
               "Injuries forced the coach to field an unusually young team against the champions",
               "The marathon was moved to dawn because of the heat wave"],
    "Science": ["Astronomers spotted water vapour in the atmosphere of a distant planet",
                "A new battery chemistry could double the range of electric cars, researchers say",
                "The probe sent back the sharpest images yet of the moon's cratered south pole",
                "Fossils found in a quarry suggest feathers evolved earlier than thought"],
    "World": ["Leaders met in Geneva to discuss a ceasefire, though no deal was reached",
              "Floods displaced thousands of families across the northern provinces overnight",
              "The new president promised sweeping reforms in his first speech to parliament",
              "Voters head to the polls on Sunday in a closely watched regional election"],
}


def _news_rows(n: int = 40) -> list[tuple[str, str]]:
    """Headerless news: long, varied sentences (8-20 words) over a handful of string labels."""
    labels = list(TOPIC_NEWS)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        text = TOPIC_NEWS[label][(i // len(labels)) % 4]
        rows.append((text if i < 16 else f"{text}, update {i}", label))
    return rows


def _write_plain(path, rows, sep: str):
    pd.DataFrame(rows).to_csv(path, index=False, header=False, sep=sep)
    return path


@pytest.mark.parametrize("suffix, sep", [("tsv", "\t"), ("csv", ",")])
def test_headerless_news_keeps_every_row(tmp_path, suffix, sep):
    rows = _news_rows()
    assert all(8 <= len(text.split()) <= 20 for text, _ in rows)
    train = _write_plain(tmp_path / f"train.{suffix}", rows, sep)
    dev = _write_plain(tmp_path / f"dev.{suffix}", rows[5:25], sep)
    frame = read_table(train)
    assert list(frame.columns) == [0, 1] and len(frame) == len(rows)
    assert frame.iloc[0].tolist() == list(rows[0])
    splits, task = load_files(train, dev)
    assert task.text_columns == [0] and task.label_column == 1
    assert task.label_names == ["Business", "Science", "Sports", "World"]
    assert len(splits["train"]) == len(rows) and len(splits["validation"]) == 20


def test_headerless_with_index_columns_keeps_every_row(tmp_path):
    rows = _news_rows()
    path = _write_plain(tmp_path / "news.tsv", rows, "\t")
    splits, task = load_files(path, text_columns=["0"], label_column="1", validation_split=0.25)
    assert task.text_columns == [0] and task.label_column == 1
    assert len(splits["train"]) + len(splits["validation"]) == len(rows)


@pytest.mark.parametrize("first, expected", [
    ("text\tlabel", True),  # known names
    ("headline\ttopic", True),  # short, unknown names that never repeat below: Sniffer decides
    ("Stocks rallied on Tuesday after the central bank held rates\tBusiness", False),  # a sentence
    ("Markets\tBusiness", False),  # 'Business' occurs again in its column
    ("Rates\t3", False),  # a column name is not a bare number
])
def test_header_or_first_data_row(tmp_path, first, expected):
    path = tmp_path / "d.tsv"
    path.write_text(first + "\n" + "".join(f"{text}\t{label}\n" for text, label in _news_rows(12)))
    frame = read_table(path)
    assert (list(frame.columns) == first.split("\t")) is expected
    assert len(frame) == 12 + (not expected)


def test_explicit_header_argument_wins(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("headline\ttopic\n" + "".join(f"{t}\t{lab}\n" for t, lab in _news_rows(8)))
    assert len(read_table(path, header=False)) == 9
    assert list(read_table(_write_plain(tmp_path / "n.tsv", _news_rows(8), "\t"), header=True).columns) == \
        list(_news_rows(1)[0])


@pytest.mark.parametrize("first, expected", [
    ("Text of the review\tpolarity", True),  # a long name over a column of a few labels it is not one of
    ("a really quite dull plot and poor acting throughout\ty", False),  # 'y' is a label name, and recurs below
    ("label\tlabel", True),
])
def test_header_told_by_the_label_column_under_it(tmp_path, first, expected):
    rows = [(f"{'great fun' if i % 2 else 'dull and slow'} film number {i}", "y" if i % 2 else "n")
            for i in range(12)]
    path = tmp_path / "d.tsv"
    path.write_text(first + "\n" + "".join(f"{text}\t{label}\n" for text, label in rows))
    frame = read_table(path)
    assert len(frame) == 12 + (not expected)


def test_a_trained_models_columns_tell_its_input_files_header(tmp_path):
    path = tmp_path / "new.csv"
    path.write_text("comment\nnice\ngreat film\n")
    assert len(read_table(path, expected_columns=["comment"])) == 2
    assert list(read_table(path, expected_columns=["comment"]).columns) == ["comment"]


def test_the_same_column_as_text_and_label_is_refused(tmp_path):
    path = _write_plain(tmp_path / "n.tsv", _news_rows(8), "\t")
    with pytest.raises(SeqtuneError, match="column 1 is given as both a text and the label"):
        infer_task(read_table(path), text_columns=["1"], label_column="1")


@pytest.mark.parametrize("rows, fraction, message", [
    (1, 0.5, "leaves no row for training"),
    (20, 0.01, None),  # 1 row held out from 3 classes: a plain seeded split, not a traceback
    (20, 0.1, None),
])
def test_validation_split_too_small_for_the_classes(tmp_path, rows, fraction, message):
    path = _write(tmp_path / "d.csv", topic_rows(rows), "csv")
    if message:
        with pytest.raises(SeqtuneError, match=message):
            load_files(path, validation_split=fraction)
    else:
        splits, _ = load_files(path, validation_split=fraction)
        assert len(splits["train"]) + len(splits["validation"]) == rows


# Label cells: missing, padded, single-class, multi-label (issue 13: no run silently trains on garbage).

NA_CELLS = ["", " ", "nan", "NaN", "None", "null", "N/A", "NA", "<NA>"]


def _labelled(labels, column="label"):
    return [{"text": f"some words here {i}", column: label} for i, label in enumerate(labels)]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_rows_with_no_label_are_refused_with_their_rows(tmp_path, fmt):
    labels = ["pos", None, "neg", "pos", None, "neg", "pos", "neg", None]  # null in JSON/Parquet, "" in CSV/TSV
    path = _write(tmp_path / f"t.{fmt}", _labelled(labels), fmt)
    with pytest.raises(SeqtuneError) as err:
        load_files(path, validation_split=0.3)
    assert str(err.value) == f"{path}: 3 rows have no label (rows 2, 5, 9); fill or drop them"


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json"])
def test_every_na_spelling_and_blank_is_no_label(tmp_path, fmt):
    path = _write(tmp_path / f"t.{fmt}", _labelled(["pos", "neg", *NA_CELLS, "  "]), fmt)
    with pytest.raises(SeqtuneError) as err:
        load_files(path)
    assert str(err.value) == f"{path}: 10 rows have no label (rows 3, 4, 5, 6, 7, ...); fill or drop them"


def test_a_class_spelled_in_lower_case_none_stays_a_class(tmp_path):
    path = _write(tmp_path / "t.csv", _labelled(["none", "pos", "none"]), "csv")  # pandas' NA list is cased too
    assert load_files(path)[1].label_names == ["none", "pos"]


def test_no_label_in_the_validation_file_names_it(tmp_path):
    train = _write(tmp_path / "t.csv", _labelled(["pos", "neg"]), "csv")
    dev = _write(tmp_path / "v.parquet", _labelled(["pos", None, "neg"]), "parquet")
    with pytest.raises(SeqtuneError) as err:
        load_files(train, validation=dev)
    assert str(err.value) == f"{dev}: 1 row has no label (row 2); fill or drop it"


def test_a_stored_parquet_index_does_not_renumber_rows(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame(_labelled(["pos", None, "neg"]), index=[7, 3, 9]).to_parquet(path)
    with pytest.raises(SeqtuneError, match=r"1 row has no label \(row 2\)"):
        load_files(path)


def test_drop_unlabelled_drops_counts_and_keeps_file_rows(tmp_path, capsys):
    train = _write(tmp_path / "t.csv", _labelled(["pos", "", "neg", "nan", "pos", "neg"]), "csv")
    dev = _write(tmp_path / "v.json", _labelled(["pos", None, "neg"]), "json")
    splits, task = load_files(train, validation=dev, drop_unlabelled=True)
    out = capsys.readouterr().out
    assert f"seqtune: dropped 2 rows with no label from {train}\n" in out
    assert f"seqtune: dropped 1 row with no label from {dev}\n" in out
    assert task.label_names == ["neg", "pos"]
    assert splits["train"]["label"] == [1, 0, 1, 0] and splits["validation"]["label"] == [1, 0]
    bad = _write(tmp_path / "b.csv", _labelled(["pos", "", "zzz"]), "csv")
    with pytest.raises(SeqtuneError, match="row 3: label 'zzz' is not one of the training labels"):
        load_files(train, validation=bad, drop_unlabelled=True)  # still row 3 of the file, after the drop
    everything = _write(tmp_path / "e.csv", _labelled(["", "nan"]), "csv")
    with pytest.raises(SeqtuneError, match="no row is left with a label; there is nothing to train on"):
        load_files(everything, drop_unlabelled=True)


def test_labels_are_trimmed_in_every_file(tmp_path):
    train = _write(tmp_path / "t.csv", _labelled([" pos", "pos ", "neg", "  neg  "]), "csv")
    dev = _write(tmp_path / "v.json", _labelled(["pos ", " neg"]), "json")
    test = _write(tmp_path / "x.tsv", _labelled([" neg", "pos   "]), "tsv")
    splits, task = load_files(train, dev, test)
    assert task.label_names == ["neg", "pos"]
    assert splits["train"]["label"] == [1, 1, 0, 0]
    assert splits["validation"]["label"] == [1, 0] and splits["test"]["label"] == [0, 1]
    numbers = _write(tmp_path / "n.csv", _labelled([" 1", "0 ", "1", "2.0"]), "csv")
    splits, task = load_files(numbers)
    assert task.label_names == ["0", "1", "2"] and splits["train"]["label"] == [1, 0, 1, 2]


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_a_score_column_with_gaps_stays_regression_and_is_refused(tmp_path, fmt):
    scores = [0.5, None, 1.25, 3.0, None, 2.75]  # NaN in Parquet, null in JSON, "" in CSV
    path = _write(tmp_path / f"s.{fmt}", _labelled(scores, "score"), fmt)
    assert infer_task(read_table(path)).task_type == "regression"  # decided on the values that are there
    with pytest.raises(SeqtuneError) as err:
        load_files(path)
    assert str(err.value) == f"{path}: 2 rows have no label (rows 2, 5); fill or drop them"


def test_nan_spelled_in_a_score_column(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("text,score\na b c,0.5\nd e f,nan\ng h i,1.25\nj k l,NaN\n")
    task = infer_task(read_table(path))
    assert task.task_type == "regression" and task.label_names == []
    with pytest.raises(SeqtuneError, match=r"2 rows have no label \(rows 2, 4\)"):
        load_files(path)
    train = _write(tmp_path / "t.csv", _labelled([0.5, 1.5, 2.5], "score"), "csv")
    dev = tmp_path / "v.csv"
    dev.write_text("text,score\na b c,0.5\nd e f,inf\n")
    with pytest.raises(SeqtuneError, match="row 2: label 'inf' is not a finite number, and this is a regression"):
        load_files(train, validation=dev)


@pytest.mark.parametrize("labels, fmt, message", [
    (["pos", " pos", "pos "], "csv", "every row has the label 'pos'; a classifier needs at least two classes"),
    ([1, 1, 1.0], "parquet", "every row has the label '1'; a classifier needs at least two classes"),
    ([2.5, 2.5, 2.5], "jsonl", "every row has the target 2.5; a regression model needs targets that vary"),
])
def test_one_class_or_one_target_is_refused(tmp_path, labels, fmt, message):
    path = _write(tmp_path / f"t.{fmt}", _labelled(labels), fmt)
    with pytest.raises(SeqtuneError) as err:
        load_files(path)
    assert str(err.value) == f"{path}: {message}"
    assert infer_task(read_table(path)).label_column == "label"  # a one-class file to evaluate on is fine


def test_a_validation_split_that_leaves_training_one_class_is_refused(tmp_path):
    from seqtune.data.files import stratified_split

    path = _write(tmp_path / "t.csv", _labelled(["pos"] * 5 + ["neg"]), "csv")
    frame = read_table(path)
    task = infer_task(frame)
    seed = next(s for s in range(100) if "neg" not in stratified_split(frame, task, 0.5, s)[0]["label"].tolist())
    with pytest.raises(SeqtuneError, match=r"t\.csv \(the training rows left by --validation-split 0\.5\): every "
                                           "row has the label 'pos'"):
        load_files(path, validation_split=0.5, seed=seed)


@pytest.mark.parametrize("fmt, rows, row, other", [
    ("json", [{"text": "a b c", "label": "x"}, {"text": "d e f", "label": ["x", "y"]}], 1, 2),
    ("jsonl", [{"text": "a b c", "label": "x"}, {"text": "d e f", "label": []}], 1, 2),
    ("csv", [{"text": "a b c", "label": "x"}, {"text": "d e f", "label": "y"}, {"text": "g h", "label": '["x", "y"]'}],
     1, 3),
])
def test_list_cells_beside_single_labels_are_refused(tmp_path, fmt, rows, row, other):
    path = _write(tmp_path / f"t.{fmt}", rows, fmt)
    with pytest.raises(SeqtuneError) as err:
        load_files(path)
    assert str(err.value) == (f"{path}: row {row}: the label 'x' is a single value, but other rows hold lists "
                              f"(row {other}); write every label cell as a list")


def test_list_cells_are_multi_label(tmp_path):
    path = _write(tmp_path / "t.parquet", [{"text": "a b c", "label": ["x"]}, {"text": "d e f", "label": ["x", "y"]}],
                  "parquet")
    splits, task = load_files(path, validation=path)
    assert task.task_type == "multi_label" and splits["train"]["label"] == [[1.0, 0.0], [1.0, 1.0]]


def test_multi_label_cells_in_the_validation_file(tmp_path):
    train = _write(tmp_path / "t.csv", _labelled(["x", "y"]), "csv")
    dev = _write(tmp_path / "v.json", [{"text": "a b", "label": "x"}, {"text": "c d", "label": ["x", "y"]}], "json")
    with pytest.raises(SeqtuneError, match=r"v\.json: row 2: the label \['x', 'y'\] is a list"):
        load_files(train, validation=dev)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_rows_named_after_a_validation_split_are_the_files_rows(tmp_path, seed):
    from seqtune.data.files import stratified_split

    rows = topic_rows(20)
    rows[12]["text"] = " "
    path = _write(tmp_path / "t.csv", rows, "csv")
    with pytest.raises(SeqtuneError, match="row 13: the text in column 'text' is missing"):
        load_files(path, validation_split=0.3, seed=seed)
    frame = read_table(path)
    train, validation = stratified_split(frame, infer_task(frame), 0.3, seed)
    assert sorted([*train.index, *validation.index]) == list(range(20))  # the file's rows, not renumbered
    scores = _labelled([0.5, 1.5, 2.5, 3.5, 4.5, "abc", 6.5, 7.5], "score")
    path = _write(tmp_path / "s.csv", scores, "csv")
    with pytest.raises(SeqtuneError, match="row 6: label 'abc' is not a finite number"):
        load_files(path, task_type="regression", validation_split=0.25, seed=seed)


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # an optional dev dependency: the example tests above still run
    given = None

if given is not None:
    import os

    LABEL_CELLS = ["pos", "neg", "neu", " pos", "neg ", "  neu ", "1", "2", " 2", "2.5", *NA_CELLS, "none", "[pos]"]
    LONG = os.environ.get("SEQTUNE_LONG_TESTS") == "1"

    @settings(max_examples=1000 if LONG else 60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(rows=st.lists(st.tuples(st.text("abcdefgh ", min_size=1, max_size=12), st.sampled_from(LABEL_CELLS)),
                         min_size=1, max_size=12),
           split=st.sampled_from([None, 0.3]), drop=st.booleans())
    def test_any_label_column_loads_cleanly_or_says_why_in_one_line(tmp_path, rows, split, drop):
        path = tmp_path / "p.csv"
        pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
        try:
            splits, task = load_files(path, validation_split=split, drop_unlabelled=drop)
        except SeqtuneError as err:
            assert str(err) and "\n" not in str(err)
            return
        labelled = [cell.strip() for _, cell in rows if cell.strip() not in NA_CELLS]
        if task.task_type == "multi_label":  # list cells ("[pos]"), none beside a single label; blank: no label
            assert labelled and all(cell.startswith("[") for cell in labelled) and task.label_names == ["pos"]
            assert sum(part.num_rows for part in splits.values()) == len(rows)
            return
        assert labelled and not any(cell.startswith("[") for cell in labelled)
        if task.task_type == "classification":
            assert len(task.label_names) >= 2
            assert all(name == name.strip() and name not in NA_CELLS for name in task.label_names)
            numbers = {c: float(c) for c in labelled if c[0].isdigit()}  # "2" and "2.0" are one class
            assert {(f"{numbers[c]:g}" if c in numbers else c) for c in labelled} == set(task.label_names)
            for split_rows in splits.values():
                assert all(0 <= label < len(task.label_names) for label in split_rows["label"])
        else:
            assert len({float(c) for c in labelled}) >= 2
            assert sorted(label for part in splits.values() for label in part["label"]) == \
                sorted(float(c) for c in labelled)
        assert sum(part.num_rows for part in splits.values()) == len(labelled)
