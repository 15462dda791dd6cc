"""`seqtune export`: a trained output folder as an ONNX model that ONNX Runtime runs, optionally with int8
weights, in a self-contained folder (model.onnx, config, tokenizer, seqtune.json, export.json).

The exporter is torch.export's (dynamo=True): on transformers 5 BERT the TorchScript tracer bakes the
padding branch of the attention-mask code into the graph as a constant, so a batch padded otherwise
than the example gets logits off by ~0.5; the dynamo graph matches torch to ~1e-6 at any batch and length.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .errors import SeqtuneError
from .onnx_engine import ONNX_FILE, weights_fingerprint

OPSET = 18  # torch.export's ONNX translation targets it; ONNX Runtime 1.32 runs up to opset 23
# fp32 parity: the ONNX model's logits differ from torch's by at most this much, times max(1, |largest logit|).
TOLERANCE = 1e-4
EXPORT_FILE = "export.json"
# Files of a run folder that describe its training, not the model: left out of the export.
TRAINING_FILES = {"adapter_config.json", "trainer_state.json", "training_args.json", "run.json", "all_results.json",
                  EXPORT_FILE}
# Parity probes: short and long, so that batches are padded, and a word-piece heavy one.
PROBES = ["A short one.", "The quick brown fox jumps over the lazy dog near the riverbank at dawn.",
          "Stocks fell sharply on Tuesday after the central bank raised interest rates again.",
          "ok", "Unbelievably, the tokenizer splits antidisestablishmentarianism into many pieces.",
          "She said the meeting would be moved to Thursday afternoon because of the holiday."]


def run_export(options: argparse.Namespace) -> int:
    """The command: export, check parity, print where it went."""
    result = export_onnx(options.model, options.output, options.quantize)
    parity = result["parity"]
    print(f"seqtune: wrote {result['folder']} ({result['size_mb']:.1f} MB{', int8 weights' if options.quantize else ''}"
          f"); logits vs torch on {parity['probes']} probes: max abs diff {parity['max_abs_diff']:.2e}, "
          f"labels agree {parity['labels_agree']}/{parity['probes']}")
    print(f"seqtune: predict with: seqtune predict --engine onnxruntime --model {result['folder']} "
          "--input FILE --output FILE")
    return 0


def export_onnx(model_dir: str | Path, output: str | Path | None = None, quantize: str | None = None) -> dict:
    """Export a trained folder (a LoRA folder merged) to `output` (default: model_dir/onnx, or onnx-int8 with
    `quantize="int8"`), checked with onnx.checker and against torch; the folder is written beside and renamed
    into place, so an earlier export there is replaced only by a complete one. Returns what export.json holds."""
    _check_packages()
    folder = Path(model_dir)
    if (folder / ONNX_FILE).is_file():
        raise SeqtuneError(f"--model {folder} is an ONNX export already; export from the trained run folder")
    target = Path(output) if output is not None else folder / ("onnx-int8" if quantize else "onnx")
    _check_target(target, folder)
    from .inference import load_trained

    model, tokenizer, spec = load_trained(str(folder))
    model = model.float().eval().cpu()  # ONNX Runtime's CPU kernels and int8 quantisation start from fp32
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        names = _export_graph(model, tokenizer, staging / ("model-fp32.onnx" if quantize else ONNX_FILE))
        if quantize:
            _quantize(staging / "model-fp32.onnx", staging / ONNX_FILE)
            (staging / "model-fp32.onnx").unlink()
        model.config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for extra in sorted(folder.glob("*.json")):  # seqtune.json, and the task's other files (thresholds)
            if extra.name not in TRAINING_FILES and not (staging / extra.name).exists():
                shutil.copy2(extra, staging / extra.name)
        if not (staging / "seqtune.json").exists():
            spec.save(staging)  # a plain transformers folder: its task as read from the config
        parity = _parity(model, tokenizer, spec, staging, names)
        if not quantize and parity["max_abs_diff"] > parity["tolerance"]:
            raise SeqtuneError(f"the ONNX model's logits differ from torch's by {parity['max_abs_diff']:.2e} "
                               f"(more than {parity['tolerance']:.0e}); this model does not export faithfully")
        result = {"source": str(folder.resolve()), "weights": weights_fingerprint(folder),
                  "format": "onnx", "opset": OPSET, "exporter": "torch.export",
                  "quantize": quantize, "inputs": names, "parity": parity,
                  "size_mb": round((staging / ONNX_FILE).stat().st_size / 2**20, 2),
                  "files": sorted([path.name for path in staging.iterdir()] + [EXPORT_FILE])}
        (staging / EXPORT_FILE).write_text(json.dumps(result, indent=2), encoding="utf-8")
        _swap_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {**result, "folder": str(target)}


def _check_packages() -> None:
    import importlib.util

    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise SeqtuneError(f"seqtune export needs {', '.join(missing)}: pip install onnx onnxscript onnxruntime")


def _check_target(target: Path, folder: Path) -> None:
    """An output that is neither the model folder, nor a folder holding it, nor anything but an export."""
    if not folder.is_dir():
        raise SeqtuneError(f"--model {folder}: no such folder")
    resolved, source = target.resolve(), folder.resolve()
    if resolved == source:
        raise SeqtuneError(f"--output {target} is the model folder; the export goes into a folder of its own "
                           f"(default: {folder / 'onnx'})")
    if source.is_relative_to(resolved):
        raise SeqtuneError(f"--output {target} holds the model folder {folder}; replacing it would delete the model")
    if Path.cwd().is_relative_to(resolved):
        raise SeqtuneError(f"--output {target} is the current folder or holds it; the export replaces its folder "
                           "whole: name a folder of its own")
    if target.exists() and not target.is_dir():
        raise SeqtuneError(f"--output {target} is a file; name a folder")
    _check_only_an_export(target, target)


def _check_only_an_export(folder: Path, target: Path) -> None:
    """`folder` (the target, or where the earlier export was moved aside) holds nothing but what an export
    wrote there: replacing it deletes nothing else."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    if not (folder / EXPORT_FILE).is_file():
        raise SeqtuneError(f"--output {target} holds files that are not a seqtune export; choose another folder")
    try:
        exported = set(json.loads((folder / EXPORT_FILE).read_text(encoding="utf-8"))["files"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        exported = set()
    added = sorted(path.name for path in folder.iterdir() if path.name not in exported | {EXPORT_FILE})
    if added:  # replacing the earlier export would delete them
        shown = ", ".join(added[:3]) + (f" and {len(added) - 3} more" if len(added) > 3 else "")
        raise SeqtuneError(f"--output {target} holds {shown}, which the earlier export there did not write; "
                           "move them out or choose another folder")


def _export_graph(model: Any, tokenizer: Any, path: Path) -> list[str]:
    """torch.onnx.export (dynamo) with dynamic batch and sequence axes, checked by onnx.checker; returns the
    graph's input names."""
    import inspect
    import logging
    import warnings

    import onnx
    import torch

    class Logits(torch.nn.Module):
        """The classifier with named tensor inputs and its logits as the one output."""

        def __init__(self, names: list[str]) -> None:
            super().__init__()
            self.model, self.names = model, names

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return self.model(**{n: given[n] for n in self.names}).logits

    accepted = set(inspect.signature(model.forward).parameters)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted
             and (n != "token_type_ids" or "token_type_ids" in tokenizer.model_input_names)]
    example = tokenizer(PROBES[:2], padding=True, return_tensors="pt")
    kwargs = {n: example[n] if n in example else torch.zeros_like(example["input_ids"]) for n in names}
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # its notes on torchvision operators it skips (no vision model here)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on axis names and deprecated opsets
            program = torch.onnx.export(Logits(names), (), kwargs=kwargs, input_names=names,
                                        output_names=["logits"], opset_version=OPSET, dynamo=True,
                                        dynamic_shapes={n: {0: batch, 1: sequence} for n in names}, verbose=False)
        program.save(str(path), external_data=False)
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as err:  # the exporter raises many types for a model it cannot translate
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SeqtuneError(f"torch.onnx cannot export this {type(model).__name__}: {first_line}") from None
    finally:
        exporter_log.setLevel(level)
    return names


def _quantize(source: Path, path: Path) -> None:
    """Dynamic int8 quantisation of the MatMul weights (activations quantised on the fly). Per output channel,
    and 7-bit (reduce_range): on AVX2 CPUs without VNNI ONNX Runtime multiplies u8 x s8 with VPMADDUBSW, whose
    16-bit sums saturate with full-range weights. The embedding tables stay fp32: a lookup gains no speed from
    int8. On MRPC dev (MiniLM) this keeps accuracy within 0.3 points of fp32, where per-tensor 8-bit lost 2."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process (shape inference, fusions) is for static quantisation
    try:
        quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         op_types_to_quantize=["MatMul"])
    finally:
        root.setLevel(level)


def _parity(model: Any, tokenizer: Any, spec: Any, folder: Path, names: list[str]) -> dict:
    """The exported model against torch on the probes, padded as one batch: max abs logit difference and
    how many predicted classes agree."""
    import numpy as np
    import torch

    from .onnx_engine import session

    pairs = PROBES[::-1] if len(spec.text_columns) == 2 else None
    encoded = tokenizer(PROBES, pairs, padding=True, truncation=True, max_length=spec.max_length, return_tensors="np")
    feed = {n: encoded[n].astype(np.int64) if n in encoded else np.zeros_like(encoded["input_ids"], np.int64)
            for n in names}
    exported = session(folder / ONNX_FILE).run(None, feed)[0]
    with torch.inference_mode():
        reference = model(**{n: torch.from_numpy(v) for n, v in feed.items()}).logits.float().numpy()
    scale = max(1.0, float(np.abs(reference).max()))
    agree = (exported.argmax(-1) == reference.argmax(-1)) if spec.task_type != "regression" else \
        np.abs(exported - reference).max(-1) <= 0.05 * scale
    return {"probes": len(PROBES), "max_abs_diff": float(np.abs(exported - reference).max()),
            "tolerance": TOLERANCE * scale, "labels_agree": int(agree.sum())}


def _swap_into_place(staging: Path, target: Path) -> None:
    """The complete export renamed to `target`; an earlier export there is moved aside first, checked again
    (files may have come in while the export ran) and deleted after."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    try:
        if target.exists():
            os.replace(target, old)
            _check_only_an_export(old, target)
        os.replace(staging, target)
    except (OSError, SeqtuneError) as err:
        if old.exists():
            os.replace(old, target)  # put the earlier export back: nothing the user had is lost
        if isinstance(err, SeqtuneError):
            raise
        raise SeqtuneError(f"--output {target}: cannot put the export in place ({err.strerror or err})") from None
    shutil.rmtree(old, ignore_errors=True)
