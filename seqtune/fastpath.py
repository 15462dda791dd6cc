"""The fast paths' kernels for encoder classifiers: cheaper dropout masks, one CPU attention kernel,
a last layer computed for the pooled token only, clipping folded into fused AdamW, bf16 evaluation
weights. Each keeps the model's maths; `levers.py` decides which apply and applies them (see
bench/levers.md for what each one gave)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

ATTENTION_NAME = "seqtune_cpu"
# Encoders whose layers are BERT's (query/key/value, attention.output, intermediate, output) and
# whose classification head reads the first token only; their eager attention is the plain one.
POOLED_CLASSIFIERS = {"BertForSequenceClassification", "RobertaForSequenceClassification",
                      "XLMRobertaForSequenceClassification", "CamembertForSequenceClassification",
                      "ElectraForSequenceClassification"}
PLAIN_ATTENTION_TYPES = {"bert", "roberta", "xlm-roberta", "camembert", "electra"}


# ---- dropout ---------------------------------------------------------------------------------
class _MaskedScale(torch.autograd.Function):
    """x * keep / P(keep), with the mask saved as bytes for the backward pass. `where` rather than
    `masked_fill`: the CPU's masked_fill is 2-3x slower on these sizes."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, drop: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(drop)
        ctx.scale = scale
        out = x * scale
        return torch.where(drop, out.new_zeros(()), out, out=out)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (drop,) = ctx.saved_tensors
        grad = grad * ctx.scale
        return torch.where(drop, grad.new_zeros(()), grad, out=grad), None, None


def fast_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Dropout whose mask comes from 16 random bits per element, four per 64-bit draw of torch's
    generator: about 3x cheaper on the CPU than bernoulli sampling (one 64-bit draw per element).
    The drop probability is p rounded to a multiple of 1/65536 (0.1 -> 0.100006); the scale uses
    that probability, so the expectation is kept exactly. Seeded and resumed with torch's RNG."""
    if p <= 0.0:
        return x
    if p >= 1.0:
        return x * 0
    threshold = round(p * 65536)
    scale = 65536 / (65536 - threshold)
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-2**63, None)
    drop = bits.view(torch.int16)[:n].view(x.shape) < threshold - 32768
    return _MaskedScale.apply(x, drop, scale)


class CpuDropout(torch.nn.Dropout):
    """nn.Dropout with the cheaper mask (swapped in for training on the CPU, swapped back after)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return fast_dropout(x, self.p)


@contextmanager
def cpu_dropout(model: torch.nn.Module) -> Iterator[None]:
    """Inside: the model's nn.Dropout modules (exactly that class) draw masks with `fast_dropout`."""
    swapped = [m for m in model.modules() if type(m) is torch.nn.Dropout]
    for module in swapped:
        module.__class__ = CpuDropout
    try:
        yield
    finally:
        for module in swapped:
            module.__class__ = torch.nn.Dropout


# ---- attention -------------------------------------------------------------------------------
def cpu_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                  **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention, arranged for the CPU: the scale applied to the (smaller) queries, softmax in
    fp32 (the CPU's bf16 softmax is ~3x slower than reading bf16 into an fp32 one), and the dropout
    with cheap masks applied after the cast to the values' dtype (half the bytes under bf16)."""
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query * scaling, key.transpose(2, 3))
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    if module.training and dropout > 0.0:
        probs = fast_dropout(probs, dropout)
    output = torch.matmul(probs, value)
    return output.transpose(1, 2).contiguous(), probs


def can_use_cpu_attention(model: torch.nn.Module) -> bool:
    """A BERT-family model whose attention is eager or SDPA, on a transformers with attention interfaces
    (where it is, `cpu_attention` is registered with them under ATTENTION_NAME)."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in PLAIN_ATTENTION_TYPES:
        return False
    if not hasattr(model, "set_attn_implementation"):
        return False
    if getattr(config, "_attn_implementation", None) not in ("eager", "sdpa", ATTENTION_NAME):
        return False
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, eager_mask
    except ImportError:  # a transformers without the interfaces: the model keeps its attention
        return False
    AttentionInterface.register(ATTENTION_NAME, cpu_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, eager_mask)
    return True


@contextmanager
def attention_implementation(model: torch.nn.Module, name: str) -> Iterator[None]:
    """Inside: the model runs attention `name`; on the way out, the implementation it had."""
    before = model.config._attn_implementation
    try:
        model.set_attn_implementation(name)
        switched = True
    except (AttributeError, ValueError):  # the model cannot run it: it stays as it is
        switched = False
    try:
        yield
    finally:
        if switched:
            model.set_attn_implementation(before)


# ---- the pooled last layer --------------------------------------------------------------------
def _pooled_layer_forward(layer: torch.nn.Module, hidden_states: torch.Tensor,
                          attention_mask: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> torch.Tensor:
    """A BERT layer computed for the first token only. The head reads that position alone, so the
    outputs (and the gradients) are those of the full layer, for a small part of its cost."""
    first = hidden_states[:, :1]
    output = _first_token_attention(layer.attention.self, first, hidden_states, attention_mask)
    attention_output = layer.attention.output(output, first)
    return layer.feed_forward_chunk(attention_output)


def _first_token_attention(attention: torch.nn.Module, first: torch.Tensor, hidden_states: torch.Tensor,
                           attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Self-attention of the first position over all, with no keys or values formed. With one query
    per head the products regroup: q.(W_k h_i + b_k) = (W_k^T q).h_i + q.b_k, and the output
    sum_i p_i (W_v h_i + b_v) = W_v (sum_i p_i h_i) + b_v sum_i p_i. Same sums in another order,
    for heads x length x width multiplies in place of 2 x length x width^2 (keys and values)."""
    batch, length, width = hidden_states.shape
    heads, size = attention.num_attention_heads, attention.attention_head_size
    query = attention.query(first).view(batch, heads, size) * attention.scaling
    key_weight = attention.key.weight.reshape(heads, size, width)
    folded_keys = torch.bmm(query.transpose(0, 1), key_weight).transpose(0, 1)  # (batch, heads, width)
    scores = torch.bmm(folded_keys, hidden_states.transpose(1, 2))  # (batch, heads, length)
    if attention.key.bias is not None:  # a shift per head (softmax ignores it); kept for exact gradients
        scores = scores + (query * attention.key.bias.view(heads, size)).sum(-1, keepdim=True)
    scores = scores + _first_row_bias(attention_mask, scores.dtype)
    probs = attention.dropout(torch.softmax(scores, dim=-1, dtype=torch.float32).to(hidden_states.dtype))
    mixed = torch.bmm(probs, hidden_states)  # (batch, heads, width): sum_i p_i h_i per head
    value_weight = attention.value.weight.reshape(heads, size, width)
    output = torch.bmm(mixed.transpose(0, 1), value_weight.transpose(1, 2)).transpose(0, 1)  # (batch, heads, size)
    if attention.value.bias is not None:
        output = output + attention.value.bias.view(heads, size) * probs.sum(-1, keepdim=True)
    return output.reshape(batch, 1, heads * size)


