"""Runs under torchrun (or plain python for one process); used by test_distributed.py.

    torchrun --nproc_per_node=2 dist_worker.py OUT [--max-steps N] [--accumulation K] [--resume]
                                               [--fail-at-step S --fail-rank R] [--predict-only] [--fsdp]
                                               [--gradient-checkpointing]
"""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seqtune import SeqtuneError, Trainer, TrainerCallback, TrainingArguments  # noqa: E402
from seqtune import distributed as dist  # noqa: E402
from tests.conftest import tiny_bert, toy_rows  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("output_dir")
parser.add_argument("--max-steps", type=int, default=8)
parser.add_argument("--accumulation", type=int, default=1)
parser.add_argument("--resume", action="store_true")
parser.add_argument("--fail-at-step", type=int, default=-1)
parser.add_argument("--fail-rank", type=int, default=1)
parser.add_argument("--sigterm-at-step", type=int, default=-1, help="this rank sends itself SIGTERM then")
parser.add_argument("--predict-only", action="store_true")
parser.add_argument("--fsdp", action="store_true")
parser.add_argument("--gradient-checkpointing", action="store_true")
options = parser.parse_args()


class FailAt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == options.fail_at_step and dist.rank() == options.fail_rank:
            raise RuntimeError(f"injected failure on rank {dist.rank()} at step {state.global_step}")
        if state.global_step == options.sigterm_at_step and dist.rank() == options.fail_rank:
            os.kill(os.getpid(), signal.SIGTERM)


def accuracy(eval_pred):
    logits, labels = eval_pred
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


args = TrainingArguments(options.output_dir, max_steps=options.max_steps, per_device_train_batch_size=8,
                         gradient_accumulation_steps=options.accumulation, per_device_eval_batch_size=4,
                         learning_rate=3e-3, lr_scheduler_type="constant", logging_steps=2,
                         save_strategy="steps", save_steps=options.max_steps, disable_tqdm=True,
                         bf16=False, seed=5, fsdp=options.fsdp, gradient_checkpointing=options.gradient_checkpointing)
model = tiny_bert(vocab_size=64, seed=11, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
trainer = Trainer(model, args, train_dataset=toy_rows(64, seed=1), compute_metrics=accuracy, callbacks=[FailAt()])
if not options.predict_only:
    try:
        trainer.train(resume_from_checkpoint=True if options.resume else None)
    except SeqtuneError as err:
        print(f"rank {dist.rank()}: seqtune: {err}", flush=True)
        sys.exit(err.exit_code)
output = trainer.predict(toy_rows(37, seed=2))
out = Path(options.output_dir)
out.mkdir(parents=True, exist_ok=True)
if dist.is_main():
    np.save(out / "predictions.npy", output.predictions)
    np.save(out / "labels.npy", output.label_ids)
    (out / "metrics.json").write_text(json.dumps(output.metrics))
else:
    (out / f"rank{dist.rank()}.txt").write_text("a non-zero rank wrote nothing else")
trainer.save_model(str(out / "final"))  # every rank calls it (a collective for FSDP2); rank 0 writes
print(f"rank {dist.rank()}: worker done", flush=True)  # test_distributed tells a teardown abort by it
