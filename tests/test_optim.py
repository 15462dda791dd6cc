"""optim (with optim_args) and lr_scheduler_type (with lr_scheduler_kwargs and warmup), against transformers."""

import math

import numpy as np
import pytest
import torch

from seqtune import SeqtuneError, Trainer, TrainingArguments
from seqtune.optim import create_optimizer, create_scheduler, warmup_steps

from .conftest import tiny_bert, toy_rows

STEPS = 20


def _lrs(scheduler, optimizer, steps=STEPS):
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def _optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=1.0)


@pytest.mark.parametrize("kind, kwargs, reference", [
    ("linear", {}, lambda o, w: __import__("transformers").get_linear_schedule_with_warmup(o, w, STEPS)),
    ("cosine", {}, lambda o, w: __import__("transformers").get_cosine_schedule_with_warmup(o, w, STEPS)),
    ("cosine_with_restarts", {"num_cycles": 3},
     lambda o, w: __import__("transformers").get_cosine_with_hard_restarts_schedule_with_warmup(o, w, STEPS, 3)),
    ("polynomial", {"power": 2.0, "lr_end": 1e-3},
     lambda o, w: __import__("transformers").get_polynomial_decay_schedule_with_warmup(o, w, STEPS, 1e-3, 2.0)),
    ("inverse_sqrt", {}, lambda o, w: __import__("transformers").get_inverse_sqrt_schedule(o, w)),
    ("cosine_with_min_lr", {"min_lr_rate": 0.1},
     lambda o, w: __import__("transformers").get_cosine_with_min_lr_schedule_with_warmup(o, w, STEPS,
                                                                                        min_lr_rate=0.1)),
    ("warmup_stable_decay", {"num_decay_steps": 5},
     lambda o, w: __import__("transformers").get_wsd_schedule(o, w, num_decay_steps=5, num_training_steps=STEPS)),
])
def test_schedules_equal_transformers_own(kind, kwargs, reference):
    args = TrainingArguments("out", learning_rate=1.0, lr_scheduler_type=kind, lr_scheduler_kwargs=kwargs,
                             warmup_steps=0.2)
    ours = _optimizer()
    theirs = _optimizer()
    np.testing.assert_allclose(_lrs(create_scheduler(ours, args, STEPS), ours),
                               _lrs(reference(theirs, 4), theirs), rtol=1e-12)


def test_warmup_as_transformers_counts_it():
    import transformers

    for value in (0.1, 0.25, 0.5, 3):
        theirs = transformers.TrainingArguments("out", warmup_steps=value, report_to="none")
        assert warmup_steps(TrainingArguments("out", warmup_steps=value), 37) == theirs.get_warmup_steps(37)
    # transformers 4's warmup_ratio: ceil(ratio * steps); warmup_steps wins when both are set.
    assert warmup_steps(TrainingArguments("out", warmup_ratio=0.1), 37) == math.ceil(3.7)
    with pytest.warns(UserWarning, match="warmup_steps wins"):
        both = TrainingArguments("out", warmup_ratio=0.5, warmup_steps=2)
    assert warmup_steps(both, 37) == 2


def test_the_logged_learning_rate_follows_the_schedule(tmp_path):
    args = TrainingArguments(str(tmp_path), max_steps=6, per_device_train_batch_size=2, logging_steps=1,
                             save_strategy="no", report_to="none", disable_tqdm=True, learning_rate=1e-3,
                             lr_scheduler_type="cosine_with_restarts", lr_scheduler_kwargs='{"num_cycles": 2}',
                             warmup_ratio=0.34)
    trainer = Trainer(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(12))
    trainer.train()
    logged = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    import transformers

    optimizer = _optimizer()
    expected = _lrs(transformers.get_cosine_with_hard_restarts_schedule_with_warmup(optimizer, 3, 6, 2), optimizer,
                    7)[1:]  # logged after each step
    np.testing.assert_allclose(logged, [1e-3 * v for v in expected], rtol=1e-9)


