"""Every name `transformers.TrainingArguments` takes, and what seqtune does with it: the one registry.

Each entry is IMPLEMENTED (a field of seqtune's TrainingArguments that behaves as transformers documents
it, with transformers' default unless `own_default` says otherwise) or REFUSED (accepted at its default,
silently, and refused with one sentence at any other value). `tests/test_argfields.py` walks the installed
transformers' fields against it, and `docs/arguments.md` is generated from it (`python -m seqtune.argfields`).
Nothing heavy is imported here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SeqtuneError

TRANSFORMERS = "transformers"  # a field of the installed transformers (5.x)
LEGACY = "transformers 4"  # a name transformers 4 scripts pass that transformers 5 dropped
SEQTUNE = "seqtune"  # seqtune's own
_NO_DEFAULT = object()


@dataclass(frozen=True)
class Arg:
    name: str
    implemented: bool
    text: str  # implemented: what seqtune does with it; refused: what to use instead (the sentence's end)
    default: Any = _NO_DEFAULT  # refused only: the value accepted silently (transformers' default)
    own_default: bool = False  # implemented with a default of seqtune's own (the text says which and why)
    origin: str = TRANSFORMERS
    # refused only: other spellings transformers' __post_init__ reads as the default (False for "no", ...)
    aliases: tuple[Any, ...] = ()

    def is_default(self, value: Any) -> bool:
        """`value` is the default, or a spelling of it that transformers reads as the default."""
        if same(value, self.default) or any(type(value) is type(a) and value == a for a in self.aliases):
            return True
        return self.name == "accelerator_config" and _default_accelerator_config(value)

    def refusal(self, value: Any) -> SeqtuneError:
        """The one sentence for this refused name set to `value`."""
        what = "is a transformers 4 name that transformers 5 dropped" if self.origin == LEGACY else \
            "is not supported by seqtune"
        return SeqtuneError(f"TrainingArguments: {self.name}={_shown(value)} {what}; {self.text}")


def ok(name: str, text: str = "as transformers", *, own_default: bool = False, origin: str = TRANSFORMERS) -> Arg:
    return Arg(name, True, text, own_default=own_default, origin=origin)


def no(name: str, default: Any, text: str, *, origin: str = TRANSFORMERS, aliases: tuple[Any, ...] = ()) -> Arg:
    return Arg(name, False, text, default=default, origin=origin, aliases=aliases)


_GC = "activations recomputed in the backward pass (seqtune/models.py); fast paths that rely on them step aside"
_COMPILE = ("torch.compile of the model in place, with dynamic batch and length dimensions: one compilation for "
            "training, one for evaluation; CUDA-graph modes pad batches to length buckets (seqtune/compiled.py)")
_DDP = "seqtune's DDP sets this itself (see docs/scaling.md)"

ARGS: tuple[Arg, ...] = (
    # ---- what a run is -------------------------------------------------------------------------------
    ok("output_dir", "'trainer_output' (transformers: None, which it turns into 'trainer_output')", own_default=True),
    ok("per_device_train_batch_size"),
    ok("num_train_epochs"),
    ok("max_steps"),
    ok("learning_rate"),
    ok("lr_scheduler_type", "every transformers schedule, built by transformers.get_scheduler (reduce_lr_on_plateau "
                            "and greedy step on metric_for_best_model after each evaluation)"),
    ok("lr_scheduler_kwargs", "passed to the schedule (a dict, or its JSON text)"),
    ok("warmup_steps", "a whole number of steps, or a fraction of the training steps below 1"),
    ok("optim", "adamw_torch, adamw_torch_fused (fused where the device has it), adafactor, sgd, adagrad, rmsprop; "
                "the others are refused with the list"),
    ok("optim_args", "'key=value,...', read by sgd, adagrad and rmsprop as transformers reads it (AdamW and "
                     "Adafactor ignore it, as in transformers)"),
    ok("weight_decay", "not on biases and LayerNorm weights, as transformers"),
    ok("adam_beta1"), ok("adam_beta2"), ok("adam_epsilon"),
    no("optim_target_modules", None, "GaLore/APOLLO optimizers are not offered; use optim='adamw_torch_fused'"),
    ok("gradient_accumulation_steps"),
    no("average_tokens_across_devices", True, "a classifier's loss is a mean over its examples; leave it True"),
    ok("max_grad_norm"),
    ok("label_smoothing_factor", "transformers' LabelSmoother on classification logits (not regression, not "
                                 "multi-label)"),
    # ---- precision and kernels ---------------------------------------------------------------------
    ok("bf16", "None (transformers: False): bf16 autocast where it pays (README); True/False force it",
       own_default=True),
    ok("fp16"),
    no("bf16_full_eval", False, "evaluation runs in the training's precision; pass bf16=True for bf16 throughout"),
    no("fp16_full_eval", False, "evaluation runs in the training's precision; pass fp16=True for fp16 throughout"),
    ok("tf32", "None: TF32 matmuls for fp32 work on CUDA; True/False force it"),
    ok("activation_checkpointing", f"same as gradient_checkpointing: {_GC}"),
    ok("activation_checkpointing_kwargs", "same as gradient_checkpointing_kwargs"),
    ok("gradient_checkpointing", f"False (transformers: None, read as False): {_GC}", own_default=True),
    ok("gradient_checkpointing_kwargs", _GC),
    ok("torch_compile", _COMPILE), ok("torch_compile_backend", _COMPILE), ok("torch_compile_mode", _COMPILE),
    no("use_liger_kernel", False, "Liger kernels are for causal language models; seqtune's fast paths apply "
                                  "on their own"),
    no("liger_kernel_config", None, "Liger kernels are not offered"),
    no("use_cache", False, "a classifier keeps no key/value cache"),
    no("neftune_noise_alpha", None, "NEFTune is for instruction tuning of generative models"),
    no("torch_empty_cache_steps", None, "seqtune keeps the allocator's cache; lower the batch size or use "
                                        "auto_find_batch_size=True against out-of-memory errors"),
    ok("auto_find_batch_size", "on a CUDA out-of-memory error during training, halve per_device_train_batch_size "
                               "and train again from the start (said); nothing to do on a CPU"),
    # ---- logging -----------------------------------------------------------------------------------
    ok("logging_strategy"), ok("logging_steps"), ok("logging_first_step"),
    no("log_on_each_node", True, "rank 0 alone prints and logs"),
    no("logging_nan_inf_filter", True, "seqtune stops at a NaN or infinite loss and names the last good "
                                       "checkpoint, so there is nothing to filter"),
    no("include_num_input_tokens_seen", "no", "the number of tokens is not tracked", aliases=(False,)),
    no("log_level", "passive", "seqtune prints its own progress; set transformers' verbosity with "
                               "transformers.logging.set_verbosity_info() and the like"),
    no("log_level_replica", "warning", "only rank 0 prints"),
    ok("disable_tqdm", "False (transformers: None, decided by log_level): a progress bar", own_default=True),
    ok("report_to", "none, all, tensorboard, wandb, mlflow"),
    ok("run_name", "the trackers' run name (W&B and MLflow run name, TensorBoard's run folder)"),
    no("project", "huggingface", "Trackio is not offered; WANDB_PROJECT and MLFLOW_EXPERIMENT_NAME name projects"),
    no("trackio_space_id", None, "Trackio is not offered; use report_to='tensorboard', 'wandb' or 'mlflow'"),
    no("trackio_bucket_id", None, "Trackio is not offered; use report_to='tensorboard', 'wandb' or 'mlflow'"),
    no("trackio_static_space_id", None, "Trackio is not offered; use report_to='tensorboard', 'wandb' or 'mlflow'"),
    # ---- evaluation --------------------------------------------------------------------------------
    ok("eval_strategy"), ok("eval_steps"),
    ok("eval_delay", "no evaluation before this many epochs (eval_strategy='epoch') or steps ('steps')"),
    ok("per_device_eval_batch_size", "32 (transformers: 8): a forward has a fixed cost, so fewer, larger batches",
       own_default=True),
    no("prediction_loss_only", False, "seqtune always returns the logits; ignore PredictionOutput.predictions"),
    ok("eval_on_start", "one evaluation before the first training step"),
    no("eval_do_concat_batches", True, "predictions are one array in dataset order"),
    no("eval_use_gather_object", False, "predictions are gathered as arrays"),
    ok("eval_accumulation_steps", "accepted: predictions leave the device after every batch anyway"),
    no("include_for_metrics", [], "compute_metrics receives logits and labels"),
    no("batch_eval_metrics", False, "compute_metrics runs once on the whole predictions"),
    # ---- checkpoints -------------------------------------------------------------------------------
    ok("save_only_model", "checkpoints hold the model alone (no optimizer, scheduler or random states); "
                          "resuming from one is refused"),
    ok("save_strategy", "no, steps, epoch"), ok("save_steps"),
    no("save_on_each_node", False, "rank 0 writes the checkpoints; put output_dir on storage every node sees"),
    ok("save_total_limit"),
    ok("enable_jit_checkpoint", "True (transformers: False): SIGTERM/SIGUSR1 always finish the step, save and "
                                "exit 143; False is refused", own_default=True),
    # ---- the hub -----------------------------------------------------------------------------------
    ok("push_to_hub", "upload the final model at the end of training (create_repo + upload_folder); the hub "
                      "and a token are checked before training starts"),
    ok("hub_token", "the token for the upload (default: the cached login or HF_TOKEN)"),
    ok("hub_private_repo", "whether a new repo is private (None: the account's default)"),
    ok("hub_model_id", "the repo to upload to; required with push_to_hub"),
    ok("hub_strategy", "'end' (transformers: 'every_save'): one upload at the end; 'every_save' is accepted "
                       "without push_to_hub", own_default=True),
    no("hub_always_push", False, "seqtune uploads once, at the end of training, so no upload is ever skipped"),
    ok("hub_revision", "the branch the upload goes to (created if missing)"),
    # ---- the best model ----------------------------------------------------------------------------
    ok("load_best_model_at_end"), ok("metric_for_best_model"), ok("greater_is_better"),
    # ---- resuming ----------------------------------------------------------------------------------
    no("ignore_data_skip", False, "seqtune resumes at the exact batch without reading the skipped ones"),
    ok("restore_callback_states_from_checkpoint", "True (transformers: False): stateful callbacks always get "
                                                  "their saved state back; False is refused", own_default=True),
    # ---- reproducibility ---------------------------------------------------------------------------
    ok("full_determinism", "torch.use_deterministic_algorithms(True), cuDNN deterministic, CUBLAS_WORKSPACE_CONFIG"),
    ok("seed"),
    ok("data_seed", "seeds the batch order alone (default: seed)"),
    # ---- hardware, processes -----------------------------------------------------------------------
    ok("use_cpu"),
    no("accelerator_config", None, "seqtune does not run through Accelerate; each process takes its own batches"),
    no("parallelism_config", None, "tensor, context and sequence parallelism are not offered; use fsdp=True"),
    ok("dataloader_drop_last"), ok("dataloader_num_workers"),
    ok("dataloader_pin_memory", "pinned batches on CUDA"),
    ok("dataloader_persistent_workers", "with dataloader_num_workers > 0"),
    ok("dataloader_prefetch_factor", "with dataloader_num_workers > 0"),
    ok("dataloader_multiprocessing_context", "with dataloader_num_workers > 0"),
    no("dataloader_in_order", True, "exact resume needs the batches in order"),
    ok("remove_unused_columns"), ok("label_names"),
    ok("train_sampling_strategy", "None (transformers: 'random'): as group_by_length, so 'group_by_length' unless "
                                  "group_by_length=False; 'random' or 'group_by_length'", own_default=True),
    no("length_column_name", "length", "seqtune measures lengths from input_ids"),
    no("ddp_find_unused_parameters", None, _DDP),
    no("ddp_bucket_cap_mb", None, _DDP),
    no("ddp_broadcast_buffers", None, _DDP),
    no("ddp_static_graph", None, _DDP),
    no("ddp_backend", None, "seqtune picks nccl on GPUs and gloo on CPUs"),
    no("ddp_timeout", 1800, _DDP),
    ok("fsdp", "True or 'full_shard': FSDP2 under torchrun (docs/scaling.md)"),
    no("fsdp_config", None, "FSDP2 is configured by seqtune; pass fsdp=True"),
    no("deepspeed", None, "use fsdp=True (FSDP2 under torchrun) to shard a large model"),
    no("debug", "", "use `seqtune doctor` and --debug for tracebacks"),
    no("skip_memory_metrics", True, "memory metrics are not tracked"),
    ok("do_train", "for scripts: the Trainer does not read it (as transformers)"),
    ok("do_eval", "for scripts: the Trainer does not read it (as transformers)"),
    ok("do_predict", "for scripts: the Trainer does not read it (as transformers)"),
    ok("resume_from_checkpoint", "for scripts: pass it to trainer.train() (as transformers)"),
    ok("local_rank", "for scripts: the rank comes from torchrun's LOCAL_RANK (as transformers)"),
    # ---- transformers 4 names --------------------------------------------------------------------
    ok("warmup_ratio", "a fraction of the training steps to warm up over (transformers 5: warmup_steps < 1); "
                       "warmup_steps wins when both are set", origin=LEGACY),
    ok("logging_dir", "where TensorBoard writes (default: output_dir/runs/<time_host>)", origin=LEGACY),
    ok("overwrite_output_dir", "accepted; the command line's --overwrite-output-dir clears an old run",
       origin=LEGACY),
    ok("evaluation_strategy", "the course's spelling of eval_strategy, with a FutureWarning", origin=LEGACY),
    ok("group_by_length", "None (transformers 4: False): batches of similar length in a random order, but "
                          "random batches for regression and multi-label models; True or False for every model",
       own_default=True, origin=LEGACY),
    ok("adafactor", "True is optim='adafactor'", origin=LEGACY),
    no("no_cuda", False, "use use_cpu=True", origin=LEGACY),
    no("use_mps_device", False, "the MPS device is used when present; use_cpu=True avoids it", origin=LEGACY),
    no("per_gpu_train_batch_size", None, "use per_device_train_batch_size", origin=LEGACY),
    no("per_gpu_eval_batch_size", None, "use per_device_eval_batch_size", origin=LEGACY),
    no("fp16_backend", "auto", "use fp16=True or bf16=True", origin=LEGACY),
    no("half_precision_backend", "auto", "use fp16=True or bf16=True", origin=LEGACY),
    no("fp16_opt_level", "O1", "apex is not used; fp16=True is torch autocast", origin=LEGACY),
    no("save_safetensors", True, "seqtune always writes safetensors", origin=LEGACY),
    no("jit_mode_eval", False, "use torch_compile=True", origin=LEGACY),
    no("use_ipex", False, "use torch_compile=True", origin=LEGACY),
    no("torchdynamo", None, "use torch_compile_backend", origin=LEGACY),
    no("tpu_num_cores", None, "TPUs are not supported", origin=LEGACY),
    no("past_index", -1, "a classifier has no past state", origin=LEGACY),
    no("push_to_hub_model_id", None, "use hub_model_id", origin=LEGACY),
    no("push_to_hub_organization", None, "use hub_model_id='organization/name'", origin=LEGACY),
    no("push_to_hub_token", None, "use hub_token", origin=LEGACY),
    no("include_inputs_for_metrics", False, "compute_metrics receives logits and labels", origin=LEGACY),
    no("include_tokens_per_second", False, "samples per second are logged", origin=LEGACY),
    no("use_legacy_prediction_loop", False, "there is one prediction loop", origin=LEGACY),
    no("ray_scope", "last", "hyperparameter search is not offered", origin=LEGACY),
    # ---- seqtune's own -----------------------------------------------------------------------------
    ok("keep_model_dtype", "train bf16/fp16-stored weights as stored (default: fp32 master weights)",
       origin=SEQTUNE),
)
BY_NAME: dict[str, Arg] = {arg.name: arg for arg in ARGS}
REFUSED: tuple[Arg, ...] = tuple(arg for arg in ARGS if not arg.implemented)


def same(value: Any, default: Any) -> bool:
    """`value` is the default (an enum member by its value; "" and [] and None alike where the default is empty)."""
    value = getattr(value, "value", value)
    if value == default:
        return True
    empty = (None, "", [], {}, ())
    return default in empty and value in empty


def check_refused(values: dict[str, Any]) -> None:
    """A SeqtuneError for the first refused name set to something other than its default."""
    for arg in REFUSED:
        value = values.get(arg.name, arg.default)
        if not arg.is_default(value):
            raise arg.refusal(value)


def refused_fields(cls: type) -> type:
    """Class decorator (under @dataclass): every refused name becomes a field at its accepted default, so a
    script may pass it or read it, and nothing else."""
    for arg in REFUSED:
        default = arg.default
        cls.__annotations__[arg.name] = Any
        setattr(cls, arg.name, dataclasses.field(
            default_factory=lambda d=default: type(d)(d), repr=False) if isinstance(default, (list, dict))
            else dataclasses.field(default=default, repr=False))
    return cls


def markdown() -> str:
    """docs/arguments.md: the registry as a table."""
    lines = ["# TrainingArguments: every name, what seqtune does with it", "",
             "Generated from `seqtune/argfields.py` by `python -m seqtune.argfields`; "
             "`tests/test_argfields.py` checks it against the installed transformers and this file.", "",
             "Every name `transformers.TrainingArguments` takes is accepted by `seqtune.TrainingArguments`. "
             "**implemented** names behave as transformers documents them (the notes say where seqtune's "
             "default differs); **refused** names are accepted at their default and any other value is one "
             "sentence (a `SeqtuneError`, exit code 2 from the command line) saying what to use instead.", "",
             "| name | from | seqtune | notes |", "| --- | --- | --- | --- |"]
    for arg in ARGS:
        status = "implemented" + (" (own default)" if arg.own_default else "") if arg.implemented else \
            f"refused unless `{_shown(arg.default)}`" + "".join(f" or `{_shown(a)}`" for a in arg.aliases)
        lines.append(f"| `{arg.name}` | {arg.origin} | {status} | {arg.text.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _default_accelerator_config(value: Any) -> bool:
    """transformers turns accelerator_config=None into AcceleratorConfig(): that object, or its dict, is the default."""
    if not isinstance(value, dict) and type(value).__name__ != "AcceleratorConfig":
        return False
    from transformers.trainer_pt_utils import AcceleratorConfig

    default = dataclasses.asdict(AcceleratorConfig())
    try:
        return (dict(value) if isinstance(value, dict) else dataclasses.asdict(value)) == default
    except TypeError:
        return False


DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "arguments.md"


def _shown(value: Any) -> str:
    text = repr(getattr(value, "value", value))
    return text if len(text) <= 60 else text[:57] + "..."


if __name__ == "__main__":
    DOC_PATH.write_text(markdown(), encoding="utf-8")
    print(f"wrote {DOC_PATH}")
