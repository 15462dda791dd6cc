"""A fine-tuning script written for transformers' Trainer, run by seqtune: only the import block differs.

    python examples/transformers_script.py                        # GLUE MRPC ($GLUE_DIR/MRPC/), embedded model
    python examples/transformers_script.py --train t.csv --validation v.csv [--model CHECKPOINT] [--max-steps N]
    python examples/transformers_script.py --tiny --max-steps 20  # a tiny random BERT: seconds, for a smoke test

It uses the TrainingArguments a transformers script reaches for (a warmup fraction, a cosine schedule with
restarts, a named optimizer with its arguments, label smoothing, an evaluation on start and a delay, model-only
checkpoints, a data seed, a run name) and a Trainer subclass with transformers' compute_loss signature. CSV
files hold a `text` column (or `sentence1` and `sentence2`) and an integer `label` column.
"""

import argparse
import tempfile
from collections import Counter

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

import seqtune  # the preamble below only: where the embedded model lives

# ---- the import block: the only lines that differ from the transformers version ----
from seqtune import DataCollatorWithPadding, Trainer, TrainingArguments, load_dataset

# transformers:  from datasets import load_dataset
#                from transformers import DataCollatorWithPadding, Trainer, TrainingArguments
# ----

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default=None, help="model id or folder (default: the embedded all-MiniLM-L6-v2)")
parser.add_argument("--train", help="training CSV (default: GLUE MRPC)")
parser.add_argument("--validation", help="validation CSV")
parser.add_argument("--output-dir", default="runs/transformers-script")
parser.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (a quick run)")
parser.add_argument("--tiny", action="store_true", help="a tiny random BERT with the embedded tokenizer")
cli = parser.parse_args()
checkpoint = cli.model or seqtune.default_model()
if cli.tiny:  # a 2-layer BERT of width 32, saved as a model folder, so that from_pretrained below reads it
    tiny_folder = tempfile.TemporaryDirectory(prefix="tiny-bert-")  # removed when the script ends
    checkpoint = tiny_folder.name
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                             num_attention_heads=2, intermediate_size=64)).save_pretrained(checkpoint)
    AutoTokenizer.from_pretrained(seqtune.default_model()).save_pretrained(checkpoint)

# ---- the transformers script from here on ----
if cli.train:
    raw = load_dataset("csv", data_files={"train": cli.train, "validation": cli.validation or cli.train})
else:
    raw = load_dataset("glue", "mrpc")
tokenizer = AutoTokenizer.from_pretrained(checkpoint)
pair = "sentence1" in raw["train"].column_names


def tokenize(batch):
    if pair:
        return tokenizer(batch["sentence1"], batch["sentence2"], truncation=True, max_length=128)
    return tokenizer(batch["text"], truncation=True, max_length=128)


tokenized = raw.map(tokenize, batched=True)
counts = Counter(tokenized["train"]["label"])
num_labels = max(counts) + 1


def compute_metrics(eval_preds):
    logits, labels = eval_preds
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


class WeightedLossTrainer(Trainer):
    """Classes weighted by their inverse frequency: the override in transformers' documentation."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        weights = torch.tensor([len(tokenized["train"]) / (num_labels * counts[c]) for c in range(num_labels)],
                               device=outputs.logits.device)
        loss = torch.nn.functional.cross_entropy(outputs.logits.float(), labels, weight=weights,
                                                 label_smoothing=self.args.label_smoothing_factor)
        return (loss, outputs) if return_outputs else loss


training_args = TrainingArguments(
    output_dir=cli.output_dir,
    max_steps=cli.max_steps,
    num_train_epochs=3,
    per_device_train_batch_size=16,
    per_device_eval_batch_size=32,
    learning_rate=3e-5,
    warmup_steps=0.1,  # a fraction of all steps (transformers 4 called it warmup_ratio; seqtune takes both)
    lr_scheduler_type="cosine_with_restarts",
    lr_scheduler_kwargs={"num_cycles": 2},
    optim="adamw_torch",
    weight_decay=0.01,
    label_smoothing_factor=0.1,
    eval_strategy="steps",
    eval_steps=0.25,
    eval_on_start=True,
    eval_delay=2,  # no evaluation before step 2 (but the one on start)
    logging_steps=0.1,
    save_strategy="steps",
    save_steps=0.5,
    save_total_limit=1,
    save_only_model=True,
    seed=42,
    data_seed=7,
    run_name="weighted-cosine",
    report_to="none",
    push_to_hub=False,
)
# ignore_mismatched_sizes: a checkpoint's classifier head of another size is replaced by a new one.
model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=num_labels,
                                                           ignore_mismatched_sizes=True)
trainer = WeightedLossTrainer(model=model, args=training_args, train_dataset=tokenized["train"],
                              eval_dataset=tokenized["validation"], data_collator=DataCollatorWithPadding(tokenizer),
                              processing_class=tokenizer, compute_metrics=compute_metrics)
trainer.train()
metrics = trainer.evaluate()
print(f"validation accuracy {metrics['eval_accuracy']:.3f}, loss {metrics['eval_loss']:.3f}")
