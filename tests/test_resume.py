"""A killed run resumes bit for bit; checkpoints are never half-written; best and newest survive rotation."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seqtune import SeqtuneError, Trainer, TrainingArguments
from seqtune import checkpoint as ckpt

from .conftest import tiny_bert, toy_rows

WORKER = Path(__file__).resolve().parent / "resume_worker.py"


def work(output_dir, *args):
    return subprocess.run([sys.executable, str(WORKER), str(output_dir), *args], capture_output=True,
                          text=True, timeout=300)


def losses(output_dir):
    history = json.loads((Path(output_dir) / "trainer_state.json").read_text())["log_history"]
    return [(h["step"], h.get("loss"), h.get("eval_loss")) for h in history if "loss" in h or "eval_loss" in h]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run the interrupted ones must equal bit for bit (read only)."""
    folder = tmp_path_factory.mktemp("resume") / "uninterrupted"
    assert work(folder).returncode == 0
    return folder


def test_killed_at_every_kind_of_point_resumes_bit_for_bit(tmp_path, reference):
    run = tmp_path / "killed"
    # 60 rows / batch 8 = 8 steps an epoch, 24 in all; checkpoints every 3 steps, evaluation every 5.
    kills = ["step:7",          # mid-epoch (newest checkpoint: 6)
             "epoch_end:16",    # at an epoch boundary (15)
             "evaluate:20",     # during an evaluation (18)
             "save:21"]         # while checkpoint-21 is being written (18 stays the newest)
    for number, kill in enumerate(kills):
        result = work(run, "--kill", kill, *(["--resume"] if number else []))
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert [p.name for p in ckpt.list_checkpoints(run)][-1] == "checkpoint-18"
    assert work(run, "--resume").returncode == 0
    assert json.loads((run / "steps_run.json").read_text()) == 24 - 18  # no replay of earlier batches
    ours, theirs = load_file(str(run / "final" / "model.safetensors")), load_file(
        str(reference / "final" / "model.safetensors"))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert losses(run) == losses(reference)
    assert not list(run.glob(".tmp-*"))


@pytest.mark.parametrize("name", ["sigterm", "sigusr1"])
def test_a_stop_signal_finishes_the_step_saves_and_resumes_bit_for_bit(tmp_path, reference, name):
    run = tmp_path / "stopped"
    stopped = work(run, "--kill", f"{name}:7")  # between scheduled checkpoints (6 and 9)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert f"stopped by {name.upper()} at step 7; " in stopped.stderr and "--resume" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert ckpt.list_checkpoints(run)[-1].name == "checkpoint-7"
    assert work(run, "--resume").returncode == 0
    ours, theirs = load_file(str(run / "final" / "model.safetensors")), load_file(
        str(reference / "final" / "model.safetensors"))
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert losses(run) == losses(reference)


def test_ctrl_c_says_whether_there_is_anything_to_resume(tmp_path):
    from seqtune import TrainerCallback

    class CtrlC(TrainerCallback):
        def __init__(self, at):
            self.at = at

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == self.at:
                raise KeyboardInterrupt

    for at, message in ((1, "stopped by Ctrl-C at step 1; no checkpoint was written yet, so there is nothing"),
                        (5, "stopped by Ctrl-C at step 5; " + str(tmp_path / "checkpoint-4") + " holds step 4")):
        trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=8), train_dataset=toy_rows(80),
                          callbacks=[CtrlC(at)])
        with pytest.raises(KeyboardInterrupt) as caught:  # still a KeyboardInterrupt to code that catches one
            trainer.train()
        assert isinstance(caught.value, SeqtuneError) and message in str(caught.value)
        assert caught.value.exit_code == 130


def test_resume_with_another_recipe_says_what_differs(tmp_path):
    assert work(tmp_path, "--kill", "step:4").returncode == -signal.SIGKILL
    result = work(tmp_path, "--resume", "--batch-size", "4")
    assert result.returncode != 0 and "batch size 8 there, 4 here" in result.stderr


def test_resume_on_other_rows_or_with_another_learning_rate_is_refused(tmp_path):
    Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=2), train_dataset=toy_rows(32)).train()
    again = {"max_steps": 4}
    for rows, args, says in ((toy_rows(32, seed=1), again, "the training rows differ"),
                             (toy_rows(32), {**again, "learning_rate": 1e-2}, "learning_rate 0.001 there, 0.01 here"),
                             (toy_rows(32), {**again, "seed": 7}, "seed 42 there, 7 here")):
        other = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, **args), train_dataset=rows)
        with pytest.raises(SeqtuneError, match=f"comes from another recipe \\(.*{says}"):
            other.train(resume_from_checkpoint=True)
    resumed = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, **again), train_dataset=toy_rows(32))
    assert resumed.train(resume_from_checkpoint=True).global_step == 4  # the same recipe, longer: it continues


def _args(tmp_path, **kwargs):
    defaults = dict(per_device_train_batch_size=8, learning_rate=1e-3, disable_tqdm=True, logging_steps=5,
                    save_strategy="steps", save_steps=2, use_cpu=True)
    return TrainingArguments(str(tmp_path), **{**defaults, **kwargs})


