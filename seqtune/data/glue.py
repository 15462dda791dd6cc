"""GLUE from the original TSV files, with the hub's `nyu-mll/glue` schema; one table row per task."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SeqtuneError

if TYPE_CHECKING:
    import datasets

HUB_HOST = "huggingface.co"


@dataclass(frozen=True)
class GlueTask:
    """How one GLUE task's TSVs map onto the hub's columns.

    `columns` maps a hub column to its TSV header name, or to its position for files without a
    header. `label_names` is None for regression (STS-B). `idx_column` names the TSV column that
    holds the hub's `idx` (None: the row number).
    """

    folder: str
    splits: dict[str, str]
    columns: dict[str, str | int]
    label: str | int
    label_names: tuple[str, ...] | None
    test_columns: dict[str, str | int] = field(default_factory=dict)
    headerless: tuple[str, ...] = ()
    test_idx: str | int | None = None

    @property
    def text_columns(self) -> tuple[str, ...]:
        return tuple(self.columns)


NLI = ("entailment", "not_entailment")
GLUE_TASKS: dict[str, GlueTask] = {
    "cola": GlueTask("CoLA", {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"},
                     {"sentence": 3}, 1, ("unacceptable", "acceptable"),
                     test_columns={"sentence": "sentence"}, headerless=("train", "validation"),
                     test_idx="index"),
    "sst2": GlueTask("SST-2", {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"},
                     {"sentence": "sentence"}, "label", ("negative", "positive"), test_idx="index"),
    "mrpc": GlueTask("MRPC", {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"},
                     {"sentence1": "#1 String", "sentence2": "#2 String"}, "Quality",
                     ("not_equivalent", "equivalent"), test_idx="index"),
    "qqp": GlueTask("QQP", {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"},
                    {"question1": "question1", "question2": "question2"}, "is_duplicate",
                    ("not_duplicate", "duplicate"), test_idx="id"),
    "stsb": GlueTask("STS-B", {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"},
                     {"sentence1": "sentence1", "sentence2": "sentence2"}, "score", None,
                     test_idx="index"),
    "mnli": GlueTask("MNLI", {"train": "train.tsv", "validation_matched": "dev_matched.tsv",
                              "validation_mismatched": "dev_mismatched.tsv",
                              "test_matched": "test_matched.tsv",
                              "test_mismatched": "test_mismatched.tsv"},
                     {"premise": "sentence1", "hypothesis": "sentence2"}, "gold_label",
                     ("entailment", "neutral", "contradiction"), test_idx="index"),
    "qnli": GlueTask("QNLI", {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"},
                     {"question": "question", "sentence": "sentence"}, "label", NLI, test_idx="index"),
    "rte": GlueTask("RTE", {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"},
                    {"sentence1": "sentence1", "sentence2": "sentence2"}, "label", NLI, test_idx="index"),
    "wnli": GlueTask("WNLI", {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"},
                     {"sentence1": "sentence1", "sentence2": "sentence2"}, "label",
                     ("not_entailment", "entailment"), test_idx="index"),
}
ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "mnli-mm": "mnli"}


def glue_task(name: str) -> tuple[str, GlueTask]:
    """Look a task up by any usual spelling (MRPC, mrpc, SST-2, sst2)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in GLUE_TASKS:
        raise SeqtuneError(
            f"unknown GLUE task {name!r}; known tasks: {', '.join(sorted(GLUE_TASKS))}"
        )
    return key, GLUE_TASKS[key]


def load_glue(name: str, data_dir: str | os.PathLike | None = None) -> datasets.DatasetDict:
    """Load a GLUE task: from `data_dir`, else `$GLUE_DIR/<TASK>/`, else the hub."""
    key, task = glue_task(name)
    if data_dir is not None:
        folder = Path(data_dir)
        if not (folder / task.splits["train"]).is_file() and (folder / task.folder).is_dir():
            folder = folder / task.folder  # data_dir may be the GLUE root as well as the task folder
        return read_glue_folder(key, folder)
    glue_dir = os.environ.get("GLUE_DIR")
    if glue_dir:
        folder = Path(glue_dir) / task.folder
        if folder.is_dir():
            return read_glue_folder(key, folder)
    return _load_from_hub(key, glue_dir)


