"""Documents longer than the model's window: truncate, head-tail, chunks (windows joined back per document)."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtune import SeqtuneError
from seqtune.cli import main
from seqtune.longtext import aggregate, tokenize_long_text
from seqtune.task import TaskSpec

FILLER = "the a today really we saw some and very new old big small red blue green went came said made".split()
MARKERS = ["soup", "goal"]  # the label's word, placed within the last 7 words of a 40-80 word document


def long_documents(n: int, seed: int) -> list[dict]:
    """Documents whose label is decided only past a 32-token window: its word sits near the end."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(40, 80))]
        words.insert(len(words) - rng.randint(0, 6), MARKERS[i % 2])
        rows.append({"text": " ".join(words), "label": MARKERS[i % 2]})
    return rows


def _splits(**columns):
    import datasets

    return datasets.DatasetDict({"rows": datasets.Dataset.from_dict(columns)})


def _one_line(capsys, *parts):
    err = capsys.readouterr().err
    assert err.startswith("seqtune: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err


# ---- aggregation: one row per document, in document order -------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(windows=st.lists(st.integers(1, 5), min_size=1, max_size=12), seed=st.integers(0, 2**16))
def test_windows_are_joined_one_row_per_document_in_order(windows, seed):
    rng = np.random.default_rng(seed)
    documents = np.repeat(np.arange(len(windows)), windows)
    logits = rng.normal(size=(len(documents), 3)).astype(np.float32)
    labels = np.repeat(rng.integers(0, 3, len(windows)), windows)
    order = rng.permutation(len(documents))  # joined by document id, whatever order the windows come in
    mean = aggregate(logits[order], documents[order], "mean")
    high = aggregate(logits[order], documents[order], "max")
    assert mean.shape == high.shape == (len(windows), 3) and mean.dtype == np.float32
    for doc in range(len(windows)):
        mine = logits[documents == doc]
        np.testing.assert_allclose(mean[doc], mine.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(high[doc], mine.max(0))
    np.testing.assert_array_equal(aggregate(labels, documents, "first"), labels[np.cumsum(windows) - 1])


def test_outputs_of_other_rows_are_refused():
    with pytest.raises(SeqtuneError, match="3 rows of outputs for 2 windows"):
        aggregate(np.zeros((3, 2)), np.array([0, 0]))


# ---- tokenization ---------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 90), min_size=1, max_size=6), stride=st.integers(0, 13))
def test_chunks_cover_each_document_with_overlapping_windows(lengths, stride, embedded_tokenizer):
    texts = [" ".join(str(i % 100) for i in range(n)) for n in lengths]  # one token per number
    rows = tokenize_long_text(_splits(text=texts, label=list(range(len(texts)))), embedded_tokenizer, "chunks",
                              max_length=16, stride=stride)["rows"]
    documents = rows["document"]
    assert documents == sorted(documents) and set(documents) == set(range(len(texts)))
    assert rows["label"] == documents  # each window carries its document's label
    for doc, text in enumerate(texts):
        full = embedded_tokenizer(text, add_special_tokens=False)["input_ids"]
        windows = [ids[1:-1] for ids, d in zip(rows["input_ids"], documents, strict=True) if d == doc]
        assert all(len(w) <= 14 for w in windows)
        joined = list(windows[0])
        for previous, window in zip(windows, windows[1:], strict=False):
            assert window[:stride] == previous[-stride:] if stride else True  # the overlap is `stride` tokens
            joined += window[stride:]
        assert joined == full
    # predictions put back: one per document, in input order
    spec = TaskSpec("t", "regression", [], ["text"], max_length=16, long_text="chunks", stride=stride)
    np.testing.assert_array_equal(spec.per_row(np.asarray(documents, dtype=np.float32)[:, None], rows)[:, 0],
                                  np.arange(len(texts)))


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 90), min_size=1, max_size=6))
def test_head_tail_keeps_the_start_and_the_end(lengths, embedded_tokenizer):
    texts = [" ".join(str(i % 100) for i in range(n)) for n in lengths]
    rows = tokenize_long_text(_splits(text=texts), embedded_tokenizer, "head-tail", max_length=32)["rows"]
    assert len(rows) == len(texts)
    for text, ids, types in zip(texts, rows["input_ids"], rows["token_type_ids"], strict=True):
        full = embedded_tokenizer(text)["input_ids"]
        if len(full) <= 32:
            assert ids == full
        else:  # 30 text tokens beside [CLS] and [SEP]: the first 7, the last 23
            assert ids == full[:8] + full[-24:] and len(types) == 32


