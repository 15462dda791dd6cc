import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT


def run_cli(*args, cwd=None, env=None):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "seqtune.cli", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=full_env, timeout=600)


def test_help_imports_nothing_heavy():
    code = ("import sys, seqtune, seqtune.cli; seqtune.cli.build_parser().format_help();"
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    result = run_cli("train", "--help")
    assert result.returncode == 0 and "--learning-rate" in result.stdout and "5e-05" in result.stdout


def test_train_a_few_steps_on_mrpc(tmp_path, glue_dir):
    result = run_cli("train", "--task", "glue/mrpc", "--max-steps", "4", "--output-dir", str(tmp_path / "run"),
                     "--quiet", env={"GLUE_DIR": str(glue_dir)})
    assert result.returncode == 0, result.stderr
    assert "final validation (408 examples): accuracy=" in result.stdout and " f1=" in result.stdout
    out = tmp_path / "run"
    assert (out / "model.safetensors").is_file() and (out / "all_results.json").is_file()
    assert (out / "checkpoint-4" / "trainer_state.json").is_file()
    # The same folder again is another run's: refused, nothing touched.
    again = run_cli("train", "--task", "glue/mrpc", "--max-steps", "4", "--output-dir", str(out),
                    env={"GLUE_DIR": str(glue_dir)})
    assert again.returncode == 2 and "already holds checkpoints" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize("args, env, message", [
    (["--task", "glue/nope"], {}, "unknown GLUE task 'nope'"),
    (["--task", "superglue/boolq"], {}, "expected glue/<task>"),
    (["--task", "glue/mrpc"], {"GLUE_DIR": "/nonexistent"}, "GLUE_DIR"),
    (["--task", "glue/mrpc", "--model", "/no/such/model"], {"GLUE_DIR": "GLUE"}, "does not exist"),
])
def test_bad_input_exit_code_2_one_line(args, env, message, glue_dir):
    env = {k: (str(glue_dir) if v == "GLUE" else v) for k, v in env.items()}
    env.setdefault("GLUE_DIR", "")
    result = run_cli("train", *args, "--output-dir", "/tmp/seqtune-unused", env=env)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("seqtune: error:")


def test_output_dir_that_is_a_file(tmp_path, glue_dir):
    target = tmp_path / "taken"
    target.write_text("keep me")
    result = run_cli("train", "--task", "glue/mrpc", "--output-dir", str(target), env={"GLUE_DIR": str(glue_dir)})
    assert result.returncode == 2 and "is a file" in result.stderr
    assert target.read_text() == "keep me"


def test_course_example_runs_end_to_end(tmp_path, glue_dir):
    script = Path(ROOT) / "examples" / "mrpc_course.py"
    result = subprocess.run([sys.executable, str(script), "--max-steps", "3"], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "GLUE_DIR": str(glue_dir), "HF_HUB_OFFLINE": "1"},
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "(408, 2) (408,)"
    assert "eval_accuracy" in result.stdout + result.stderr
