"""Every sequence-classification family trains, predicts, checkpoints and resumes, and after a few steps of
the same recipe (fp32, dropout 0, the same batches) its weights equal transformers.Trainer's.

Tiny random configs built here (hidden 32, 2 layers, vocabulary 64; no downloads). Run with -s to see each
family's largest weight difference against transformers.Trainer.
"""

import copy

import numpy as np
import pytest
import torch

from seqtune import DataCollatorWithPadding, Trainer, TrainingArguments

from .conftest import toy_rows

VOCAB, PAD = 64, 0  # toy_rows draws tokens 1, 7 and 10..49: id 0 is never real text
SIZE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
DECODER = dict(vocab_size=VOCAB, **SIZE, num_key_value_heads=1, max_position_embeddings=64, pad_token_id=PAD,
               bos_token_id=1, eos_token_id=2, attention_dropout=0.0)


def _config(family):
    import transformers as t

    encoder = dict(vocab_size=VOCAB, max_position_embeddings=64, pad_token_id=PAD, **SIZE, **NO_DROPOUT)
    return {
        "bert": lambda: t.BertConfig(**encoder, classifier_dropout=0.0),
        "roberta": lambda: t.RobertaConfig(**encoder, classifier_dropout=0.0),
        "xlm-roberta": lambda: t.XLMRobertaConfig(**encoder, classifier_dropout=0.0),
        "deberta-v2": lambda: t.DebertaV2Config(**encoder, pooler_dropout=0.0, relative_attention=True,
                                                position_buckets=16, pos_att_type=["p2c", "c2p"]),
        "distilbert": lambda: t.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                                 max_position_embeddings=64, pad_token_id=PAD, dropout=0.0,
                                                 attention_dropout=0.0, seq_classif_dropout=0.0),
        "albert": lambda: t.AlbertConfig(**encoder, embedding_size=16, classifier_dropout_prob=0.0),
        "electra": lambda: t.ElectraConfig(**encoder, embedding_size=16, summary_last_dropout=0.0),
        "modernbert": lambda: t.ModernBertConfig(vocab_size=VOCAB, **SIZE, max_position_embeddings=64,
                                                 pad_token_id=PAD, bos_token_id=1, eos_token_id=2, cls_token_id=1,
                                                 sep_token_id=2, embedding_dropout=0.0, mlp_dropout=0.0,
                                                 attention_dropout=0.0, classifier_dropout=0.0),
        "gpt2": lambda: t.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                                     pad_token_id=PAD, bos_token_id=1, eos_token_id=2, resid_pdrop=0.0,
                                     embd_pdrop=0.0, attn_pdrop=0.0),
        "llama": lambda: t.LlamaConfig(**DECODER),
        "qwen2": lambda: t.Qwen2Config(**DECODER),
        "mistral": lambda: t.MistralConfig(**DECODER),
        "gemma": lambda: t.GemmaConfig(**DECODER, head_dim=16),
    }[family]()


FAMILIES = ["bert", "roberta", "xlm-roberta", "deberta-v2", "distilbert", "albert", "electra", "modernbert",
            "gpt2", "llama", "qwen2", "mistral", "gemma"]
DECODERS = ["gpt2", "llama", "qwen2", "mistral", "gemma"]


def build(family, seed=0):
    from transformers import AutoModelForSequenceClassification

    config = _config(family)
    config.num_labels = 2
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(config)


ROWS = toy_rows(16, vocab=50)
RECIPE = dict(max_steps=4, per_device_train_batch_size=16, learning_rate=1e-3, lr_scheduler_type="constant",
              weight_decay=0.0, max_grad_norm=1.0, seed=7, bf16=False, use_cpu=True, report_to="none",
              disable_tqdm=True)


def transformers_weights(model, tmp_path):
    """The same recipe through transformers.Trainer (one batch of all 16 rows per step: the same batches;
    transformers 5 draws its batches at random, as group_by_length=False)."""
    import transformers

    args = transformers.TrainingArguments(str(tmp_path / "hf"), save_strategy="no", logging_strategy="no", **RECIPE)
    transformers.Trainer(model, args, train_dataset=ROWS, data_collator=DataCollatorWithPadding()).train()
    return model.state_dict()


def largest_difference(a, b):
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_resumes_and_matches_transformers_trainer(family, tmp_path):
    model = build(family)
    reference = copy.deepcopy(model)
    args = TrainingArguments(str(tmp_path / "st"), save_strategy="steps", save_steps=2, group_by_length=False,
                             **RECIPE)
    trainer = Trainer(model, args, train_dataset=ROWS)
    trainer.train()
    ours = {k: v.clone() for k, v in model.state_dict().items()}
    difference = largest_difference(ours, transformers_weights(reference, tmp_path))
    print(f"\n{family}: largest weight difference against transformers.Trainer {difference:.2e} "
          f"({trainer.fast_paths.levers.describe()})")
    assert difference < 1e-5

    predicted = trainer.predict(toy_rows(9, seed=3, vocab=50))
    assert predicted.predictions.shape == (9, 2) and np.isfinite(predicted.predictions).all()
    assert "eval_loss" in trainer.evaluate(ROWS)

    resumed = Trainer(build(family, seed=1), args, train_dataset=ROWS)  # other initial weights: all restored
    resumed.train(resume_from_checkpoint=str(tmp_path / "st" / "checkpoint-2"))
    assert largest_difference(resumed.model.state_dict(), ours) == 0.0


@pytest.mark.parametrize("family", DECODERS)
def test_a_decoder_row_predicts_the_same_alone_and_in_any_batch(family, tmp_path):
    """The last real token is pooled whatever the padding around it: a row's logits do not depend on the
    longer rows length grouping puts beside it."""
    model = build(family).eval()
    rows = toy_rows(11, seed=4, vocab=50)
    args = TrainingArguments(str(tmp_path), per_device_eval_batch_size=4, **RECIPE)
    batched = Trainer(model, args).predict(rows).predictions
    with torch.no_grad():
        alone = np.concatenate([model(input_ids=torch.tensor([row["input_ids"]])).logits.numpy() for row in rows])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
