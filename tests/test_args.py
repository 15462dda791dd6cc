import pytest

from seqtune import SeqtuneError, TrainingArguments

SHARED = ["eval_strategy", "logging_strategy", "logging_steps", "logging_first_step", "save_strategy",
          "save_steps", "save_total_limit", "num_train_epochs", "max_steps", "per_device_train_batch_size",
          "learning_rate", "weight_decay", "adam_beta1", "adam_beta2",
          "adam_epsilon", "warmup_steps", "lr_scheduler_type", "gradient_accumulation_steps", "max_grad_norm",
          "seed", "fp16", "use_cpu", "dataloader_num_workers", "disable_tqdm", "remove_unused_columns",
          "load_best_model_at_end", "overwrite_output_dir"]


def test_defaults_match_transformers(tmp_path):
    import transformers

    theirs = transformers.TrainingArguments(str(tmp_path), report_to="none", disable_tqdm=False)
    ours = TrainingArguments(str(tmp_path))
    for name in SHARED:
        if not hasattr(theirs, name):
            continue
        value = getattr(theirs, name)
        value = getattr(value, "value", value)
        assert getattr(ours, name) == value, name
    # The defaults that differ, for speed (documented in the README and printed by the benchmark).
    assert (ours.bf16, ours.group_by_length, ours.per_device_eval_batch_size) == (None, None, 32)
    assert (theirs.bf16, getattr(theirs, "group_by_length", False), theirs.per_device_eval_batch_size) == (
        False, False, 8)


def test_course_spelling_is_accepted_with_a_warning():
    with pytest.warns(FutureWarning, match="eval_strategy"):
        args = TrainingArguments("out", evaluation_strategy="epoch")
    assert args.eval_strategy == "epoch"
    assert "evaluation_strategy" not in args.to_dict()


