"""LoRA through peft: targets per family, the head trained and saved in full (a reloaded classifier gives the
same logits), the merged folder for pipeline, exact resume, and the command line."""

import json

import numpy as np
import pytest
import torch

from seqtune import SeqtuneError, Trainer, TrainingArguments
from seqtune.lora import LoraOptions, apply_lora, head_modules, load_adapter_model, save_merged

from .conftest import toy_rows
from .test_families import FAMILIES, build

ARGS = dict(per_device_train_batch_size=4, learning_rate=5e-3, lr_scheduler_type="constant", bf16=False,
            use_cpu=True, disable_tqdm=True, report_to="none")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_gets_attention_adapters_and_a_trained_head(family):
    model = apply_lora(build(family), LoraOptions(rank=4, alpha=8))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    adapted = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trainable if ".lora_" in name}
    assert len(adapted) >= 2  # query/key/value/output style projections (fused in ModernBERT and GPT-2)
    heads = head_modules(model.get_base_model())
    assert heads and all(any(f"{head}.modules_to_save" in name for name in trainable) for head in heads)
    frozen = [p for name, p in model.named_parameters() if not p.requires_grad]
    assert sum(p.numel() for p in frozen) > sum(p.numel() for n, p in model.named_parameters() if p.requires_grad)


def test_a_target_module_absent_from_the_model_is_one_sentence():
    with pytest.raises(SeqtuneError, match=r"LoRA target module 'q_proj' is not in this bert model; its adaptable "
                                           r"layers are named .*query"):
        apply_lora(build("bert"), LoraOptions(target_modules=["query", "q_proj"]))


def test_a_lora_model_with_fsdp_is_one_sentence_from_python_too(tmp_path):
    model = apply_lora(build("bert"), LoraOptions(rank=4, alpha=8))
    with pytest.raises(SeqtuneError, match="a LoRA \\(peft\\) model with fsdp is not supported"):
        Trainer(model, TrainingArguments(str(tmp_path), fsdp=True, **ARGS), train_dataset=toy_rows(8, vocab=50))


@pytest.mark.parametrize("family", ["bert", "qwen2"])
def test_a_reloaded_lora_classifier_gives_the_same_logits(family, tmp_path):
    base = tmp_path / "base"
    build(family).save_pretrained(base)
    from transformers import AutoModelForSequenceClassification

    model = apply_lora(AutoModelForSequenceClassification.from_pretrained(base), LoraOptions(rank=4, alpha=8))
    head_before = {k: v.clone() for k, v in model.get_base_model().state_dict().items() if "modules_to_save" in k}
    trainer = Trainer(model, TrainingArguments(str(tmp_path / "out"), max_steps=5, save_strategy="no", **ARGS),
                      train_dataset=toy_rows(20, vocab=50))
    trainer.train()
    head_after = {k: v for k, v in model.get_base_model().state_dict().items() if "modules_to_save" in k}
    assert any(not torch.equal(head_before[k], head_after[k]) for k in head_before)  # the head trained
    rows = toy_rows(9, seed=2, vocab=50)
    expected = trainer.predict(rows).predictions
    trainer.save_model()
    out = tmp_path / "out"
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()

    reloaded, _ = load_adapter_model(out)
    again = Trainer(reloaded, TrainingArguments(str(out), save_strategy="no", **ARGS)).predict(rows).predictions
    np.testing.assert_allclose(again, expected, atol=1e-5)
    # transformers loads the adapter folder itself too (base from adapter_config.json, head from the adapter)
    plain = AutoModelForSequenceClassification.from_pretrained(out)
    with torch.no_grad():
        logits = plain(input_ids=torch.tensor([rows[0]["input_ids"]])).logits.numpy()
    np.testing.assert_allclose(logits[0], expected[0], atol=1e-5)

    save_merged(reloaded, tmp_path / "merged")
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged")
    assert not any("lora" in name for name, _ in merged.named_parameters())
    merged_logits = Trainer(merged, TrainingArguments(str(out), save_strategy="no", **ARGS)).predict(rows)
    np.testing.assert_allclose(merged_logits.predictions, expected, atol=1e-5)


def _lora_model(seed):
    """A BERT with dropout in the model and in the adapters (resuming must restore every random state); the
    base weights are the same for every seed (a checkpoint holds the adapters and head, not the frozen base),
    the adapters' initial weights are drawn from `seed`."""
    from .conftest import tiny_bert

    base = tiny_bert(vocab_size=64, seed=0)
    torch.manual_seed(seed)
    return apply_lora(base, LoraOptions(rank=4, alpha=8, dropout=0.1))


