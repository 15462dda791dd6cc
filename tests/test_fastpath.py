import subprocess
import sys
from contextlib import contextmanager

import pytest
import torch

from seqtune import fastpath

from .conftest import tiny_bert


@contextmanager
def pooled(layer):
    """The layer computing the first position only, as the Trainer's compute_loss has it."""
    with fastpath.gated_pooled_layer(layer) as gate, gate.open():
        yield


def _batch():
    ids = torch.randint(5, 64, (4, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[3, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 1, 0])}


def _tiny_roberta():
    from transformers import RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(0)
    return RobertaForSequenceClassification(RobertaConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=40, num_labels=2))


def _loss_and_grads(model, batch):
    model.zero_grad()
    output = model(**batch)
    output.loss.backward()
    return output.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_fast_dropout_drops_p_and_keeps_the_expectation():
    torch.manual_seed(0)
    x = torch.ones(1_000_000, requires_grad=True)
    y = fastpath.fast_dropout(x, 0.1)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.002
    assert abs(y.mean().item() - 1.0) < 0.005  # kept values are scaled by 1 / P(keep)
    assert torch.allclose(y[y != 0], torch.tensor(65536 / (65536 - 6554)))
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)  # the backward uses the forward's mask
    torch.manual_seed(0)
    assert torch.equal(fastpath.fast_dropout(torch.ones(1_000_000), 0.1), y.detach())  # seeded by torch's RNG
    assert torch.equal(fastpath.fast_dropout(x, 0.0), x)
    assert fastpath.fast_dropout(torch.ones(7), 1.0).sum().item() == 0


def test_cpu_dropout_swaps_for_the_context_only():
    model = tiny_bert(vocab_size=64)
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    with fastpath.cpu_dropout(model):
        assert dropouts and all(type(m) is fastpath.CpuDropout for m in dropouts)
        model.eval()
        x = torch.randn(10)
        assert torch.equal(dropouts[0](x), x)  # no dropout in eval mode
    assert all(type(m) is torch.nn.Dropout for m in dropouts)


@pytest.mark.parametrize("make", [lambda: tiny_bert(vocab_size=64), _tiny_roberta], ids=["bert", "roberta"])
def test_cpu_attention_and_pooled_last_layer_keep_outputs_and_gradients(make):
    reference, model = make(), make()
    for m in (reference, model):
        m.config.hidden_dropout_prob = m.config.attention_probs_dropout_prob = 0.0
        for module in m.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    reference.set_attn_implementation("eager")
    assert fastpath.can_use_cpu_attention(model)
    layer = fastpath.pooled_last_layer(model)
    assert layer is model.base_model.encoder.layer[-1]
    batch = _batch()
    logits, grads = _loss_and_grads(reference, batch)
    with fastpath.attention_implementation(model, fastpath.ATTENTION_NAME):
        assert model.config._attn_implementation == fastpath.ATTENTION_NAME
        with pooled(layer):
            pooled_logits, pooled_grads = _loss_and_grads(model, batch)
    assert "forward" not in vars(layer)  # the layer is whole again
    assert model.config._attn_implementation == "sdpa"  # and the model's attention its own
    torch.testing.assert_close(pooled_logits, logits, atol=1e-6, rtol=1e-5)
    assert pooled_grads.keys() == grads.keys()  # every parameter still gets its gradient
    for name in grads:
        torch.testing.assert_close(pooled_grads[name], grads[name], atol=1e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_pooled_layer_under_each_attention_mask_layout(implementation):
    """eager passes an additive 4-d mask, SDPA a boolean one (or none without padding)."""
    reference = tiny_bert(vocab_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = tiny_bert(vocab_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    reference.set_attn_implementation("eager")
    model.set_attn_implementation(implementation)
    layer = fastpath.pooled_last_layer(model)
    for batch in (_batch(), {**_batch(), "attention_mask": torch.ones(4, 9, dtype=torch.long)}):
        logits, grads = _loss_and_grads(reference, batch)
        with pooled(layer):
            pooled_logits, pooled_grads = _loss_and_grads(model, batch)
        torch.testing.assert_close(pooled_logits, logits, atol=1e-6, rtol=1e-5)
        for name in grads:
            torch.testing.assert_close(pooled_grads[name], grads[name], atol=1e-6, rtol=1e-4, msg=name)


def test_first_row_bias_reads_every_mask_layout():
    keep = torch.tensor([[1, 1, 0], [1, 1, 1]])
    additive = torch.zeros(2, 1, 3, 3).masked_fill(keep[:, None, None, :] == 0, -1e9)
    low = torch.finfo(torch.float32).min
    expected = torch.tensor([[[0.0, 0.0, low]], [[0.0, 0.0, 0.0]]])
    assert fastpath._first_row_bias(None, torch.float32) == 0.0
    torch.testing.assert_close(fastpath._first_row_bias(additive, torch.float32),
                               expected.clamp(min=-1e9))  # an additive mask is used as it is
    assert torch.equal(fastpath._first_row_bias(keep[:, None, None, :].expand(2, 1, 3, 3).bool(), torch.float32),
                       expected)  # SDPA's boolean mask
    assert torch.equal(fastpath._first_row_bias(keep, torch.float32), expected)  # flash attention's 2-d 0/1 mask


def test_pooled_layer_in_bf16_with_and_without_autocast():
    model = tiny_bert(vocab_size=64).eval()
    layer = fastpath.pooled_last_layer(model)
    batch = _batch()
    with torch.no_grad():
        full = model(**batch).logits
        with torch.autocast("cpu", dtype=torch.bfloat16), pooled(layer):
            autocast = model(**batch).logits
        model.to(torch.bfloat16)
        with pooled(layer):
            bf16 = model(**batch).logits
    torch.testing.assert_close(autocast.float(), full, atol=3e-2, rtol=3e-2)
    torch.testing.assert_close(bf16.float(), full, atol=3e-2, rtol=3e-2)


def test_pooled_layer_trains_with_attention_dropout():
    """In training the dropped probabilities no longer sum to one: the value bias is scaled by their sum."""
    model = tiny_bert(vocab_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.5).train()
    layer = fastpath.pooled_last_layer(model)
    attention = layer.attention.self
    hidden = torch.randn(3, 5, 32)
    with torch.no_grad():
        attention.value.bias.normal_()
        torch.manual_seed(0)
        pooled = fastpath._first_token_attention(attention, hidden[:, :1], hidden, None)
        torch.manual_seed(0)  # the same mask drawn over the first query's row, the reference way
        scores = attention.query(hidden[:, :1]).view(3, 1, 2, 16).transpose(1, 2) @ \
            attention.key(hidden).view(3, 5, 2, 16).permute(0, 2, 3, 1) * attention.scaling
        probs = attention.dropout(torch.softmax(scores.view(3, 2, 5), -1))
        expected = (probs.unsqueeze(2) @ attention.value(hidden).view(3, 5, 2, 16).transpose(1, 2)).reshape(3, 1, 32)
    assert (probs == 0).any()
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=1e-5)


def test_pooled_layer_only_where_the_head_reads_one_token():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    assert fastpath.pooled_last_layer(tiny_bert(vocab_size=64, output_hidden_states=True)) is None
    distil = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=64, dim=32, n_layers=1, n_heads=2,
                                                                  hidden_dim=64))
    assert fastpath.pooled_last_layer(distil) is None
    assert not fastpath.can_use_cpu_attention(distil)  # its own attention stays


