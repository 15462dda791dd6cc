"""torch_compile=True: one compilation for all batch lengths, the same weights, a plain saved folder,
and the buckets that bound the shapes of a CUDA-graph mode."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from seqtune import SeqtuneError, Trainer, TrainingArguments
from seqtune.compiled import Compilation, length_buckets
from seqtune.data.collate import DataCollatorWithPadding, with_length_buckets
from tests.conftest import tiny_bert, toy_rows


def test_buckets_up_to_the_window():
    assert length_buckets(512) == (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
    assert length_buckets(514)[-2:] == (512, 514) and length_buckets(10) == (10,)


@given(st.integers(1, 4096), st.integers(16, 4096))
def test_a_bucket_holds_the_batch_and_is_at_most_a_third_padding(length, window):
    buckets = length_buckets(window)
    if length > window:
        return
    bucket = next(b for b in buckets if b >= length)
    assert bucket >= length and (bucket == buckets[0] or bucket == window or length > bucket * 2 / 3)


def test_the_collator_pads_up_to_the_bucket_and_leaves_longer_batches_alone():
    collator = with_length_buckets(DataCollatorWithPadding(), None, (16, 24, 32))
    assert collator.length_buckets == (16, 24, 32)
    assert collator([{"input_ids": [1] * 17}])["input_ids"].shape == (1, 24)
    assert collator([{"input_ids": [1] * 3}])["input_ids"].shape == (1, 16)
    assert collator([{"input_ids": [1] * 40}])["input_ids"].shape == (1, 40)


def _train(tmp_path, **compile_args):
    """On the CPU (a GPU pads lengths to multiples of 8 and keeps the model there: tests/test_cuda.py)."""
    model = tiny_bert(vocab_size=64, seed=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    args = TrainingArguments(str(tmp_path), max_steps=10, per_device_train_batch_size=8, disable_tqdm=True,
                             save_strategy="no", bf16=False, learning_rate=1e-3, logging_steps=5, use_cpu=True,
                             **compile_args)
    trainer = Trainer(model, args, train_dataset=toy_rows(80, seed=1))
    trainer.train()
    return trainer


def test_one_compilation_for_every_batch_length_and_the_same_weights(tmp_path, capsys):
    plain = _train(tmp_path / "plain")
    compiled = _train(tmp_path / "compiled", torch_compile=True, torch_compile_backend="aot_eager")
    training_shapes = {shape for training, shape in compiled.compilation.shapes if training}
    assert len({length for _, length in training_shapes}) >= 6  # the toy rows' lengths vary
    assert compiled.compilation.compiles == 1  # forward and backward, traced once with dynamic lengths
    out = capsys.readouterr().out
    assert "torch.compile (aot_eager, mode default)" in out and "torch.compile: 1 compilations" in out
    # Patching levers step aside for a compiled model; the optimizer's folded clipping stays.
    assert "fast paths: folded clipping; torch.compile" in out
    for name, weight in plain.model.state_dict().items():
        torch.testing.assert_close(compiled.model.state_dict()[name], weight, atol=1e-5, rtol=1e-4, msg=name)
    compiled.predict(toy_rows(20, seed=2))
    assert compiled.compilation.compiles == 2  # evaluation (no grad) once more, for every length


def test_the_compiled_model_saves_a_plain_folder(tmp_path):
    from transformers import AutoModelForSequenceClassification

    trainer = _train(tmp_path, torch_compile_backend="aot_eager")  # a backend alone implies torch_compile
    assert trainer.compilation is not None
    trainer.save_model(str(tmp_path / "final"))
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "final")
    torch.testing.assert_close(reloaded.classifier.weight, trainer.model.classifier.weight)


def test_cuda_graph_modes_bucket_the_lengths_on_cuda_only():
    model = tiny_bert(vocab_size=64)
    on_cpu = Compilation(model, torch.device("cpu"), None, "reduce-overhead")
    assert on_cpu.buckets(model) == () and "CUDA graph" not in on_cpu.describe()
    on_cuda = Compilation.__new__(Compilation)  # the same decision, as it is made on a CUDA device
    on_cuda.cuda_graphs, on_cuda.backend, on_cuda.mode = True, "inductor", "reduce-overhead"
    assert on_cuda.buckets(model) == length_buckets(128)  # tiny_bert's 128 positions
    assert "one CUDA graph per length bucket" in on_cuda.describe()


@pytest.mark.parametrize("backend, mode, says", [
    (None, "fastest", "torch_compile_mode='fastest' is not one of torch.compile's modes"),
    ("aot_eager", "reduce-overhead", "applies to the inductor backend only"),
    ("no-such-backend", None, "torch_compile_backend='no-such-backend' is not a torch.compile backend"),
])
def test_bad_compile_settings_are_one_sentence(tmp_path, backend, mode, says):
    args = TrainingArguments(str(tmp_path), torch_compile=True, torch_compile_backend=backend,
                             torch_compile_mode=mode)
    with pytest.raises(SeqtuneError, match=says.replace("(", r"\(").replace(")", r"\)")):
        Trainer(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(8))