def read_glue_folder(key: str, folder: Path) -> datasets.DatasetDict:
    """Read every split of one task from its GLUE folder."""
    import datasets

    task = GLUE_TASKS[key]
    if not folder.is_dir():
        raise SeqtuneError(f"GLUE folder {folder} does not exist; point data_dir or GLUE_DIR at it")
    if task.label_names is None:
        label_feature = datasets.Value("float32")
    else:
        label_feature = datasets.ClassLabel(names=list(task.label_names))
    features = datasets.Features(
        {**{c: datasets.Value("string") for c in task.text_columns},
         "label": label_feature, "idx": datasets.Value("int32")}
    )
    splits = {}
    for split, filename in task.splits.items():
        path = folder / filename
        if not path.is_file():
            if split == "train" or split.startswith("validation"):
                raise SeqtuneError(f"GLUE {task.folder}: missing {path}; expected the GLUE files "
                                   f"{', '.join(task.splits.values())} in {folder}")
            continue  # the unlabelled test files are optional
        columns = _read_split(task, split, path)
        splits[split] = datasets.Dataset.from_dict(columns, features=features, split=split)
    return datasets.DatasetDict(splits)


def _read_split(task: GlueTask, split: str, path: Path) -> dict[str, list]:
    """Parse one TSV: tab-separated, no CSV quoting (quotes are part of the sentences)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise SeqtuneError(f"{path}: not UTF-8 text (byte {err.start}); GLUE files are UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    is_test = split.startswith("test")
    columns = task.test_columns or task.columns if is_test else task.columns
    has_header = split not in task.headerless
    header = lines[0].rstrip("\r").split("\t") if has_header else []
    wanted: dict[str, str | int] = dict(columns)
    if not is_test:
        wanted["label"] = task.label
    elif task.test_idx is not None:
        wanted["idx"] = task.test_idx
    positions = {}
    for hub_name, source in wanted.items():
        if isinstance(source, int):
            positions[hub_name] = source
        elif source in header:
            positions[hub_name] = header.index(source)
        else:
            raise SeqtuneError(f"{path}: line 1: missing column {source!r} (header has "
                               f"{', '.join(header)}); is this the GLUE {task.folder} file?")
    width = len(header) if has_header else max(positions.values()) + 1
    out: dict[str, list] = {c: [] for c in (*task.text_columns, "label", "idx")}
    first = 1 if has_header else 0
    for number, line in enumerate(lines[first:], start=first + 1):
        fields = line.rstrip("\r").split("\t")
        if len(fields) < width:
            raise SeqtuneError(f"{path}: line {number}: {len(fields)} tab-separated fields, "
                               f"expected {width}; the row is ragged or truncated")
        for hub_name in task.text_columns:
            out[hub_name].append(fields[positions[hub_name]])
        out["label"].append(-1 if is_test else _label(task, fields[positions["label"]], path, number))
        out["idx"].append(int(fields[positions["idx"]]) if "idx" in positions else len(out["idx"]))
    return out


def _label(task: GlueTask, value: str, path: Path, line: int) -> int | float:
    try:
        if task.label_names is None:
            return float(value)
        if value in task.label_names:
            return task.label_names.index(value)
        label = int(value)
    except ValueError:
        label = None
    if label is None or not 0 <= label < len(task.label_names or ()):
        allowed = "a number" if task.label_names is None else (
            f"0..{len(task.label_names) - 1} or one of {', '.join(task.label_names)}")
        raise SeqtuneError(f"{path}: line {line}: label {value!r} is not {allowed}")
    return label


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers at all: a TCP connect, no request, bounded time."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _load_from_hub(key: str, glue_dir: str | None) -> datasets.DatasetDict:
    where = (f"GLUE_DIR={glue_dir} has no {GLUE_TASKS[key].folder}/ folder" if glue_dir
             else "GLUE_DIR is not set")
    if not hub_reachable():
        raise SeqtuneError(
            f"no local copy of GLUE {GLUE_TASKS[key].folder} ({where}) and the Hugging Face hub is "
            "unreachable; set GLUE_DIR to a folder holding "
            f"{GLUE_TASKS[key].folder}/{GLUE_TASKS[key].splits['train']} (the classic GLUE layout) "
            "or pass data_dir="
        )
    import datasets

    return datasets.load_dataset("nyu-mll/glue", key)
