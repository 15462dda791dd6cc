"""`seqtune export` and the onnxruntime engine: parity with torch, int8, atomic folders, bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from seqtune.cli import main

from .conftest import topic_rows

TEXTS = [r["text"] for r in topic_rows(24, seed=5)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """A tiny BERT trained on the made-up 3-topic CSV until it is confident (>0.9 accuracy), as real models are:
    int8 rounding then rarely flips a label."""
    folder = tmp_path_factory.mktemp("export")
    pd.DataFrame(topic_rows(240, seed=1)).to_csv(folder / "train.csv", index=False)
    pd.DataFrame(topic_rows(30, seed=2)).to_csv(folder / "dev.csv", index=False)
    out = folder / "run"
    assert main(["train", "--train", str(folder / "train.csv"), "--validation", str(folder / "dev.csv"),
                 "--model", str(tiny_model_dir), "--epochs", "12", "--batch-size", "16", "--learning-rate", "5e-3",
                 "--output-dir", str(out), "--quiet", "--save-strategy", "no"]) == 0
    return folder, out


@pytest.fixture(scope="module")
def exported(trained):
    folder, out = trained
    assert main(["export", "--model", str(out), "--format", "onnx"]) == 0
    return out / "onnx"


def test_export_writes_a_self_contained_checked_folder(trained, exported, capsys):
    import onnx

    _, out = trained
    names = {p.name for p in exported.iterdir()}
    assert {"model.onnx", "config.json", "seqtune.json", "export.json", "tokenizer.json"} <= names
    assert not {"trainer_state.json", "training_args.json", "model.safetensors"} & names
    onnx.checker.check_model(str(exported / "model.onnx"), full_check=True)
    graph = onnx.load(str(exported / "model.onnx")).graph
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input]
    assert all(isinstance(a, str) and isinstance(b, str) for a, b in dims)  # batch and sequence are dynamic
    meta = json.loads((exported / "export.json").read_text())
    assert meta["quantize"] is None and meta["parity"]["max_abs_diff"] < 1e-4
    assert (exported / "seqtune.json").read_text() == (out / "seqtune.json").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_fp32_logits_match_torch_at_any_batch_size(trained, exported):
    from seqtune.predictor import Predictor

    _, out = trained
    torch_logits = Predictor(out, batch_size=32).logits(TEXTS)
    for batch_size in (1, 5, 32):  # other batches, other padding: the graph's axes are dynamic
        onnx_logits = Predictor(out, engine="onnxruntime", batch_size=batch_size).logits(TEXTS)
        assert onnx_logits.shape == torch_logits.shape
        assert np.abs(onnx_logits - torch_logits).max() < 1e-4


def test_int8_export_has_int8_matmuls_and_mostly_agrees(trained, exported, tmp_path):
    import onnx

    from seqtune.predictor import Predictor

    _, out = trained
    target = tmp_path / "int8"
    assert main(["export", "--model", str(out), "--quantize", "int8", "--output", str(target)]) == 0
    operators = {node.op_type for node in onnx.load(str(target / "model.onnx")).graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= operators or "DynamicQuantizeMatMul" in operators
    assert json.loads((target / "export.json").read_text())["quantize"] == "int8"
    texts = [r["text"] for r in topic_rows(60, seed=9)]
    reference = [row["predicted_label"] for row in Predictor(out).predict(texts)]
    quantized = [row["predicted_label"] for row in Predictor(target, engine="onnxruntime").predict(texts)]
    assert sum(a == b for a, b in zip(reference, quantized, strict=True)) >= 0.9 * len(texts)


def test_predict_with_onnxruntime_writes_torchs_labels(trained, exported, tmp_path):
    folder, out = trained
    results = {}
    for engine, model in (("torch", out), ("onnxruntime", out), ("onnxruntime", exported)):
        target = tmp_path / f"{engine}-{model.name}.csv"
        assert main(["predict", "--model", str(model), "--engine", engine, "--input", str(folder / "dev.csv"),
                     "--output", str(target), "--all-scores", "--quiet"]) == 0
        results[target.name] = pd.read_csv(target)
    frames = list(results.values())
    for frame in frames[1:]:
        assert frame.columns.tolist() == frames[0].columns.tolist()
        assert frame["predicted_label"].tolist() == frames[0]["predicted_label"].tolist()
        np.testing.assert_allclose(frame["probability"], frames[0]["probability"], atol=1e-5)


def test_evaluate_with_onnxruntime_gives_torchs_metrics(trained, exported, capsys):
    folder, out = trained
    printed = {}
    for engine in ("torch", "onnxruntime"):
        assert main(["evaluate", "--model", str(out), "--engine", engine, "--data", str(folder / "dev.csv"),
                     "--quiet"]) == 0
        lines = capsys.readouterr().out.splitlines()
        printed[engine] = [line for line in lines if "accuracy:" in line or "macro_f1:" in line]
    assert printed["torch"] == printed["onnxruntime"] and len(printed["torch"]) == 2


def test_reexport_replaces_only_with_a_complete_export(trained, exported, monkeypatch, capsys):
    import seqtune.export as export

    _, out = trained
    before = (exported / "model.onnx").read_bytes()

    def broken(*args, **kwargs):
        raise export.SeqtuneError("disk full (simulated)")

    monkeypatch.setattr(export, "_parity", broken)
    assert main(["export", "--model", str(out)]) == 2
    assert "disk full (simulated)" in capsys.readouterr().err
    assert (exported / "model.onnx").read_bytes() == before  # the earlier export is whole
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    monkeypatch.undo()
    assert main(["export", "--model", str(out)]) == 0  # a complete one replaces it
    assert json.loads((exported / "export.json").read_text())["parity"]["max_abs_diff"] < 1e-4


def test_reexport_over_files_the_export_did_not_write_is_refused(trained, exported, capsys):
    _, out = trained
    (exported / "notes.md").write_text("mine")
    before = (exported / "model.onnx").read_bytes()
    try:
        assert main(["export", "--model", str(out)]) == 2
        err = capsys.readouterr().err
        assert "holds notes.md, which the earlier export there did not write" in err and err.count("\n") == 1
        assert (exported / "notes.md").read_text() == "mine" and (exported / "model.onnx").read_bytes() == before
    finally:
        (exported / "notes.md").unlink()


def test_a_file_that_comes_in_while_the_export_runs_is_kept(trained, exported, monkeypatch, capsys):
    import seqtune.export as export

    _, out = trained
    before = (exported / "model.onnx").read_bytes()
    parity = export._parity

    def user_writes_meanwhile(*args, **kwargs):
        (exported / "notes.md").write_text("mine")
        return parity(*args, **kwargs)

    monkeypatch.setattr(export, "_parity", user_writes_meanwhile)
    try:
        assert main(["export", "--model", str(out)]) == 2
        err = capsys.readouterr().err
        assert "holds notes.md, which the earlier export there did not write" in err and err.count("\n") == 1
        assert (exported / "notes.md").read_text() == "mine" and (exported / "model.onnx").read_bytes() == before
        assert not [p for p in out.iterdir() if p.name.startswith(".")]
    finally:
        (exported / "notes.md").unlink(missing_ok=True)


def test_the_current_folder_as_output_is_refused(trained, tmp_path, monkeypatch, capsys):
    _, out = trained
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    for output in (".", str(tmp_path)):
        assert main(["export", "--model", str(out), "--output", output]) == 2
        err = capsys.readouterr().err
        assert "is the current folder or holds it" in err and err.count("\n") == 1
    assert (tmp_path / "here").is_dir()


def test_a_lora_folder_exports_merged(tmp_path, tiny_model_dir):
    from seqtune.predictor import Predictor

    data = tmp_path / "d.csv"
    pd.DataFrame(topic_rows(30)).to_csv(data, index=False)
    out = tmp_path / "lora"
    assert main(["train", "--train", str(data), "--validation-split", "0.2", "--model", str(tiny_model_dir),
                 "--lora", "--lora-rank", "4", "--lora-targets", "query", "--lora-targets", "value",
                 "--max-steps", "3", "--output-dir", str(out), "--quiet", "--save-strategy", "no"]) == 0
    assert (out / "adapter_config.json").is_file()
    assert main(["export", "--model", str(out)]) == 0
    assert not (out / "onnx" / "adapter_config.json").exists()
    texts = [r["text"] for r in topic_rows(10, seed=3)]
    difference = Predictor(out, engine="onnxruntime").logits(texts) - Predictor(out).logits(texts)
    assert np.abs(difference).max() < 1e-4


@pytest.mark.parametrize("argv, message", [
    (["export", "--model", "{tmp}/nothing"], "no such folder"),
    (["export", "--model", "{tmp}"], "not a trained model folder"),
    (["export", "--model", "{onnx}"], "is an ONNX export already"),
    (["export", "--model", "{run}", "--format", "torchscript"], "--format"),
    (["export", "--model", "{run}", "--quantize", "int4"], "--quantize"),
    (["export", "--model", "{run}", "--output", "{run}"], "is the model folder"),
    (["export", "--model", "{run}", "--output", "{folder}"], "holds the model folder"),
    (["export", "--model", "{run}", "--output", "{folder}/train.csv"], "is a file; name a folder"),
    (["export", "--model", "{run}", "--output", "{tmp}"], "not a seqtune export"),
    (["predict", "--model", "{tmp}", "--engine", "onnxruntime", "--input", "{folder}/dev.csv", "--output",
      "{tmp}/p.csv"], "no ONNX export here"),
    (["predict", "--model", "{run}", "--engine", "tensorrt", "--input", "{folder}/dev.csv", "--output",
      "{tmp}/p.csv"], "--engine"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, trained, exported, tmp_path, capsys):
    folder, out = trained
    (tmp_path / "keep.txt").write_text("mine")
    argv = [a.format(tmp=tmp_path, run=out, onnx=exported, folder=folder) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert (tmp_path / "keep.txt").read_text() == "mine" and (out / "model.safetensors").is_file()


def test_missing_onnx_packages_are_one_sentence(trained, monkeypatch, capsys):
    import importlib.util

    _, out = trained
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    assert main(["export", "--model", str(out)]) == 2
    assert "needs onnxscript: pip install onnx onnxscript onnxruntime" in capsys.readouterr().err


def test_a_damaged_onnx_file_is_one_sentence(trained, exported, tmp_path, capsys):
    import shutil

    folder, _ = trained
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    (broken / "model.onnx").write_bytes(b"not a protobuf")
    assert main(["predict", "--model", str(broken), "--engine", "onnxruntime", "--input", str(folder / "dev.csv"),
                 "--output", str(tmp_path / "p.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "ONNX Runtime cannot load it" in err and err.count("\n") == 1


def test_logits_off_torchs_are_refused_and_nothing_is_written(trained, tmp_path, monkeypatch, capsys):
    import seqtune.export as export

    _, out = trained
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # any difference, even none, is too large
    assert main(["export", "--model", str(out), "--output", str(tmp_path / "strict")]) == 2
    assert "this model does not export faithfully" in capsys.readouterr().err
    assert not (tmp_path / "strict").exists() and not list(tmp_path.iterdir())


def test_an_export_older_than_its_model_is_refused(trained, tmp_path, capsys):
    """A run retrained (or resumed) into its folder after the export: the old onnx/ would answer for the old
    model, so predict refuses it in one line."""
    import shutil

    _, out = trained
    run = tmp_path / "run"
    shutil.copytree(out, run, ignore=shutil.ignore_patterns("onnx", "onnx-int8"))
    assert main(["export", "--model", str(run)]) == 0
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"text": ["a few words", "more words here"]}).to_csv(rows, index=False)
    predict = ["predict", "--model", str(run), "--engine", "onnxruntime", "--input", str(rows), "--output",
               str(tmp_path / "p.csv")]
    assert main(predict) == 0
    capsys.readouterr()
    with (run / "model.safetensors").open("ab") as weights:  # new weights in the run's folder
        weights.write(b" ")
    assert main(predict) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exported from earlier weights" in err, err
