"""report_to trackers: real, offline runs read back with each tool's own reader."""

import importlib.util
from pathlib import Path

import pytest

from seqtune import SeqtuneError, Trainer, TrainingArguments
from seqtune.trackers import MLflowCallback, TensorBoardCallback, WandbCallback, tracker_callbacks

from .conftest import tiny_bert, toy_rows


def _train(tmp_path: Path, name: str) -> Trainer:
    args = TrainingArguments(str(tmp_path), max_steps=4, logging_steps=1, eval_strategy="steps", eval_steps=2,
                             save_strategy="no", report_to=[name], disable_tqdm=True, use_cpu=True, bf16=False)
    trainer = Trainer(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(32),
                      eval_dataset=toy_rows(8, seed=1))
    trainer.train()
    return trainer


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever a tracker writes by default lands here, not in the repository
    # MLflowCallback opts in to MLflow's file store in os.environ: undone after each test
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")


def test_tensorboard_scalars_and_recipe(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _train(tmp_path, "tensorboard")
    (run,) = (tmp_path / "runs").iterdir()
    events = EventAccumulator(str(run), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "eval/loss", "train/train_loss"} <= scalars
    assert "train/step" not in scalars
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.step for e in events.Scalars("eval/loss")] == [2, 4]
    # add_text is stored as a tensor summary by the text plugin
    text = events.Tensors("args/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"learning_rate": 5e-05' in text and '"max_steps": 4' in text


def test_mlflow_local_file_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    trainer = _train(tmp_path, "mlflow")
    store = tmp_path / "mlruns"
    assert store.is_dir() and mlflow.active_run() is None
    client = MlflowClient(tracking_uri=store.as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["learning_rate"] == "5e-05" and run.data.params["report_to"] == "['mlflow']"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3, 4]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval_loss")] == [2, 4]
    last = [h for h in trainer.state.log_history if "loss" in h][-1]["loss"]
    assert run.data.metrics["loss"] == pytest.approx(last)


def test_mlflow_params_truncated_and_batched(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

    class Recipe:
        def to_dict(self):
            return {"long": "x" * (MAX_PARAM_VAL_LENGTH + 10),
                    **{f"p{i}": i for i in range(MAX_PARAMS_TAGS_PER_BATCH + 5)}}

    callback = MLflowCallback(tmp_path)
    callback.on_train_begin(Recipe(), None, None)
    callback.on_train_end(Recipe(), None, None)
    params = MlflowClient(tracking_uri=callback.local_store_uri()).get_run(callback.run_id).data.params
    assert params["long"] == "x" * MAX_PARAM_VAL_LENGTH and len(params) == MAX_PARAMS_TAGS_PER_BATCH + 6


def test_wandb_offline_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    trainer = _train(tmp_path, "wandb")
    assert wandb.run is None  # finish() ran
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    (log,) = run_dir.glob("*.wandb")
    records = _wandb_records(log)
    history = [_items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    assert [row["_step"] for row in history if "train/loss" in row] == [1, 2, 3, 4]
    assert [row["_step"] for row in history if "eval/loss" in row] == [2, 4]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert [row["train/loss"] for row in history if "train/loss" in row] == pytest.approx(losses)
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update(_items(r.summary.update))
    assert summary["train_loss"] == pytest.approx(trainer.state.log_history[-1]["train_loss"])
    assert not any("train_loss" in row or "train/train_loss" in row for row in history)  # a summary, not a curve


def _items(items) -> dict:
    import json

    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def _wandb_records(log: Path, timeout: float = 30.0) -> list:
    """The records of an offline .wandb file: a leveldb-style log of wandb's Record protobufs (wandb no
    longer ships a Python reader). wandb's service may still be writing after finish() returns: wait
    for the final exit record."""
    import struct
    import time

    from wandb.proto import wandb_internal_pb2

    deadline = time.monotonic() + timeout
    while True:
        data, block = log.read_bytes(), 32768
        assert data[:4] == b":W&B"
        records, pending, pos = [], b"", 7  # 7: the file header (ident, magic, version)
        while pos + 7 <= len(data):
            if block - pos % block < 7:  # too little room left in the block for a record header: padding
                pos += block - pos % block
                continue
            _checksum, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
            if kind == 0 or pos + 7 + length > len(data):
                break
            pending += data[pos + 7:pos + 7 + length]
            pos += 7 + length
            if kind in (1, 4):  # FULL or LAST: a whole record is in hand
                records.append(wandb_internal_pb2.Record.FromString(pending))
                pending = b""
        if records and records[-1].WhichOneof("record_type") == "exit" or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def test_tracker_callbacks_choice(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real_find_spec(name, *a))
    with pytest.raises(SeqtuneError, match="report_to='wandb' needs the wandb package, which is not "
                                           "installed: pip install wandb"):
        tracker_callbacks(["wandb"], tmp_path)
    assert tracker_callbacks(["none"], tmp_path) == []
    installed = {TensorBoardCallback: "tensorboard", MLflowCallback: "mlflow"}
    expected = [cls for cls, name in installed.items() if real_find_spec(name) is not None]
    chosen = [type(c) for c in tracker_callbacks(["all"], tmp_path)]  # "all": the installed ones, wandb not
    assert WandbCallback not in chosen and sorted(chosen, key=str) == sorted(expected, key=str)
