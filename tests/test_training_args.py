"""The TrainingArguments the loop acts on: eval_on_start, eval_delay, save_only_model, data_seed,
full_determinism, the dataloader's worker options, logging_dir and run_name, auto_find_batch_size."""

import numpy as np
import pytest
import torch

from seqtune import SeqtuneError, Trainer, TrainingArguments, batchsize

from .conftest import tiny_bert, toy_rows


def _args(tmp_path, **kwargs):
    defaults = dict(max_steps=4, per_device_train_batch_size=4, report_to="none", save_strategy="no",
                    disable_tqdm=True, use_cpu=True, bf16=False, logging_steps=1)
    return TrainingArguments(str(tmp_path / "out"), **{**defaults, **kwargs})


def _evaluated_at(trainer):
    return [h["step"] for h in trainer.state.log_history if "eval_loss" in h]


def test_eval_on_start_and_eval_delay_in_steps(tmp_path):
    rows = toy_rows(16)
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=6, eval_strategy="steps", eval_steps=1,
                                                      eval_delay=3, eval_on_start=True),
                      train_dataset=rows, eval_dataset=rows)
    trainer.train()
    assert _evaluated_at(trainer) == [0, 3, 4, 5, 6]  # on start, then from step 3 (transformers: delay <= step)


def test_eval_delay_in_epochs(tmp_path):
    rows = toy_rows(8)
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=-1, num_train_epochs=3,
                                                      eval_strategy="epoch", eval_delay=2),
                      train_dataset=rows, eval_dataset=rows)
    trainer.train()
    assert _evaluated_at(trainer) == [4, 6]  # epochs 2 and 3 (2 steps each)


def test_save_only_model_checkpoints_hold_the_model_alone_and_are_not_resumed(tmp_path):
    args = _args(tmp_path, save_strategy="steps", save_steps=2, save_only_model=True)
    Trainer(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(16)).train()
    folder = tmp_path / "out" / "checkpoint-4"
    assert {p.name for p in folder.iterdir()} == {"model.safetensors", "config.json", "training_args.json",
                                                  "trainer_state.json", "checksums.json"}
    assert (tmp_path / "out" / "checkpoint-2").is_dir()  # intact: listed and rotated as any checkpoint
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(folder).num_labels == 2
    again = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=6), train_dataset=toy_rows(16))
    with pytest.raises(SeqtuneError, match=r"^resume: .*checkpoint-4 was saved with save_only_model=True, so it "
                                           r"holds the model alone .* and training cannot continue from it"):
        again.train(resume_from_checkpoint=True)


def _first_batches(tmp_path, **kwargs):
    seen = []

    class Recording(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            seen.append(inputs["input_ids"][:, 1].tolist())
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    Recording(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=2, group_by_length=False, **kwargs),
              train_dataset=toy_rows(16)).train()
    return seen


def test_data_seed_sets_the_batch_order_apart_from_seed(tmp_path):
    plain = _first_batches(tmp_path, seed=1)
    assert _first_batches(tmp_path, seed=1, data_seed=1) == plain
    assert _first_batches(tmp_path, seed=2, data_seed=1) == plain  # weights seed changed, order kept
    assert _first_batches(tmp_path, seed=1, data_seed=7) != plain


def test_full_determinism_turns_on_deterministic_algorithms(tmp_path, monkeypatch):
    import os

    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda mode, **k: calls.append(mode))
    for name in ("CUBLAS_WORKSPACE_CONFIG", "CUDA_LAUNCH_BLOCKING", "FLASH_ATTENTION_DETERMINISTIC"):
        monkeypatch.delenv(name, raising=False)  # and put back as it was after the test
    for name in ("deterministic", "benchmark"):
        monkeypatch.setattr(torch.backends.cudnn, name, getattr(torch.backends.cudnn, name))
    Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=1, full_determinism=True),
            train_dataset=toy_rows(8)).train()
    assert calls == [True] and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False


def test_worker_options_reach_the_dataloader(tmp_path, monkeypatch):
    made = []
    original = torch.utils.data.DataLoader.__init__

    def recording(self, *args, **kwargs):
        made.append(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", recording)
    args = _args(tmp_path, max_steps=2, dataloader_num_workers=1, dataloader_persistent_workers=True,
                 dataloader_prefetch_factor=3, dataloader_pin_memory=False)
    Trainer(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(8)).train()
    assert made[0]["persistent_workers"] is True and made[0]["prefetch_factor"] == 3
    assert made[0]["num_workers"] == 1 and made[0]["pin_memory"] is False
    with pytest.raises(SeqtuneError, match="dataloader_prefetch_factor applies to worker processes; set "
                                           "dataloader_num_workers > 0 as well"):
        TrainingArguments("out", dataloader_prefetch_factor=2)


def test_logging_dir_and_run_name_are_where_tensorboard_writes(tmp_path):
    pytest.importorskip("tensorboard")
    rows = toy_rows(8)
    Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=2, report_to="tensorboard",
                                            logging_dir=str(tmp_path / "tb")), train_dataset=rows).train()
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=2, report_to="tensorboard", run_name="tiny-run"),
            train_dataset=rows).train()
    assert list((tmp_path / "out" / "runs" / "tiny-run").glob("events.out.tfevents.*"))


def test_halving_on_out_of_memory(capsys):
    args = TrainingArguments("out", per_device_train_batch_size=16, auto_find_batch_size=True)
    tried, restarts = [], []

    def train():
        tried.append(args.per_device_train_batch_size)
        if args.per_device_train_batch_size > 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "done"

    assert batchsize.halving(train, args, lambda: restarts.append(1), print) == "done"
    assert tried == [16, 8, 4] and len(restarts) == 2
    assert "out of memory at per_device_train_batch_size=16; auto_find_batch_size halves it to 8" in \
        capsys.readouterr().out
    with pytest.raises(ValueError, match="not memory"):  # any other error is not retried
        batchsize.halving(lambda: (_ for _ in ()).throw(ValueError("not memory")), args, lambda: None, print)
    args.per_device_train_batch_size = 1
    with pytest.raises(SeqtuneError, match="out of memory with per_device_train_batch_size=1"):
        batchsize.halving(lambda: (_ for _ in ()).throw(RuntimeError("CUDA out of memory. Tried")), args,
                          lambda: None, print)
    assert not batchsize.applies(args, torch.device("cpu"))  # a CPU has nothing to halve


def test_auto_find_batch_size_restarts_the_training_from_its_start(tmp_path, monkeypatch):
    monkeypatch.setattr(batchsize, "applies", lambda args, device: args.auto_find_batch_size)

    class RunsOutOfMemory(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if len(inputs["input_ids"]) > 2 and self.state.global_step == 1:  # the second step of a batch of 4
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    rows = toy_rows(8)
    args = _args(tmp_path, max_steps=-1, num_train_epochs=1, auto_find_batch_size=True)
    trainer = RunsOutOfMemory(tiny_bert(vocab_size=64), args, train_dataset=rows)
    output = trainer.train()
    assert args.per_device_train_batch_size == 2 and output.global_step == 4
    # Restarted from the first weights: the same run as one that used batches of 2 from the start.
    reference = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=-1, num_train_epochs=1,
                                                        per_device_train_batch_size=2), train_dataset=rows)
    reference.train()
    for ours, theirs in zip(trainer.model.parameters(), reference.model.parameters(), strict=True):
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), atol=1e-6)