def test_head_tail_of_a_pair_keeps_its_specials_and_segments(embedded_tokenizer):
    second = " ".join(str(i) for i in range(40))
    rows = tokenize_long_text(_splits(text=["q a b"], text_pair=[second]), embedded_tokenizer, "head-tail",
                              max_length=16)["rows"]
    assert embedded_tokenizer.decode(rows[0]["input_ids"]) == "[CLS] q a b [SEP] 30 31 32 33 34 35 36 37 38 39 [SEP]"
    assert rows[0]["token_type_ids"] == [0] * 5 + [1] * 11


def test_chunks_of_a_pair_keep_the_first_text_in_each_window(embedded_tokenizer):
    second = " ".join(str(i) for i in range(30))
    rows = tokenize_long_text(_splits(text=["q a b", "x"], text_pair=[second, "y"]), embedded_tokenizer, "chunks",
                              max_length=16, stride=2)["rows"]
    texts = [embedded_tokenizer.decode(ids) for ids in rows["input_ids"]]
    assert rows["document"] == [0, 0, 0, 0, 1]
    assert all(t.startswith("[CLS] q a b [SEP] ") for t in texts[:4]) and texts[4] == "[CLS] x [SEP] y [SEP]"
    with pytest.raises(SeqtuneError, match=r"rows: row 1: the first text takes 12 of the window's 16 tokens, "
                                           r"leaving 1 for the second, not more than the stride \(2\)"):
        tokenize_long_text(_splits(text=[" ".join(["q"] * 12)], text_pair=[second]), embedded_tokenizer, "chunks",
                           max_length=16, stride=2)


def test_truncate_is_the_tokenizers_truncation(embedded_tokenizer):
    texts = [" ".join(FILLER * 3), "short"]
    rows = tokenize_long_text(_splits(text=texts), embedded_tokenizer, "truncate", max_length=16)["rows"]
    assert rows["input_ids"] == embedded_tokenizer(texts, truncation=True, max_length=16)["input_ids"]


