import numpy as np
import pytest
import torch

from seqtune import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    SeqtuneError,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from .conftest import tiny_bert, toy_rows


def _args(tmp_path, **kwargs):
    defaults = dict(per_device_train_batch_size=16, learning_rate=3e-3, disable_tqdm=True,
                    save_strategy="no", logging_steps=10, use_cpu=True, bf16=False)
    return TrainingArguments(str(tmp_path / "out"), **{**defaults, **kwargs})


def _accuracy(eval_pred):
    logits, labels = eval_pred
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


def test_learnable_task_loss_falls_and_accuracy_rises(tmp_path):
    train, dev = toy_rows(512, seed=1), toy_rows(128, seed=2)
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, num_train_epochs=4, eval_strategy="epoch"),
                      train_dataset=train, eval_dataset=dev, compute_metrics=_accuracy)
    before = trainer.evaluate()
    result = trainer.train()
    after = trainer.evaluate()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0] * 0.6
    assert before["eval_accuracy"] < 0.7 < 0.9 < after["eval_accuracy"]
    assert result.global_step == 4 * 32 and result.training_loss == pytest.approx(result.metrics["train_loss"])
    assert {"train_runtime", "train_samples_per_second", "train_steps_per_second"} <= set(result.metrics)


def test_loss_logged_at_logging_steps_and_once_at_the_end(tmp_path):
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=25, logging_steps=10),
                      train_dataset=toy_rows(64))
    trainer.train()
    steps = [h["step"] for h in trainer.state.log_history if "loss" in h]
    assert steps == [10, 20, 25]
    assert all(np.isfinite(h["loss"]) and "learning_rate" in h for h in trainer.state.log_history if "loss" in h)


def test_evaluation_once_per_epoch(tmp_path):
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, num_train_epochs=3, eval_strategy="epoch"),
                      train_dataset=toy_rows(40), eval_dataset=toy_rows(10), compute_metrics=_accuracy)
    trainer.train()
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert [h["step"] for h in evals] == [3, 6, 9] and [h["epoch"] for h in evals] == [1.0, 2.0, 3.0]
    assert {"eval_accuracy", "eval_runtime", "eval_samples_per_second"} <= set(evals[0])


def test_predict_shapes_order_and_prefix(tmp_path):
    rows = toy_rows(37)
    trainer = Trainer(tiny_bert(num_labels=3, vocab_size=64), _args(tmp_path, per_device_eval_batch_size=4),
                      compute_metrics=_accuracy)
    output = trainer.predict(rows)
    assert output.predictions.shape == (37, 3) and output.label_ids.shape == (37,)
    assert isinstance(output.predictions, np.ndarray)
    assert output.label_ids.tolist() == [r["label"] for r in rows]  # dataset order despite length sorting
    one = trainer.predict(rows[5:6]).predictions[0]
    np.testing.assert_allclose(output.predictions[5], one, atol=1e-5)
    assert "test_loss" in output.metrics and "test_accuracy" in output.metrics


def test_checkpoint_reloads_to_identical_logits(tmp_path):
    from transformers import AutoModelForSequenceClassification

    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, max_steps=6, save_strategy="steps", save_steps=3),
                      train_dataset=toy_rows(64))
    trainer.train()
    folder = tmp_path / "out" / "checkpoint-6"
    assert {"model.safetensors", "config.json", "optimizer.pt", "scheduler.pt", "trainer_state.json",
            "rng_state.pth"} <= {p.name for p in folder.iterdir()}
    assert (tmp_path / "out" / "checkpoint-3").is_dir()
    # Same weights and the same attention kernel as the trained model (seqtune picks eager on the CPU).
    reloaded = AutoModelForSequenceClassification.from_pretrained(
        folder, attn_implementation=trainer.model.config._attn_implementation).eval()
    batch = {"input_ids": torch.tensor([[1, 7, 12, 13], [1, 20, 21, 22]])}
    trainer.model.eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, trainer.model(**batch).logits)


class PlainClassifier(torch.nn.Module):
    """Not a transformers model: returns a (loss, logits) tuple, or a dict."""

    def __init__(self, as_dict=False):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.EmbeddingBag(64, 2, mode="sum")
        self.as_dict = as_dict

    def forward(self, input_ids, attention_mask=None, labels=None):
        logits = self.embed(input_ids, per_sample_weights=attention_mask.float())
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits} if self.as_dict else (loss, logits)


@pytest.mark.parametrize("as_dict", [False, True])
def test_any_module_returning_loss_and_logits(tmp_path, as_dict):
    trainer = Trainer(PlainClassifier(as_dict), _args(tmp_path, num_train_epochs=20, learning_rate=0.1),
                      train_dataset=toy_rows(128), compute_metrics=_accuracy)
    trainer.train()
    assert trainer.evaluate(toy_rows(64, seed=3))["eval_accuracy"] > 0.9