@pytest.mark.parametrize("kwargs, message", [
    ({"eval_strategy": "epochs"}, "eval_strategy='epochs' is not one of 'no', 'steps', 'epoch'"),
    ({"lr_scheduler_type": "poly"}, "lr_scheduler_type='poly' is not one of 'linear', 'cosine'"),
    ({"per_device_train_batch_size": 0}, "per_device_train_batch_size must be a whole number >= 1"),
    ({"learning_rate": -1.0}, "learning_rate must be > 0"),
    ({"logging_steps": 0}, "logging_steps must be > 0"),
    ({"warmup_steps": -2}, "warmup_steps must be"),
    ({"bf16": True, "fp16": True}, "bf16 and fp16 cannot both be True"),
    ({"report_to": "comet"}, "report_to='comet' is not one of"),
    ({"load_best_model_at_end": True, "eval_strategy": "epoch"}, "save_strategy equal to eval_strategy"),
])
def test_invalid_values_name_the_argument(kwargs, message):
    with pytest.raises(SeqtuneError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainingArguments("out", **kwargs)


def test_eval_steps_defaults_to_logging_steps_and_best_metric_direction():
    args = TrainingArguments("out", logging_steps=20, eval_strategy="steps", save_strategy="steps",
                             save_steps=40, load_best_model_at_end=True)
    assert args.eval_steps == 20 and args.metric_for_best_model == "loss" and args.greater_is_better is False
    assert TrainingArguments("out", metric_for_best_model="f1").greater_is_better is True


@pytest.mark.parametrize("kwargs, message", [
    ({"warmup_ratio": 1.0}, "warmup_ratio must be in [0, 1), got 1.0"),
    ({"label_smoothing_factor": -0.1}, "label_smoothing_factor must be in [0, 1), got -0.1"),
    ({"eval_delay": -1}, "eval_delay must be >= 0, got -1"),
    ({"data_seed": -3}, "data_seed must be a whole number >= 0, got -3"),
    ({"enable_jit_checkpoint": False}, "enable_jit_checkpoint=False is not supported by seqtune, which always does it"),
    ({"restore_callback_states_from_checkpoint": False}, "restore_callback_states_from_checkpoint=False is not"),
    ({"train_sampling_strategy": "sequential"}, "train_sampling_strategy='sequential' is not one of 'random', "
                                                "'group_by_length'"),
    ({"hub_strategy": "sometimes"}, "hub_strategy='sometimes' is not one of 'end', 'every_save'"),
    ({"lr_scheduler_kwargs": [1]}, "lr_scheduler_kwargs must be a dict, a string or None, got [1] (list)"),
])
def test_invalid_extra_arguments_name_the_argument(kwargs, message):
    with pytest.raises(SeqtuneError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        TrainingArguments("out", **kwargs)


def test_transformers_5_names_map_onto_seqtune():
    from transformers.trainer_utils import SchedulerType

    args = TrainingArguments("out", train_sampling_strategy="random", lr_scheduler_type=SchedulerType.COSINE,
                             activation_checkpointing=True, activation_checkpointing_kwargs={"use_reentrant": True})
    assert args.group_by_length is False and args.lr_scheduler_type == "cosine"
    assert args.gradient_checkpointing is True and args.gradient_checkpointing_kwargs == {"use_reentrant": True}
    assert TrainingArguments("out", train_sampling_strategy="group_by_length", group_by_length=False).group_by_length
    assert TrainingArguments("out", hub_token="hf_x").to_dict()["hub_token"] == "<HUB_TOKEN>"
    assert "hf_x" not in repr(TrainingArguments("out", hub_token="hf_x"))


@pytest.mark.parametrize("kwargs, message", [
    ({"learning_rate": "abc"}, "learning_rate must be a number, got 'abc' (str)"),
    ({"warmup_ratio": None}, "warmup_ratio must be a number, got None (NoneType)"),
    ({"label_smoothing_factor": "0.1"}, "label_smoothing_factor must be a number, got '0.1' (str)"),
    ({"eval_delay": None}, "eval_delay must be a number, got None (NoneType)"),
    ({"num_train_epochs": "3"}, "num_train_epochs must be a number, got '3' (str)"),
    ({"weight_decay": None}, "weight_decay must be a number, got None (NoneType)"),
    ({"adam_beta1": "0.9"}, "adam_beta1 must be a number, got '0.9' (str)"),
    ({"learning_rate": True}, "learning_rate must be a number, got True (bool)"),
    ({"dataloader_num_workers": "2"}, "dataloader_num_workers must be a whole number, got '2' (str)"),
    ({"save_total_limit": "3"}, "save_total_limit must be a whole number or None, got '3' (str)"),
    ({"per_device_train_batch_size": True}, "per_device_train_batch_size must be a whole number, got True (bool)"),
    ({"seed": 1.0}, "seed must be a whole number, got 1.0 (float)"),
    ({"report_to": 5}, "report_to must be a string, a list of strings or None, got 5 (int)"),
    ({"metric_for_best_model": 5}, "metric_for_best_model must be a string or None, got 5 (int)"),
    ({"bf16": "false"}, "bf16 must be True, False or None, got 'false' (str)"),
    ({"torch_compile": "yes"}, "torch_compile must be True or False, got 'yes' (str)"),
    ({"enable_jit_checkpoint": None}, "enable_jit_checkpoint must be True or False, got None (NoneType)"),
    ({"label_names": [1]}, "label_names must be a non-empty list of input names, got [1]"),
    ({"hub_token": b"hf_secret"}, "hub_token must be a string or None, got <HUB_TOKEN> (bytes)"),
])
def test_wrong_types_are_one_sentence_at_construction(kwargs, message):
    with pytest.raises(SeqtuneError) as info:
        TrainingArguments("out", **kwargs)
    assert str(info.value) == f"TrainingArguments: {message}"


@pytest.mark.parametrize("kwargs, message", [
    ({"seed": -1}, "seed must be a whole number in [0, 2**32), got -1"),
    ({"seed": 2**32}, "seed must be a whole number in [0, 2**32), got 4294967296"),
    ({"num_train_epochs": float("inf")}, "num_train_epochs must be a finite number, got inf"),
    ({"learning_rate": float("inf")}, "learning_rate must be a finite number, got inf"),
    ({"save_steps": float("nan")}, "save_steps must be > 0 (a float < 1 is a fraction of the training steps), got nan"),
    ({"logging_steps": float("inf")}, "logging_steps must be > 0"),
    ({"eval_steps": 0}, "eval_steps must be > 0"),
    ({"save_steps": 2.5}, "save_steps must be a whole number of steps when above 1"),
    ({"dataloader_num_workers": 1, "dataloader_prefetch_factor": 0},
     "dataloader_prefetch_factor must be a whole number >= 1 or None, got 0"),
    ({"gradient_checkpointing_kwargs": "x"},
     "gradient_checkpointing_kwargs must be a dict of torch.utils.checkpoint options or None, got 'x'"),
    ({"gradient_checkpointing_kwargs": {"bogus": 1}},
     "gradient_checkpointing_kwargs key 'bogus' is not an option of torch.utils.checkpoint.checkpoint; it takes "
     "use_reentrant, preserve_rng_state, determinism_check, debug, context_fn, early_stop"),
    ({"gradient_checkpointing_kwargs": {"every_n_layers": 0}}, "gradient_checkpointing_kwargs key 'every_n_layers'"),
    ({"activation_checkpointing_kwargs": {"offload": True}}, "gradient_checkpointing_kwargs key 'offload'"),
    ({"gradient_checkpointing_kwargs": {"use_reentrant": "no"}},
     "gradient_checkpointing_kwargs use_reentrant='no' is not True, False or None"),
    ({"gradient_checkpointing_kwargs": {"determinism_check": "strict"}},
     "gradient_checkpointing_kwargs determinism_check='strict' is not 'default' or 'none'"),
    ({"fsdp": "offload"}, "fsdp='offload' is not supported by seqtune, which shards fully with FSDP2; pass fsdp=True "
                          "or 'full_shard'"),
])
def test_out_of_range_values_are_one_sentence_at_construction(kwargs, message):
    with pytest.raises(SeqtuneError) as info:
        TrainingArguments("out", **kwargs)
    assert str(info.value).startswith(f"TrainingArguments: {message}") and "\n" not in str(info.value)


def test_the_forms_transformers_takes_are_accepted():
    import pathlib

    import numpy as np
    from transformers.trainer_utils import FSDPOption, IntervalStrategy

    assert TrainingArguments(None).output_dir == "trainer_output"  # as transformers
    assert TrainingArguments(pathlib.Path("runs") / "x").output_dir == str(pathlib.Path("runs") / "x")
    args = TrainingArguments("out", learning_rate=np.float32(1e-4), num_train_epochs=np.int64(2), warmup_steps=3,
                             seed=2**32 - 1, save_strategy=IntervalStrategy.EPOCH, report_to=None,
                             gradient_checkpointing_kwargs='{"use_reentrant": true, "preserve_rng_state": false}')
    assert type(args.learning_rate) is float and type(args.num_train_epochs) is int and args.warmup_steps == 3
    assert args.save_strategy == "epoch" and args.report_to == ["none"]
    assert args.gradient_checkpointing_kwargs == {"use_reentrant": True, "preserve_rng_state": False}
    assert TrainingArguments("out", fsdp="full_shard auto_wrap").fsdp is True
    assert TrainingArguments("out", fsdp=[FSDPOption.FULL_SHARD]).fsdp is True
    assert TrainingArguments("out", fsdp="").fsdp is False
    workers = TrainingArguments("out", dataloader_num_workers=1, dataloader_prefetch_factor=2)
    assert workers.dataloader_prefetch_factor == 2


def test_eval_on_start_without_an_eval_dataset_is_said_when_the_trainer_is_built(tmp_path):
    from seqtune import Trainer

    from .conftest import tiny_bert, toy_rows

    args = TrainingArguments(str(tmp_path), eval_on_start=True, report_to="none", disable_tqdm=True)
    with pytest.raises(SeqtuneError, match=r"^eval_on_start=True needs an eval_dataset; pass one or set "
                                           r"eval_on_start=False$"):
        Trainer(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(4))