def test_reduce_lr_on_plateau_steps_on_the_evaluation_metric(tmp_path):
    rows = toy_rows(8)
    args = TrainingArguments(str(tmp_path), max_steps=4, per_device_train_batch_size=4, eval_strategy="steps",
                             eval_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
                             lr_scheduler_type="reduce_lr_on_plateau",
                             lr_scheduler_kwargs={"patience": 0, "factor": 0.5, "threshold": 10.0})
    trainer = Trainer(tiny_bert(vocab_size=64), args, train_dataset=rows, eval_dataset=rows)
    trainer.train()
    assert args.metric_for_best_model == "loss"
    # Never a relative improvement of 1000%: each evaluation halves the rate (patience 0).
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(5e-5 * 0.5 ** 4)


@pytest.mark.parametrize("optim, expected", [
    ("adamw_torch", torch.optim.AdamW), ("adamw_torch_fused", torch.optim.AdamW), ("sgd", torch.optim.SGD),
    ("adagrad", torch.optim.Adagrad), ("rmsprop", torch.optim.RMSprop)])
def test_optimizers_by_name(optim, expected):
    model = tiny_bert(vocab_size=64)
    optimizer = create_optimizer(model, TrainingArguments("out", optim=optim, weight_decay=0.01), torch.device("cpu"))
    assert type(optimizer) is expected
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]  # none on biases and norms
    if expected is torch.optim.AdamW:
        assert bool(optimizer.defaults["fused"]) == (optim == "adamw_torch_fused")


def test_adafactor_as_transformers_builds_it():
    from transformers.optimization import Adafactor

    optimizer = create_optimizer(tiny_bert(vocab_size=64), TrainingArguments("out", optim="adafactor"),
                                 torch.device("cpu"))
    assert isinstance(optimizer, Adafactor)
    assert optimizer.defaults["relative_step"] is False and optimizer.defaults["scale_parameter"] is False
    assert isinstance(create_optimizer(tiny_bert(vocab_size=64), TrainingArguments("out", adafactor=True),
                                       torch.device("cpu")), Adafactor)


def test_optim_args_reach_the_optimizer():
    args = TrainingArguments("out", optim="sgd", optim_args="momentum=0.9, nesterov=true")
    optimizer = create_optimizer(tiny_bert(vocab_size=64), args, torch.device("cpu"))
    assert optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["nesterov"] is True


@pytest.mark.parametrize("kwargs, message", [
    ({"optim": "adamw_bnb_8bit"}, "optim='adamw_bnb_8bit' is not one of 'adamw_torch', 'adamw_torch_fused'"),
    ({"optim": "adam"}, "optim='adam' is not one of"),
    ({"lr_scheduler_type": "linear_warmup"}, "lr_scheduler_type='linear_warmup' is not one of 'linear'"),
    ({"optim_args": "momentum"}, "optim_args='momentum' is not 'key=value,key=value'"),
    ({"lr_scheduler_kwargs": "{num_cycles"}, "lr_scheduler_kwargs='{num_cycles' is not JSON"),
    ({"lr_scheduler_type": "reduce_lr_on_plateau"}, "needs an eval_strategy other than 'no'"),
])
def test_bad_optimizer_or_schedule_is_one_sentence(kwargs, message):
    with pytest.raises(SeqtuneError, match=message.replace("(", r"\(").replace("{", r"\{")):
        TrainingArguments("out", **kwargs)


def test_optimizer_or_schedule_arguments_they_do_not_take():
    model = tiny_bert(vocab_size=64)
    with pytest.raises(SeqtuneError, match="optim_args key 'betas' is not read by optim='sgd'"):
        create_optimizer(model, TrainingArguments("out", optim="sgd", optim_args="betas=1"), torch.device("cpu"))
    args = TrainingArguments("out", lr_scheduler_type="cosine", lr_scheduler_kwargs={"nope": 1})
    with pytest.raises(SeqtuneError, match=r"lr_scheduler_type='cosine' with lr_scheduler_kwargs=\{'nope': 1\}"):
        create_scheduler(_optimizer(), args, 10)


