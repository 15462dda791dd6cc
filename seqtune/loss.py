"""What Trainer.compute_loss reads from a model's output, and transformers' label smoothing and compute_loss_func."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import torch

from .args import TrainingArguments
from .errors import SeqtuneError


def label_smoother(args: TrainingArguments, model: torch.nn.Module) -> Any:
    """transformers' LabelSmoother for label_smoothing_factor > 0 (None otherwise, and for multi-label and
    regression models: it smooths a distribution over classes)."""
    if not args.label_smoothing_factor:
        return None
    config = getattr(model, "config", None)
    if getattr(config, "problem_type", None) == "multi_label_classification":
        warnings.warn("label_smoothing_factor does not apply to multi-label classification; it is off for this run",
                      UserWarning, stacklevel=3)
        return None
    if getattr(config, "num_labels", None) == 1:
        from .distributed import is_main

        if is_main():
            print(f"seqtune: note: label_smoothing_factor={args.label_smoothing_factor} applies to classification "
                  "only; it is off for this regression model (num_labels=1)")
        return None
    from transformers.trainer_pt_utils import LabelSmoother

    return LabelSmoother(epsilon=args.label_smoothing_factor)


def takes_labels_out(inputs: dict[str, Any], smoother: Any, loss_func: Callable | None) -> bool:
    """Whether compute_loss computes the loss itself: a compute_loss_func, or smoothing of class labels
    (regression targets, floats, keep the model's own loss)."""
    labels = inputs.get("labels")
    if labels is None:
        return False
    return loss_func is not None or (smoother is not None and not torch.is_floating_point(labels))


def own_loss(outputs: Any, labels: torch.Tensor, smoother: Any, loss_func: Callable | None,
             num_items_in_batch: torch.Tensor | int | None) -> torch.Tensor:
    """compute_loss_func(outputs, labels, num_items_in_batch=...) if given, else the smoothed loss.

    seqtune computes the loss of each micro-batch and averages over gradient accumulation itself, so when the
    caller gives no count, num_items_in_batch is this micro-batch's number of labels (not -100).
    """
    if num_items_in_batch is None:
        num_items_in_batch = labels.ne(-100).sum()
    if loss_func is not None:
        if takes_num_items(loss_func):
            return loss_func(outputs, labels, num_items_in_batch=num_items_in_batch)
        return loss_func(outputs, labels)
    return smoother(outputs, labels, num_items_in_batch=num_items_in_batch)


def takes_num_items(func: Callable) -> bool:
    """Whether compute_loss_func takes num_items_in_batch (by name, or through **kwargs): transformers passes it,
    and a plain (outputs, labels) function, common in user code, is called without it."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins): call it as transformers does
        return True
    return any(p.kind == p.VAR_KEYWORD or (p.name == "num_items_in_batch" and p.kind != p.POSITIONAL_ONLY)
               for p in parameters)


def check_loss_func(func: Any) -> None:
    """compute_loss_func when the Trainer is built: None, or a function of (outputs, labels[, num_items_in_batch])."""
    if func is None:
        return
    if not callable(func):
        raise SeqtuneError(f"Trainer: compute_loss_func must be a function (outputs, labels, num_items_in_batch=None) "
                           f"or None, got {func!r:.60} ({type(func).__name__})")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None, None)
    except TypeError:
        raise SeqtuneError(f"Trainer: compute_loss_func {getattr(func, '__name__', type(func).__name__)}{signature} "
                           "must take (outputs, labels), with num_items_in_batch=None optionally") from None


def model_loss(outputs: Any, has_labels: bool) -> torch.Tensor | None:
    """The loss a model returned: a ModelOutput or dict's "loss", a tuple's first entry when it was given labels;
    None without labels (predict on unlabelled data)."""
    if isinstance(outputs, dict):  # ModelOutput is a dict too
        return outputs.get("loss")
    if isinstance(outputs, (tuple, list)) and has_labels and len(outputs) > 1:
        return outputs[0]
    return None


def logits_of(outputs: Any, has_loss: bool) -> torch.Tensor:
    """The logits of a model output: a ModelOutput or dict's "logits", a tuple's first entry after the loss."""
    if isinstance(outputs, dict):
        return outputs["logits"]
    if isinstance(outputs, (tuple, list)):
        return outputs[1] if has_loss and len(outputs) > 1 else outputs[0]
    return outputs


def check_override(trainer_class: type) -> None:
    """A compute_loss override with seqtune 0.1's signature (model, inputs) -> (loss, logits): said, not a TypeError
    in the middle of an evaluation."""
    parameters = inspect.signature(trainer_class.compute_loss).parameters
    if "return_outputs" not in parameters and not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
        raise SeqtuneError(f"{trainer_class.__name__}.compute_loss has the old signature (model, inputs); use "
                           "transformers' compute_loss(self, model, inputs, return_outputs=False, "
                           "num_items_in_batch=None), returning the loss, or (loss, outputs) when return_outputs")


def prediction_outputs(compute_loss: Callable, model: Any, inputs: dict[str, Any], has_labels: bool,
                       pooled: Callable) -> tuple[torch.Tensor | None, Any]:
    """(loss, outputs) of an evaluation batch, as transformers' prediction_step: compute_loss(...,
    return_outputs=True) when the batch holds its labels, the model alone when it does not (an override
    written for transformers may take the labels out of the inputs, so it never sees unlabelled ones)."""
    if not has_labels:
        with pooled():
            return None, model(**inputs)
    result = compute_loss(model, inputs, return_outputs=True)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise SeqtuneError("compute_loss(model, inputs, return_outputs=True) returned the loss alone; an override "
                           "must return (loss, outputs) when return_outputs is True, as in transformers")
    return result[0], result[1]
