"""One side of the benchmark in its own process (so peak memory is its own): train, evaluate, predict.

    python -m bench.run_one --trainer seqtune|transformers --steps N --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


class CountingCollator:
    """Wraps a collator to count the real and padded tokens fed to the model."""

    def __init__(self, inner):
        self.inner = inner
        self.real = self.padded = 0

    def __call__(self, features):
        batch = self.inner(features)
        self.real += int(batch["attention_mask"].sum())
        self.padded += batch["attention_mask"].numel()
        return batch


class Turns:
    """With --take-turns the process stops itself (SIGSTOP) where the other side may run, and the
    parent (bench/__main__.py) continues one side at a time: the two share the machine's slow and
    fast minutes. Time spent stopped is left out of the training time."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.paused = 0.0

    def pause(self) -> None:
        if self.enabled:
            start = time.perf_counter()
            os.kill(os.getpid(), signal.SIGSTOP)  # returns when the parent sends SIGCONT
            self.paused += time.perf_counter() - start

    def callback(self, base: type) -> object:
        turns = self

        class PauseAtEpochEnd(base):
            def on_epoch_end(self, args, state, control, **kwargs):
                turns.pause()

        return PauseAtEpochEnd()


def seqtune_settings(trainer, precision: str) -> dict[str, str]:
    """What this seqtune run does where transformers' Trainer may do otherwise (read off the trainer)."""
    from seqtune.data.sampling import groups_by_length

    multiple = getattr(trainer.data_collator, "pad_to_multiple_of", None)
    levers = trainer.fast_paths.levers
    return {
        "precision": f"{precision} autocast, fp32 master weights" if precision != "fp32" else "fp32",
        "batch order": "length-grouped random" if groups_by_length(trainer.args.group_by_length, trainer.model)
        else "random",
        "evaluation order": "sorted by length, outputs restored to dataset order",
        "batch lengths": f"longest in the batch, rounded up to a multiple of {multiple}" if multiple
        else "longest in the batch",
        "attention": "seqtune CPU attention" if levers.cpu_attention else "eager" if levers.eager_attention
        else trainer.model.config._attn_implementation,
        "dropout masks": "16 random bits per element" if levers.cheap_dropout else "torch's bernoulli",
        "last layer": "first position only, keys and values folded into its query"
        if levers.pooled_last_layer else "all positions",
        "optimizer": "adamw_torch_fused" + (", gradient clipping folded into its step"
                                            if levers.folded_clipping and trainer.args.max_grad_norm > 0 else ""),
        "evaluation weights": "bf16 copies for the pass" if levers.bf16_eval_weights else "fp32",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trainer", choices=("seqtune", "transformers"), required=True)
    parser.add_argument("--steps", type=int, default=-1, help="-1: 3 full epochs")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default=None, help="default: the embedded MiniLM")
    parser.add_argument("--config-only", action="store_true", help="random weights from the model's config")
    parser.add_argument("--out", required=True)
    parser.add_argument("--take-turns", action="store_true", help="stop at each epoch's end (see Turns)")
    parser.add_argument("--torch-compile", default=None, metavar="MODE",
                        help="both sides: torch_compile=True with this mode (default, reduce-overhead, ...)")
    options = parser.parse_args()
    turns = Turns(options.take_turns)

    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    import seqtune

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    checkpoint = options.model or seqtune.default_model()
    raw = seqtune.load_dataset("glue", "mrpc")
    tokenizer = AutoTokenizer.from_pretrained(seqtune.default_model())
    tokenized = raw.map(lambda ex: tokenizer(ex["sentence1"], ex["sentence2"], truncation=True), batched=True)
    torch.manual_seed(options.seed)
    if options.config_only:
        config = AutoConfig.from_pretrained(checkpoint, num_labels=2)
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=2)
    metric = seqtune.load_metric("glue", "mrpc")

    def compute_metrics(eval_pred):
        logits, labels = eval_pred
        return metric.compute(predictions=np.argmax(logits, -1), references=labels)

    # The evaluation batch size is left to each side's default (transformers 8, seqtune 32), like
    # precision and batch order: the course code does not set it.
    common = dict(per_device_train_batch_size=options.batch_size,
                  learning_rate=5e-5, num_train_epochs=3, max_steps=options.steps, seed=options.seed,
                  eval_strategy="no", save_strategy="no", logging_steps=10_000, report_to="none",
                  disable_tqdm=True, torch_compile=options.torch_compile is not None,
                  torch_compile_mode=None if options.torch_compile in (None, "default") else options.torch_compile)
    workdir = tempfile.mkdtemp(prefix="seqtune-bench-")
    if options.trainer == "transformers":
        import transformers

        args = transformers.TrainingArguments(workdir, **common)
        trainer = transformers.Trainer(model, args, data_collator=transformers.DataCollatorWithPadding(tokenizer),
                                       train_dataset=tokenized["train"], eval_dataset=tokenized["validation"],
                                       processing_class=tokenizer, compute_metrics=compute_metrics,
                                       callbacks=[turns.callback(transformers.TrainerCallback)])
        precision = "bf16" if args.bf16 else "fp32"
        settings = {"precision": precision, "batch order": args.train_sampling_strategy,
                    "evaluation order": "dataset order", "batch lengths": "longest in the batch",
                    "attention": model.config._attn_implementation, "dropout masks": "torch's bernoulli",
                    "last layer": "all positions", "optimizer": str(args.optim.value),
                    "evaluation weights": "fp32"}
    else:
        args = seqtune.TrainingArguments(workdir, **common)
        trainer = seqtune.Trainer(model, args, data_collator=seqtune.DataCollatorWithPadding(tokenizer),
                                  train_dataset=tokenized["train"], eval_dataset=tokenized["validation"],
                                  processing_class=tokenizer, compute_metrics=compute_metrics,
                                  callbacks=[turns.callback(seqtune.TrainerCallback)])
        precision = "bf16" if trainer.autocast_dtype == torch.bfloat16 else "fp32"
        settings = seqtune_settings(trainer, precision)
    # Count what each trainer's own collator (with its own defaults) actually feeds the model.
    collator = trainer.data_collator = CountingCollator(trainer.data_collator)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    turns.pause()  # set up; wait for the first turn
    turns.paused = 0.0
    start = time.perf_counter()
    output = trainer.train()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - start - turns.paused
    real, padded = collator.real, collator.padded
    collator.real = collator.padded = 0
    steps = output.global_step
    samples = steps * options.batch_size
    start = time.perf_counter()
    metrics = trainer.evaluate()
    eval_seconds = time.perf_counter() - start
    start = time.perf_counter()
    trainer.predict(tokenized["validation"])
    predict_seconds = time.perf_counter() - start
    eval_real = collator.real // 2
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    dense = sum(p.numel() for p in model.parameters()) - embedding
    result = {
        "trainer": options.trainer, "precision": precision, "steps": steps, "samples": samples,
        "train_seconds": train_seconds, "train_samples_per_s": samples / train_seconds,
        "train_real_tokens_per_s": real / train_seconds, "padding_fraction": 1 - real / max(padded, 1),
        "train_flops": 6 * dense * real, "eval_flops": 2 * dense * eval_real,
        "eval_samples_per_s": 408 / eval_seconds, "predict_samples_per_s": 408 / predict_seconds,
        "eval_seconds": eval_seconds, "predict_seconds": predict_seconds,
        "accuracy": metrics["eval_accuracy"], "f1": metrics["eval_f1"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "settings": {**settings, "evaluation batch size": str(args.per_device_eval_batch_size)},
        "threads": torch.get_num_threads(), "pid": os.getpid(),
    }
    if getattr(trainer, "compilation", None) is not None:
        result["settings"]["torch.compile"] = trainer.compilation.describe_costs()
    Path(options.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
