"""Damaged checkpoints: every file of the newest one truncated, bit-flipped, emptied, replaced by a pickle or
deleted; a resume then continues the newest intact checkpoint or stops with one sentence, never a traceback."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import time
from pathlib import Path

import pytest
import torch

from seqtune import SeqtuneError, Trainer, TrainerCallback, TrainingArguments
from seqtune import checkpoint as ckpt

from .conftest import tiny_bert, toy_rows

KINDS = ("truncate", "flip", "empty", "pickle", "delete")
TENSOR_FILES = (".pt", ".pth", ".safetensors")


def _args(folder: Path) -> TrainingArguments:
    return TrainingArguments(str(folder), max_steps=4, save_strategy="steps", save_steps=2,
                             per_device_train_batch_size=8, disable_tqdm=True, use_cpu=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One run with checkpoint-2 and checkpoint-4; each case damages a copy of it."""
    folder = tmp_path_factory.mktemp("trained")
    Trainer(tiny_bert(vocab_size=64), _args(folder), train_dataset=toy_rows(64)).train()
    assert [p.name for p in ckpt.list_checkpoints(folder)] == ["checkpoint-2", "checkpoint-4"]
    return folder


def _copy(trained: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(trained, target)
    return target


def _damage(path: Path, kind: str) -> None:
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "flip":  # one bit in the middle: the decoders mostly do not notice, the checksum does
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "pickle":  # what torch.load(weights_only=True) refuses
        path.write_bytes(pickle.dumps({"state": {}, "param_groups": []}))
    else:
        path.unlink()


def _cases(checkpoint: Path) -> list[tuple[str, str]]:
    names = sorted(p.name for p in checkpoint.iterdir())
    return [(name, kind) for name in names for kind in KINDS if kind != "pickle" or name.endswith(TENSOR_FILES)]


class StopAtOnce(TrainerCallback):
    """Stop right after the checkpoint is loaded: the matrices check where a resume starts, not the steps."""

    def on_train_begin(self, args, state, control, **kwargs):
        control.should_training_stop = True


def _resume(folder: Path, resume: bool | str, capsys, train: bool = False) -> str:
    """What a fresh Trainer does: 'resumed from checkpoint-N', 'error: <sentence>' or 'CRASH ...'."""
    capsys.readouterr()
    trainer = Trainer(tiny_bert(vocab_size=64), _args(folder), train_dataset=toy_rows(64),
                      callbacks=[] if train else [StopAtOnce()])
    try:
        output = trainer.train(resume_from_checkpoint=resume)
    except SeqtuneError as err:
        return f"error: {err}" if "\n" not in str(err) else f"CRASH multi-line: {err!r}"
    except Exception as err:  # any other type is the failure this test looks for
        return f"CRASH {type(err).__name__}: {err}"
    resumed = re.search(r"resumed from \S+-(\d+) at step", capsys.readouterr().out)
    if not resumed:
        return "CRASH: trained from scratch"
    assert output.global_step == (4 if train else int(resumed.group(1)))
    return f"resumed from checkpoint-{resumed.group(1)}"


def _run_cases(trained: Path, tmp_path: Path, capsys, prepare, resume) -> dict[tuple[str, str], str]:
    outcomes = {}
    for number, (name, kind) in enumerate(_cases(trained / "checkpoint-4")):
        folder = _copy(trained, tmp_path, f"case-{number}")
        prepare(folder)
        if not (folder / "checkpoint-4" / name).exists():
            continue  # the manifest, for an older seqtune's checkpoint
        _damage(folder / "checkpoint-4" / name, kind)
        outcomes[name, kind] = _resume(folder, resume(folder), capsys).replace(str(folder), "<run>")
        shutil.rmtree(folder)
    if capsys.request.config.getoption("capture") == "no":  # pytest -s: the table of what each case did
        with capsys.disabled():
            print(f"\n{len(outcomes)} cases:", *(f"{n:20} {k:9} {o}" for (n, k), o in outcomes.items()), sep="\n")
    crashes = {case: o for case, o in outcomes.items() if o.startswith("CRASH")}
    assert not crashes
    return outcomes


def _manifest_gone(name: str, kind: str) -> bool:
    return (name, kind) == (ckpt.MANIFEST_FILE, "delete")  # then it is an older seqtune's checkpoint


def test_resume_skips_a_damaged_newest_checkpoint(trained, tmp_path, capsys):
    outcomes = _run_cases(trained, tmp_path, capsys, lambda folder: None, lambda folder: True)
    assert len(outcomes) == 36
    for (name, kind), outcome in outcomes.items():
        expected = "checkpoint-4" if _manifest_gone(name, kind) else "checkpoint-2"
        assert outcome == f"resumed from {expected}", (name, kind, outcome)


def test_skipping_a_damaged_checkpoint_continues_bit_for_bit(trained, tmp_path, capsys):
    """Resumed from checkpoint-2 past a damaged checkpoint-4, the run writes checkpoint-4 exactly anew."""
    from safetensors.torch import load_file

    folder = _copy(trained, tmp_path, "run")
    _damage(folder / "checkpoint-4" / ckpt.OPTIMIZER_FILE, "flip")
    assert _resume(folder, True, capsys, train=True) == "resumed from checkpoint-2"
    ours = load_file(str(folder / "checkpoint-4" / ckpt.MODEL_FILE))
    theirs = load_file(str(trained / "checkpoint-4" / ckpt.MODEL_FILE))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert ckpt.is_intact(folder / "checkpoint-4")


@pytest.mark.parametrize("only_four, ending", [
    (True, "no intact checkpoint is left beside it, so start again"),  # resume=True, nothing older
    (False, "resume from <run>/checkpoint-2 instead, or start again"),  # resume from the damaged one by path
])
def test_a_damaged_checkpoint_stops_with_one_sentence_naming_the_file(trained, tmp_path, capsys, only_four, ending):
    def prepare(folder: Path) -> None:
        if only_four:
            shutil.rmtree(folder / "checkpoint-2")

    def resume(folder: Path) -> bool | str:
        return True if only_four else str(folder / "checkpoint-4")

    outcomes = _run_cases(trained, tmp_path, capsys, prepare, resume)
    for (name, kind), outcome in outcomes.items():
        if _manifest_gone(name, kind):
            assert outcome == "resumed from checkpoint-4"
        else:
            assert re.fullmatch(rf"error: checkpoint <run>/checkpoint-4 is damaged: {re.escape(name)} .*; "
                                + re.escape(ending), outcome), (name, kind, outcome)


def test_a_checkpoint_without_manifest_is_read_with_guards(trained, tmp_path, capsys):
    """Older seqtune wrote no checksums: damage that the decoders see is one sentence; a flipped bit in
    tensor data or in a number is invisible without a manifest (the reason there is one)."""
    def no_manifest(folder: Path) -> None:
        for path in folder.glob(f"checkpoint-*/{ckpt.MANIFEST_FILE}"):
            path.unlink()

    outcomes = _run_cases(trained, tmp_path, capsys, no_manifest, lambda folder: True)
    for (name, kind), outcome in outcomes.items():
        if kind == "delete" and name not in ("config.json", ckpt.ARGS_FILE):
            assert outcome == "resumed from checkpoint-2", (name, kind, outcome)  # incomplete: skipped
        elif kind in ("truncate", "empty", "pickle") and name != "config.json":
            assert re.fullmatch(rf"error: checkpoint <run>/checkpoint-4 is damaged: {re.escape(name)} .*", outcome)
        else:  # config.json is not read on resume; a missing training_args.json is allowed; flips vary
            assert outcome.startswith(("resumed from checkpoint-4", "error: checkpoint ")), (name, kind, outcome)


def test_manifest_lists_every_file_with_its_size_and_sha256(trained):
    folder = trained / "checkpoint-4"
    manifest = json.loads((folder / ckpt.MANIFEST_FILE).read_text())
    names = sorted(p.name for p in folder.iterdir() if p.name != ckpt.MANIFEST_FILE)
    assert manifest["algorithm"] == "sha256" and sorted(manifest["files"]) == names
    for name, entry in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_manifest_covers_sharded_files_and_catches_a_change_to_itself(tmp_path):
    (tmp_path / "sharded").mkdir()
    (tmp_path / "sharded" / ".metadata").write_bytes(b"meta")
    (tmp_path / "sharded" / "__0_0.distcp").write_bytes(b"shard")
    for name in (ckpt.MODEL_FILE, ckpt.STATE_FILE, ckpt.SCHEDULER_FILE, ckpt.RNG_FILE):
        (tmp_path / name).write_bytes(b"x")
    ckpt.write_manifest(tmp_path)
    listed = json.loads((tmp_path / ckpt.MANIFEST_FILE).read_text())["files"]
    assert {"sharded/.metadata", "sharded/__0_0.distcp"} <= set(listed) and ckpt.MANIFEST_FILE not in listed
    assert ckpt.is_intact(tmp_path)
    manifest = tmp_path / ckpt.MANIFEST_FILE
    manifest.write_text(manifest.read_text().replace('"size": 5', '"size": 6'))
    assert ckpt.damage(tmp_path) == "checksums.json is unreadable (torn or changed after it was written)"


def test_an_older_checkpoint_without_manifest_still_resumes(trained, tmp_path, capsys):
    folder = _copy(trained, tmp_path, "old")
    for path in folder.glob(f"checkpoint-*/{ckpt.MANIFEST_FILE}"):
        path.unlink()
    assert [p.name for p in ckpt.list_checkpoints(folder)] == ["checkpoint-2", "checkpoint-4"]
    assert _resume(folder, True, capsys) == "resumed from checkpoint-4"


def test_a_change_is_caught_even_with_the_mtime_set_back(trained, tmp_path):
    """The in-process digest cache is keyed by ctime as well, which no one can set back."""
    folder = _copy(trained, tmp_path, "touched") / "checkpoint-4"
    assert ckpt.is_intact(folder)  # hashed, and cached
    path = folder / ckpt.OPTIMIZER_FILE
    before = path.stat()
    time.sleep(0.05)  # past the file system's timestamp tick
    _damage(path, "flip")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert ckpt.damage(folder) == "optimizer.pt does not match its checksum (changed after it was written)"


def test_resume_checkpoint_says_which_file_is_damaged(trained, tmp_path):
    """The helper the Trainer's resume can use: it skips (and says) a damaged newest checkpoint, and when
    none is intact, or the one named is damaged, the sentence names the folder and the file."""
    folder = _copy(trained, tmp_path, "run")
    _damage(folder / "checkpoint-4" / ckpt.OPTIMIZER_FILE, "truncate")
    said: list[str] = []
    assert ckpt.resume_checkpoint(folder, True, said.append) == folder / "checkpoint-2"
    assert said == [f"seqtune: skipping {folder / 'checkpoint-4'}: optimizer.pt has " + said[0].split(" has ")[1]]
    with pytest.raises(SeqtuneError) as named:
        ckpt.resume_checkpoint(folder, str(folder / "checkpoint-4"))
    assert str(named.value).startswith(f"checkpoint {folder / 'checkpoint-4'} is damaged: optimizer.pt has ")
    assert str(named.value).endswith(f"; resume from {folder / 'checkpoint-2'} instead, or start again")
    shutil.rmtree(folder / "checkpoint-2")
    with pytest.raises(SeqtuneError, match=r"checkpoint-4 is damaged: optimizer.pt has .* bytes, not the .* it "
                                           r"was written with .*; no intact checkpoint is left beside it"):
        ckpt.resume_checkpoint(folder, True)
    with pytest.raises(SeqtuneError, match="resume: no complete checkpoint in"):
        ckpt.resume_checkpoint(tmp_path / "empty", True)
    with pytest.raises(SeqtuneError, match="is not a complete seqtune checkpoint"):
        ckpt.resume_checkpoint(tmp_path, str(tmp_path / "nowhere"))
