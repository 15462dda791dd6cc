"""Device and precision: what bf16=None picks where, TF32, and weights stored in half precision."""

import pandas as pd
import pytest
import torch

from seqtune import Trainer, TrainingArguments, device
from seqtune.cli import main

from .conftest import tiny_bert, topic_rows, toy_rows

GPU = torch.device("cuda", 0)


@pytest.fixture
def ampere(monkeypatch):
    """A CUDA device with native bf16, as far as the precision rules can tell (no GPU needed)."""
    monkeypatch.setattr(device, "native_bf16", lambda dev: True)


def test_on_cuda_bf16_autocast_only_once_the_work_outweighs_the_casts(ampere):
    minilm_step = 8 * 50 * 384  # issue 18: both were faster in fp32 on an H100
    bert_base_step = 32 * 50 * 768
    for work in (None, minilm_step, bert_base_step):
        assert device.pick_precision(GPU, None, False, work) is None
    assert device.pick_precision(GPU, None, False, device.CUDA_BF16_MIN_WORK) is torch.bfloat16
    assert device.pick_precision(GPU, True, False, minilm_step) is torch.bfloat16  # the user's word wins
    assert device.pick_precision(GPU, False, False, 10**9) is None
    assert device.pick_precision(GPU, None, True, 10**9) is torch.float16


def test_on_the_cpu_bf16_follows_the_hardware_alone(monkeypatch):
    cpu = torch.device("cpu")
    for native in (False, True):
        monkeypatch.setattr(device, "native_bf16", lambda dev, native=native: native)
        expected = torch.bfloat16 if native else None
        assert device.pick_precision(cpu, None, False, 100) is expected
        assert device.pick_precision(cpu, None, False, 10**9) is expected


def test_tf32_for_fp32_work_on_cuda_and_said_in_the_header(ampere, monkeypatch):
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        assert device.use_tf32(GPU, None, None) and torch.backends.cuda.matmul.allow_tf32
        assert not device.use_tf32(GPU, False, None) and not torch.backends.cuda.matmul.allow_tf32
        assert not device.use_tf32(GPU, None, torch.bfloat16)  # autocast work: left as it is
        assert not device.use_tf32(torch.device("cpu"), True, None)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
    assert device.describe(torch.device("cpu"), None, tf32=True).endswith("fp32 (TF32 matmuls)")


def test_work_per_forward_is_tokens_times_width():
    assert device.work_per_forward([10, 30], 8, tiny_bert(vocab_size=64)) == 20 * 8 * 32


@pytest.mark.parametrize("keep", [False, True])
def test_a_model_stored_in_bf16_trains(tmp_path, keep, capsys):
    model = tiny_bert(vocab_size=64).to(torch.bfloat16)
    args = TrainingArguments(str(tmp_path), max_steps=3, per_device_train_batch_size=4, save_strategy="no",
                             disable_tqdm=True, use_cpu=True, keep_model_dtype=keep)
    trainer = Trainer(model, args, train_dataset=toy_rows(12))
    output = trainer.train()
    assert output.global_step == 3 and torch.isfinite(torch.tensor(output.training_loss))
    dtypes = {p.dtype for p in model.parameters()}
    assert dtypes == ({torch.bfloat16} if keep else {torch.float32})
    header = capsys.readouterr().out
    assert ("weights kept in bfloat16" if keep else "weights stored in bfloat16, upcast to fp32 master weights") \
        in header


def test_cli_trains_predicts_and_evaluates_a_bf16_checkpoint(tmp_path, embedded_tokenizer, capsys):
    stored = tmp_path / "bf16-model"
    tiny_bert().to(torch.bfloat16).save_pretrained(stored)
    embedded_tokenizer.save_pretrained(stored)
    pd.DataFrame(topic_rows(24, seed=1)).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame(topic_rows(9, seed=2)).to_csv(tmp_path / "b.csv", index=False)
    out = tmp_path / "run"
    assert main(["train", "--train", str(tmp_path / "a.csv"), "--validation", str(tmp_path / "b.csv"),
                 "--model", str(stored), "--epochs", "1", "--quiet", "--output-dir", str(out)]) == 0
    assert "upcast to fp32 master weights" in capsys.readouterr().out
    pure = tmp_path / "pure"
    assert main(["train", "--train", str(tmp_path / "a.csv"), "--validation", str(tmp_path / "b.csv"),
                 "--model", str(stored), "--epochs", "1", "--quiet", "--output-dir", str(pure),
                 "--keep-model-dtype"]) == 0
    assert main(["predict", "--model", str(pure), "--input", str(tmp_path / "b.csv"), "--output",
                 str(tmp_path / "p.csv"), "--quiet"]) == 0  # in the stored dtype
    assert len(pd.read_csv(tmp_path / "p.csv")) == 9
    assert main(["evaluate", "--model", str(pure), "--data", str(tmp_path / "b.csv"), "--quiet"]) == 0