def test_callbacks_and_early_stopping(tmp_path):
    events = []

    class Recorder(TrainerCallback):
        def on_epoch_end(self, args, state, control, **kwargs):
            events.append(("epoch", state.global_step))

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            events.append(("evaluate", state.global_step))

    args = _args(tmp_path, num_train_epochs=20, eval_strategy="epoch", learning_rate=1e-9,
                 metric_for_best_model="loss")
    trainer = Trainer(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(32), eval_dataset=toy_rows(8),
                      callbacks=[Recorder(), EarlyStoppingCallback(early_stopping_patience=2,
                                                                   early_stopping_threshold=0.1)])
    trainer.train()
    assert trainer.state.global_step == 3 * 2  # no improvement > 0.1 after the first evaluation
    assert events[:2] == [("evaluate", 2), ("epoch", 2)]


def test_early_stopping_patience_survives_a_resume(tmp_path):
    def run(max_steps, resume):
        stopper = EarlyStoppingCallback(early_stopping_patience=3, early_stopping_threshold=1e9)  # never better
        args = _args(tmp_path, max_steps=max_steps, eval_strategy="steps", eval_steps=2, save_strategy="steps",
                     save_steps=2, learning_rate=1e-9, metric_for_best_model="loss")
        trainer = Trainer(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(64), eval_dataset=toy_rows(8),
                          callbacks=[stopper])
        trainer.train(resume_from_checkpoint=resume)
        return trainer, stopper

    _, first = run(4, None)  # evaluations at 2 (the best) and 4 (one bad)
    assert first.bad_evaluations == 1
    trainer, resumed = run(20, True)  # resumes at 4: bad evaluations at 6 and 8 make three
    assert (resumed.bad_evaluations, trainer.state.global_step) == (3, 8)
    assert resumed.best == first.best


def test_bad_input_errors(tmp_path):
    with pytest.raises(SeqtuneError, match="train_dataset is empty"):
        Trainer(tiny_bert(), _args(tmp_path), train_dataset=[]).train()
    import datasets

    bad_labels = datasets.Dataset.from_list([{"input_ids": [1, 2], "label": 0}, {"input_ids": [1], "label": 5}])
    with pytest.raises(SeqtuneError, match=r"labels range from 0 to 5, outside \[0, 2\)"):
        Trainer(tiny_bert(), _args(tmp_path), train_dataset=bad_labels).train()
    untokenized = datasets.Dataset.from_list([{"sentence": "hi", "label": 0}])
    with pytest.raises(SeqtuneError, match="tokenize it first"):
        Trainer(tiny_bert(), _args(tmp_path), train_dataset=untokenized).train()
    (tmp_path / "file").write_text("x")
    with pytest.raises(SeqtuneError, match="is a file"):
        Trainer(tiny_bert(), TrainingArguments(str(tmp_path / "file")))
    with pytest.raises(SeqtuneError, match="needs an eval_dataset"):
        Trainer(tiny_bert(), _args(tmp_path, eval_strategy="epoch"), train_dataset=toy_rows(4))


def test_unlabelled_split_predicts_without_labels(tmp_path):
    import datasets

    rows = datasets.Dataset.from_list([{"input_ids": [1, 2, 3], "label": -1, "idx": 0},
                                       {"input_ids": [1, 2], "label": -1, "idx": 1}])
    output = Trainer(tiny_bert(), _args(tmp_path)).predict(rows)
    assert output.predictions.shape == (2, 2) and output.label_ids is None


def test_string_labels_need_a_mapping(tmp_path):
    import datasets

    rows = datasets.Dataset.from_list([{"input_ids": [1, 2], "label": "pos"}, {"input_ids": [1], "label": "neg"}])
    with pytest.raises(SeqtuneError, match="holds string values but the model classifies into 2 classes"):
        Trainer(tiny_bert(), _args(tmp_path), train_dataset=rows).train()


@pytest.mark.parametrize(("bf16", "multiple"), [(False, None), (True, 8)])
def test_batch_lengths_rounded_where_kernels_are_cached_per_shape(tmp_path, bf16, multiple):
    """CPU fp32 (MKL sgemm) gains nothing from rounding; oneDNN under bf16 keeps a kernel per shape."""
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, bf16=bf16), train_dataset=toy_rows(8))
    assert trainer.data_collator.pad_to_multiple_of == multiple
    assert trainer.data_collator(toy_rows(2))["input_ids"].shape[1] % (multiple or 1) == 0


