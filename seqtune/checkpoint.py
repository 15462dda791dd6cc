"""Checkpoints: written whole into a temporary folder, then renamed into place; loaded without pickles.

Each one holds `checksums.json`, the SHA-256 and size of every file in it, so that a file truncated or
changed after it was written is noticed before it is loaded (a damaged checkpoint is never resumed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import random
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import lora
from .errors import SeqtuneError

PREFIX = "checkpoint-"
MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.json"
ARGS_FILE = "training_args.json"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
SCALER_FILE = "scaler.pt"
RNG_FILE = "rng_state.pth"
SHARDED_DIR = "sharded"  # FSDP2: model and optimizer shards written by torch.distributed.checkpoint
MANIFEST_FILE = "checksums.json"  # {"algorithm", "files": {relative path: {"size", "sha256"}}, "files_sha256"}


def save_model_files(model: torch.nn.Module, folder: Path, tokenizer: Any = None,
                     state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """The model as safetensors plus config (a transformers model folder), and the tokenizer.

    `state_dict` replaces the model's own (a sharded model's gathered weights).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if lora.is_peft_model(model):  # the adapters and head (what trains), not the frozen base weights
        lora.save_adapter(model, folder)
    elif hasattr(model, "save_pretrained"):
        with quiet_transformers():
            model.save_pretrained(folder, safe_serialization=True, state_dict=state_dict)
    elif state_dict is not None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(folder / MODEL_FILE))
    else:
        from safetensors.torch import save_model

        save_model(model, str(folder / MODEL_FILE))
    if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(folder)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and load reports for the duration (ours are enough)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def save_checkpoint(output_dir: Path, step: int, *, model: torch.nn.Module, tokenizer: Any,
                    optimizer: dict[str, Any] | None, scheduler: dict[str, Any] | None,
                    scaler: dict[str, Any] | None, trainer_state: dict[str, Any], args: dict[str, Any],
                    rng_states: list[dict[str, Any]] | None = None,
                    full_state: dict[str, torch.Tensor] | None = None, sharded: Path | None = None,
                    model_only: bool = False) -> Path:
    """Write `output_dir/checkpoint-<step>` atomically: a crash leaves the old set or the new one.

    `optimizer`, `scheduler` and `scaler` are state dicts (None: not saved). For a sharded model,
    `full_state` is its gathered weights and `sharded` the folder of shards the ranks wrote.
    `model_only` (save_only_model): no optimizer, scheduler, scaler or random states, so no resume.
    """
    if model_only:
        optimizer = scheduler = scaler = None
    final = output_dir / f"{PREFIX}{step}"
    staging = output_dir / f".tmp-{PREFIX}{step}-{os.getpid()}"
    try:
        if staging.exists():
            shutil.rmtree(staging)
        save_model_files(model, staging, tokenizer, full_state)
        if sharded is not None:
            shutil.move(str(sharded), str(staging / SHARDED_DIR))
        for name, part in ((OPTIMIZER_FILE, optimizer), (SCHEDULER_FILE, scheduler), (SCALER_FILE, scaler)):
            if part is not None:
                torch.save(part, staging / name)
        if not model_only:
            rng = rng_state()
            if rng_states and len(rng_states) > 1:
                rng["ranks"] = rng_states
            torch.save(rng, staging / RNG_FILE)
        (staging / ARGS_FILE).write_text(json.dumps(args, indent=2, default=str))
        (staging / STATE_FILE).write_text(json.dumps(trainer_state, indent=2, default=float))
        write_manifest(staging)  # last: it describes every file above
        _fsync_tree(staging)
        if final.exists():  # a re-save of the same step: move the old one aside first
            old = output_dir / f".old-{PREFIX}{step}-{os.getpid()}"
            final.rename(old)
            staging.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(final)
        _fsync_dir(output_dir)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise SeqtuneError(
            f"could not write checkpoint {final}: {err.strerror or err}{_space(output_dir, model)}; the previous "
            "checkpoints are intact, free some space or fix the permissions, then resume"
        ) from None
    return final


