import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seqtune.cli import build_parser, main

from .conftest import ROOT


def test_help_imports_nothing_heavy():
    code = ("import sys, seqtune, seqtune.cli; seqtune.cli.build_parser().format_help();"
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["train", "predict", "evaluate"])
def test_help_says_each_default_once_in_words(command):
    parser = build_parser()
    subparser = parser._subparsers._group_actions[0].choices[command]
    text = " ".join(subparser.format_help().split())  # unwrap the columns
    assert "(default: None)" not in text and "(default: True)" not in text and "(default: False)" not in text
    for action in subparser._actions:
        if action.help:
            assert " ".join(subparser._get_formatter()._expand_help(action).split()).count("default") <= 1, action
    if command == "train":
        assert "peak learning rate (default: 5e-05)" in text
        assert "--no-group-by-length plain random batches (default: batches of similar length" in text
        assert "(default: detected from the first rows)" in text


def test_train_a_few_steps_on_mrpc(tmp_path, glue_dir, monkeypatch, capsys):
    monkeypatch.setenv("GLUE_DIR", str(glue_dir))
    out = tmp_path / "run"
    assert main(["train", "--task", "glue/mrpc", "--max-steps", "4", "--output-dir", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "final validation (408 examples): accuracy=" in printed and " f1=" in printed
    assert "fast paths:" in printed
    assert (out / "model.safetensors").is_file() and (out / "all_results.json").is_file()
    assert (out / "checkpoint-4" / "trainer_state.json").is_file()
    # GLUE's raw dev.tsv as a user's file: quotes that never close are text, and its 0/1 cells the model's ids.
    assert main(["evaluate", "--model", str(out), "--data", str(glue_dir / "MRPC" / "dev.tsv"), "--quiet"]) == 0
    evaluated = capsys.readouterr().out
    final = re.search(r"final validation \(408 examples\): accuracy=(\S+)  f1=(\S+)", printed)
    assert "(408 rows" in evaluated and f"accuracy: {final[1]}" in evaluated and f"f1: {final[2]}" in evaluated
    # The same folder again is another run's: refused, nothing touched.
    assert main(["train", "--task", "glue/mrpc", "--max-steps", "4", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds checkpoints" in err and err.count("\n") == 1


@pytest.mark.parametrize("args, env, message", [
    (["--task", "glue/nope"], {}, "unknown GLUE task 'nope'"),
    (["--task", "superglue/boolq"], {}, "expected glue/<task>"),
    (["--task", "glue/mrpc"], {"GLUE_DIR": "/nonexistent"}, "GLUE_DIR"),
    (["--task", "glue/mrpc", "--model", "/no/such/model"], {"GLUE_DIR": "GLUE"}, "does not exist"),
])
def test_bad_input_exit_code_2_one_line(args, env, message, glue_dir, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GLUE_DIR", "")
    for key, value in env.items():
        monkeypatch.setenv(key, str(glue_dir) if value == "GLUE" else value)
    assert main(["train", *args, "--output-dir", str(tmp_path / "unused")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("seqtune: error:") and err.count("\n") == 1


def test_output_dir_that_is_a_file(tmp_path, glue_dir, monkeypatch, capsys):
    monkeypatch.setenv("GLUE_DIR", str(glue_dir))
    target = tmp_path / "taken"
    target.write_text("keep me")
    assert main(["train", "--task", "glue/mrpc", "--output-dir", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_course_example_runs_end_to_end(tmp_path, glue_dir):
    script = Path(ROOT) / "examples" / "mrpc_course.py"
    result = subprocess.run([sys.executable, str(script), "--max-steps", "3"], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "GLUE_DIR": str(glue_dir), "HF_HUB_OFFLINE": "1"},
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "(408, 2) (408,)"
    assert "eval_accuracy" in result.stdout + result.stderr