@pytest.mark.parametrize("kwargs, message", [
    ({"long_text": "middle"}, "--long-text 'middle' is not one of truncate, head-tail, chunks"),
    ({"long_text": "chunks", "stride": 32, "max_length": 32}, "--stride 32 is not below the window (--max-length 32)"),
    ({"long_text": "chunks", "stride": -1}, "--stride: expected a whole number >= 0, got -1"),
    ({"long_text": "truncate", "stride": 8}, "--stride is the overlap of --long-text chunks' windows"),
])
def test_the_python_api_refuses_what_the_command_line_does(kwargs, message):
    with pytest.raises(SeqtuneError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TaskSpec("t", "classification", ["a", "b"], ["text"], **kwargs)


def test_a_window_without_room_for_text_is_refused(embedded_tokenizer):
    with pytest.raises(SeqtuneError, match="--max-length 2 leaves no room for text: the tokenizer adds 2 special"):
        tokenize_long_text(_splits(text=["a b c"]), embedded_tokenizer, "head-tail", max_length=2)
    with pytest.raises(SeqtuneError, match=r"--stride 14 is not below the window's 14 text tokens"):
        tokenize_long_text(_splits(text=["a b c"]), embedded_tokenizer, "chunks", max_length=16, stride=14)


def test_a_tokenizer_without_a_window_or_window_mapping_is_refused(embedded_tokenizer):
    import copy

    unbounded = copy.deepcopy(embedded_tokenizer)
    unbounded.model_max_length = int(1e30)  # transformers' "no maximum"
    with pytest.raises(SeqtuneError, match="--long-text chunks needs a window and the tokenizer states no maximum"):
        tokenize_long_text(_splits(text=["a b c"]), unbounded, "chunks")

    class NoMapping:  # a tokenizer that does not say which row each window comes from
        def num_special_tokens_to_add(self, pair=False):
            return embedded_tokenizer.num_special_tokens_to_add(pair=pair)

        def __call__(self, *args, **kwargs):
            encoded = embedded_tokenizer(*args, **kwargs)
            encoded.pop("overflow_to_sample_mapping", None)
            return encoded

    with pytest.raises(SeqtuneError, match=r"--long-text chunks needs a fast \(Rust\) tokenizer"):
        tokenize_long_text(_splits(text=["a b c"]), NoMapping(), "chunks", max_length=16)


def test_metrics_and_outputs_are_per_document(embedded_tokenizer):
    spec = TaskSpec("t", "classification", ["a", "b"], ["text"], max_length=16, long_text="chunks", stride=0)
    texts = [" ".join(["new"] * 30), "short", " ".join(["old"] * 50)]  # 3, 1 and 4 windows
    rows = spec.tokenize(_splits(text=texts, label=[1, 0, 1]), embedded_tokenizer)["rows"]
    assert rows["document"] == [0, 0, 0, 1, 2, 2, 2, 2]
    # document 0 leans to b in one window only, but its mean says b; document 2 says a
    logits = np.array([[0, 3], [0, 0], [0, 0], [2, 0], [1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    metrics = spec.compute_metrics(rows)((logits, np.asarray(rows["label"])))
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    from seqtune import PredictionOutput

    output = spec.per_row_output(PredictionOutput(logits, np.asarray(rows["label"]), {}), rows)
    assert output.predictions.argmax(-1).tolist() == [1, 0, 0] and output.label_ids.tolist() == [1, 0, 1]
    with pytest.raises(SeqtuneError, match="5 rows of outputs for 8 windows"):
        spec.compute_metrics(rows)((logits[:5], np.asarray(rows["label"])[:5]))


def test_the_handling_is_saved_with_the_task(tmp_path):
    from types import SimpleNamespace

    TaskSpec("t", "classification", ["a", "b"], ["text"], max_length=64, long_text="chunks", stride=16).save(tmp_path)
    spec = TaskSpec.for_model_folder(tmp_path, SimpleNamespace(num_labels=2, id2label={0: "a", 1: "b"}))
    assert (spec.long_text, spec.stride, spec.max_length) == ("chunks", 16, 64)


# ---- the command line -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    pd.DataFrame(long_documents(200, seed=0)).to_csv(folder / "train.csv", index=False)
    pd.DataFrame(long_documents(60, seed=1)).to_csv(folder / "dev.csv", index=False)
    return folder


@pytest.mark.parametrize("extra, message", [
    (["--long-text", "chunks", "--max-length", "32", "--stride", "32"],
     "--stride 32 is not below the window (--max-length 32)"),
    (["--long-text", "chunks", "--stride=-1"], "--stride: expected a whole number >= 0, got -1"),
    (["--stride", "8"], "--stride is the overlap of --long-text chunks' windows; add --long-text chunks"),
    (["--long-text", "middle"], "argument --long-text: invalid choice: 'middle'"),
])
def test_bad_long_text_options_are_one_line(extra, message, long_files, tmp_path, capsys):
    argv = ["train", "--train", str(long_files / "train.csv"), "--validation", str(long_files / "dev.csv"),
            "--output-dir", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    _one_line(capsys, message)


@pytest.mark.parametrize("mode", ["head-tail", "truncate"])
def test_a_window_too_small_for_the_specials_is_refused_in_every_mode(mode, long_files, tiny_model_dir, tmp_path,
                                                                      capsys):
    argv = ["train", "--train", str(long_files / "train.csv"), "--validation", str(long_files / "dev.csv"),
            "--model", str(tiny_model_dir), "--output-dir", str(tmp_path / "o"), "--quiet",
            "--long-text", mode, "--max-length", "2"]
    assert main(argv) == 2
    _one_line(capsys, "--max-length 2 leaves no room for text: the tokenizer adds 2 special tokens")
    assert not (tmp_path / "o" / "config.json").exists()


@pytest.mark.parametrize("mode", ["truncate", "head-tail", "chunks"])
def test_only_head_tail_and_chunks_learn_a_label_past_the_window(mode, long_files, tiny_model_dir, tmp_path,
                                                                 capsys):
    out = tmp_path / "run"
    argv = ["train", "--train", str(long_files / "train.csv"), "--validation", str(long_files / "dev.csv"),
            "--model", str(tiny_model_dir), "--output-dir", str(out), "--max-length", "32", "--long-text", mode,
            "--epochs", "15", "--learning-rate", "3e-3", "--batch-size", "16", "--save-strategy", "no", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "long text: 200 of 200 training rows are past 32 tokens (longest" in printed
    assert "final validation (60 examples)" in printed
    accuracy = json.loads((out / "all_results.json").read_text())["eval_accuracy"]
    if mode == "truncate":
        assert "; truncated, " in printed and accuracy <= 0.65  # the label's word is never seen: chance
        return
    assert accuracy >= 0.9
    assert json.loads((out / "seqtune.json").read_text())["long_text"] == mode
    # predict and evaluate read the documents as training did: one row per document, in input order
    predictions = tmp_path / "p.csv"
    assert main(["predict", "--model", str(out), "--input", str(long_files / "dev.csv"), "--output",
                 str(predictions), "--quiet"]) == 0
    written = pd.read_csv(predictions)
    truth = pd.read_csv(long_files / "dev.csv")
    assert len(written) == 60 and (written["text"] == truth["text"]).all()
    assert (written["predicted_label"] == truth["label"]).mean() == pytest.approx(accuracy)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--data", str(long_files / "dev.csv"), "--quiet"]) == 0
    assert f"accuracy: {accuracy:.4f}" in capsys.readouterr().out
