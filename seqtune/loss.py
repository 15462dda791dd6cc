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
    """transformers' LabelSmoother for label_smoothing_factor > 0 (None otherwise, and for multi-label models)."""
    if not args.label_smoothing_factor:
        return None
    if getattr(getattr(model, "config", None), "problem_type", None) == "multi_label_classification":
        warnings.warn("label_smoothing_factor does not apply to multi-label classification; it is off for this run",
                      UserWarning, stacklevel=3)
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
        return loss_func(outputs, labels, num_items_in_batch=num_items_in_batch)
    return smoother(outputs, labels, num_items_in_batch=num_items_in_batch)


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
