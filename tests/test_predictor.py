"""The Predictor: texts in, predict's columns out, one row per input in input order; its inputs checked."""

import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtune.errors import SeqtuneError
from seqtune.predictor import Predictor
from seqtune.task import TaskSpec

TEXTS = ["goal team today", "pasta soup and bread with a very long tail of words to pad the others", "laptop"]


@pytest.fixture(scope="module")
def single(tiny_model_dir):
    return Predictor(tiny_model_dir)


@pytest.fixture(scope="module")
def paired(tmp_path_factory, tiny_model_dir):
    """The tiny model as a sentence-pair classifier (seqtune.json naming two text columns)."""
    folder = tmp_path_factory.mktemp("paired")
    shutil.copytree(tiny_model_dir, folder, dirs_exist_ok=True)
    TaskSpec("pairs", "classification", ["no", "yes"], ["sentence1", "sentence2"]).save(folder)
    return Predictor(folder, batch_size=2)


def test_rows_are_predicts_columns_as_plain_values(single):
    rows = single.predict(TEXTS, all_scores=True)
    assert len(rows) == 3
    for row in rows:
        assert list(row) == ["predicted_label", "probability", "probability_LABEL_0", "probability_LABEL_1"]
        assert type(row["predicted_label"]) is str and type(row["probability"]) is float
        assert row["probability"] == max(row["probability_LABEL_0"], row["probability_LABEL_1"])
    assert list(single.predict(TEXTS)[0]) == ["predicted_label", "probability"]
    assert single.predict(TEXTS) == single.rows(single.logits(TEXTS))


def test_logits_keep_input_order_whatever_the_batching(single, paired):
    together = single.logits(TEXTS)
    assert together.shape == (3, 2)
    alone = np.concatenate([single.logits([text]) for text in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(single.logits(TEXTS[::-1]), together[::-1], atol=1e-5)
    pairs = paired.logits(TEXTS, TEXTS[::-1])  # batch 2: two batches, sorted by length inside the Trainer
    np.testing.assert_allclose(pairs[0], paired.logits([TEXTS[0]], [TEXTS[2]])[0], atol=1e-5)
    swapped = paired.logits(TEXTS[::-1], TEXTS)  # rows (2, 0), (1, 1), (0, 2): the sides swapped
    assert np.abs(pairs[[0, 2]] - swapped[[0, 2]]).max() > 1e-7


def test_no_texts_is_no_rows(single):
    assert single.logits([]).shape == (0, 2) and single.predict([]) == []


def test_window_and_pairs_are_said(single, paired):
    assert single.max_length == 128  # the tiny BERT's position embeddings cap the tokenizer's 512
    assert single.pairs_expected is None and paired.pairs_expected is True
    assert paired.spec.label_names == ["no", "yes"] and single.engine == "torch"


@pytest.mark.parametrize("texts, pairs, message", [
    ("one string", None, "got one string; wrap it in a list"),
    (["fine", 3], None, "texts[1]: expected a string, got int"),
    (["fine", "  "], None, "texts[1]: the text is empty"),
    (["a", "b"], ["c"], "2 texts but 1 pairs"),
])
def test_bad_inputs_are_one_sentence(single, texts, pairs, message):
    with pytest.raises(SeqtuneError, match=message.replace("[", r"\[").replace("]", r"\]")):
        single.predict(texts, pairs)


def test_a_pair_model_wants_pairs(paired):
    with pytest.raises(SeqtuneError, match="this model reads text pairs"):
        paired.predict(["only one side"])


def test_bad_construction_is_one_sentence(tiny_model_dir, tmp_path):
    with pytest.raises(SeqtuneError, match="engine 'tensorrt' is not one of torch, onnxruntime"):
        Predictor(tiny_model_dir, engine="tensorrt")
    with pytest.raises(SeqtuneError, match="batch size 0"):
        Predictor(tiny_model_dir, batch_size=0)
    with pytest.raises(SeqtuneError, match="not a trained model folder"):
        Predictor(tmp_path)
    with pytest.raises(SeqtuneError, match="no ONNX export here"):
        Predictor(tiny_model_dir, engine="onnxruntime")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=12), st.integers(), st.none()), max_size=6))
def test_dataset_takes_exactly_lists_of_non_empty_strings(single, values):
    good = all(isinstance(v, str) and v.strip() for v in values)
    if good:
        assert single.dataset(values)["text"] == values
    else:
        with pytest.raises(SeqtuneError):
            single.dataset(values)