def test_failed_checkpoint_write_stops_cleanly_and_keeps_the_previous_one(tmp_path, monkeypatch):
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=6), train_dataset=toy_rows(64))
    real_save = torch.save

    def disk_full(obj, path, *args, **kwargs):
        if "checkpoint-4" in str(path):
            raise OSError(28, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(SeqtuneError, match="could not write checkpoint .*checkpoint-4: No space left on device "
                                           r"\(a checkpoint needs about [\d,]+ MB; [\d,]+ MB are free there\)"):
        trainer.train()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-2"]
    assert not list(tmp_path.glob(".tmp-*"))
    monkeypatch.setattr(torch, "save", real_save)
    resumed = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=6), train_dataset=toy_rows(64))
    assert resumed.train(resume_from_checkpoint=True).global_step == 6


def test_rotation_keeps_best_and_newest_and_loads_best_at_end(tmp_path):
    # The learning rate is so high that the loss only gets worse after the first evaluation.
    args = _args(tmp_path, max_steps=10, eval_strategy="steps", eval_steps=2, save_total_limit=1,
                 load_best_model_at_end=True, learning_rate=0.5, max_grad_norm=0.0)
    trainer = Trainer(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(64), eval_dataset=toy_rows(16))
    trainer.train()
    evals = {h["step"]: h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h}
    best_step = min(evals, key=evals.get)
    kept = [p.name for p in ckpt.list_checkpoints(tmp_path)]
    assert kept == sorted({f"checkpoint-{best_step}", "checkpoint-10"}, key=lambda n: int(n.split("-")[1]))
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best_step}")
    assert state["best_metric"] == pytest.approx(evals[best_step])
    best = load_file(str(tmp_path / f"checkpoint-{best_step}" / "model.safetensors"))
    assert all(torch.equal(trainer.model.state_dict()[k], v) for k, v in best.items())
    assert torch.equal(load_file(str(tmp_path / "model.safetensors"))["classifier.weight"],
                       best["classifier.weight"])


class NaNAfter(torch.nn.Module):
    """Loss turns NaN from the 5th forward on (`once`: at the 5th forward only)."""

    def __init__(self, once: bool = False):
        super().__init__()
        self.linear = torch.nn.Linear(1, 2)
        self.calls, self.once = 0, once

    def forward(self, input_ids, attention_mask=None, labels=None):
        self.calls += 1
        logits = self.linear(input_ids[:, :1].float())
        loss = torch.nn.functional.cross_entropy(logits, labels)
        nan = self.calls == 5 if self.once else self.calls >= 5
        return (loss * float("nan") if nan else loss), logits


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(NaNAfter(), _args(tmp_path, max_steps=10), train_dataset=toy_rows(80))
    with pytest.raises(SeqtuneError, match="NaN or infinite at step 5.*checkpoint-4"):
        trainer.train()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-4"]


def test_a_nan_in_any_micro_batch_is_caught_at_its_step(tmp_path):
    # 4 micro-batches a step: forward 5 is the first of step 2, and the last one of that step is finite.
    args = _args(tmp_path, max_steps=3, gradient_accumulation_steps=4, per_device_train_batch_size=2)
    with pytest.raises(SeqtuneError, match="NaN or infinite at step 2"):
        Trainer(NaNAfter(once=True), args, train_dataset=toy_rows(40)).train()


def test_checkpoint_from_another_model_is_refused(tmp_path):
    Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=2), train_dataset=toy_rows(32)).train()
    other = Trainer(tiny_bert(vocab_size=64, num_labels=3), _args(tmp_path, max_steps=4),
                    train_dataset=toy_rows(32))
    with pytest.raises(SeqtuneError, match="from another model: shape of classifier"):
        other.train(resume_from_checkpoint=True)


def test_evaluation_keeps_nothing_per_batch(tmp_path):
    """Logits leave the device batch by batch: live tensors do not grow with the number of batches."""
    import gc

    live = []

    def count_tensors(logits, labels):
        gc.collect()
        live.append(sum(1 for o in gc.get_objects() if torch.is_tensor(o)))
        return logits

    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, per_device_eval_batch_size=4),
                      preprocess_logits_for_metrics=count_tensors)
    output = trainer.predict(toy_rows(64))  # gc.collect over the whole suite's heap is slow: few batches
    assert output.predictions.shape == (64, 2)
    assert len(live) == 16 and max(live[3:]) == min(live[3:])


def test_resuming_a_finished_run_trains_nothing(tmp_path):
    """max_steps ends mid-epoch: the last checkpoint is not at an epoch's end, and nothing is left to do."""
    args = _args(tmp_path, max_steps=11, save_steps=4)
    Trainer(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(80)).train()
    assert ckpt.list_checkpoints(tmp_path)[-1].name == "checkpoint-11"
    again = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=11, save_steps=4),
                    train_dataset=toy_rows(80))
    output = again.train(resume_from_checkpoint=True)
    assert output.global_step == 11 and ckpt.list_checkpoints(tmp_path)[-1].name == "checkpoint-11"