def _first_row_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | float:
    """The first query's row of the model's attention mask as an additive bias (batch, 1|heads, length):
    eager masks are additive (batch, 1, q, k), SDPA's are boolean, flash attention's are 2-d 0/1."""
    if mask is None:
        return 0.0
    row = mask[:, :, 0] if mask.dim() == 4 else mask[:, None, :]
    if row.dtype.is_floating_point:
        return row.to(dtype)
    return torch.zeros_like(row, dtype=dtype).masked_fill_(row == 0, torch.finfo(dtype).min)  # on the mask's device


def pooled_last_layer(model: torch.nn.Module) -> torch.nn.Module | None:
    """The last encoder layer of a BERT-family classifier, if its head reads only the first token."""
    if type(model).__name__ not in POOLED_CLASSIFIERS:
        return None
    config = model.config
    if config.is_decoder or config.add_cross_attention or getattr(config, "chunk_size_feed_forward", 0):
        return None
    if getattr(config, "output_hidden_states", False) or getattr(config, "output_attentions", False):
        return None
    base = getattr(model, model.base_model_prefix, None)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not layers:
        return None
    last = layers[-1]
    if "forward" in last.__dict__:  # someone already patched this layer: not ours to change
        return None
    parts = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
             "intermediate.dense", "output.dense")
    try:
        for part in parts:
            last.get_submodule(part)
    except AttributeError:
        return None
    attention = last.attention.self
    if not hasattr(last, "feed_forward_chunk") or not all(
            hasattr(attention, name) for name in ("scaling", "num_attention_heads", "attention_head_size")):
        return None
    if not all(type(attention.get_submodule(name)) is torch.nn.Linear for name in ("query", "key", "value")):
        return None
    if "flex" in str(getattr(config, "_attn_implementation", "")):  # its mask is a BlockMask, not a tensor
        return None
    return last


def recomputes_activations(model: torch.nn.Module) -> bool:
    """Gradient (activation) checkpointing on: its backward reruns forwards outside our contexts."""
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):  # transformers 5.x, 4.x
        if isinstance(getattr(type(model), name, None), property):
            return bool(getattr(model, name))
    return False


class PooledGate:
    """The last layer's forward for a whole loop: the pooled token only while `open()`, the full layer
    otherwise (a caller that reads other positions, such as an overridden compute_loss, gets them)."""

    def __init__(self, layer: torch.nn.Module) -> None:
        self.layer, self.is_open = layer, False
        self.full_forward = type(layer).forward

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.is_open:
            return _pooled_layer_forward(self.layer, hidden_states, *args, **kwargs)
        return self.full_forward(self.layer, hidden_states, *args, **kwargs)

    @contextmanager
    def open(self) -> Iterator[None]:
        self.is_open = True
        try:
            yield
        finally:
            self.is_open = False


@contextmanager
def gated_pooled_layer(layer: torch.nn.Module) -> Iterator[PooledGate]:
    """Inside: `layer` (from `pooled_last_layer`) computes the first position only while the gate is open."""
    gate = PooledGate(layer)
    layer.forward = gate.forward
    try:
        yield gate
    finally:
        del layer.forward


def folded_clip(params: list[torch.Tensor], optimizer: torch.optim.Optimizer, max_norm: float) -> torch.Tensor:
    """`clip_grad_norm_` folded into a fused Adam(W) step: it divides every gradient by `grad_scale`
    (the attribute GradScaler hands it), saving a pass over all the gradients. Returns the norm."""
    norm = torch.nn.utils.get_total_norm([p.grad for p in params], 2.0)
    optimizer.grad_scale = 1 / torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    return norm


# ---- evaluation weights ----------------------------------------------------------------------
@contextmanager
def bf16_weights(model: torch.nn.Module) -> Iterator[None]:
    """Inside (evaluation under bf16 autocast): fp32 parameters are held as bf16 copies, so autocast
    does not cast every weight for every batch; the fp32 values are put back on the way out."""
    saved = []
    for param in model.parameters():
        if param.dtype == torch.float32:
            saved.append((param, param.data))
            param.data = param.data.to(torch.bfloat16)
    try:
        yield
    finally:
        for param, data in saved:
            param.data = data
