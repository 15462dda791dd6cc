"""The Trainer: train / evaluate / predict, one explicit loop, transformers' names."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from . import batchsize
from . import checkpoint as ckpt
from . import distributed as dist
from .args import TrainingArguments
from .atomic import write_text
from .callbacks import CallbackHandler, PrintCallback, ProgressCallback, TrainerCallback, TrainerControl
from .compiled import compile_model
from .data.collate import DataCollatorWithPadding, with_length_buckets
from .data.prepare import fingerprint, prepare_dataset
from .data.sampling import eval_batches, groups_by_length, train_batches
from .device import (
    describe,
    keep_freed_memory,
    length_multiple,
    master_weights,
    pick_device,
    pick_precision,
    use_tf32,
    work_per_forward,
)
from .errors import SeqtuneError
from .levers import FastPaths
from .loss import (
    check_loss_func,
    check_override,
    label_smoother,
    logits_of,
    model_loss,
    own_loss,
    prediction_outputs,
    takes_labels_out,
)
from .models import prepare_model
from .optim import create_optimizer, create_scheduler, current_lr, step_on_metrics, steps_on_metrics
from .state import Geometry, Tally, TrainerState
from .stopping import StopRequests
from .strategy import set_flags
from .tune import hyperparameter_search as _hyperparameter_search


class EvalPrediction(NamedTuple):
    predictions: np.ndarray
    label_ids: np.ndarray | tuple[np.ndarray, ...] | None


class PredictionOutput(NamedTuple):
    predictions: np.ndarray
    label_ids: np.ndarray | tuple[np.ndarray, ...] | None
    metrics: dict[str, float]


class TrainOutput(NamedTuple):
    global_step: int
    training_loss: float
    metrics: dict[str, float]


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); `deterministic`: transformers' enable_full_determinism too."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:  # TrainingArguments.full_determinism: slower, the same bits on every run
        os.environ["CUDA_LAUNCH_BLOCKING"] = "1"
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":16:8"
        os.environ["FLASH_ATTENTION_DETERMINISTIC"] = "1"
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


class Trainer:
    """Fine-tune a sequence classifier. Same arguments as `transformers.Trainer` for what it offers.

    Hooks: `callbacks` (TrainerCallback events, and TrainerControl's flags), `compute_loss` (override in a
    subclass with transformers' signature; calling `super().compute_loss` keeps the fast paths) and
    `compute_loss_func(outputs, labels, num_items_in_batch=...)`.
    """

    def __init__(self, model: torch.nn.Module | None = None, args: TrainingArguments | None = None,
                 data_collator: Callable | None = None, train_dataset: Any = None,
                 eval_dataset: Any = None, processing_class: Any = None,
                 model_init: Callable | None = None, compute_loss_func: Callable | None = None,
                 compute_metrics: Callable | None = None,
                 callbacks: Sequence[TrainerCallback] | None = None,
                 optimizers: tuple[Any, Any] = (None, None),
                 preprocess_logits_for_metrics: Callable | None = None, *,
                 tokenizer: Any = None) -> None:
        self.model_init, self._init_arguments = model_init, dict(locals())  # hyperparameter_search's trials
        if model is None and model_init is None:
            raise SeqtuneError("Trainer needs a model (or model_init)")
        model = model_init() if model is None else model
        self.args = args if args is not None else TrainingArguments()
        self.processing_class = processing_class if processing_class is not None else tokenizer
        prepare_model(model, self.processing_class, self.args)  # decoder padding, gradient checkpointing
        if data_collator is None:
            data_collator = DataCollatorWithPadding(self.processing_class)
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.compute_metrics = compute_metrics
        self.preprocess_logits_for_metrics = preprocess_logits_for_metrics
        self.compute_loss_func, self.label_smoother = compute_loss_func, label_smoother(self.args, model)
        check_override(type(self))
        self._given_optimizers = self.optimizer, self.lr_scheduler = optimizers
        self.device = dist.init_from_environment(self.args.use_cpu) or pick_device(self.args.use_cpu)
        self.autocast_dtype = pick_precision(self.device, self.args.bf16, self.args.fp16)
        self.tf32 = False
        self._weights_note = master_weights(model, self.args.keep_model_dtype)
        self.model = model.to(self.device)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.compilation = compile_model(self.model, self.args, self.device)  # None unless torch_compile
        self.data_collator = with_length_buckets(data_collator, length_multiple(self.device, self.autocast_dtype),
                                                 self.compilation.buckets(model) if self.compilation else ())
        self.model_wrapped = dist.wrap_model(self.model, self.device, self.args.fsdp)
        self._sharded = dist.is_sharded(self.model_wrapped)
        self.fast_paths = FastPaths(self.model, self.device, self.autocast_dtype, sharded=self._sharded,
                                    compilation=self.compilation)
        from .trackers import tracker_callbacks

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
        self._label_names = list(self.args.label_names or ["labels"])
        if self.args.eval_strategy != "no" and eval_dataset is None:
            raise SeqtuneError(f"eval_strategy={self.args.eval_strategy!r} needs an eval_dataset; "
                               "pass one or set eval_strategy='no'")
        if self.args.eval_on_start and eval_dataset is None:
            raise SeqtuneError("eval_on_start=True needs an eval_dataset; pass one or set eval_on_start=False")
        check_loss_func(compute_loss_func)  # a function of (outputs, labels[, num_items_in_batch]), said now
        self.output_dir = Path(self.args.output_dir)
        self.stops = StopRequests(self.output_dir, self.device)
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise SeqtuneError(f"output_dir {self.output_dir} exists and is a file; choose a folder")

    hyperparameter_search = _hyperparameter_search  # transformers' signature; optuna trials (seqtune/tune.py)
    # ---- hooks -------------------------------------------------------------------------------
    def add_callback(self, callback: TrainerCallback) -> None:
        self.callback_handler.add(callback)

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | int | None = None) -> Any:
        """The loss, or (loss, outputs) with `return_outputs=True`, as transformers; override for a custom loss.

        The model's own loss, or compute_loss_func's, or the label-smoothed one. Only the loss and logits are
        read here, so the last layer may compute the pooled token alone (also under `super().compute_loss`);
        an override that calls the model itself gets every position.
        """
        labels = None
        if takes_labels_out(inputs, self.label_smoother, self.compute_loss_func):
            inputs = dict(inputs)
            labels = inputs.pop("labels")
        with self.fast_paths.pooled():
            outputs = model(**inputs)
        if labels is not None:
            loss = own_loss(outputs, labels, self.label_smoother, self.compute_loss_func, num_items_in_batch)
        else:
            loss = model_loss(outputs, "labels" in inputs)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float]) -> None:
        logs = {**logs, "epoch": round(self.state.epoch, 4), "step": self.state.global_step}
        self.state.log_history.append(logs)
        self._fire("on_log", logs=logs)

    # ---- training ----------------------------------------------------------------------------
    def train(self, resume_from_checkpoint: bool | str | None = None) -> TrainOutput:
        """Train on `train_dataset`; `resume_from_checkpoint=True` continues the newest checkpoint.

        With push_to_hub, the hub and a token are checked first and the final model uploaded at the end.
        """
        from .hub import check_hub, push_final_model

        if self.train_dataset is None:
            raise SeqtuneError("Trainer.train() needs a train_dataset")
        check_hub(self.args)  # offline: one sentence now, not after the run
        if batchsize.applies(self.args, self.device):  # auto_find_batch_size on a GPU
            output = batchsize.train_halving(self, lambda: self._train(resume_from_checkpoint))
        else:
            output = self._train(resume_from_checkpoint)
        if self.args.push_to_hub:
            self._print(f"seqtune: uploaded the final model: {push_final_model(self)}")
        return output

    def _train(self, resume_from_checkpoint: bool | str | None) -> TrainOutput:
        args, world, accumulation = self.args, dist.world_size(), self.args.gradient_accumulation_steps
        resume_dir = self._resume_dir(resume_from_checkpoint)
        ckpt.remove_stale_staging(self.output_dir)
        set_seed(args.seed, args.full_determinism)
        dataset, lengths = self._prepare(self.train_dataset, "train_dataset")
        self._set_precision(lengths, args.per_device_train_batch_size)
        plan = self._geometry(len(lengths))
        tally = self._start_run(plan, len(lengths), fingerprint(dataset, lengths), resume_dir)
        state, model = self.state, self.model_wrapped
        start_time, start_step = time.perf_counter(), state.global_step
        with self.fast_paths.loop(training=True), self.stops.watching(lambda: state.global_step):
            self._print_header(plan, len(lengths), self.fast_paths.describe())
            model.train()
            self._fire("on_train_begin")
            if args.eval_on_start:  # a sanity check of the evaluation before any step, as transformers
                self.evaluate()
            while (state.epoch_index < plan.num_epochs and state.global_step < plan.max_steps
                   and not self.control.should_training_stop):
                # The epoch's per-device batches depend on (seed, epoch, batch size) only; each rank takes
                # every world-th one from where the run stands, so any world size resumes at the same batch.
                batches = train_batches(lengths, args.per_device_train_batch_size,
                                        args.seed if args.data_seed is None else args.data_seed, state.epoch_index,
                                        groups_by_length(args.group_by_length, self.model), args.dataloader_drop_last)
                start = state.batches_seen_in_epoch
                mine = dist.rank_batches(batches, start)
                self._fire("on_epoch_begin")
                for i, inputs in enumerate(self._loader(dataset, mine)):
                    last_micro = (i + 1) % accumulation == 0 or i + 1 == len(mine)
                    with dist.no_sync(model, sync=last_micro):  # forward and backward
                        with self._autocast():
                            loss = self.compute_loss(model, self._to_device(inputs))
                        loss = loss / accumulation
                        tally.scaler.scale(loss).backward()
                    tally.add(loss.detach(), state.global_step + 1)
                    state.batches_seen_in_epoch = min(start + (i + 1) * world, len(batches))
                    if not last_micro:
                        continue
                    self._optimizer_step(model, tally)  # clip, step, schedule
                    state.global_step += 1
                    state.steps_since_log += 1
                    state.epoch = state.epoch_index + state.batches_seen_in_epoch / len(batches)
                    set_flags(args, state, self.control, end_of_epoch=i + 1 == len(mine))
                    self._fire("on_step_end")
                    self._log_evaluate_save(tally)  # each as due, or as a callback asked
                    if self.control.should_training_stop:
                        break
                else:
                    state.epoch_index, state.batches_seen_in_epoch = state.epoch_index + 1, 0
                self._fire("on_epoch_end")
                self._log_evaluate_save(tally)
            self._check_finite(tally)
            self.stops.stop_if_signalled(state.global_step)
        return self._finish_run(tally, time.perf_counter() - start_time, state.global_step - start_step)

    def _geometry(self, num_examples: int) -> Geometry:
        args = self.args
        batch_size = args.per_device_train_batch_size
        batches = num_examples // batch_size if args.dataloader_drop_last else math.ceil(num_examples / batch_size)
        if batches == 0:
            raise SeqtuneError(f"train_dataset has {num_examples} examples, fewer than one batch of {batch_size}, "
                               "and dataloader_drop_last=True drops it; lower the batch size")
        steps_per_epoch = math.ceil(math.ceil(batches / dist.world_size()) / args.gradient_accumulation_steps)
        max_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
        return Geometry(batches, steps_per_epoch, max_steps, math.ceil(max_steps / steps_per_epoch))

    def _start_run(self, plan: Geometry, num_examples: int, rows_digest: str, resume_dir: Path | None) -> Tally:
        """A fresh state, optimizer and scheduler (unless given), then the checkpoint's, if resuming."""
        args = self.args
        if self.optimizer is None:
            self.optimizer = create_optimizer(self.model_wrapped, args, self.device, allow_fused=not self._sharded)
        if self.lr_scheduler is None:
            self.lr_scheduler = create_scheduler(self.optimizer, args, plan.max_steps)
        self._metric_schedule = steps_on_metrics(self.lr_scheduler)
        self.state = TrainerState(max_steps=plan.max_steps, num_train_epochs=plan.num_epochs,
                                  train_batch_size=args.per_device_train_batch_size, num_examples=num_examples,
                                  world_size=dist.world_size(), train_fingerprint=rows_digest)
        self.control = TrainerControl()
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        if resume_dir is not None:
            self._load_checkpoint(resume_dir, plan, scaler)
        return Tally.start(self.state, self.device, scaler)

    def _print_header(self, plan: Geometry, num_examples: int, fast_paths: str) -> None:
        args, world = self.args, dist.world_size()
        batch, accumulation = args.per_device_train_batch_size, args.gradient_accumulation_steps
        device = describe(self.device, self.autocast_dtype, self.tf32)
        weights = f"; {self._weights_note}" if self._weights_note else ""
        self._print(f"seqtune: {num_examples:,} examples, {plan.num_epochs} epochs, {plan.max_steps:,} optimizer "
                    f"steps, effective batch {batch * world * accumulation} = {batch} per device x {world} "
                    f"processes x {accumulation} accumulation; device {device}{weights}; {fast_paths}")

    def _set_precision(self, lengths: list[int], batch_size: int) -> None:
        """On CUDA bf16=None depends on the work per forward, known once the data is: decided per run."""
        self.autocast_dtype = pick_precision(self.device, self.args.bf16, self.args.fp16,
                                             work_per_forward(lengths, batch_size, self.model))
        self.tf32 = use_tf32(self.device, self.args.tf32, self.autocast_dtype)
        self.fast_paths.autocast_dtype = self.autocast_dtype

    def _optimizer_step(self, model: torch.nn.Module, tally: Tally) -> None:
        if self.args.max_grad_norm > 0:
            tally.scaler.unscale_(self.optimizer)
            tally.grad_norm = self.fast_paths.clip(model, self.optimizer, self.args.max_grad_norm,
                                                   tally.scaler.is_enabled())
        tally.scaler.step(self.optimizer)
        tally.scaler.update()
        if not self._metric_schedule:  # ReduceLROnPlateau and GreedyLR step after each evaluation instead
            self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _log_evaluate_save(self, tally: Tally) -> None:
        """Act on TrainerControl's flags, in transformers' order (log, evaluate, save), then lower them."""
        control, state = self.control, self.state
        if self.stops.agreed():  # SIGTERM/SIGUSR1 on any rank: every rank keeps this step, then stops
            control.should_save = control.should_training_stop = True
        if control.should_log:
            control.should_log = False
            self._check_finite(tally)
            logs: dict[str, float] = {}
            if state.steps_since_log:
                logs["loss"] = round(dist.mean_across_ranks(tally.loss_since_log).item() / state.steps_since_log, 6)
            logs["learning_rate"] = current_lr(self.optimizer, self.lr_scheduler)
            if tally.grad_norm is not None:
                norm = tally.grad_norm
                logs["grad_norm"] = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
            tally.loss_since_log.zero_()
            state.steps_since_log = 0
            self.log(logs)
        metrics = None
        if control.should_evaluate:
            control.should_evaluate = False
            metrics = self.evaluate()
            step_on_metrics(self.lr_scheduler, self.args, metrics)
        if control.should_save:
            control.should_save = False
            self._check_finite(tally)
            tally.save_into(state)
            self._save_checkpoint(metrics, tally.scaler)

    def _check_finite(self, tally: Tally) -> None:
        step = int(dist.max_across_ranks(tally.bad_step))
        if step >= 0:
            last = ckpt.list_checkpoints(self.output_dir)
            raise SeqtuneError(
                f"the training loss became NaN or infinite at step {step}; training stopped"
                + (f", the last good checkpoint is {last[-1]}" if last else "")
                + "; try a lower learning_rate or check the data")

    def _finish_run(self, tally: Tally, runtime: float, steps_run: int) -> TrainOutput:
        args, state = self.args, self.state
        per_step = args.per_device_train_batch_size * dist.world_size() * args.gradient_accumulation_steps
        samples_run = steps_run * per_step
        train_loss = dist.mean_across_ranks(tally.total_loss).item() / max(state.global_step, 1)
        metrics = {"train_runtime": round(runtime, 4), "train_samples_per_second": round(samples_run / runtime, 3),
                   "train_steps_per_second": round(steps_run / runtime, 3), "train_loss": train_loss}
        self.log(metrics)
        if self.compilation is not None:
            self._print(self.compilation.describe_costs())
        if args.load_best_model_at_end and state.best_model_checkpoint:
            self._print(f"seqtune: loading the best model from {state.best_model_checkpoint} "
                        f"({args.metric_for_best_model}={state.best_metric})")
            self._load_weights(Path(state.best_model_checkpoint))
            self.save_model()
        if (args.save_strategy != "no" or args.load_best_model_at_end) and dist.is_main():
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_text(self.output_dir / ckpt.STATE_FILE, json.dumps(dataclasses.asdict(state), indent=2))
        self._fire("on_train_end")
        return TrainOutput(state.global_step, train_loss, metrics)

    # ---- checkpoints -------------------------------------------------------------------------
    def _save_checkpoint(self, metrics: dict[str, float] | None, scaler: torch.amp.GradScaler) -> None:
        args, state = self.args, self.state
        folder = self.output_dir / f"{ckpt.PREFIX}{state.global_step}"
        if metrics is not None and args.metric_for_best_model:
            value = metrics.get(args.best_metric_key())
            if value is not None and args.is_better(value, state.best_metric):
                state.best_metric, state.best_model_checkpoint = value, str(folder)
        state.stateful_callbacks = self.callback_handler.states()
        rng_states = dist.gather_to_all(ckpt.rng_state())  # each rank continues its own random stream
        sharded = full_state = None
        if self._sharded:  # every rank writes its shards; rank 0 also gets the whole weights
            sharded = self.output_dir / f".tmp-sharded-{ckpt.PREFIX}{state.global_step}"
            dist.save_sharded(self.model, self.optimizer, str(sharded))
            full_state = dist.full_state_dict(self.model)
        if dist.is_main():
            ckpt.save_checkpoint(
                self.output_dir, state.global_step, model=self.model, tokenizer=self.processing_class,
                optimizer=None if self._sharded else self.optimizer.state_dict(),
                scheduler=self.lr_scheduler.state_dict(), scaler=scaler.state_dict() if scaler.is_enabled() else None,
                trainer_state=dataclasses.asdict(state), args=args.to_dict(), rng_states=rng_states,
                full_state=full_state, sharded=sharded, model_only=args.save_only_model)
            ckpt.rotate_checkpoints(self.output_dir, args.save_total_limit, keep=(state.best_model_checkpoint,))
        dist.barrier()
        self._fire("on_save")

    def _resume_dir(self, resume: bool | str | None) -> Path | None:
        if not resume:
            return None
        return ckpt.resume_checkpoint(self.output_dir, resume, self._print)  # the newest intact one

    def _load_checkpoint(self, folder: Path, plan: Geometry, scaler: torch.amp.GradScaler) -> None:
        saved = ckpt.load_training_state(folder)
        state = TrainerState(**saved["state"])
        differ = ckpt.recipe_differences(saved, self.state, self.args)
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
        state.max_steps, state.num_train_epochs = plan.max_steps, plan.num_epochs  # this run's length wins
        self.callback_handler.load_states(state.stateful_callbacks)
        if state.batches_seen_in_epoch >= plan.batches_per_epoch:  # saved at an epoch's last step
            state.epoch_index, state.batches_seen_in_epoch = state.epoch_index + 1, 0
        self.state = state
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
        if not self.fast_paths.active:  # an evaluation inside training keeps the training's precision
            self._set_precision(lengths, self.args.per_device_eval_batch_size)
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
        with torch.inference_mode(), self.fast_paths.loop(training=False), _restore_mode(model, was_training):
            for batch in self._loader(rows, mine):
                labels = [batch[name] for name in self._label_names if name in batch]  # args.label_names
                # A label name the batches lack while they hold labels: said, not silently no metrics.
                if self.args.label_names and len(labels) < len(self._label_names) and (labels or "labels" in batch):
                    missing = [name for name in self._label_names if name not in batch]
                    raise SeqtuneError(f"label_names names {missing[0]!r}, which the batches do not hold (they "
                                       f"hold {', '.join(batch)}); the default collator keeps token columns and "
                                       "label/labels (as 'labels'): pass a data_collator that keeps it")
                inputs = self._to_device(batch)
                labelled = bool(labels) and len(labels) == len(self._label_names)  # else the model alone
                with self._autocast():
                    loss, outputs = prediction_outputs(self.compute_loss, model, inputs, labelled,
                                                       self.fast_paths.pooled)
                logits = logits_of(outputs, has_loss=loss is not None)
                if self.preprocess_logits_for_metrics is not None:
                    logits = self.preprocess_logits_for_metrics(logits, labels[0] if labels else None)
                n = len(inputs["input_ids"]) if "input_ids" in inputs else len(logits)
                if loss is not None:
                    loss_sum = loss.float() * n if loss_sum is None else loss_sum + loss.float() * n
                logits_parts.append(_to_numpy(logits))  # off the device batch by batch
                if len(labels) == len(self._label_names):
                    label_parts.append([torch.as_tensor(label).cpu().numpy().copy() for label in labels])
        own = (logits_parts, label_parts, None if loss_sum is None else float(loss_sum))
        shards = [own] if world == 1 else dist.gather_to_all(own)
        logits_parts = [part for shard in shards for part in shard[0]]
        label_parts = [part for shard in shards for part in shard[1]]
        visited = [i for r in range(world) for batch in order[r::world] for i in batch]
        restore = np.argsort(np.asarray(visited, dtype=np.int64))
        predictions = np.concatenate(logits_parts)[restore] if logits_parts else np.zeros((0,))
        label_ids = None
        if label_parts:
            columns = tuple(np.concatenate([part[k] for part in label_parts])[restore]
                            for k in range(len(self._label_names)))
            label_ids = columns[0] if len(columns) == 1 else columns
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
            # Written into a folder beside, then each file renamed over its old self: none is ever torn.
            staging = folder / f".tmp-model-{os.getpid()}"
            try:
                ckpt.save_model_files(self.model, staging, self.processing_class, full_state)
                write_text(staging / "training_args.json", json.dumps(self.args.to_dict(), indent=2, default=str))
                for path in sorted(staging.iterdir()):
                    os.replace(path, folder / path.name)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        dist.barrier()  # the others wait for the files (and do not exit while rank 0 still writes)

    def _load_weights(self, folder: Path) -> None:
        if self._sharded:
            dist.load_sharded(self.model, None, str(folder / ckpt.SHARDED_DIR))
        else:
            ckpt.load_model_weights(self.model, folder)

    # ---- plumbing ----------------------------------------------------------------------------
    def _prepare(self, dataset: Any, what: str) -> tuple[Any, list[int]]:
        """Drop columns the model cannot take (labels kept), check labels, measure lengths."""
        return prepare_dataset(dataset, what, self._forward_args | set(self._label_names),
                               self.args.remove_unused_columns,
                               getattr(getattr(self.model, "config", None), "num_labels", None))

    def _loader(self, dataset: Any, batches: list[list[int]]) -> torch.utils.data.DataLoader:
        # A generator of its own: a DataLoader otherwise draws its worker seed from the global RNG,
        # so a resumed run (which builds one more loader) would get other dropout masks.
        args = self.args
        workers = {"persistent_workers": args.dataloader_persistent_workers,
                   "prefetch_factor": args.dataloader_prefetch_factor,
                   "multiprocessing_context": args.dataloader_multiprocessing_context}
        workers = workers if args.dataloader_num_workers else {}  # DataLoader refuses them without workers
        return torch.utils.data.DataLoader(
            dataset, batch_sampler=batches, collate_fn=self.data_collator, num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory and self.device.type == "cuda",
            generator=torch.Generator().manual_seed(args.seed), **workers)

    def _to_device(self, inputs: dict[str, Any]) -> dict[str, Any]:
        moved = {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                 for k, v in inputs.items() if k in self._forward_args or "kwargs" in self._forward_args}
        return self.compilation.prepare(moved, self.model.training) if self.compilation else moved

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _fire(self, event: str, **kwargs: Any) -> None:
        self.callback_handler.fire(event, self.args, self.state, self.control, model=self.model, **kwargs)

    def _print(self, message: str) -> None:
        if dist.is_main():
            print(message, flush=True)


@contextmanager
def _restore_mode(model: torch.nn.Module, training: bool) -> Iterator[None]:
    """The model back in the mode it had, however the loop ends (an interrupted predict included)."""
    try:
        yield
    finally:
        model.train(training)


def _to_numpy(logits: torch.Tensor | Sequence[torch.Tensor]) -> np.ndarray:
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    return logits.detach().float().cpu().numpy().copy()  # a copy: no tensor is kept alive


def _plain_number(value: Any) -> Any:
    return value.item() if isinstance(value, (np.generic, torch.Tensor)) else value
