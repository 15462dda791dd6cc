"""LoRA through `peft`: low-rank adapters on the attention projections, the classification head trained
in full and saved with them, checkpoints that resume exactly, and a merged standard model on request.

A LoRA output folder holds peft's adapter (`adapter_config.json`, `adapter_model.safetensors`, the head
included) plus `classifier_config.json`, the wrapped model's config (labels, pad token), so that the
classifier comes back with its own head size and label names whatever the base model's config says.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import SeqtuneError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FILE = "adapter_model.safetensors"
CLASSIFIER_CONFIG = "classifier_config.json"
MERGED_DIR = "merged"

# The attention projections (query, key, value, output) by model type: what LoRA adapts when no targets
# are given. A name matches a module whose dotted name ends with it ("attention.output.dense" leaves the
# feed-forward's "output.dense" alone).
BERT_STYLE = ["query", "key", "value", "attention.output.dense"]
LLAMA_STYLE = ["q_proj", "k_proj", "v_proj", "o_proj"]
TARGETS: dict[str, list[str]] = {
    **{t: BERT_STYLE for t in ("bert", "roberta", "xlm-roberta", "camembert", "electra")},
    "albert": ["query", "key", "value", "attention.dense"],
    "deberta-v2": ["query_proj", "key_proj", "value_proj", "attention.output.dense"],
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin"],
    "modernbert": ["attn.Wqkv", "attn.Wo"],
    "gpt2": ["attn.c_attn", "attn.c_proj"],
    **{t: LLAMA_STYLE for t in ("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text",
                                "phi3", "olmo", "olmo2", "granite", "starcoder2", "smollm3")},
}


@dataclass(frozen=True)
class LoraOptions:
    """LoRA's recipe: rank r, scale alpha / r, dropout on the adapter's input; `target_modules` None means
    the attention projections of the model's family (`TARGETS`)."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] | None = None


def is_peft_model(model: Any) -> bool:
    """A model wrapped by peft (get_peft_model / PeftModel.from_pretrained)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def base_model(model: Any) -> Any:
    """The transformers model inside a peft wrapper (the model itself when it is not wrapped)."""
    return model.get_base_model() if is_peft_model(model) else model


def head_modules(model: torch.nn.Module) -> list[str]:
    """The classification head's modules: the classifier's children other than its base model that hold
    weights (`classifier`; `pre_classifier` + `classifier`; `pooler` + `classifier`; `score`; ...)."""
    prefix = getattr(model, "base_model_prefix", None)
    return [name for name, child in model.named_children()
            if name != prefix and any(True for _ in child.parameters())]


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith(f".{target}")


def target_modules(model: torch.nn.Module, wanted: list[str] | None) -> list[str]:
    """The targets for `model`, each checked to name at least one of its modules (outside the head)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    targets = list(wanted) if wanted else TARGETS.get(model_type)
    head = tuple(head_modules(model))
    names = [n for n, m in model.named_modules() if n and not n.startswith(head) and _adaptable(m)]
    if targets is None:  # an unlisted family: whichever of the known projection names it has
        known = {t for names_ in TARGETS.values() for t in names_}
        targets = sorted({t for t in known for n in names if _matches(n, t)})
        if not targets:
            raise SeqtuneError(f"LoRA: no known attention projection in this {model_type or type(model).__name__} "
                               f"model; name the layers to adapt with --lora-targets (its layers include "
                               f"{_some_leaves(names)})")
    missing = [t for t in targets if not any(_matches(n, t) for n in names)]
    if missing:
        raise SeqtuneError(f"LoRA target module {missing[0]!r} is not in this {model_type or 'model'} model; "
                           f"its adaptable layers are named {_some_leaves(names)}")
    return targets


def _adaptable(module: torch.nn.Module) -> bool:
    """What peft's LoRA wraps: Linear, Conv1D (GPT-2), Embedding and convolution layers."""
    return isinstance(module, (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d)) or \
        type(module).__name__ == "Conv1D"


def _some_leaves(names: list[str]) -> str:
    leaves = sorted({n.split(".")[-1] for n in names})
    return ", ".join(leaves[:12]) + (", ..." if len(leaves) > 12 else "")


def apply_lora(model: torch.nn.Module, options: LoraOptions) -> Any:
    """`model` wrapped with LoRA adapters: only the adapters and the head (trained in full, saved with the
    adapter: peft's modules_to_save) require gradients. The base model's weights stay frozen."""
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError:
        raise SeqtuneError("LoRA needs the peft package: pip install peft (with torch==2.13.0 in the same "
                           "pip call)") from None
    if is_peft_model(model):
        raise SeqtuneError("LoRA: the model is already wrapped by peft; pass the plain transformers model")
    targets = target_modules(model, options.target_modules)
    # GPT-2's Conv1D stores its weight transposed (in x out): peft must be told, or it warns and guesses.
    transposed = any(type(m).__name__ == "Conv1D" and any(_matches(n, t) for t in targets)
                     for n, m in model.named_modules())
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=options.rank, lora_alpha=options.alpha,
                        lora_dropout=options.dropout, target_modules=targets, modules_to_save=head_modules(model),
                        fan_in_fan_out=transposed)
    with _peft_quiet():
        return get_peft_model(model, config)