def _space(output_dir: Path, model: torch.nn.Module) -> str:
    """What a checkpoint takes (the newest one's size, else weights plus AdamW's two moments) and what is free."""
    previous = [p for p in output_dir.glob(f"{PREFIX}*") if p.is_dir() and not p.is_symlink()]
    if previous:
        needed = sum(f.stat().st_size for f in max(previous, key=lambda p: p.stat().st_mtime).rglob("*")
                     if f.is_file())
    else:
        needed = 3 * sum(p.numel() * p.element_size() for p in model.parameters())
    try:
        free = shutil.disk_usage(output_dir).free
    except OSError:
        return f" (a checkpoint needs about {needed / 2**20:,.0f} MB)"
    return f" (a checkpoint needs about {needed / 2**20:,.0f} MB; {free / 2**20:,.0f} MB are free there)"


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open folders; the rename is still atomic there
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_staging(output_dir: Path) -> None:
    """Drop half-written checkpoints left by a crash (they were never renamed into place)."""
    if output_dir.is_dir():
        for path in output_dir.glob(f".*-{PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Intact checkpoints, oldest step first (temporary, partial and damaged ones are left out).

    All are checked for their files and sizes; the newest are also hashed until one passes, so the
    last one (what a resume takes) is verified byte for byte at the cost of hashing about one checkpoint.
    """
    intact: list[Path] = []
    for path in reversed(_checkpoint_folders(output_dir)):
        if damage(path, hashes=not intact) is None:
            intact.append(path)
    return intact[::-1]


def _checkpoint_folders(output_dir: Path) -> list[Path]:
    """Every `checkpoint-<step>` folder, intact or not, oldest step first."""
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        match = re.fullmatch(rf"{PREFIX}(\d+)", path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def is_intact(folder: Path, hashes: bool = True) -> bool:
    """Complete, and every file as it was written (sizes, and with `hashes` the SHA-256 too)."""
    return damage(folder, hashes) is None


# ---- checksums -------------------------------------------------------------------------------
# Digests already computed in this process, by file identity: a file written or changed since has
# another size, mtime or ctime (ctime cannot be set back), so only unchanged files hit the cache.
_digests: dict[tuple[int, ...], str] = {}


def _sha256(path: Path) -> str:
    info = path.stat()
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    if key not in _digests:
        digest = hashlib.sha256()  # SHA-NI makes it faster than blake2b: ~1.3 GB/s on one core
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def write_manifest(folder: Path) -> None:
    """Record the size and SHA-256 of every file under `folder` (the manifest itself excepted)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and name != MANIFEST_FILE:
            files[name] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    manifest = {"algorithm": "sha256", "files": files, "files_sha256": _files_digest(files)}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))


def _files_digest(files: dict[str, Any]) -> str:
    # The manifest's own checksum: a changed manifest is said as such, not blamed on a file it lists.
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def _manifest(folder: Path) -> dict[str, dict[str, Any]] | None:
    """The manifest's files (None: there is none, an older seqtune wrote the checkpoint); ValueError: torn."""
    path = folder / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
        if manifest["files_sha256"] == _files_digest(files):
            return files
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    raise ValueError(f"{MANIFEST_FILE} is unreadable (torn or changed after it was written)")


def weights_file(folder: Path) -> str:
    """The weights a checkpoint holds: the whole model, or a LoRA run's adapters and head."""
    return lora.ADAPTER_FILE if (folder / lora.ADAPTER_FILE).is_file() else MODEL_FILE