def test_lora_resumes_exactly(tmp_path):
    rows = toy_rows(40)
    straight = Trainer(_lora_model(0), TrainingArguments(str(tmp_path / "a"), max_steps=6, save_strategy="no",
                                                         **ARGS), train_dataset=rows)
    straight.train()
    part = TrainingArguments(str(tmp_path / "b"), max_steps=3, save_strategy="steps", save_steps=3, **ARGS)
    Trainer(_lora_model(0), part, train_dataset=rows).train()
    checkpoint = tmp_path / "b" / "checkpoint-3"
    assert (checkpoint / "adapter_model.safetensors").is_file() and (checkpoint / "optimizer.pt").is_file()
    rest = TrainingArguments(str(tmp_path / "b"), max_steps=6, save_strategy="no", **ARGS)
    resumed = Trainer(_lora_model(1), rest, train_dataset=rows)  # other initial adapters: all restored
    resumed.train(resume_from_checkpoint=True)
    ours, theirs = resumed.model.state_dict(), straight.model.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


def test_a_lora_checkpoint_of_another_rank_is_one_sentence(tmp_path):
    rows = toy_rows(16)
    args = TrainingArguments(str(tmp_path), max_steps=2, save_strategy="steps", save_steps=2, **ARGS)
    Trainer(_lora_model(0), args, train_dataset=rows).train()
    other = Trainer(apply_lora(build("bert"), LoraOptions(rank=2)), args, train_dataset=rows)
    with pytest.raises(SeqtuneError, match=r"checkpoint-2 comes from another LoRA recipe \(--lora-rank 4 there, 2 "):
        other.train(resume_from_checkpoint=True)


# ---- the command line ---------------------------------------------------------------------------
@pytest.fixture
def csv_data(tmp_path):
    from .conftest import topic_rows

    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in topic_rows(30)))
    return path


