"""The onnxruntime engine: an ONNX export (`seqtune export`) run by ONNX Runtime on the CPU, batches of
similar length so that little padding is computed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import SeqtuneError
from .task import TaskSpec

ONNX_FILE = "model.onnx"
EXPORT_FOLDERS = ("onnx", "onnx-int8")  # what `seqtune export` writes inside a run folder, fp32 first


WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors")


def weights_fingerprint(folder: Path) -> str | None:
    """sha256 of a model folder's weight files (None without any): which model an export was made from."""
    import hashlib

    digest, found = hashlib.sha256(), False
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            found = True
            with (folder / name).open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
    return digest.hexdigest() if found else None


def check_fresh(export: Path) -> None:
    """An export made from weights that have changed since (a run retrained or resumed into its folder) is
    refused: it would answer for the old model."""
    import json

    try:
        made = json.loads((export / "export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # not written by seqtune export: nothing to compare
    source, recorded = Path(str(made.get("source", ""))), made.get("weights")
    if recorded and source.is_dir() and weights_fingerprint(source) not in (None, recorded):
        raise SeqtuneError(f"--model {export}: exported from earlier weights of {source}, which has been trained "
                           f"since; run seqtune export --model {source} again")


def find_export(folder: Path) -> Path:
    """The export folder `--model` names: itself when it holds model.onnx, else its onnx/ (fp32) or
    onnx-int8/ subfolder, the ones `seqtune export` writes by default; never one older than its model."""
    if (folder / ONNX_FILE).is_file():
        check_fresh(folder)
        return folder
    for name in EXPORT_FOLDERS:
        if (folder / name / ONNX_FILE).is_file():
            check_fresh(folder / name)
            return folder / name
    if not folder.is_dir():
        raise SeqtuneError(f"--model {folder}: no such folder")
    raise SeqtuneError(f"--model {folder}: no ONNX export here (no {ONNX_FILE}, no onnx/ or onnx-int8/ folder); "
                       f"run seqtune export --model {folder} first, or use --engine torch")


def cpu_threads() -> int:
    """The CPUs this process may run on (a container's or taskset's share, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def session(path: Path) -> Any:
    """An ONNX Runtime CPU session: every graph optimisation, one intra-op thread per usable CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = cpu_threads()
    options.inter_op_num_threads = 1  # one graph at a time: the operators' own threads use the CPUs
    options.log_severity_level = 3  # errors only: its warnings about unused initializers are noise here
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # a damaged or foreign file: ORT raises its own Fail/InvalidGraph types
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SeqtuneError(f"{path}: ONNX Runtime cannot load it ({first_line}); export it again") from None


class OnnxEngine:
    """An export folder (model.onnx, config, tokenizer, seqtune.json) run by ONNX Runtime. `logits(rows)` takes
    tokenized rows and returns their logits in row order; ONNX Runtime's session.run is thread-safe."""

    def __init__(self, folder: Path, batch_size: int) -> None:
        from transformers import AutoConfig, AutoTokenizer

        from .checkpoint import quiet_transformers

        try:
            with quiet_transformers():
                self.config = AutoConfig.from_pretrained(folder)
                self.tokenizer = AutoTokenizer.from_pretrained(folder)
        except Exception as err:  # missing or damaged config/tokenizer files raise many types
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SeqtuneError(f"--model {folder}: not a complete ONNX export ({first_line}); export it again") \
                from None
        from .models import cap_window

        cap_window(self.tokenizer, self)  # the export's positions bound its texts, as the torch model's do
        self.spec = TaskSpec.for_model_folder(folder, self.config)
        self.num_outputs = int(self.config.num_labels)
        self.batch_size = batch_size
        self.session = session(folder / ONNX_FILE)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.pad_left = getattr(self.tokenizer, "padding_side", "right") == "left"

    def logits(self, rows: Any) -> Any:
        """Logits of tokenized rows (input_ids, attention_mask[, token_type_ids]), in row order."""
        import numpy as np

        columns = {name: list(rows[name]) for name in self.input_names if name in rows.column_names}
        missing = [name for name in self.input_names if name not in columns and name != "token_type_ids"]
        if missing:
            raise SeqtuneError(f"the ONNX model takes {missing[0]!r}, which the tokenizer does not give")
        ids = columns["input_ids"]
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(lengths, kind="stable")  # batches of similar length: little padding is computed
        out = np.zeros((len(ids), self.num_outputs), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chosen = order[start:start + self.batch_size]
            width = int(lengths[chosen].max())
            feed = {name: self._padded([columns[name][i] for i in chosen] if name in columns else None,
                                       lengths[chosen], width, name) for name in self.input_names}
            out[chosen] = self.session.run(None, feed)[0]
        return out

    def _padded(self, values: list | None, lengths: Any, width: int, name: str) -> Any:
        """One input as an int64 (batch, width) array; padding: the pad id for input_ids, 0 elsewhere."""
        import numpy as np

        array = np.full((len(lengths), width), self.pad_id if name == "input_ids" else 0, dtype=np.int64)
        if values is None:  # token_type_ids for a tokenizer that gives none: every token is segment 0
            return array
        for row, (value, length) in enumerate(zip(values, lengths, strict=True)):
            if self.pad_left:
                array[row, width - length:] = value
            else:
                array[row, :length] = value
        return array