def test_bf16_weights_for_the_pass_then_exact_fp32_again():
    model = tiny_bert(vocab_size=64)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with fastpath.bf16_weights(model):
        assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    for name, param in model.named_parameters():
        assert param.dtype == torch.float32 and torch.equal(param, before[name])


def test_clip_folded_into_fused_adamw_matches_clip_grad_norm():
    results = []
    for folded in (False, True):
        model = tiny_bert(vocab_size=64).eval()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
        for _ in range(3):
            model(**_batch()).loss.mul(50).backward()  # large gradients: clipping bites
            if folded:
                norm = fastpath.folded_clip(list(model.parameters()), optimizer, 1.0)
            else:
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            assert norm > 1.0
            optimizer.step()
            optimizer.zero_grad()
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    # Dividing by 1/coef instead of multiplying by coef: last-bit differences, which Adam's
    # normalisation magnifies for near-zero gradients; 2e-5 is 0.2% of one step (lr 1e-2).
    torch.testing.assert_close(results[1], results[0], atol=2e-5, rtol=0)


def test_keep_freed_memory_sets_glibc_thresholds(monkeypatch):
    from seqtune import device

    calls = []

    class FakeLibc:
        def mallopt(self, option, value):
            calls.append((option, value))
            return 1

    monkeypatch.setattr(device.ctypes, "CDLL", lambda name: FakeLibc())
    monkeypatch.setattr(device.platform, "system", lambda: "Linux")
    device.keep_freed_memory()
    assert calls == [(device.M_MMAP_THRESHOLD, 1 << 30), (device.M_TRIM_THRESHOLD, 1 << 30)]
    calls.clear()
    monkeypatch.setenv("SEQTUNE_KEEP_FREED_MEMORY", "0")
    device.keep_freed_memory()
    assert calls == []


def test_metric_libraries_are_imported_when_the_metric_is_loaded():
    code = ("import sys, seqtune; assert 'sklearn' not in sys.modules; seqtune.load_metric('glue', 'mrpc'); "
            "print('sklearn.metrics' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
