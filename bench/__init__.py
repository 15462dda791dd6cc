"""Benchmarks: `python -m bench` (speed against transformers' Trainer) and the quality and engine benches."""

import csv
import os
from pathlib import Path


def mrpc_rows(split: str) -> list[list[str]]:
    """GLUE MRPC's rows of `train`/`dev`/`test` as its TSV holds them (quotes are text), header left out."""
    glue = Path(os.environ.get("GLUE_DIR", Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
                               / "glue"))
    with open(glue / "MRPC" / f"{split}.tsv", encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
