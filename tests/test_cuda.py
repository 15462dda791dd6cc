"""The CUDA paths on a real GPU: training matches the CPU, a bf16 checkpoint trains, the precision policy,
and CUDA graphs per length bucket. Skipped where no GPU is present (CI); run on a lent GPU machine."""

import pytest
import torch

from seqtune import Trainer, TrainingArguments
from tests.conftest import tiny_bert, toy_rows

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _train(tmp_path, use_cpu: bool, model=None, **overrides):
    model = model or tiny_bert(vocab_size=64, seed=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    settings = dict(max_steps=8, per_device_train_batch_size=8, disable_tqdm=True, save_strategy="no",
                    learning_rate=1e-3, logging_steps=4, use_cpu=use_cpu, bf16=False, tf32=False,
                    group_by_length=False)
    args = TrainingArguments(str(tmp_path), **{**settings, **overrides})
    trainer = Trainer(model, args, train_dataset=toy_rows(64, seed=1))
    trainer.train()
    return trainer


def test_training_on_the_gpu_matches_the_cpu(tmp_path):
    gpu = _train(tmp_path / "gpu", use_cpu=False)
    cpu = _train(tmp_path / "cpu", use_cpu=True)
    assert next(gpu.model.parameters()).device.type == "cuda"
    for name, weight in cpu.model.state_dict().items():
        torch.testing.assert_close(gpu.model.state_dict()[name].cpu(), weight, atol=1e-4, rtol=1e-3, msg=name)
    rows = toy_rows(40, seed=2)
    on_gpu, on_cpu = gpu.predict(rows), cpu.predict(rows)
    assert (on_gpu.predictions.argmax(-1) == on_cpu.predictions.argmax(-1)).all()
    torch.testing.assert_close(torch.tensor(on_gpu.predictions), torch.tensor(on_cpu.predictions), atol=1e-4,
                               rtol=1e-3)


def test_small_work_trains_in_fp32_with_tf32_and_says_so(tmp_path, capsys):
    trainer = _train(tmp_path, use_cpu=False, bf16=None, tf32=None)
    assert trainer.autocast_dtype is None  # a tiny forward: bf16's casts would cost more than they give
    assert torch.backends.cuda.matmul.allow_tf32
    assert "tf32" in capsys.readouterr().out.lower()


def test_a_bf16_checkpoint_trains_with_fp32_master_weights(tmp_path):
    model = tiny_bert(vocab_size=64, seed=3).to(torch.bfloat16)
    model.save_pretrained(tmp_path / "stored")
    from transformers import AutoModelForSequenceClassification

    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "stored")
    trainer = _train(tmp_path / "run", use_cpu=False, model=loaded)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_cuda_graphs_one_capture_set_per_length_bucket(tmp_path, capsys):
    trainer = _train(tmp_path, use_cpu=False, max_steps=16, torch_compile=True,
                     torch_compile_mode="reduce-overhead")
    compilation = trainer.compilation
    assert compilation.cuda_graphs
    buckets_used = {length for training, (_, length) in compilation.shapes if training}
    assert buckets_used <= set(compilation.buckets(trainer.model))  # every batch padded up to a bucket
    assert 1 <= compilation.captures
    assert "CUDA graphs captured" in capsys.readouterr().out
    plain = _train(tmp_path / "plain", use_cpu=False, max_steps=16)
    for name, weight in plain.model.state_dict().items():
        torch.testing.assert_close(trainer.model.state_dict()[name], weight, atol=1e-3, rtol=1e-2, msg=name)
