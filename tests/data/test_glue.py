import pytest

from seqtune import SeqtuneError, load_dataset


def test_mrpc_counts_columns_and_labels(glue_dir):
    mrpc = load_dataset("glue", "mrpc", data_dir=glue_dir / "MRPC")
    assert {k: len(v) for k, v in mrpc.items()} == {"train": 3668, "validation": 408, "test": 1725}
    assert mrpc["train"].column_names == ["sentence1", "sentence2", "label", "idx"]
    assert mrpc["train"].features["label"].names == ["not_equivalent", "equivalent"]
    assert mrpc["train"].features["idx"].dtype == "int32"
    train = mrpc["train"]
    assert train[0]["label"] == 1 and train[0]["idx"] == 0
    assert train[0]["sentence1"].startswith("Amrozi accused his brother")
    assert sum(train["label"]) == 2474  # the hub's MRPC: 2,474 equivalent pairs in train
    assert set(mrpc["test"]["label"]) == {-1}
    assert mrpc["test"][0]["idx"] == 0 and mrpc["test"][1724]["idx"] == 1724


def test_bom_and_unbalanced_quotes_are_kept_verbatim(glue_dir):
    dev = load_dataset("glue", "MRPC", data_dir=glue_dir)["validation"]
    first = dev[0]
    assert first["label"] == 1  # the BOM did not eat the first header cell
    assert first["sentence2"] == '"The foodservice pie business does not fit our long-term growth strategy.'
    assert dev[1]["sentence2"].startswith('His wife said he was "100 percent behind George Bush"')


def test_glue_dir_environment_variable(glue_dir, monkeypatch):
    monkeypatch.setenv("GLUE_DIR", str(glue_dir))
    assert len(load_dataset("glue", "mrpc")["validation"]) == 408


def test_offline_without_local_copy_fails_fast_naming_glue_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GLUE_DIR", str(tmp_path))
    with pytest.raises(SeqtuneError, match="GLUE_DIR"):
        load_dataset("glue", "mrpc")


def test_on_a_silent_network_glue_gives_up_in_bounded_time(tmp_path, monkeypatch, unreachable_network):
    monkeypatch.setenv("GLUE_DIR", str(tmp_path))
    with pytest.raises(SeqtuneError, match="hub is unreachable"):
        load_dataset("glue", "mrpc")
    assert unreachable_network and all(t is not None and t <= 5 for t in unreachable_network)


def test_unknown_task():
    with pytest.raises(SeqtuneError, match="unknown GLUE task 'mrcp'.*mrpc"):
        load_dataset("glue", "mrcp")


def _write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


MRPC_HEADER = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"


def test_missing_column_names_file_and_column(tmp_path):
    _write(tmp_path / "MRPC", "train.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\n1\t1\t2\tA\n")
    _write(tmp_path / "MRPC", "dev.tsv", MRPC_HEADER + "1\t1\t2\tA\tB\n")
    with pytest.raises(SeqtuneError, match=r"train\.tsv: line 1: missing column '#2 String'"):
        load_dataset("glue", "mrpc", data_dir=tmp_path)


def test_ragged_row_names_file_and_line(tmp_path):
    _write(tmp_path, "train.tsv", MRPC_HEADER + "1\t1\t2\tA\tB\n0\t3\t4\tonly one sentence\n")
    _write(tmp_path, "dev.tsv", MRPC_HEADER + "1\t1\t2\tA\tB\n")
    with pytest.raises(SeqtuneError, match=r"train\.tsv: line 3: 4 tab-separated fields, expected 5"):
        load_dataset("glue", "mrpc", data_dir=tmp_path)


def test_bad_label_value(tmp_path):
    _write(tmp_path, "train.tsv", MRPC_HEADER + "2\t1\t2\tA\tB\n")
    _write(tmp_path, "dev.tsv", MRPC_HEADER + "1\t1\t2\tA\tB\n")
    with pytest.raises(SeqtuneError, match=r"line 2: label '2' is not 0\.\.1"):
        load_dataset("glue", "mrpc", data_dir=tmp_path)


def test_other_tasks_are_table_rows(tmp_path):
    # CoLA: no header in train/dev, label in the 2nd column, sentence in the 4th.
    _write(tmp_path / "CoLA", "train.tsv", "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\n"
                                           "gj04\t0\t*\tThe more we study verbs, the crazier they get get.\n")
    _write(tmp_path / "CoLA", "dev.tsv", "gj04\t1\t\tOne.\n")
    _write(tmp_path / "CoLA", "test.tsv", "index\tsentence\n0\tBill whistled past the house.\n")
    cola = load_dataset("glue", "cola", data_dir=tmp_path)
    assert cola["train"]["label"] == [1, 0] and cola["train"].features["label"].names[1] == "acceptable"
    assert cola["test"][0] == {"sentence": "Bill whistled past the house.", "label": -1, "idx": 0}
    # STS-B: a float score (regression).
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    row = "0\tmain\tf\t2012\t1\tnone\tnone\tA plane.\tAn air plane.\t5.000\n"
    _write(tmp_path / "STS-B", "train.tsv", header + row)
    _write(tmp_path / "STS-B", "dev.tsv", header + "0\tmain\tf\t2012\t1\tnone\tnone\tA man.\tA boy.\t3.200\n")
    stsb = load_dataset("glue", "sts-b", data_dir=tmp_path)
    assert stsb["validation"][0]["label"] == pytest.approx(3.2)
    assert stsb["train"].features["label"].dtype == "float32"
    # RTE: string labels mapped to the hub's ids.
    header = "index\tsentence1\tsentence2\tlabel\n"
    _write(tmp_path / "RTE", "train.tsv", header + "0\tA\tB\tnot_entailment\n1\tC\tD\tentailment\n")
    _write(tmp_path / "RTE", "dev.tsv", header + "0\tA\tB\tentailment\n")
    assert load_dataset("glue", "rte", data_dir=tmp_path)["train"]["label"] == [1, 0]


def test_other_names_pass_through_to_datasets(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("text,label\ngood,1\nbad,0\n")
    rows = load_dataset("csv", data_files=str(path))["train"]
    assert rows["text"] == ["good", "bad"]


def test_unknown_hub_dataset_offline_fails_fast():
    with pytest.raises(SeqtuneError, match="hub is unreachable"):
        load_dataset("someone/some-dataset")
