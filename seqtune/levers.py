"""The fast paths as one switch: which levers a run uses, decided in one place, applied once per loop,
and everything put back on the way out (the user's model included).

Each lever keeps the model's maths (tests/test_levers.py proves each against the plain path). A lever
that patches third-party code runs only on library versions it was proven on and on models whose
shape it recognises; anything else runs untouched. `SEQTUNE_FAST_PATHS=off` switches them all off,
`SEQTUNE_FAST_PATHS=-pooled_last_layer,-cheap_dropout` the ones named (bench.ablate uses it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import torch

from . import fastpath
from .lora import base_model

# Library versions the levers that reach into transformers or torch were proven on (the test suite
# runs them on the installed versions; pyproject.toml declares the same ranges).
TRANSFORMERS_RANGE = ((5, 0), (6, 0))
TORCH_RANGE = ((2, 6), (3, 0))


@dataclass(frozen=True)
class Levers:
    """Which fast paths are on. Names are what the run's header and SEQTUNE_FAST_PATHS use."""

    cpu_attention: bool = False  # BERT family on the CPU: seqtune's eager attention (fastpath.cpu_attention)
    eager_attention: bool = False  # other models on the CPU: eager instead of SDPA's slow flash kernel
    cheap_dropout: bool = False  # CPU training: dropout masks from 16 random bits (fastpath.fast_dropout)
    pooled_last_layer: bool = False  # the head reads one token: the last layer computes that token only
    folded_clipping: bool = False  # fused AdamW divides by the clip factor in its own pass
    bf16_eval_weights: bool = False  # evaluation under bf16 autocast: weights held as bf16 for the pass
    aside: str = ""  # not a lever: why levers that would apply stepped aside (said in the header)

    def names(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is True]

    def describe(self) -> str:
        """One line for the run's header."""
        on = self.names()
        aside = f" ({self.aside})" if self.aside else ""
        return "fast paths: " + (", ".join(n.replace("_", " ") for n in on) if on else "none") + aside


def _version(text: str) -> tuple[int, int]:
    parts = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in text.split("+")[0].split(".")[:2]]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


@lru_cache(maxsize=1)
def known_versions() -> dict[str, bool]:
    """Whether the installed transformers and torch are ones the levers were proven on."""
    import transformers

    low, high = TRANSFORMERS_RANGE
    torch_low, torch_high = TORCH_RANGE
    return {"transformers": low <= _version(transformers.__version__) < high,
            "torch": torch_low <= _version(torch.__version__) < torch_high}


def switched_off() -> set[str]:
    """Levers the environment switches off: 'off' (all), or '-name' items."""
    value = os.environ.get("SEQTUNE_FAST_PATHS", "").strip().lower()
    if value in ("off", "0", "none", "false", "no"):
        return {f.name for f in fields(Levers)}
    return {item.strip().lstrip("-") for item in value.split(",") if item.strip().startswith("-")}


def choose(model: torch.nn.Module, device: torch.device, autocast_dtype: torch.dtype | None, *,
           sharded: bool = False) -> Levers:
    """The levers proven for this model, device, precision and library versions."""
    versions = known_versions()
    config = getattr(model, "config", None)
    cpu = device.type == "cpu"
    # Activation checkpointing reruns forwards in backward, outside our contexts: no patched layers then.
    recomputes = fastpath.recomputes_activations(base_model(model))  # a peft model's own switch is its base's
    # A compiled model traced our patches (or would recompile for each): it fuses that work itself.
    compiled = _is_compiled(model)
    patches_ok = versions["transformers"] and not recomputes and not sharded and not compiled
    cpu_attention = cpu and patches_ok and fastpath.can_use_cpu_attention(model)
    eager = (cpu and patches_ok and not cpu_attention
             and getattr(config, "_attn_implementation", None) == "sdpa" and hasattr(model, "set_attn_implementation"))
    wanted = Levers(
        cpu_attention=cpu_attention,
        eager_attention=eager,
        cheap_dropout=cpu and not recomputes and not compiled,
        pooled_last_layer=patches_ok and fastpath.pooled_last_layer(model) is not None,
        folded_clipping=versions["torch"] and not sharded,
        bf16_eval_weights=autocast_dtype == torch.bfloat16 and not sharded and not compiled,
        aside="gradient checkpointing: patched attention, pooled last layer and cheap dropout step aside"
        if recomputes and versions["transformers"] else "",
    )
    off = switched_off()
    return Levers(**{f.name: getattr(wanted, f.name) and f.name not in off for f in fields(Levers)
                     if f.name != "aside"}, aside=wanted.aside)


