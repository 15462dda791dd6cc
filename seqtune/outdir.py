"""Who owns an output folder: a run holds it while it lives (a lock with its pid and host), a folder of
someone else's files is refused, and an old run is cleared only after the new one has been checked."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import SeqtuneError

LOCK_FILE = ".seqtune.lock"
# What a seqtune run writes into its folder (the model folder's own files, reports, trackers' logs).
# A LoRA run's adapter (seqtune/lora.py) and the merged model it may write beside it.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "classifier_config.json", "merged")
RUN_MARKERS = ("seqtune.json", "run.json", "all_results.json", "metrics.jsonl")
OWN_FILES = {*RUN_MARKERS, LOCK_FILE, "model.safetensors", "config.json", "generation_config.json",
             "training_args.json", "trainer_state.json", "report.md", "README.md", "training_curves.png",
             "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
             "merges.txt", "added_tokens.json", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model",
             "chat_template.jinja", "runs", "mlruns", "wandb", *ADAPTER_FILES,
             # seqtune export's folders, and what tune and --folds/--seeds write (seqtune/tune.py, crossval.py)
             "onnx", "onnx-int8", "tune.db", ".tune.lock", "trials", "tune_report.md", "tune_trials.png",
             "best_params.json", "folds", "seeds", "cv_report.md", "crossval.json", "oof_predictions.csv"}


def _is_checkpoint(path: Path) -> bool:
    return path.name.startswith("checkpoint-") and path.is_dir() and not path.is_symlink()


def _foreign(folder: Path) -> list[str]:
    """Entries that a seqtune run did not write."""
    return sorted(p.name for p in folder.iterdir()
                  if p.name not in OWN_FILES and not _is_checkpoint(p) and not p.name.startswith(".tmp-"))


def check_place(output_dir: Path) -> None:
    """A folder (or a place for one) that can be written."""
    if output_dir.exists() and not output_dir.is_dir():
        raise SeqtuneError(f"--output-dir {output_dir} is a file; choose a folder")
    check_writable(output_dir, "--output-dir")


def check_writable(path: Path, option: str, start: Path | None = None) -> None:
    """The nearest existing folder at or above `start` (default: `path`) is one this process may write in."""
    start = path if start is None else start
    existing = next(p for p in (start, *start.parents, Path(".")) if p.exists())
    if not existing.is_dir():
        raise SeqtuneError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise SeqtuneError(f"{option} {path} is not writable ({existing})")


def check_output_dir(output_dir: Path, overwrite: bool, resume: object) -> None:
    """Before any work: refuse a file, another run's folder (unless resuming it or asked to overwrite
    it), a folder of files that are not a seqtune run's (unless asked), and an unwritable place."""
    check_place(output_dir)
    if not output_dir.is_dir() or resume:
        return
    checkpoints = sorted(p.name for p in output_dir.iterdir() if _is_checkpoint(p))
    finished = [name for name in RUN_MARKERS if (output_dir / name).exists()]
    # Without a run's marks every entry is someone else's, even one named as ours (a saved model's
    # config.json, a user's README.md): those would be replaced.
    foreign = _foreign(output_dir) if checkpoints or finished else sorted(
        p.name for p in output_dir.iterdir() if p.name != LOCK_FILE)
    if (checkpoints or finished) and not overwrite:
        what = (f"checkpoints ({', '.join(checkpoints[:3])})" if checkpoints
                else f"a finished run ({', '.join(finished)})")
        raise SeqtuneError(f"--output-dir {output_dir} already holds {what} from another run; pass --resume to "
                           "continue it, --overwrite-output-dir to replace it, or another folder")
    if foreign and not overwrite:
        raise SeqtuneError(f"--output-dir {output_dir} holds files that are not a seqtune run's "
                           f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); choose an empty or "
                           "new folder, or pass --overwrite-output-dir (seqtune then writes its files there, "
                           "replacing any of the same name, such as config.json or README.md)")


def clear_old_run(output_dir: Path, lora: bool = False) -> None:
    """--overwrite-output-dir, once everything is checked: the old run's checkpoints go, and so do the files
    of the other kind of model that this run would not rewrite: a LoRA adapter and merged model (predict
    would load the old adapter), or, before a LoRA run, the old whole model (pipeline would load it). The
    rest is rewritten by this run; nothing else is touched, and no link is followed."""
    stale = {"model.safetensors", "config.json"} if lora else set(ADAPTER_FILES)
    if output_dir.is_dir():
        for path in output_dir.iterdir():
            if _is_checkpoint(path):
                shutil.rmtree(path)
            elif path.name in stale:
                _remove(path)


def drop_stale_merged(output_dir: Path) -> None:
    """A run that did not merge its adapters leaves no merged model of an earlier run (of a resumed one)."""
    _remove(output_dir / "merged")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_file() or path.is_symlink():
        path.unlink()


@contextmanager
def hold(output_dir: Path) -> Iterator[None]:
    """The folder is this run's while it lives: a second run into it is refused; a lock left by a run
    that died on this host (its pid gone) is taken over."""
    check_place(output_dir)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 holds it for the job
        yield
        return
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    lock = output_dir / LOCK_FILE
    me = f"{os.getpid()} {socket.gethostname()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(lock)
            if holder and not _stale(holder):
                pid, _, host = holder.partition(" ")
                raise SeqtuneError(f"--output-dir {output_dir} is in use by another seqtune run (pid {pid} on "
                                   f"{host}); wait for it to finish or choose another folder") from None
            lock.unlink(missing_ok=True)  # stale: its run is gone
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(me)
        break
    try:
        yield
    finally:
        if _read(lock) == me:
            lock.unlink(missing_ok=True)
        if created and output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()  # refused before writing anything: leave no empty folder behind


def _read(lock: Path) -> str:
    try:
        return lock.read_text().strip()
    except OSError:
        return ""


def _stale(holder: str) -> bool:
    """A lock whose process is gone from this host. A lock from another host is never taken over."""
    pid, _, host = holder.partition(" ")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