def damage(folder: Path, hashes: bool = True, only: str | None = None) -> str | None:
    """What is wrong with checkpoint `folder` (a few words naming the file), or None if it is intact.

    Without `hashes` only presence and sizes are checked (a stat per file). A checkpoint without a
    manifest (from an older seqtune) passes when its files are present. `only`: check that file alone.
    """
    try:
        files = _manifest(folder)
    except ValueError as err:
        return str(err)
    needed = [weights_file(folder), STATE_FILE]
    if files is None or RNG_FILE in files:  # a manifest without random states: a save_only_model checkpoint
        needed += [SCHEDULER_FILE, RNG_FILE]
        needed.append(OPTIMIZER_FILE if not (folder / SHARDED_DIR).is_dir() else f"{SHARDED_DIR}/.metadata")
    if only is not None:
        needed = [only] if only in needed else []
        files = {only: files[only]} if files and only in files else {}
    for name in needed:
        if not (folder / name).is_file():
            return f"{name} is missing"
    for name, entry in (files or {}).items():
        try:
            size = (folder / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != entry["size"]:
            return (f"{name} has {size:,} bytes, not the {entry['size']:,} it was written with "
                    "(truncated or changed after it was written)")
    for name, entry in (files or {}).items() if hashes else ():
        if _sha256(folder / name) != entry["sha256"]:
            return f"{name} does not match its checksum (changed after it was written)"
    return None


def damaged_error(folder: Path, what: str) -> SeqtuneError:
    """One sentence: which checkpoint, which file, what is wrong, and what to resume from instead."""
    others = [p for p in list_checkpoints(folder.parent) if p.resolve() != folder.resolve()]
    instead = (f"resume from {others[-1]} instead, or start again" if others
               else "no intact checkpoint is left beside it, so start again")
    return SeqtuneError(f"checkpoint {folder} is damaged: {what}; {instead}")


def check_intact(folder: Path, only: str | None = None) -> None:
    """Raise the one-sentence SeqtuneError if `folder` (or its file `only`) is damaged; hashes included."""
    what = damage(folder, hashes=True, only=only)
    if what is not None:
        raise damaged_error(folder, what)


def resume_checkpoint(output_dir: Path, resume: bool | str, say: Callable[[str], None] = print) -> Path:
    """The checkpoint a resume continues: the newest intact one in `output_dir` (damaged newer ones are
    said and skipped), or the folder named, verified; a damaged one is a SeqtuneError naming the file."""
    if resume is True:
        every, intact = _checkpoint_folders(output_dir), list_checkpoints(output_dir)
        if not every:
            raise SeqtuneError(f"resume: no complete checkpoint in {output_dir}")
        if not intact:
            raise damaged_error(every[-1], damage(every[-1]) or "it changed while it was read")
        for path in every[every.index(intact[-1]) + 1:]:
            say(f"seqtune: skipping {path}: {damage(path)}")
        return intact[-1]
    folder = Path(resume)
    if not folder.is_dir() or not any((folder / n).exists() for n in (MANIFEST_FILE, STATE_FILE, MODEL_FILE)):
        raise SeqtuneError(f"resume: {folder} is not a complete seqtune checkpoint")
    check_intact(folder)
    return folder


def rotate_checkpoints(output_dir: Path, limit: int | None, keep: tuple[str | None, ...] = ()) -> None:
    """Delete the oldest checkpoints beyond `limit`, never one named in `keep` (best, newest)."""
    if limit is None:
        return
    checkpoints = list_checkpoints(output_dir)
    kept = {Path(k).resolve() for k in keep if k}
    if checkpoints:
        kept.add(checkpoints[-1].resolve())
    excess = len(checkpoints) - max(limit, len(kept))
    for path in checkpoints:
        if excess <= 0:
            break
        if path.resolve() not in kept:
            shutil.rmtree(path, ignore_errors=True)
            excess -= 1


def rng_state() -> dict[str, Any]:
    """Every random state a run draws from, in types that `torch.load(weights_only=True)` accepts."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _read(folder: Path, name: str, load: Callable[[Path], Any]) -> dict[str, Any]:
    """`load(folder/name)`, a dict, or the one-sentence damage error (a checkpoint without a manifest, or
    one that changed since it was verified, can still hold bytes that do not decode)."""
    path = folder / name
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of a foreign file
            warnings.simplefilter("ignore")
            value = load(path)
    except Exception as err:  # damaged bytes fail in every decoder's own way (RuntimeError, KeyError, ...)
        raise damaged_error(folder, f"{name} {_why(path, err)}") from None
    if not isinstance(value, dict):
        raise damaged_error(folder, f"{name} holds a {type(value).__name__}, not what seqtune writes there")
    return value


def _why(path: Path, err: Exception) -> str:
    if path.is_file() and path.stat().st_size == 0:
        return "is empty"
    if isinstance(err, pickle.UnpicklingError):
        return "holds a pickle, not plain tensors (refused unread: loading it could run code)"
    detail = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]  # torch adds advice
    return f"cannot be read ({detail[:120]})"


def load_model_weights(model: torch.nn.Module, folder: Path) -> None:
    """Load `model.safetensors` into `model`; keys missing only because weights are tied are fine."""
    from safetensors.torch import load_file

    name = lora.ADAPTER_FILE if lora.is_peft_model(model) else MODEL_FILE
    path = folder / name
    if not path.is_file():
        other = MODEL_FILE if name == lora.ADAPTER_FILE else lora.ADAPTER_FILE
        if (folder / other).is_file():  # the run it comes from was (or was not) a LoRA run
            how = "with LoRA: resume with --lora and its LoRA options" if other == lora.ADAPTER_FILE else (
                "without LoRA (the whole model): resume without --lora")
            raise SeqtuneError(f"{folder} was trained {how}")
        raise SeqtuneError(f"{folder} holds no {name}; it is not a seqtune checkpoint of this model")
    check_intact(folder, only=name)  # cached: free when the checkpoint was just written or verified
    weights = _read(folder, name, lambda p: load_file(str(p)))
    if lora.is_peft_model(model):
        lora.load_adapter_weights(model, folder, weights)
        return
    own = model.state_dict()
    mismatched = [k for k, v in weights.items() if k in own and own[k].shape != v.shape]
    unexpected = [k for k in weights if k not in own]
    if mismatched or unexpected or len(weights) == 0:
        detail = (f"shape of {mismatched[0]} is {tuple(weights[mismatched[0]].shape)} there, "
                  f"{tuple(own[mismatched[0]].shape)} here" if mismatched
                  else f"it has {unexpected[0]!r} which this model lacks" if unexpected
                  else "it is empty")
        raise SeqtuneError(f"checkpoint {folder} is from another model: {detail}")
    missing = model.load_state_dict(weights, strict=False).missing_keys
    loaded = {own[k].data_ptr() for k in weights}
    untied = [k for k in missing if own[k].data_ptr() not in loaded]
    if untied:
        raise SeqtuneError(f"checkpoint {folder} is from another model: it lacks {untied[0]!r}")


# Arguments that set the course of training: continued under other values, a checkpoint would train on as its own
# recipe (the restored optimizer and scheduler keep its learning rate) while the run records the new one. Its
# length (epochs, max_steps) may change: the resuming run's wins.
RECIPE_ARGS = ("seed", "data_seed", "learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
               "max_grad_norm", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_ratio", "warmup_steps", "optim",
               "label_smoothing_factor")


def recipe_differences(saved: dict[str, Any], state: Any, args: Any) -> list[str]:
    """What a checkpoint (load_training_state's dict) and the run resuming it (its fresh state and arguments)
    do not share: the rows, the batch geometry, the arguments above. Empty when it may continue."""
    then_state, then_args = saved["state"], saved["args"]
    accumulation = then_args.get("gradient_accumulation_steps", 1)
    pairs = {"training examples": (then_state.get("num_examples"), state.num_examples),
             "batch size": (then_state.get("train_batch_size"), state.train_batch_size),
             "effective batch (batch x processes x accumulation)": (
                 then_state.get("train_batch_size", 0) * then_state.get("world_size", 1) * accumulation,
                 state.train_batch_size * state.world_size * args.gradient_accumulation_steps)}
    differ = [f"{name} {then} there, {now} here" for name, (then, now) in pairs.items() if then != now]
    if then_state.get("train_fingerprint") not in (None, state.train_fingerprint) and not differ:
        differ.append("the training rows differ (another file, split, seed, tokenization or labels)")
    now_args = json.loads(json.dumps(args.to_dict(), default=str))  # as training_args.json holds them
    differ += [f"{key} {then_args[key]!r} there, {now_args.get(key)!r} here" for key in RECIPE_ARGS
               if key in then_args and then_args[key] != now_args.get(key)]
    return differ


def load_training_state(folder: Path) -> dict[str, Any]:
    """Optimizer, scheduler, scaler and random states, read with weights_only=True (no code runs),
    after the checkpoint is verified against its manifest; any damage is one SeqtuneError sentence."""
    from .state import TrainerState

    check_intact(folder)  # cached: free after list_checkpoints verified it
    args_path = folder / ARGS_FILE
    saved_args = _read(folder, ARGS_FILE, lambda p: json.loads(p.read_text())) if args_path.is_file() else {}
    if saved_args.get("save_only_model"):
        raise SeqtuneError(f"resume: {folder} was saved with save_only_model=True, so it holds the model alone (no "
                           "optimizer, scheduler or random states) and training cannot continue from it; start a "
                           "new run from its weights (from_pretrained on the folder)")
    out: dict[str, Any] = {}
    for key, name in (("optimizer", OPTIMIZER_FILE), ("scheduler", SCHEDULER_FILE),
                      ("scaler", SCALER_FILE), ("rng", RNG_FILE)):
        out[key] = None
        if (folder / name).is_file():
            out[key] = _read(folder, name, lambda p: torch.load(p, weights_only=True, map_location="cpu"))
    # What the Trainer indexes, so that a file that decodes to something else is said here, not there.
    shapes = (("optimizer", OPTIMIZER_FILE, ("state", "param_groups")), ("rng", RNG_FILE, ("python", "numpy", "cpu")))
    for key, name, keys in shapes:
        if out[key] is not None and not all(k in out[key] for k in keys):
            raise damaged_error(folder, f"{name} lacks {next(k for k in keys if k not in out[key])!r}")
    state = out["state"] = _read(folder, STATE_FILE, lambda p: json.loads(p.read_text()))
    unknown = set(state) - {f.name for f in dataclasses.fields(TrainerState)}
    if unknown or not isinstance(state.get("global_step"), int):
        raise damaged_error(folder, f"{STATE_FILE} is not a trainer state "
                            f"({f'it has {sorted(unknown)[0]!r}' if unknown else 'no global_step'})")
    out["args"] = saved_args
    return out
