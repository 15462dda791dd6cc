"""The fast-path switch: which levers apply, that each loop puts the model back, and that anything the
levers do not know (a library version, a custom compute_loss, checkpointing) runs untouched."""

import numpy as np
import pytest
import torch

from seqtune import Trainer, TrainerCallback, TrainingArguments, fastpath, levers

from .conftest import tiny_bert, toy_rows


def _args(tmp_path, **kwargs):
    defaults = dict(max_steps=4, per_device_train_batch_size=4, report_to="none", save_strategy="no",
                    disable_tqdm=True, use_cpu=True, bf16=False)
    return TrainingArguments(str(tmp_path / "out"), **{**defaults, **kwargs})


def _untouched(model):
    """The model as a user built it: its own attention, plain dropout, no patched layer."""
    return (model.config._attn_implementation == "sdpa"
            and all(type(m) is torch.nn.Dropout for m in model.modules() if isinstance(m, torch.nn.Dropout))
            and not any("forward" in vars(m) for m in model.modules()))


class _Spy(TrainerCallback):
    """Records the model's state while the loop runs."""

    def __init__(self):
        self.during = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.during.append((model.config._attn_implementation,
                            any(type(m) is fastpath.CpuDropout for m in model.modules()),
                            any("forward" in vars(m) for m in model.modules())))


def test_cpu_levers_on_during_the_loop_and_all_restored_after(tmp_path, capsys):
    model, spy = tiny_bert(vocab_size=64), _Spy()
    assert _untouched(model)
    trainer = Trainer(model, _args(tmp_path), train_dataset=toy_rows(16), callbacks=[spy])
    assert _untouched(model)  # building a Trainer changes nothing
    trainer.train()
    assert spy.during == [(fastpath.ATTENTION_NAME, True, True)] * 4
    assert _untouched(model) and not hasattr(trainer.optimizer, "grad_scale")
    header = capsys.readouterr().out
    assert ("fast paths: cpu attention, cheap dropout, pooled last layer, folded clipping" in header), header
    trainer.predict(toy_rows(8))
    assert _untouched(model)


def test_an_unknown_transformers_version_runs_untouched(tmp_path, monkeypatch):
    monkeypatch.setattr(levers, "known_versions", lambda: {"transformers": False, "torch": True})
    model, spy = tiny_bert(vocab_size=64), _Spy()
    trainer = Trainer(model, _args(tmp_path), train_dataset=toy_rows(16), callbacks=[spy])
    trainer.train()
    assert [attention for attention, _, patched in spy.during] == ["sdpa"] * 4
    assert not any(patched for _, _, patched in spy.during)
    assert not trainer.fast_paths.levers.cpu_attention and not trainer.fast_paths.levers.pooled_last_layer


def test_an_unknown_torch_version_clips_the_plain_way(tmp_path, monkeypatch):
    monkeypatch.setattr(levers, "known_versions", lambda: {"transformers": True, "torch": False})
    calls = []
    monkeypatch.setattr(fastpath, "folded_clip", lambda *a: calls.append(1))
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path), train_dataset=toy_rows(16))
    trainer.train()
    assert calls == [] and not trainer.fast_paths.levers.folded_clipping


@pytest.mark.parametrize("setting, off", [
    ("off", set(levers.Levers.__dataclass_fields__)),
    ("-pooled_last_layer,-cheap_dropout", {"pooled_last_layer", "cheap_dropout"})])
def test_environment_switches_levers_off(tmp_path, monkeypatch, setting, off):
    monkeypatch.setenv("SEQTUNE_FAST_PATHS", setting)
    chosen = levers.choose(tiny_bert(vocab_size=64), torch.device("cpu"), None)
    assert not off & set(chosen.names())
    assert set(chosen.names()) == {"cpu_attention", "cheap_dropout", "pooled_last_layer", "folded_clipping"} - off


def test_levers_by_device_and_precision():
    model = tiny_bert(vocab_size=64)
    cpu_bf16 = levers.choose(model, torch.device("cpu"), torch.bfloat16)
    assert cpu_bf16.bf16_eval_weights and cpu_bf16.cpu_attention
    gpu = levers.choose(model, torch.device("cuda", 0), None)  # deciding needs no GPU
    assert gpu.names() == ["pooled_last_layer", "folded_clipping"]
    assert levers.choose(model, torch.device("cpu"), torch.bfloat16, sharded=True).names() == ["cheap_dropout"]


@pytest.mark.parametrize("checkpointing", [False, True])
def test_pooled_layer_and_dropout_masks_off_when_activations_are_recomputed(tmp_path, monkeypatch, checkpointing):
    calls = []
    original = fastpath._pooled_layer_forward
    monkeypatch.setattr(fastpath, "_pooled_layer_forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    model = tiny_bert(vocab_size=64)
    if checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
    trainer = Trainer(model, _args(tmp_path), train_dataset=toy_rows(16))
    output = trainer.train()
    assert output.global_step == 4 and np.isfinite(output.training_loss)
    assert len(calls) == (0 if checkpointing else 4)
    assert trainer.fast_paths.levers.cheap_dropout != checkpointing


def test_a_compute_loss_that_calls_the_model_itself_gets_every_position(tmp_path, monkeypatch):
    calls = []
    original = fastpath._pooled_layer_forward
    monkeypatch.setattr(fastpath, "_pooled_layer_forward", lambda *a, **k: calls.append(1) or original(*a, **k))

    class ReadsHiddenStates(Trainer):  # transformers' signature and return convention
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs, output_hidden_states=True)
            self.widths.append(outputs.hidden_states[-1].shape[1])
            return (outputs.loss, outputs) if return_outputs else outputs.loss

    class CallsSuper(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True)
            return (loss * 1.0, outputs) if return_outputs else loss * 1.0

    rows = toy_rows(12)
    model = tiny_bert(vocab_size=64).eval()
    custom = ReadsHiddenStates(model, _args(tmp_path, per_device_eval_batch_size=4))
    custom.widths = []
    output = custom.predict(rows)
    assert calls == [] and min(custom.widths) > 1  # the full last layer, every position
    with torch.no_grad():
        reference = np.concatenate([model(**_collate([row])).logits.numpy() for row in rows])
    np.testing.assert_allclose(output.predictions, reference, atol=1e-5)
    via_super = CallsSuper(model, _args(tmp_path, per_device_eval_batch_size=4)).predict(rows)
    assert len(calls) == 3  # super().compute_loss keeps the fast path: one call per batch
    np.testing.assert_allclose(via_super.predictions, reference, atol=1e-5)


def _collate(rows):
    from seqtune import DataCollatorWithPadding

    return {k: v for k, v in DataCollatorWithPadding()(rows).items() if k != "labels"}


def test_folded_clipping_steps_aside_for_what_it_does_not_know():
    model = tiny_bert(vocab_size=64)
    fast = levers.FastPaths(model, torch.device("cpu"), None)
    model(**_collate(toy_rows(4))).logits.sum().mul(100).backward()
    plain = torch.optim.AdamW(model.parameters(), lr=1e-3)  # not fused: the plain clip
    norm = fast.clip(model, plain, 1.0, scaler_enabled=False)
    assert not hasattr(plain, "grad_scale") and norm > 1.0
    total = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
    torch.testing.assert_close(total, torch.tensor(1.0), atol=1e-4, rtol=0)  # clipped in place
    fused = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    fast.clip(model, fused, 1.0, scaler_enabled=True)  # a GradScaler owns grad_scale
    assert not hasattr(fused, "grad_scale")
    fast.clip(model, fused, 1.0, scaler_enabled=False)
    assert hasattr(fused, "grad_scale")
