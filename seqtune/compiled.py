"""torch.compile for the Trainer (`torch_compile=True`, transformers' names and defaults).

The model's own call is compiled in place (`nn.Module.compile`: its state dict keeps its names, the
folder it saves is a plain one), and each batch's batch and sequence dimensions are marked dynamic, so
a run compiles once for training and once for evaluation, not once per batch length. A CUDA-graph mode
("reduce-overhead", "max-autotune") on CUDA records one graph per distinct input shape and then
replays it with a single launch: there batches are padded up to a few length buckets, so a run
captures one graph per bucket it meets, not one per batch length.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from .errors import SeqtuneError

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def length_buckets(limit: int) -> tuple[int, ...]:
    """16, 24, 32, 48, 64, 96, ... up to `limit` (the model's window) and `limit` itself: steps of 1.5x
    and 4/3x, so padding takes at most a third of a bucketed batch; all multiples of 8."""
    buckets, size = [], 16
    while size < limit:
        buckets.append(size)
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3  # 16 -> 24 -> 32 -> 48 -> 64
    return (*buckets, limit)


class Compilation:
    """A model compiled in place, and what compiling it cost: compilations (forward frames and
    backward graphs) and CUDA graphs captured, counted while `watching()`."""

    def __init__(self, model: torch.nn.Module, device: torch.device, backend: str | None,
                 mode: str | None) -> None:
        self.backend, self.mode = backend or "inductor", mode
        if mode is not None and mode not in MODES:
            raise SeqtuneError(f"torch_compile_mode={mode!r} is not one of torch.compile's modes "
                               f"({', '.join(MODES)})")
        if mode is not None and self.backend != "inductor":
            raise SeqtuneError(f"torch_compile_mode={mode!r} applies to the inductor backend only, not "
                               f"{self.backend!r}; leave the mode out or use torch_compile_backend='inductor'")
        import torch._dynamo

        known = torch._dynamo.list_backends(exclude_tags=())
        if self.backend not in known:
            raise SeqtuneError(f"torch_compile_backend={self.backend!r} is not a torch.compile backend here "
                               f"(known: {', '.join(sorted(known))})")
        self.cuda_graphs = device.type == "cuda" and mode in CUDA_GRAPH_MODES
        self.compiles = self.backward_compiles = self.captures = 0
        self.shapes: set[tuple[bool, tuple[int, ...]]] = set()
        self.config = getattr(model, "config", None)
        model.compile(backend=self.backend, mode=mode)

    def buckets(self, model: torch.nn.Module) -> tuple[int, ...]:
        """The lengths batches are padded up to: buckets for CUDA graphs, none otherwise."""
        if not self.cuda_graphs:
            return ()
        window = getattr(getattr(model, "config", None), "max_position_embeddings", None) or 512
        return length_buckets(int(window))

    def prepare(self, inputs: dict[str, Any], training: bool) -> dict[str, Any]:
        """Mark each token tensor's batch and length dimensions dynamic (one compilation for all
        lengths), and note the shape (a CUDA graph each, in a CUDA-graph mode)."""
        for value in inputs.values():
            if isinstance(value, torch.Tensor) and value.ndim >= 1:
                for dim in range(min(value.ndim, 2)):
                    torch._dynamo.maybe_mark_dynamic(value, dim)
        ids = inputs.get("input_ids")
        if isinstance(ids, torch.Tensor):
            self.shapes.add((training, tuple(ids.shape)))
        if self.cuda_graphs:  # a new step: the last replay's outputs (already read) may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        labels = inputs.get("labels")
        if isinstance(labels, torch.Tensor) and self.config is not None and self.config.problem_type is None:
            self.config.problem_type = _problem_type(self.config.num_labels, labels)
        return inputs

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Inside: compilations and CUDA-graph captures are counted (torch's compile callbacks; a torch
        without them leaves the counts at zero and `describe_costs` says so)."""
        handler = getattr(torch._dynamo, "callback_handler", None)
        if handler is None or not hasattr(handler, "register_start_callback"):
            self.compiles = self.backward_compiles = self.captures = -1
            yield
            return
        handler.register_start_callback(self._count)
        try:
            yield
        finally:
            handler.remove_start_callback(self._count)

    def _count(self, args: Any) -> None:
        trigger = getattr(getattr(args, "callback_trigger", None), "name", "")
        if trigger == "DYNAMO":
            self.compiles += 1
        elif trigger == "LAZY_BACKWARD":
            self.backward_compiles += 1
        elif trigger == "CUDAGRAPH_RECORDING":
            self.captures += 1

    def describe(self) -> str:
        """For the run's header."""
        graphs = ", one CUDA graph per length bucket" if self.cuda_graphs else ""
        return f"torch.compile ({self.backend}, mode {self.mode or 'default'}{graphs})"

    def describe_costs(self) -> str:
        """For the end of a run: what compiling took, so a recompiling run shows."""
        if self.compiles < 0:
            return f"torch.compile: {len(self.shapes)} batch shapes (this torch does not report compilations)"
        graphs = f", {self.captures} CUDA graphs captured" if self.cuda_graphs else ""
        # A backward traced with its forward is in that compilation; one deferred to the first backward is apart.
        later = f" (+{self.backward_compiles} deferred backward)" if self.backward_compiles else ""
        return f"torch.compile: {self.compiles} compilations{later} for {len(self.shapes)} batch shapes{graphs}"


def _problem_type(num_labels: int, labels: torch.Tensor) -> str:
    """What transformers' classifiers write into their config at their first forward with labels (a
    compiled forward would be compiled twice, before and after): set before, by the same rule."""
    if num_labels == 1:
        return "regression"
    if labels.dtype in (torch.long, torch.int):
        return "single_label_classification"
    return "multi_label_classification"


def compile_model(model: torch.nn.Module, args: Any, device: torch.device) -> Compilation | None:
    """Compile `model` in place when the arguments ask for it: `torch_compile`, or (as in transformers)
    a `torch_compile_backend` or `torch_compile_mode` alone."""
    if not (args.torch_compile or args.torch_compile_backend or args.torch_compile_mode):
        return None
    return Compilation(model, device, args.torch_compile_backend, args.torch_compile_mode)