@contextmanager
def _peft_quiet() -> Iterator[None]:
    """peft reads transformers' deprecated `is_gradient_checkpointing`: its warning is not the user's to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
        yield


def save_adapter(model: Any, folder: Path) -> None:
    """peft's adapter files (adapters and head) plus the classifier's own config."""
    from .checkpoint import quiet_transformers

    folder.mkdir(parents=True, exist_ok=True)
    for config in getattr(model, "peft_config", {}).values():  # a relative base path would be read from the
        base = config.base_model_name_or_path                  # folder predict runs in: written absolute
        if isinstance(base, str) and base and Path(base).is_dir() and not Path(base).is_absolute():
            config.base_model_name_or_path = str(Path(base).resolve())
    with quiet_transformers():
        model.save_pretrained(folder, safe_serialization=True)
    (folder / CLASSIFIER_CONFIG).write_text(base_model(model).config.to_json_string())


def load_adapter_weights(model: Any, folder: Path, weights: dict[str, torch.Tensor]) -> None:
    """A checkpoint's adapter and head weights into the wrapped `model` (strict: every one must land)."""
    from peft import set_peft_model_state_dict

    _check_same_recipe(model, folder)
    try:
        result = set_peft_model_state_dict(model, weights)
    except RuntimeError as err:  # "size mismatch for ...": another rank, or another head size
        detail = (str(err).strip().splitlines() or ["shapes differ"])[-1].strip()
        raise SeqtuneError(f"checkpoint {folder} is from another LoRA model: {detail}") from None
    unexpected = list(getattr(result, "unexpected_keys", []))
    if unexpected or not weights:
        detail = f"it has {unexpected[0]!r} which this model lacks" if unexpected else "it is empty"
        raise SeqtuneError(f"checkpoint {folder} is from another LoRA model: {detail}")


def _check_same_recipe(model: Any, folder: Path) -> None:
    """Alpha, dropout and targets leave the weights' shapes alone: a checkpoint of other ones would load
    and silently continue as another model."""
    try:
        saved = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no config beside the weights (written by hand): the shapes are all there is to check
    config = model.peft_config[model.active_adapter]
    options = (("r", "--lora-rank"), ("lora_alpha", "--lora-alpha"), ("lora_dropout", "--lora-dropout"),
               ("target_modules", "--lora-targets"))
    differ = []
    for key, flag in options:
        then, now = saved.get(key), getattr(config, key, None)
        if key == "target_modules" and not isinstance(then, str) and not isinstance(now, str):
            then, now = sorted(then or []), sorted(now or [])  # peft keeps a set: order means nothing
        if then != now:
            differ.append(f"{flag} {then} there, {now} here")
    if differ:
        raise SeqtuneError(f"resume: {folder} comes from another LoRA recipe ({'; '.join(differ)}); resume with "
                           "its LoRA options or start a new output_dir")


def is_adapter_folder(folder: Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def load_adapter_model(folder: Path, merge: bool = False) -> tuple[Any, Any]:
    """The base model named in the adapter's config, with the classifier's config (head size, labels), the
    adapter and head loaded on top; `merge` folds the adapters into the weights (a plain model, faster)."""
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from .checkpoint import quiet_transformers
    from .models import resolve_model

    folder = Path(folder)
    try:
        base_path = json.loads((folder / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SeqtuneError(f"{folder / ADAPTER_CONFIG} is not a peft adapter config ({err})") from None
    if not isinstance(base_path, str) or not base_path.strip():
        raise SeqtuneError(f"{folder / ADAPTER_CONFIG} is damaged: its base_model_name_or_path is {base_path!r}, "
                           "not a model folder or hub id")
    try:
        base_path = resolve_model(base_path)  # the base must still be where it was trained (or cached)
    except SeqtuneError as err:
        raise SeqtuneError(f"the LoRA adapter in {folder} was trained on {base_path}, which cannot be loaded: "
                           f"{err}") from None
    try:
        with quiet_transformers(), _peft_quiet():
            config_file = folder / CLASSIFIER_CONFIG
            config = AutoConfig.from_pretrained(config_file if config_file.is_file() else base_path)
            # The base's own head may have another size: it is replaced by the adapter's (modules_to_save).
            model = AutoModelForSequenceClassification.from_pretrained(base_path, config=config,
                                                                       ignore_mismatched_sizes=True)
            model = PeftModel.from_pretrained(model, folder)
            tokenizer_from = folder if (folder / "tokenizer_config.json").is_file() else base_path
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    except Exception as err:  # damaged or foreign files raise many types
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise SeqtuneError(f"cannot load the LoRA adapter in {folder} on {base_path}: {first_line}") from None
    return (model.merge_and_unload() if merge else model), tokenizer


def save_merged(model: Any, folder: Path, tokenizer: Any = None) -> Any:
    """The adapters folded into the base weights (in place: `model` is unwrapped) and saved as a standard
    transformers model folder that `pipeline` and `from_pretrained` load. Returns the merged model."""
    from .checkpoint import save_model_files

    merged = model.merge_and_unload()
    save_model_files(merged, Path(folder), tokenizer)
    return merged