class FastPaths:
    """Applies a Trainer's levers: `with fast.loop(training=...)` around each training or evaluation
    loop, `with fast.pooled():` around the model call in Trainer.compute_loss, and `fast.clip(...)`."""

    def __init__(self, model: torch.nn.Module, device: torch.device, autocast_dtype: torch.dtype | None,
                 sharded: bool = False, compilation: Any = None) -> None:
        self.model, self.device, self.autocast_dtype, self.sharded = model, device, autocast_dtype, sharded
        self.compilation = compilation  # a compiled.Compilation: counted in each outermost loop
        self.levers = choose(model, device, autocast_dtype, sharded=sharded)
        self._depth = 0
        self._gate: fastpath.PooledGate | None = None
        self._folded_into: torch.optim.Optimizer | None = None

    @contextmanager
    def loop(self, training: bool) -> Iterator[Levers]:
        """Inside: this loop's levers on the model; outside: the model exactly as it was. An evaluation
        inside a training loop keeps the training loop's levers and adds its own."""
        with ExitStack() as stack:
            if self._depth == 0:
                # Decided again at each loop: the user may have changed the model (checkpointing) since.
                self.levers = choose(self.model, self.device, self.autocast_dtype, sharded=self.sharded)
                levers = self.levers
                if levers.cpu_attention:
                    stack.enter_context(fastpath.attention_implementation(self.model, fastpath.ATTENTION_NAME))
                elif levers.eager_attention:
                    stack.enter_context(fastpath.attention_implementation(self.model, "eager"))
                if levers.pooled_last_layer:
                    layer = fastpath.pooled_last_layer(self.model)
                    self._gate = stack.enter_context(fastpath.gated_pooled_layer(layer))
                    stack.callback(setattr, self, "_gate", None)
                if training and levers.cheap_dropout:
                    stack.enter_context(fastpath.cpu_dropout(self.model))
                stack.callback(self._unfold)
                if self.compilation is not None:
                    stack.enter_context(self.compilation.watching())
            if not training and self.levers.bf16_eval_weights:
                stack.enter_context(fastpath.bf16_weights(self.model))
            self._depth += 1
            stack.callback(self._leave)
            yield self.levers

    def describe(self) -> str:
        """One line for the run's header: the levers, and torch.compile when it is on."""
        compiled = f"; {self.compilation.describe()}" if self.compilation is not None else ""
        return self.levers.describe() + compiled

    @property
    def active(self) -> bool:
        """Inside a loop."""
        return self._depth > 0

    def _leave(self) -> None:
        self._depth -= 1

    def _unfold(self) -> None:
        """The optimizer leaves the loop as it came: no clip factor left for a later step() to apply."""
        if self._folded_into is not None and hasattr(self._folded_into, "grad_scale"):
            del self._folded_into.grad_scale
        self._folded_into = None

    def pooled(self) -> Any:
        """Inside: the last layer computes the pooled token only (when that lever is on in this loop)."""
        return self._gate.open() if self._gate is not None else _NOTHING

    def clip(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, max_norm: float,
             scaler_enabled: bool) -> torch.Tensor:
        """Clip the gradients' total norm to `max_norm`; returns the norm before clipping."""
        params = [p for p in model.parameters() if p.grad is not None]
        if self.levers.folded_clipping and not scaler_enabled and _takes_grad_scale(optimizer, params):
            self._folded_into = optimizer
            return fastpath.folded_clip(params, optimizer, max_norm)
        return torch.nn.utils.clip_grad_norm_(params, max_norm)


def _is_compiled(model: torch.nn.Module) -> bool:
    """Compiled in place (`model.compile()`, torch_compile=True) or wrapped by `torch.compile(model)`."""
    return getattr(model, "_compiled_call_impl", None) is not None or type(model).__name__ == "OptimizedModule"


_NOTHING = nullcontext()  # reusable: no context object made per micro-batch when the lever is off


def _takes_grad_scale(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> bool:
    """torch's fused Adam/AdamW divide every gradient by `optimizer.grad_scale` (GradScaler's hand-off):
    only those, only over fp32 weights, and only when nobody else (a GradScaler) set it."""
    return (type(optimizer) in (torch.optim.Adam, torch.optim.AdamW) and bool(optimizer.defaults.get("fused"))
            and getattr(optimizer, "_step_supports_amp_scaling", False)
            and all(p.dtype == torch.float32 for p in params))