def test_callbacks_steer_the_loop_through_control_flags(tmp_path):
    """transformers' contract: a callback sets should_log / should_evaluate / should_save in on_step_end
    and the loop acts on it at that step, then lowers the flag."""

    class Steer(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_log |= state.global_step == 1
            control.should_evaluate |= state.global_step == 2
            control.should_save |= state.global_step == 3

    args = _args(tmp_path, max_steps=5, logging_steps=100, save_strategy="no")
    trainer = Trainer(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(40), eval_dataset=toy_rows(8),
                      callbacks=[Steer()])
    trainer.train()
    history = trainer.state.log_history
    assert [h["step"] for h in history if "loss" in h] == [1, 5]  # asked at 1; the last step always
    assert [h["step"] for h in history if "eval_loss" in h] == [2]
    saved = sorted(p.name for p in (tmp_path / "out").glob("checkpoint-*"))
    assert saved == ["checkpoint-3"]  # save_strategy="no" saves nothing a callback did not ask for
    assert not (trainer.control.should_log or trainer.control.should_evaluate or trainer.control.should_save)


def test_label_names_say_which_inputs_are_labels(tmp_path):
    """label_ids come from the inputs named in label_names; two names give a tuple."""

    def collate(rows):
        batch = DataCollatorWithPadding()([{k: v for k, v in r.items() if k != "weight"} for r in rows])
        batch["weight"] = torch.tensor([r["weight"] for r in rows])
        return batch

    rows = [{**row, "weight": i} for i, row in enumerate(toy_rows(10))]
    seen = []
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, label_names=["labels", "weight"],
                                                      per_device_eval_batch_size=3),
                      data_collator=collate, compute_metrics=lambda p: seen.append(p.label_ids) or {})
    output = trainer.predict(rows)
    labels, weights = output.label_ids
    assert labels.tolist() == [r["label"] for r in rows] and weights.tolist() == list(range(10))
    assert isinstance(seen[0], tuple)
    with pytest.raises(SeqtuneError, match="label_names must be a non-empty list"):
        _args(tmp_path, label_names="labels")


def test_dataloader_drop_last_leaves_out_the_short_batch(tmp_path):
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, num_train_epochs=2, dataloader_drop_last=True),
                      train_dataset=toy_rows(40))
    assert trainer.train().global_step == 2 * 2  # 40 rows, batch 16: two full batches an epoch
    with pytest.raises(SeqtuneError, match="fewer than one batch"):
        Trainer(tiny_bert(vocab_size=64), _args(tmp_path, dataloader_drop_last=True),
                train_dataset=toy_rows(5)).train()


def test_a_label_name_the_batches_lack_is_said(tmp_path):
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, label_names=["extra"]))
    with pytest.raises(SeqtuneError, match="label_names names 'extra', which the batches do not hold"):
        trainer.predict(toy_rows(4))
    unlabelled = [{k: v for k, v in row.items() if k != "label"} for row in toy_rows(4)]
    assert trainer.predict(unlabelled).label_ids is None  # nothing labelled at all: no labels, no error


def test_an_interrupted_predict_leaves_the_model_in_its_mode(tmp_path):
    def interrupt(logits, labels):
        raise KeyboardInterrupt

    model = tiny_bert(vocab_size=64).train()
    trainer = Trainer(model, _args(tmp_path), preprocess_logits_for_metrics=interrupt)
    with pytest.raises(KeyboardInterrupt):
        trainer.predict(toy_rows(4))
    assert model.training


class WeightedLoss(Trainer):
    """The override from transformers' documentation: it takes the labels out of the inputs."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = torch.nn.functional.cross_entropy(outputs.logits, labels, weight=torch.tensor([1.0, 3.0]))
        return (loss, outputs) if return_outputs else loss


def test_a_transformers_override_predicts_unlabelled_rows_with_the_model_alone(tmp_path):
    args = TrainingArguments(str(tmp_path), max_steps=2, save_strategy="no", disable_tqdm=True, bf16=False)
    trainer = WeightedLoss(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(16))
    trainer.train()
    unlabelled = [{k: v for k, v in row.items() if k != "label"} for row in toy_rows(6, seed=3)]
    output = trainer.predict(unlabelled)
    assert output.predictions.shape == (6, 2) and output.label_ids is None and "test_loss" not in output.metrics
    labelled = trainer.predict(toy_rows(6, seed=3))  # with labels: the override's weighted loss
    np.testing.assert_allclose(labelled.predictions, output.predictions, rtol=1e-5, atol=1e-6)
    assert "test_loss" in labelled.metrics


class LossAlone(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return model(**inputs).loss  # ignores return_outputs


def test_an_override_that_ignores_return_outputs_is_one_sentence_in_evaluation(tmp_path):
    args = TrainingArguments(str(tmp_path), max_steps=1, save_strategy="no", disable_tqdm=True, bf16=False)
    trainer = LossAlone(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(8))
    trainer.train()  # training reads the loss alone: fine
    with pytest.raises(SeqtuneError, match=r"returned the loss alone; an override must return \(loss, outputs\)"):
        trainer.evaluate(toy_rows(4))
