"""An output folder belongs to one run at a time, and nothing a user had there is lost."""

import os
import signal
import socket
import subprocess
import sys

import pandas as pd
import pytest

from seqtune import SeqtuneError
from seqtune.cli import main
from seqtune.outdir import LOCK_FILE, hold

from .conftest import topic_rows


@pytest.fixture
def files(tmp_path):
    pd.DataFrame(topic_rows(60, seed=1)).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame(topic_rows(9, seed=2)).to_csv(tmp_path / "b.csv", index=False)
    return tmp_path


def _train(files, model, out, *extra):
    return main(["train", "--train", str(files / "a.csv"), "--validation", str(files / "b.csv"), "--model",
                 str(model), "--epochs", "1", "--quiet", "--output-dir", str(out), *extra])


def test_a_second_run_into_a_live_runs_folder_is_refused(files, tiny_model_dir, capsys):
    out = files / "run"
    command = [sys.executable, "-m", "seqtune.cli", "train", "--train", str(files / "a.csv"), "--validation",
               str(files / "b.csv"), "--model", str(tiny_model_dir), "--max-steps", "2000", "--batch-size", "2",
               "--logging-steps", "1", "--quiet", "--output-dir", str(out)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as first:
        for line in first.stdout:
            if line.startswith("loss="):
                break
        assert _train(files, tiny_model_dir, out) == 2
        assert _train(files, tiny_model_dir, out, "--overwrite-output-dir") == 2  # not even when asked
        err = capsys.readouterr().err
        assert err.count(f"is in use by another seqtune run (pid {first.pid} on {socket.gethostname()})") == 2
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 143 and not (out / LOCK_FILE).exists()
    assert _train(files, tiny_model_dir, out, "--resume", "--batch-size", "2") == 0  # the folder is free again


def test_a_lock_left_by_a_dead_run_is_taken_over_and_one_from_elsewhere_is_not(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_FILE).write_text(f"{dead.pid} {socket.gethostname()}")
    with hold(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()} {socket.gethostname()}"
    assert not (tmp_path / LOCK_FILE).exists()
    (tmp_path / LOCK_FILE).write_text("12345 another-host")
    with pytest.raises(SeqtuneError, match=r"in use by another seqtune run \(pid 12345 on another-host\)"):
        with hold(tmp_path):
            pass
    assert (tmp_path / LOCK_FILE).read_text() == "12345 another-host"  # not ours to remove


def test_a_folder_of_someone_elses_files_is_refused_and_kept(files, tiny_model_dir, capsys):
    out = files / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    (out / "README.md").write_text("my readme")
    assert _train(files, tiny_model_dir, out) == 2
    assert "holds files that are not a seqtune run's (README.md, notes.txt)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "notes.txt"]
    assert _train(files, tiny_model_dir, out, "--overwrite-output-dir") == 0  # asked: written beside them
    assert (out / "notes.txt").read_text() == "my notes" and (out / "model.safetensors").is_file()


def test_a_finished_run_without_checkpoints_is_still_a_run(files, tiny_model_dir, capsys):
    out = files / "run"
    assert _train(files, tiny_model_dir, out, "--save-strategy", "no") == 0
    before = (out / "model.safetensors").read_bytes()
    assert _train(files, tiny_model_dir, out, "--save-strategy", "no") == 2
    assert "already holds a finished run (seqtune.json" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("typo", [["--learning-rate", "-1"], ["--model", "/no/such/model"],
                                  ["--metric", "acuracy"]])
def test_overwrite_deletes_nothing_until_the_new_run_is_checked(files, tiny_model_dir, typo, capsys):
    out = files / "run"
    assert _train(files, tiny_model_dir, out) == 0
    old = sorted(p.name for p in out.glob("checkpoint-*"))
    assert old
    capsys.readouterr()
    args = ["--overwrite-output-dir", *typo]
    if typo[0] == "--model":
        assert main(["train", "--train", str(files / "a.csv"), "--validation", str(files / "b.csv"), "--epochs",
                     "1", "--quiet", "--output-dir", str(out), *args]) == 2
    else:
        assert _train(files, tiny_model_dir, out, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqtune: error:") and err.count("\n") == 1, err
    assert sorted(p.name for p in out.glob("checkpoint-*")) == old and not (out / LOCK_FILE).exists()


def test_an_output_dir_under_a_file_is_one_line(files, tiny_model_dir, capsys):
    assert _train(files, tiny_model_dir, files / "a.csv" / "run") == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_saved_model_folder_is_someone_elses_even_with_our_file_names(files, tiny_model_dir, capsys):
    import shutil

    theirs = files / "their-model"
    shutil.copytree(tiny_model_dir, theirs)
    (theirs / "README.md").write_text("their card")
    before = {p.name: p.read_bytes() for p in theirs.iterdir()}
    assert _train(files, tiny_model_dir, theirs) == 2
    assert "holds files that are not a seqtune run's (README.md, config.json" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in theirs.iterdir()} == before


def test_overwriting_a_lora_run_leaves_no_old_adapter_for_predict_to_load(files, tiny_model_dir, capsys):
    out = files / "run"
    assert _train(files, tiny_model_dir, out, "--lora", "--merge-lora") == 0
    assert (out / "adapter_config.json").is_file() and (out / "merged").is_dir()
    (out / "notes.txt").write_text("mine")  # the user's own file stays
    assert _train(files, tiny_model_dir, out, "--overwrite-output-dir") == 0
    left = {p.name for p in out.iterdir()}
    assert not left & {"adapter_config.json", "adapter_model.safetensors", "classifier_config.json", "merged"}
    assert (out / "model.safetensors").is_file() and (out / "notes.txt").read_text() == "mine"


def test_a_lora_run_over_a_whole_model_run_leaves_no_old_model_for_pipeline(files, tiny_model_dir):
    out = files / "run"
    assert _train(files, tiny_model_dir, out) == 0
    assert _train(files, tiny_model_dir, out, "--lora", "--overwrite-output-dir") == 0
    assert (out / "adapter_config.json").is_file()
    assert not (out / "model.safetensors").exists() and not (out / "config.json").exists()


def test_a_resumed_lora_run_without_merging_leaves_no_stale_merged_model(files, tiny_model_dir):
    out = files / "run"
    assert _train(files, tiny_model_dir, out, "--lora", "--merge-lora", "--max-steps", "2") == 0
    assert (out / "merged").is_dir()
    assert _train(files, tiny_model_dir, out, "--lora", "--max-steps", "4", "--resume") == 0
    assert not (out / "merged").exists()
