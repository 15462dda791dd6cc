"""Trainer.compute_loss with transformers' signature, compute_loss_func, and label_smoothing_factor."""

import pytest
import torch

from seqtune import DataCollatorWithPadding, SeqtuneError, Trainer, TrainingArguments

from .conftest import tiny_bert, toy_rows


def _args(tmp_path, **kwargs):
    defaults = dict(max_steps=2, per_device_train_batch_size=4, report_to="none", save_strategy="no",
                    disable_tqdm=True, use_cpu=True, bf16=False)
    return TrainingArguments(str(tmp_path / "out"), **{**defaults, **kwargs})


def _batch(n=6):
    return DataCollatorWithPadding()(toy_rows(n))


def test_compute_loss_returns_the_loss_or_the_loss_and_outputs(tmp_path):
    model = tiny_bert(vocab_size=64).eval()
    trainer = Trainer(model, _args(tmp_path))
    batch = _batch()
    loss = trainer.compute_loss(model, batch)
    again, outputs = trainer.compute_loss(model, batch, return_outputs=True)
    reference = model(**batch)
    assert torch.is_tensor(loss) and loss.ndim == 0
    torch.testing.assert_close(loss, reference.loss)
    torch.testing.assert_close(again, reference.loss)
    torch.testing.assert_close(outputs.logits, reference.logits)
    assert "labels" in batch  # the caller's inputs are left as they were


def test_label_smoothing_equals_transformers_trainer(tmp_path):
    import transformers

    model = tiny_bert(vocab_size=64).eval()
    batch = _batch()
    ours = Trainer(model, _args(tmp_path, label_smoothing_factor=0.1)).compute_loss(model, batch)
    theirs_args = transformers.TrainingArguments(str(tmp_path / "hf"), label_smoothing_factor=0.1, use_cpu=True,
                                                 report_to="none")
    theirs = transformers.Trainer(model, theirs_args).compute_loss(model, dict(batch))
    torch.testing.assert_close(ours, theirs)
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    torch.testing.assert_close(ours, torch.nn.functional.cross_entropy(logits, batch["labels"], label_smoothing=0.1))


def test_label_smoothing_leaves_regression_alone(tmp_path):
    model = tiny_bert(num_labels=1, vocab_size=64).eval()
    batch = _batch()
    batch["labels"] = batch["labels"].float()
    trainer = Trainer(model, _args(tmp_path, label_smoothing_factor=0.2))
    torch.testing.assert_close(trainer.compute_loss(model, batch), model(**batch).loss)


def test_compute_loss_func_is_called_as_transformers_calls_it(tmp_path):
    calls = []

    def weighted(outputs, labels, num_items_in_batch=None):
        calls.append((tuple(outputs.logits.shape), tuple(labels.shape), int(num_items_in_batch)))
        weights = torch.tensor([1.0, 3.0])
        return torch.nn.functional.cross_entropy(outputs.logits, labels, weight=weights)

    rows = toy_rows(8)
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path), train_dataset=rows, compute_loss_func=weighted)
    output = trainer.train()
    assert calls == [((4, 2), (4,), 4)] * 2 and output.training_loss > 0
    # evaluation reports the same custom loss
    model = trainer.model.eval()
    batch = _batch(8)
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(**batch).logits, batch["labels"],
                                                     weight=torch.tensor([1.0, 3.0]))
    assert trainer.evaluate(rows)["eval_loss"] == pytest.approx(float(expected), rel=1e-5)


def test_a_transformers_style_subclass_ports_unchanged(tmp_path):
    """The override in transformers' documentation, as written there."""

    class WeightedTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs.get("logits")
            loss_fct = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0], device=model.device))
            loss = loss_fct(logits.view(-1, self.model.config.num_labels), labels.view(-1))
            return (loss, outputs) if return_outputs else loss

    rows = toy_rows(8)
    trainer = WeightedTrainer(tiny_bert(vocab_size=64), _args(tmp_path), train_dataset=rows)
    assert trainer.train().global_step == 2
    prediction = trainer.predict(rows)
    assert prediction.predictions.shape == (8, 2) and "test_loss" in prediction.metrics


def test_an_override_with_the_old_signature_is_one_sentence(tmp_path):
    class Old(Trainer):
        def compute_loss(self, model, inputs):
            outputs = model(**inputs)
            return outputs.loss, outputs.logits

    with pytest.raises(SeqtuneError, match=r"Old.compute_loss has the old signature \(model, inputs\); use "
                                           r"transformers' compute_loss\(self, model, inputs, return_outputs=False"):
        Old(tiny_bert(vocab_size=64), _args(tmp_path))


def test_label_smoothing_is_off_for_a_regression_head_and_said_once(tmp_path, capsys):
    model = tiny_bert(num_labels=1, vocab_size=64).eval()
    batch = _batch()  # whole-number targets (int64): LabelSmoother would index class 1 of 1 and crash
    trainer = Trainer(model, _args(tmp_path, label_smoothing_factor=0.2))
    assert trainer.label_smoother is None
    out = capsys.readouterr().out
    assert out.count("label_smoothing_factor=0.2 applies to classification only; it is off for this regression "
                     "model (num_labels=1)") == 1
    torch.testing.assert_close(trainer.compute_loss(model, batch), model(**batch).loss)


def test_compute_loss_func_without_num_items_in_batch_is_called_without_it(tmp_path):
    calls = []

    def plain(outputs, labels):
        calls.append(tuple(labels.shape))
        return torch.nn.functional.cross_entropy(outputs.logits, labels)

    def keywords(outputs, labels, **kwargs):
        calls.append(sorted(kwargs))
        return torch.nn.functional.cross_entropy(outputs.logits, labels)

    model = tiny_bert(vocab_size=64).eval()
    batch = _batch()
    for func in (plain, keywords):
        loss = Trainer(model, _args(tmp_path), compute_loss_func=func).compute_loss(model, batch)
        torch.testing.assert_close(loss, model(**batch).loss)
    assert calls == [(6,), ["num_items_in_batch"]]


@pytest.mark.parametrize("func, message", [
    ("x", "Trainer: compute_loss_func must be a function (outputs, labels, num_items_in_batch=None) or None, "
          "got 'x' (str)"),
    (lambda outputs: outputs, "Trainer: compute_loss_func <lambda>(outputs) must take (outputs, labels), with "
                              "num_items_in_batch=None optionally"),
])
def test_a_compute_loss_func_that_cannot_be_called_is_one_sentence(func, message, tmp_path):
    with pytest.raises(SeqtuneError) as info:
        Trainer(tiny_bert(vocab_size=64), _args(tmp_path), compute_loss_func=func)
    assert str(info.value) == message