def test_cli_lora_run_with_merge_predicts_the_same_from_either_folder(tmp_path, csv_data, tiny_model_dir, capsys):
    from seqtune.cli import main

    out = tmp_path / "run"
    assert main(["train", "--train", str(csv_data), "--validation-split", "0.2", "--model", str(tiny_model_dir),
                 "--lora", "--lora-rank", "4", "--lora-targets", "query", "--lora-targets", "value", "--merge-lora",
                 "--gradient-checkpointing", "--max-steps", "3", "--output-dir", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "gradient checkpointing: patched attention" in printed and f"{out / 'merged'}/" in printed
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    assert (out / "checkpoint-3" / "adapter_model.safetensors").is_file()
    assert (out / "merged" / "model.safetensors").is_file() and (out / "merged" / "seqtune.json").is_file()
    from transformers import pipeline

    assert pipeline("text-classification", model=str(out / "merged"))("pasta and soup")[0]["label"] in (
        "food", "sports", "tech")
    for folder in (out, out / "merged"):
        assert main(["predict", "--model", str(folder), "--input", str(csv_data), "--output",
                     str(tmp_path / f"{folder.name}.csv"), "--quiet"]) == 0
        assert main(["evaluate", "--model", str(folder), "--data", str(csv_data), "--quiet"]) == 0
    import pandas as pd

    adapter, merged = pd.read_csv(tmp_path / "run.csv"), pd.read_csv(tmp_path / "merged.csv")
    assert list(adapter["predicted_label"]) == list(merged["predicted_label"])
    np.testing.assert_allclose(adapter["probability"], merged["probability"], atol=1e-5)


@pytest.mark.parametrize("flags, message", [
    (["--lora", "--lora-targets", "q_proj"], "LoRA target module 'q_proj' is not in this bert model"),
    (["--merge-lora"], "--merge-lora applies to LoRA runs; add --lora"),
    (["--lora-targets", "query"], "--lora-targets applies to LoRA runs; add --lora"),
    (["--lora-rank", "4"], "--lora-rank applies to LoRA runs; add --lora"),
    (["--lora-dropout", "0.1"], "--lora-dropout applies to LoRA runs; add --lora"),
    (["--lora", "--fsdp"], "--lora with --fsdp is not supported"),
    (["--lora", "--lora-rank", "0"], "--lora-rank: expected a whole number >= 1, got 0"),
    (["--lora", "--lora-dropout", "1"], "--lora-dropout: expected a fraction in [0, 1), got 1.0"),
])
def test_cli_lora_bad_input_is_one_line_exit_2(flags, message, tmp_path, csv_data, tiny_model_dir, capsys):
    from seqtune.cli import main

    code = main(["train", "--train", str(csv_data), "--validation-split", "0.2", "--model", str(tiny_model_dir),
                 *flags, "--max-steps", "1", "--output-dir", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_a_family_without_known_projections_needs_targets_named():
    from transformers import BloomConfig, BloomForSequenceClassification

    model = BloomForSequenceClassification(BloomConfig(vocab_size=64, hidden_size=32, n_layer=2, n_head=2,
                                                       pad_token_id=0, num_labels=2))
    with pytest.raises(SeqtuneError, match="LoRA: no known attention projection in this bloom model; name the "
                                           "layers to adapt with --lora-targets .*query_key_value"):
        apply_lora(model, LoraOptions())
    wrapped = apply_lora(model, LoraOptions(target_modules=["query_key_value"]))
    assert any("query_key_value.lora_A" in name for name, _ in wrapped.named_parameters())


def test_lora_without_peft_and_twice_is_one_sentence(monkeypatch):
    import sys

    wrapped = apply_lora(build("llama"), LoraOptions())
    with pytest.raises(SeqtuneError, match="the model is already wrapped by peft"):
        apply_lora(wrapped, LoraOptions())
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(SeqtuneError, match="LoRA needs the peft package: pip install peft"):
        apply_lora(build("llama"), LoraOptions())


def test_a_damaged_adapter_folder_is_one_sentence(tmp_path):
    build("bert").save_pretrained(tmp_path / "base")
    from transformers import AutoModelForSequenceClassification

    model = apply_lora(AutoModelForSequenceClassification.from_pretrained(tmp_path / "base"), LoraOptions())
    Trainer(model, TrainingArguments(str(tmp_path / "out"), **ARGS)).save_model()
    (tmp_path / "out" / "adapter_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(SeqtuneError, match="cannot load the LoRA adapter in .*out on .*base: "):
        load_adapter_model(tmp_path / "out")
    (tmp_path / "out" / "adapter_config.json").write_text("{}")
    with pytest.raises(SeqtuneError, match="adapter_config.json is not a peft adapter config"):
        load_adapter_model(tmp_path / "out")


def test_the_adapter_names_its_base_by_absolute_path_and_a_bad_one_is_one_sentence(tmp_path, monkeypatch):
    build("bert").save_pretrained(tmp_path / "base")
    from transformers import AutoModelForSequenceClassification

    monkeypatch.chdir(tmp_path)  # trained from a relative path: predict may run anywhere else
    model = apply_lora(AutoModelForSequenceClassification.from_pretrained("base"), LoraOptions())
    Trainer(model, TrainingArguments(str(tmp_path / "out"), **ARGS)).save_model()
    config_file = tmp_path / "out" / "adapter_config.json"
    assert json.loads(config_file.read_text())["base_model_name_or_path"] == str(tmp_path / "base")
    for base, says in ((5, "its base_model_name_or_path is 5"),
                       (str(tmp_path / "gone"), "was trained on .*gone, which cannot be loaded")):
        config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "base_model_name_or_path": base}))
        with pytest.raises(SeqtuneError, match=says):
            load_adapter_model(tmp_path / "out")


def test_resuming_a_lora_run_without_lora_says_so(tmp_path, csv_data, tiny_model_dir, capsys):
    from seqtune.cli import main

    common = ["train", "--train", str(csv_data), "--validation-split", "0.2", "--model", str(tiny_model_dir),
              "--output-dir", str(tmp_path / "run"), "--quiet", "--save-strategy", "steps"]
    assert main([*common, "--lora", "--max-steps", "2"]) == 0
    capsys.readouterr()
    assert main([*common, "--max-steps", "4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was trained with LoRA: resume with --lora" in err, err
    for other, says in ((["--lora-alpha", "32"], "--lora-alpha 16.0 there, 32.0 here"),
                        (["--lora-dropout", "0.3"], "--lora-dropout 0.0 there, 0.3 here")):
        assert main([*common, "--lora", "--max-steps", "4", "--resume", *other]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "comes from another LoRA recipe" in err and says in err, err
    assert main([*common, "--lora", "--max-steps", "4", "--resume"]) == 0  # its own options: it continues