@pytest.mark.parametrize("kwargs, message", [
    ({"optim": "sgd", "optim_args": "momentum=-1"},
     "optim_args='momentum=-1' is refused by optim='sgd': Invalid momentum value: -1.0"),
    ({"optim": "sgd", "optim_args": "nesterov=true"},
     "optim_args='nesterov=true' is refused by optim='sgd': Nesterov momentum requires a momentum"),
    ({"optim": "adagrad", "optim_args": "lr_decay=-1"}, "optim_args='lr_decay=-1' is refused by optim='adagrad'"),
    ({"optim": "rmsprop", "optim_args": "alpha=nan"}, "optim_args alpha='nan' is not a finite number"),
    ({"optim": "sgd", "optim_args": "dampening=inf"}, "optim_args dampening='inf' is not a finite number"),
    ({"optim": "sgd", "optim_args": "momentum=0.9,nesterov=maybe"}, "optim_args nesterov='maybe' is not true or false"),
    ({"optim": "sgd", "optim_args": "betas=1"}, "optim_args key 'betas' is not read by optim='sgd'"),
])
def test_optim_args_torch_would_refuse_are_one_sentence_at_construction(kwargs, message):
    with pytest.raises(SeqtuneError) as info:
        TrainingArguments("out", **kwargs)
    assert str(info.value).startswith(f"TrainingArguments: {message}") and "\n" not in str(info.value)


@pytest.mark.parametrize("kind, kwargs, message", [
    ("cosine", {"num_cycles": float("nan")}, "lr_scheduler_kwargs num_cycles must be a finite number >= 0, got nan"),
    ("cosine", '{"num_cycles": Infinity}', "lr_scheduler_kwargs num_cycles must be a finite number >= 0, got inf"),
    ("cosine_with_min_lr", {"min_lr": -1e-5}, "lr_scheduler_kwargs min_lr must be a finite number >= 0, got -1e-05"),
    ("polynomial", {"power": -1}, "lr_scheduler_kwargs power must be a finite number > 0, got -1"),
    ("polynomial", {"power": 0}, "lr_scheduler_kwargs power must be a finite number > 0, got 0"),
    ("inverse_sqrt", {"timescale": 0}, "lr_scheduler_kwargs timescale must be a finite number > 0, got 0"),
    ("cosine", {"num_cycles": __import__("datetime").date(2024, 1, 1)},
     "lr_scheduler_kwargs num_cycles=datetime.date(2024, 1, 1) must be a number, a string, True/False or None, "
     "got a date"),
])
def test_schedule_options_that_would_train_at_nothing_or_divide_by_zero(kind, kwargs, message):
    with pytest.raises(SeqtuneError) as info:
        TrainingArguments("out", lr_scheduler_type=kind, lr_scheduler_kwargs=kwargs)
    assert str(info.value) == f"TrainingArguments: {message}"


def test_a_schedule_that_fails_on_arithmetic_is_one_sentence():
    args = TrainingArguments("out", lr_scheduler_type="inverse_sqrt")
    args.lr_scheduler_kwargs = {"timescale": 0}  # set after the checks: the schedule's own ZeroDivisionError
    with pytest.raises(SeqtuneError, match=r"^TrainingArguments: lr_scheduler_type='inverse_sqrt' with "
                                           r"lr_scheduler_kwargs=\{'timescale': 0\}: "):
        create_scheduler(_optimizer(), args, 10)


def test_a_nan_schedule_option_is_one_line_from_the_command_line(tmp_path, capsys, monkeypatch):
    import pandas as pd

    import seqtune.models
    from seqtune.cli import main

    from .conftest import topic_rows

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded for options that should have been refused")

    monkeypatch.setattr(seqtune.models, "load_model_and_tokenizer", loaded)
    csv = tmp_path / "t.csv"
    pd.DataFrame(topic_rows(24)).to_csv(csv, index=False)
    argv = ["train", "--train", str(csv), "--validation-split", "0.25", "--output-dir", str(tmp_path / "o"),
            "--lr-scheduler", "cosine", "--lr-scheduler-kwargs", '{"num_cycles": NaN}']
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqtune: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    assert "lr_scheduler_kwargs num_cycles must be a finite number >= 0, got nan" in err
