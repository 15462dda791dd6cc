"""A training run that kills itself (SIGKILL) at a chosen point; used by test_resume.py.

    python resume_worker.py OUTPUT_DIR [--kill EVENT:STEP] [--resume] [--seed N]

EVENT is step (after an optimizer step), epoch_end, evaluate (inside the evaluation), save
(a checkpoint's files written, not yet renamed into place), or sigterm / sigusr1 (the signal sent to
itself after an optimizer step: the run is asked to stop, not killed).
"""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seqtune import SeqtuneError, Trainer, TrainerCallback, TrainingArguments  # noqa: E402
from seqtune import checkpoint as ckpt  # noqa: E402
from tests.conftest import tiny_bert, toy_rows  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("output_dir")
parser.add_argument("--kill", default="")
parser.add_argument("--resume", action="store_true")
parser.add_argument("--batch-size", type=int, default=8)
options = parser.parse_args()
event, _, kill_step = options.kill.partition(":")
kill_step = int(kill_step or -1)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Killer(TrainerCallback):
    steps_run = 0

    def on_step_end(self, args, state, control, **kwargs):
        Killer.steps_run += 1
        if event == "step" and state.global_step == kill_step:
            die()
        if event in ("sigterm", "sigusr1") and state.global_step == kill_step:
            os.kill(os.getpid(), getattr(signal, event.upper()))

    def on_epoch_end(self, args, state, control, **kwargs):
        if event == "epoch_end" and state.global_step == kill_step:
            die()


trainer = None


def compute_metrics(eval_pred):
    if event == "evaluate" and trainer.state.global_step == kill_step:
        die()
    logits, labels = eval_pred
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


fsync_tree = ckpt._fsync_tree


def fsync_then_maybe_die(folder):
    fsync_tree(folder)
    if event == "save" and folder.name.startswith(f".tmp-checkpoint-{kill_step}-"):
        die()


ckpt._fsync_tree = fsync_then_maybe_die
args = TrainingArguments(options.output_dir, num_train_epochs=3, per_device_train_batch_size=options.batch_size,
                         learning_rate=1e-3, logging_steps=2, eval_strategy="steps", eval_steps=5,
                         save_strategy="steps", save_steps=3, disable_tqdm=True, seed=7)
trainer = Trainer(tiny_bert(vocab_size=64, seed=3), args, train_dataset=toy_rows(60, seed=1),
                  eval_dataset=toy_rows(20, seed=2), compute_metrics=compute_metrics, callbacks=[Killer()])
try:
    trainer.train(resume_from_checkpoint=True if options.resume else None)
except SeqtuneError as err:  # as the command line does: one line, the error's exit code
    print(f"seqtune: {err}", file=sys.stderr)
    sys.exit(err.exit_code)
trainer.save_model(str(Path(options.output_dir) / "final"))
Path(options.output_dir, "steps_run.json").write_text(json.dumps(Killer.steps_run))
