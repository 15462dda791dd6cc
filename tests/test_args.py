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
    assert (ours.bf16, ours.group_by_length, ours.per_device_eval_batch_size) == (None, True, 32)
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
    ({"lr_scheduler_kwargs": [1]}, "lr_scheduler_kwargs must be a dict, got [1]"),
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
