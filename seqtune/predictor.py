"""A trained output folder ready to label texts: `seqtune predict`, `evaluate`, the server and both engines
go through it, so every reading of a model's outputs (TaskSpec) holds in each of them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from .errors import SeqtuneError
from .task import TaskSpec

ENGINES = ("torch", "onnxruntime")


class Predictor:
    """A trained output folder ready to label texts.

    `engine="torch"` runs the folder's model through seqtune's Trainer.predict (its fast paths, length-sorted
    batches); `engine="onnxruntime"` runs an ONNX export (`seqtune export`): `model_dir` is the export folder,
    or a run folder holding one in `onnx/` (else `onnx-int8/`).

    Threads: `logits`/`predict` may be called from any thread (no signal handler is installed, and with
    `quiet=True` no progress bar is printed), one call at a time per Predictor.
    """

    def __init__(self, model_dir: str | Path, engine: str = "torch", batch_size: int = 32,
                 quiet: bool = True) -> None:
        if engine not in ENGINES:
            raise SeqtuneError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise SeqtuneError(f"batch size {batch_size!r} must be a whole number >= 1")
        self.engine = engine
        self.batch_size = batch_size
        self.quiet = quiet
        if engine == "torch":
            self.model_dir = Path(model_dir)
            self._engine: Any = _TorchEngine(self.model_dir, batch_size, quiet)
        else:
            from .onnx_engine import OnnxEngine, find_export

            self.model_dir = find_export(Path(model_dir))
            self._engine = OnnxEngine(self.model_dir, batch_size)
        self.tokenizer = self._engine.tokenizer
        self.spec: TaskSpec = self._engine.spec

    @property
    def max_length(self) -> int:
        """The window in tokens the model reads: the task's max_length, else the tokenizer's limit capped at
        the model's position embeddings; longer inputs are truncated (or chunked, as the task says)."""
        if self.spec.max_length:
            return int(self.spec.max_length)
        limits = [getattr(self.tokenizer, "model_max_length", None),
                  getattr(self._engine.config, "max_position_embeddings", None)]
        return min(int(limit) for limit in limits if isinstance(limit, int) and limit > 0)

    @property
    def pairs_expected(self) -> bool | None:
        """Whether the model was trained on text pairs (None: the folder does not say)."""
        return len(self.spec.text_columns) == 2 if self.spec.text_columns else None

    def logits(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Any:
        """The model's logits, one row per input text (pair), in input order: an (N, outputs) float array."""
        return self.dataset_logits(self.dataset(texts, pairs))

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                all_scores: bool = False) -> list[dict[str, Any]]:
        """One dict per input: the columns `seqtune predict` writes (TaskSpec.prediction_columns), as plain
        Python values."""
        return self.rows(self.logits(texts, pairs), all_scores)

    def rows(self, logits: Any, all_scores: bool = False) -> list[dict[str, Any]]:
        """Logits (one row per input) read into predict's columns, one dict per input."""
        columns = self.spec.prediction_columns(logits, all_scores)
        names = list(columns)
        return [{name: _plain(columns[name][i]) for name in names} for i in range(len(logits))]

    def dataset(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Any:
        """The inputs as a datasets.Dataset with `text` (and `text_pair`) columns, checked."""
        import datasets

        texts = _strings(texts, "texts")
        if pairs is not None:
            pairs = _strings(pairs, "pairs")
            if len(pairs) != len(texts):
                raise SeqtuneError(f"{len(texts)} texts but {len(pairs)} pairs; give one pair per text")
        if self.pairs_expected is True and pairs is None:
            raise SeqtuneError(f"this model reads text pairs ({' + '.join(map(str, self.spec.text_columns))}); "
                               "give a pair for each text")
        if self.pairs_expected is False and pairs is not None:
            raise SeqtuneError("this model reads single texts, not pairs; give texts alone")
        columns = {"text": texts} if pairs is None else {"text": texts, "text_pair": pairs}
        return datasets.Dataset.from_dict(columns)

    def dataset_logits(self, dataset: Any) -> Any:
        """Logits of a datasets.Dataset with `text` (and `text_pair`) columns, one row per dataset row, in
        order: tokenized by the task (spec.tokenize), run by the engine, put back per row (spec.per_row)."""
        import numpy as np

        inputs = dataset.select_columns([c for c in ("text", "text_pair") if c in dataset.column_names])
        if len(inputs) == 0:
            return np.zeros((0, self._engine.num_outputs), dtype=np.float32)
        with _progress_bars(not self.quiet):
            rows = self.spec.tokenize(_unhashed_dict()({"rows": inputs}), self.tokenizer)["rows"]
        return self.spec.per_row(self._engine.logits(rows), rows)


class _TorchEngine:
    """The folder's PyTorch model, run by seqtune's Trainer.predict: its CPU fast paths and length-sorted
    batches make it as fast as seqtune's evaluation; built once, reused for every call."""

    def __init__(self, folder: Path, batch_size: int, quiet: bool) -> None:
        from .args import TrainingArguments
        from .inference import load_trained
        from .trainer import Trainer

        model, self.tokenizer, self.spec = load_trained(str(folder))
        self.config = model.config
        self.num_outputs = int(model.config.num_labels)
        # Nothing is written: the model folder stands in as output_dir, and no save ever happens.
        # A model stored in bf16 predicts in bf16 (keep_model_dtype): nothing is trained here.
        args = TrainingArguments(str(folder), per_device_eval_batch_size=batch_size, disable_tqdm=quiet,
                                 save_strategy="no", report_to="none", keep_model_dtype=True)
        self.trainer = Trainer(model, args, processing_class=self.tokenizer)

    def logits(self, rows: Any) -> Any:
        return self.trainer.predict(rows).predictions


@cache
def _unhashed_dict() -> type:
    import datasets

    class Unhashed(datasets.DatasetDict):
        """A DatasetDict whose map names each result with a fresh fingerprint instead of hashing the function:
        hashing a closure over a tokenizer costs ~100 ms a call, which would dwarf a server's small batches.
        The data are in memory, so no cache file is ever looked up by that fingerprint."""

        def map(self, function: Any = None, **kwargs: Any) -> Any:
            from uuid import uuid4

            return datasets.DatasetDict({name: split.map(function, **{"new_fingerprint": uuid4().hex, **kwargs})
                                         for name, split in self.items()})

    return Unhashed


@contextmanager
def _progress_bars(shown: bool) -> Iterator[None]:
    """datasets' progress bars on or off for a while (a server labelling small requests prints none)."""
    import datasets

    was_shown = datasets.is_progress_bar_enabled()
    if shown == was_shown:
        yield
        return
    (datasets.enable_progress_bars if shown else datasets.disable_progress_bars)()
    try:
        yield
    finally:
        (datasets.enable_progress_bars if was_shown else datasets.disable_progress_bars)()


def _strings(values: Sequence[str], what: str) -> list[str]:
    if isinstance(values, (str, bytes)):
        raise SeqtuneError(f"{what}: expected a list of strings, got one string; wrap it in a list")
    values = list(values)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise SeqtuneError(f"{what}[{i}]: expected a string, got {type(value).__name__}")
        if not value.strip():
            raise SeqtuneError(f"{what}[{i}]: the text is empty")
    return values


def _plain(value: Any) -> Any:
    """A NumPy scalar or array as the Python value json and pandas take."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
