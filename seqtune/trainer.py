"""The Trainer: train / evaluate / predict, one explicit loop, transformers' names."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from . import checkpoint as ckpt
from . import distributed as dist
from . import fastpath
from .args import TrainingArguments
from .callbacks import CallbackHandler, PrintCallback, ProgressCallback, TrainerCallback, TrainerControl
from .data.collate import DataCollatorWithPadding, with_length_buckets
from .data.sampling import eval_batches, train_batches
from .device import describe, keep_freed_memory, length_multiple, pick_device, pick_precision, use_fast_attention
from .errors import SeqtuneError
from .optim import clip_gradients, create_optimizer, create_scheduler


class EvalPrediction(NamedTuple):
    predictions: np.ndarray
    label_ids: np.ndarray | None


class PredictionOutput(NamedTuple):
    predictions: np.ndarray
    label_ids: np.ndarray | None
    metrics: dict[str, float]


class TrainOutput(NamedTuple):
    global_step: int
    training_loss: float
    metrics: dict[str, float]


@dataclasses.dataclass
class TrainerState:
    """What a checkpoint needs to continue the run exactly (saved as trainer_state.json)."""

    global_step: int = 0
    epoch: float = 0.0
    max_steps: int = 0
    num_train_epochs: int = 0
    batches_seen_in_epoch: int = 0  # position inside the current epoch, for resume
    epoch_index: int = 0
    log_history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best_metric: float | None = None
    best_model_checkpoint: str | None = None
    loss_since_log: float = 0.0
    steps_since_log: int = 0
    total_loss: float = 0.0
    train_batch_size: int = 0
    num_examples: int = 0
    world_size: int = 1
    # Callbacks that keep state across evaluations (EarlyStoppingCallback), by class name.
    stateful_callbacks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Fine-tune a sequence classifier. Same arguments as `transformers.Trainer` for what it offers.

    Hooks: `callbacks` (TrainerCallback events) and `compute_loss` (override in a subclass).
    """

    def __init__(self, model: torch.nn.Module | None = None, args: TrainingArguments | None = None,
                 data_collator: Callable | None = None, train_dataset: Any = None,
                 eval_dataset: Any = None, processing_class: Any = None,
                 model_init: Callable | None = None, compute_metrics: Callable | None = None,
                 callbacks: Sequence[TrainerCallback] | None = None,
                 optimizers: tuple[Any, Any] = (None, None),
                 preprocess_logits_for_metrics: Callable | None = None, *,
                 tokenizer: Any = None) -> None:
        if model is None:
            if model_init is None:
                raise SeqtuneError("Trainer needs a model (or model_init)")
            model = model_init()
        self.args = args if args is not None else TrainingArguments()
        self.processing_class = processing_class if processing_class is not None else tokenizer
        if data_collator is None:
            data_collator = DataCollatorWithPadding(self.processing_class)
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.compute_metrics = compute_metrics
        self.preprocess_logits_for_metrics = preprocess_logits_for_metrics
        self.optimizer, self.lr_scheduler = optimizers
        self.device = dist.init_from_environment(self.args.use_cpu) or pick_device(self.args.use_cpu)
        self.autocast_dtype = pick_precision(self.device, self.args.bf16, self.args.fp16)
        self.data_collator = with_length_buckets(data_collator, length_multiple(self.device, self.autocast_dtype))
        self.model = model.to(self.device)
        if self.device.type == "cpu":
            keep_freed_memory()
        self._attention_note = use_fast_attention(self.model, self.device)
        self.model_wrapped = dist.wrap_model(self.model, self.device, self.args.fsdp)
        self._sharded = dist.is_sharded(self.model_wrapped)
        from .report import tracker_callbacks

        # Progress, printing and trackers on rank 0 only; the user's callbacks run on every rank, so
        # that decisions such as early stopping agree (every rank sees the same gathered metrics).
        default_callbacks: list[TrainerCallback] = []
        if dist.is_main():
            default_callbacks = [PrintCallback() if self.args.disable_tqdm else ProgressCallback()]
            default_callbacks += tracker_callbacks(self.args.report_to, Path(self.args.output_dir))
        self.callback_handler = CallbackHandler(default_callbacks + list(callbacks or []))
        self.state = TrainerState()
        self.control = TrainerControl()
        self._forward_args = set(inspect.signature(self.model.forward).parameters)
        # The head reads one position: the last layer is computed for it alone (exact). Only in our own
        # compute_loss, whose caller wants nothing but the loss and logits.
        self._pooled_layer = (fastpath.pooled_last_layer(self.model)
                              if type(self).compute_loss is Trainer.compute_loss else None)
        if self.args.eval_strategy != "no" and eval_dataset is None:
            raise SeqtuneError(f"eval_strategy={self.args.eval_strategy!r} needs an eval_dataset; "
                               "pass one or set eval_strategy='no'")
        self.output_dir = Path(self.args.output_dir)
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise SeqtuneError(f"output_dir {self.output_dir} exists and is a file; choose a folder")

    # ---- hooks -------------------------------------------------------------------------------
    def add_callback(self, callback: TrainerCallback) -> None:
        self.callback_handler.add(callback)

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        """Forward pass; returns (loss, logits). Override for a custom loss."""
        return _loss_and_logits(model(**inputs))

    def log(self, logs: dict[str, float]) -> None:
        logs = {**logs, "epoch": round(self.state.epoch, 4), "step": self.state.global_step}
        self.state.log_history.append(logs)
        self._fire("on_log", logs=logs)

    # ---- training ----------------------------------------------------------------------------
    def train(self, resume_from_checkpoint: bool | str | None = None) -> TrainOutput:
        """Train on `train_dataset`; `resume_from_checkpoint=True` continues the newest checkpoint."""
        args = self.args
        if self.train_dataset is None:
            raise SeqtuneError("Trainer.train() needs a train_dataset")
        resume_dir = self._resume_dir(resume_from_checkpoint)
        ckpt.remove_stale_staging(self.output_dir)
        set_seed(args.seed)
        dataset, lengths = self._prepare(self.train_dataset, "train_dataset")
        batch_size, world = args.per_device_train_batch_size, dist.world_size()
        batches_per_epoch = math.ceil(len(lengths) / batch_size)  # per-device batches, all ranks together
        steps_per_epoch = math.ceil(math.ceil(batches_per_epoch / world) / args.gradient_accumulation_steps)
        max_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
        num_epochs = math.ceil(max_steps / steps_per_epoch)
        model = self.model_wrapped
        if self.optimizer is None:
            self.optimizer = create_optimizer(model, args, self.device, allow_fused=not self._sharded)
        if self.lr_scheduler is None:
            self.lr_scheduler = create_scheduler(self.optimizer, args, max_steps)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        self.state = TrainerState(max_steps=max_steps, num_train_epochs=num_epochs, train_batch_size=batch_size,
                                  num_examples=len(lengths), world_size=world)
        if resume_dir is not None:
            self._load_checkpoint(resume_dir, scaler)
        state = self.state
        state.max_steps, state.num_train_epochs = max_steps, num_epochs  # this run's length wins on resume
        self._print(f"seqtune: {len(lengths):,} examples, {num_epochs} epochs, {max_steps:,} optimizer steps, "
                    f"effective batch {batch_size * world * args.gradient_accumulation_steps} = {batch_size} "
                    f"per device x {world} processes x {args.gradient_accumulation_steps} accumulation; "
                    f"device {describe(self.device, self.autocast_dtype)}{self._attention_note}")
        start_time, start_step = time.perf_counter(), state.global_step
        loss_since_log = torch.tensor(state.loss_since_log, device=self.device)
        total_loss = torch.tensor(state.total_loss, device=self.device)
        bad_step = torch.tensor(-1, device=self.device)  # first non-finite loss, read without syncing each step
        grad_norm = None
        model.train()
        self._fire("on_train_begin")
        pooled_layer = self._pooled_layer_now()
        # Cheaper dropout masks on the CPU, swapped in once for the whole loop (evaluation inside it
        # runs in eval mode, where they do nothing).
        with self._dropout_masks():
            for epoch in range(state.epoch_index, num_epochs):
                state.epoch_index = epoch
                # The epoch's per-device batches depend on (seed, epoch, batch size) only; each rank takes
                # every world-th one from where the run stands, so any world size resumes at the same batch.
                batches = train_batches(lengths, batch_size, args.seed, epoch, args.group_by_length)
                start = state.batches_seen_in_epoch
                mine = dist.rank_batches(batches, start)
                self._fire("on_epoch_begin")
                for i, inputs in enumerate(self._loader(dataset, mine)):
                    last_micro = (i + 1) % args.gradient_accumulation_steps == 0 or i + 1 == len(mine)
                    inputs = self._to_device(inputs)
                    with dist.no_sync(model, sync=last_micro), fastpath.pooled(pooled_layer):
                        with self._autocast():
                            loss, _ = self.compute_loss(model, inputs)
                        loss = loss / args.gradient_accumulation_steps
                        scaler.scale(loss).backward()
                    loss = loss.detach()
                    loss_since_log += loss
                    total_loss += loss
                    state.batches_seen_in_epoch = min(start + (i + 1) * world, len(batches))
                    if not last_micro:
                        continue
                    bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss),
                                           state.global_step + 1, bad_step)
                    if args.max_grad_norm > 0:
                        scaler.unscale_(self.optimizer)
                        grad_norm = clip_gradients(model, self.optimizer, args.max_grad_norm, scaler.is_enabled())
                    scaler.step(self.optimizer)
                    scaler.update()
                    self.lr_scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    state.global_step += 1
                    state.steps_since_log += 1
                    state.epoch = epoch + state.batches_seen_in_epoch / len(batches)
                    self._fire("on_step_end")
                    end_of_epoch = i + 1 == len(mine)
                    done = state.global_step >= max_steps
                    if self._due(args.logging_strategy, args.logging_steps, end_of_epoch, max_steps) or done or (
                            args.logging_first_step and state.global_step == 1):
                        self._check_finite(bad_step)
                        mean_loss = dist.mean_across_ranks(loss_since_log).item() / state.steps_since_log
                        logs = {"loss": round(mean_loss, 6),
                                "learning_rate": self.lr_scheduler.get_last_lr()[0]}
                        if grad_norm is not None:
                            total = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
                            logs["grad_norm"] = float(total)
                        loss_since_log.zero_()
                        state.steps_since_log = 0
                        self.log(logs)
                    self._evaluate_and_save(end_of_epoch, done, bad_step, loss_since_log, total_loss, scaler)
                    if done or self.control.should_training_stop:
                        break
                else:
                    state.batches_seen_in_epoch = 0
                    self._fire("on_epoch_end")
                    continue
                self._fire("on_epoch_end")
                break
        self._check_finite(bad_step)
        runtime = time.perf_counter() - start_time
        steps_run = state.global_step - start_step
        samples_run = steps_run * batch_size * world * args.gradient_accumulation_steps
        train_loss = dist.mean_across_ranks(total_loss).item() / max(state.global_step, 1)
        metrics = {"train_runtime": round(runtime, 4),
                   "train_samples_per_second": round(samples_run / runtime, 3),
                   "train_steps_per_second": round(steps_run / runtime, 3),
                   "train_loss": train_loss}
        self.log(metrics)
        if args.load_best_model_at_end and state.best_model_checkpoint:
            self._print(f"seqtune: loading the best model from {state.best_model_checkpoint} "
                        f"({args.metric_for_best_model}={state.best_metric})")
            self._load_weights(Path(state.best_model_checkpoint))
            self.save_model()
        if (args.save_strategy != "no" or args.load_best_model_at_end) and dist.is_main():
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / ckpt.STATE_FILE).write_text(json.dumps(dataclasses.asdict(state), indent=2))
        self._fire("on_train_end")
        return TrainOutput(state.global_step, train_loss, metrics)

    def _due(self, strategy: str, every: float, end_of_epoch: bool, max_steps: int) -> bool:
        if strategy == "epoch":
            return end_of_epoch
        if strategy == "steps":
            interval = max(1, math.ceil(every * max_steps)) if every < 1 else int(every)
            return self.state.global_step % interval == 0
        return False

    def _evaluate_and_save(self, end_of_epoch: bool, done: bool, bad_step: torch.Tensor,
                           loss_since_log: torch.Tensor, total_loss: torch.Tensor,
                           scaler: torch.amp.GradScaler) -> None:
        args, max_steps = self.args, self.state.max_steps
        metrics = None
        if self._due(args.eval_strategy, args.eval_steps, end_of_epoch, max_steps) or (
                done and args.eval_strategy == "epoch" and not end_of_epoch):
            metrics = self.evaluate()
        if self._due(args.save_strategy, args.save_steps, end_of_epoch, max_steps) or (
                done and args.save_strategy != "no"):  # the last step is always kept: nothing lost
            self._check_finite(bad_step)
            self.state.loss_since_log = loss_since_log.item()
            self.state.total_loss = total_loss.item()
            self._save_checkpoint(metrics, scaler)

    def _check_finite(self, bad_step: torch.Tensor) -> None:
        step = int(dist.max_across_ranks(bad_step))
        if step >= 0:
            last = ckpt.list_checkpoints(self.output_dir)
            raise SeqtuneError(
                f"the training loss became NaN or infinite at step {step}; training stopped"
                + (f", the last good checkpoint is {last[-1]}" if last else "")
                + "; try a lower learning_rate or check the data")

    # ---- checkpoints -------------------------------------------------------------------------
    def _save_checkpoint(self, metrics: dict[str, float] | None, scaler: torch.amp.GradScaler) -> None:
        args, state = self.args, self.state
        folder = self.output_dir / f"{ckpt.PREFIX}{state.global_step}"
        if metrics is not None and args.metric_for_best_model:
            name = args.metric_for_best_model
            value = metrics.get(name if name.startswith("eval_") else f"eval_{name}")
            if value is not None and (state.best_metric is None or (
                    value > state.best_metric if args.greater_is_better else value < state.best_metric)):
                state.best_metric, state.best_model_checkpoint = value, str(folder)
        state.stateful_callbacks = self.callback_handler.states()
        rng_states = dist.gather_to_all(ckpt.rng_state())  # each rank continues its own random stream
        sharded = full_state = None
        if self._sharded:  # every rank writes its shards; rank 0 also gets the whole weights
            sharded = self.output_dir / f".tmp-sharded-{ckpt.PREFIX}{state.global_step}"
            dist.save_sharded(self.model, self.optimizer, str(sharded))
            full_state = dist.full_state_dict(self.model)
        if dist.is_main():
            training = {"optimizer": None if self._sharded else self.optimizer.state_dict(),
                        "scheduler": self.lr_scheduler.state_dict(),
                        "scaler": scaler.state_dict() if scaler.is_enabled() else None}
            ckpt.save_checkpoint(self.output_dir, state.global_step, self.model, self.processing_class,
                                 training, dataclasses.asdict(state), args.to_dict(), rng_states,
                                 full_state, sharded)
            ckpt.rotate_checkpoints(self.output_dir, args.save_total_limit, keep=(state.best_model_checkpoint,))
        dist.barrier()
        self._fire("on_save")

    def _resume_dir(self, resume: bool | str | None) -> Path | None:
        if not resume:
            return None
        if resume is True:
            found = ckpt.list_checkpoints(self.output_dir)
            if not found:
                raise SeqtuneError(f"resume: no complete checkpoint in {self.output_dir}")
            return found[-1]
        folder = Path(resume)
        if not ckpt.is_complete(folder):
            raise SeqtuneError(f"resume: {folder} is not a complete seqtune checkpoint")
        return folder

    def _load_checkpoint(self, folder: Path, scaler: torch.amp.GradScaler) -> None:
        saved = ckpt.load_training_state(folder)
        state = TrainerState(**saved["state"])
        then = _recipe(state, saved["args"].get("gradient_accumulation_steps", 1))
        now = _recipe(self.state, self.args.gradient_accumulation_steps)
        differ = [f"{k} {then[k]} there, {now[k]} here" for k in then if then[k] != now[k]]
        if differ:
            raise SeqtuneError(f"resume: {folder} comes from another recipe ({'; '.join(differ)}), "
                               "so this run cannot continue it; start a new output_dir or restore the recipe")
        if self._sharded:
            dist.load_sharded(self.model, self.optimizer, str(folder / ckpt.SHARDED_DIR))
        else:
            ckpt.load_model_weights(self.model, folder)
            self.optimizer.load_state_dict(saved["optimizer"])
        self.lr_scheduler.load_state_dict(saved["scheduler"])
        if saved["scaler"] is not None:
            scaler.load_state_dict(saved["scaler"])
        rng = saved["rng"]
        ckpt.set_rng_state(rng["ranks"][dist.rank()] if len(rng.get("ranks", ())) > dist.rank() else rng)
        state.world_size = self.state.world_size
        self.callback_handler.load_states(state.stateful_callbacks)
        self.state = state
        batches_per_epoch = math.ceil(state.num_examples / state.train_batch_size)
        if state.batches_seen_in_epoch >= batches_per_epoch:
            state.epoch_index += 1
            state.batches_seen_in_epoch = 0
        self._print(f"seqtune: resumed from {folder} at step {state.global_step}")

    # ---- evaluation --------------------------------------------------------------------------
    def evaluate(self, eval_dataset: Any = None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Metrics on `eval_dataset` (loss, compute_metrics, runtime), prefixed `eval_`."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise SeqtuneError("Trainer.evaluate() needs an eval_dataset")
        output = self._predict_loop(dataset, metric_key_prefix)
        self.log(output.metrics)
        self._fire("on_evaluate", metrics=output.metrics)
        return output.metrics

    def predict(self, test_dataset: Any, metric_key_prefix: str = "test") -> PredictionOutput:
        """Logits (N, num_labels) and labels (N,) as NumPy arrays in dataset order, with metrics."""
        return self._predict_loop(test_dataset, metric_key_prefix)

    def _predict_loop(self, dataset: Any, prefix: str) -> PredictionOutput:
        rows, lengths = self._prepare(dataset, "eval_dataset")
        model, was_training = self.model, self.model.training
        model.eval()
        start = time.perf_counter()
        # Each rank evaluates every world-th batch of the length-sorted order, without padding the
        # shards; outputs are gathered and put back in dataset order, so each sample counts once.
        # A sharded model gathers its weights in every forward, so there all ranks run every batch.
        order = eval_batches(lengths, self.args.per_device_eval_batch_size)
        world = 1 if self._sharded else dist.world_size()
        mine = order[dist.rank() % world::world]
        logits_parts, label_parts, loss_sum = [], [], None
        # Under bf16 autocast the weights are held in bf16 for the whole pass (no cast per batch).
        bf16 = self.autocast_dtype == torch.bfloat16 and not self._sharded
        pooled_layer = self._pooled_layer_now()
        with torch.inference_mode(), fastpath.bf16_weights(model) if bf16 else nullcontext():
            for inputs in self._loader(rows, mine):
                inputs = self._to_device(inputs)
                with self._autocast(), fastpath.pooled(pooled_layer):
                    loss, logits = self.compute_loss(model, inputs)
                if self.preprocess_logits_for_metrics is not None:
                    logits = self.preprocess_logits_for_metrics(logits, inputs.get("labels"))
                n = len(inputs["input_ids"]) if "input_ids" in inputs else len(logits)
                if loss is not None:
                    loss_sum = loss.float() * n if loss_sum is None else loss_sum + loss.float() * n
                logits_parts.append(_to_numpy(logits))  # off the device batch by batch
                if "labels" in inputs:
                    label_parts.append(inputs["labels"].cpu().numpy().copy())
        model.train(was_training)
        own = (logits_parts, label_parts, None if loss_sum is None else float(loss_sum))
        shards = [own] if world == 1 else dist.gather_to_all(own)
        logits_parts = [part for shard in shards for part in shard[0]]
        label_parts = [part for shard in shards for part in shard[1]]
        visited = [i for r in range(world) for batch in order[r::world] for i in batch]
        restore = np.argsort(np.asarray(visited, dtype=np.int64))
        predictions = np.concatenate(logits_parts)[restore] if logits_parts else np.zeros((0,))
        label_ids = np.concatenate(label_parts)[restore] if label_parts else None
        runtime = time.perf_counter() - start
        metrics: dict[str, float] = {}
        if any(shard[2] is not None for shard in shards):
            metrics["loss"] = sum(shard[2] or 0.0 for shard in shards) / len(lengths)
        if self.compute_metrics is not None and label_ids is not None:
            metrics.update(self.compute_metrics(EvalPrediction(predictions, label_ids)))
        metrics.update({"runtime": round(runtime, 4), "samples_per_second": round(len(lengths) / runtime, 3),
                        "steps_per_second": round(len(order) / runtime, 3)})
        metrics = {f"{prefix}_{k}" if not k.startswith(f"{prefix}_") else k: _plain_number(v)
                   for k, v in metrics.items()}
        return PredictionOutput(predictions, label_ids, metrics)

    # ---- saving ------------------------------------------------------------------------------
    def save_model(self, output_dir: str | None = None) -> None:
        """The model (safetensors + config) and tokenizer, loadable by `from_pretrained`."""
        folder = Path(output_dir or self.args.output_dir)
        if folder.exists() and not folder.is_dir():
            raise SeqtuneError(f"cannot save the model to {folder}: it is a file")
        full_state = dist.full_state_dict(self.model)  # a collective for a sharded model
        if dist.is_main():
            ckpt.save_model_files(self.model, folder, self.processing_class, full_state)
            (folder / "training_args.json").write_text(json.dumps(self.args.to_dict(), indent=2, default=str))
        dist.barrier()  # the others wait for the files (and do not exit while rank 0 still writes)

    def _load_weights(self, folder: Path) -> None:
        if self._sharded:
            dist.load_sharded(self.model, None, str(folder / ckpt.SHARDED_DIR))
        else:
            ckpt.load_model_weights(self.model, folder)

    # ---- plumbing ----------------------------------------------------------------------------
    def _prepare(self, dataset: Any, what: str) -> tuple[Any, list[int]]:
        """Drop columns the model cannot take, check labels, measure lengths."""
        from .data.prepare import prepare_dataset

        return prepare_dataset(dataset, what, self._forward_args, self.args.remove_unused_columns,
                               getattr(getattr(self.model, "config", None), "num_labels", None))

    def _loader(self, dataset: Any, batches: list[list[int]]) -> torch.utils.data.DataLoader:
        # A generator of its own: a DataLoader otherwise draws its worker seed from the global RNG,
        # so a resumed run (which builds one more loader) would get other dropout masks.
        return torch.utils.data.DataLoader(
            dataset, batch_sampler=batches, collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers, pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.args.seed))

    def _to_device(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for k, v in inputs.items()
                if k in self._forward_args or "kwargs" in self._forward_args}

    def _pooled_layer_now(self) -> torch.nn.Module | None:
        """The last layer to compute for the pooled token in this loop, if any. Checked once per loop:
        asking the model whether it recomputes activations walks all its modules."""
        if fastpath.recomputes_activations(self.model):
            return None  # recomputation in backward must see the very same forward
        return self._pooled_layer

    def _dropout_masks(self) -> Any:
        """`fastpath.cpu_dropout` for a CPU training run (not under activation checkpointing)."""
        if self.device.type != "cpu" or fastpath.recomputes_activations(self.model):
            return nullcontext()
        return fastpath.cpu_dropout(self.model)

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _fire(self, event: str, **kwargs: Any) -> None:
        self.callback_handler.fire(event, self.args, self.state, self.control, model=self.model, **kwargs)

    def _print(self, message: str) -> None:
        if dist.is_main():
            print(message, flush=True)


def _recipe(state: TrainerState, accumulation: int) -> dict[str, int]:
    """What a checkpoint must share with the run that resumes it."""
    return {"training examples": state.num_examples, "batch size": state.train_batch_size,
            "effective batch (batch x processes x accumulation)": state.train_batch_size * state.world_size
            * accumulation}


def _loss_and_logits(outputs: Any) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Accept a transformers ModelOutput, a dict, or a (loss, logits) tuple."""
    if isinstance(outputs, dict):  # ModelOutput is a dict too
        return outputs.get("loss"), outputs["logits"]
    if isinstance(outputs, (tuple, list)):
        return (outputs[0], outputs[1]) if len(outputs) > 1 else (None, outputs[0])
    return None, outputs


def _to_numpy(logits: torch.Tensor | Sequence[torch.Tensor]) -> np.ndarray:
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    return logits.detach().float().cpu().numpy().copy()  # a copy: no tensor is kept alive


def _plain_number(value: Any) -> Any:
    return value.item() if isinstance(value, (np.generic, torch.Tensor)) else value
