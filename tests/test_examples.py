"""examples/transformers_script.py runs under seqtune, and under transformers with only its import block changed."""

import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

from .conftest import ROOT, topic_rows

SCRIPT = ROOT / "examples" / "transformers_script.py"
SEQTUNE_IMPORT = "from seqtune import DataCollatorWithPadding, Trainer, TrainingArguments, load_dataset\n"
TRANSFORMERS_IMPORT = ("from datasets import load_dataset\n"
                       "from transformers import DataCollatorWithPadding, Trainer, TrainingArguments\n")


@pytest.fixture
def files(tmp_path):
    topics = {"sports": 0, "food": 1, "tech": 2}
    for name, (n, seed) in {"train": (48, 0), "dev": (12, 1)}.items():
        rows = [{"text": r["text"], "label": topics[r["label"]]} for r in topic_rows(n, seed=seed)]
        pd.DataFrame(rows).to_csv(tmp_path / f"{name}.csv", index=False)
    return tmp_path


def _run(script: Path, files: Path, out: Path, monkeypatch, capsys) -> str:
    monkeypatch.setattr(sys, "argv", [str(script), "--tiny", "--max-steps", "4", "--train", str(files / "train.csv"),
                                      "--validation", str(files / "dev.csv"), "--output-dir", str(out)])
    runpy.run_path(str(script), run_name="__main__")
    return capsys.readouterr().out


def test_the_transformers_script_runs_under_seqtune(files, tmp_path, monkeypatch, capsys):
    assert SCRIPT.read_text().count(SEQTUNE_IMPORT) == 1
    out = _run(SCRIPT, files, tmp_path / "seqtune", monkeypatch, capsys)
    assert "validation accuracy" in out
    (checkpoint,) = (tmp_path / "seqtune").glob("checkpoint-*")  # save_total_limit=1, model only
    assert not (checkpoint / "optimizer.pt").exists() and (checkpoint / "model.safetensors").is_file()


def test_the_same_script_runs_under_transformers_with_its_imports_changed(files, tmp_path, monkeypatch, capsys):
    pytest.importorskip("accelerate")
    script = tmp_path / "as_transformers.py"
    script.write_text(SCRIPT.read_text().replace(SEQTUNE_IMPORT, TRANSFORMERS_IMPORT))
    monkeypatch.syspath_prepend(str(ROOT))
    out = _run(script, files, tmp_path / "transformers", monkeypatch, capsys)
    assert "validation accuracy" in out
