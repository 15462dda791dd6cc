"""The Hugging Face course's "Fine-tuning a model with the Trainer API" on GLUE MRPC, imports changed.

    python examples/mrpc_course.py [CHECKPOINT] [--max-steps N]

CHECKPOINT defaults to the embedded all-MiniLM-L6-v2; GLUE data comes from $GLUE_DIR/MRPC/.
"""

import argparse

import numpy as np
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from seqtune import DataCollatorWithPadding, Trainer, TrainingArguments, default_model, load_dataset, load_metric

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("checkpoint", nargs="?", default=None, help="model id or folder (default: embedded MiniLM)")
parser.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (a quick run)")
cli = parser.parse_args()
checkpoint = cli.checkpoint or default_model()

# ---- the course's code from here on ----
raw_datasets = load_dataset("glue", "mrpc")
tokenizer = AutoTokenizer.from_pretrained(checkpoint)


def tokenize_function(example):
    return tokenizer(example["sentence1"], example["sentence2"], truncation=True)


tokenized_datasets = raw_datasets.map(tokenize_function, batched=True)
data_collator = DataCollatorWithPadding(tokenizer=tokenizer)


def compute_metrics(eval_preds):
    metric = load_metric("glue", "mrpc")
    logits, labels = eval_preds
    predictions = np.argmax(logits, axis=-1)
    return metric.compute(predictions=predictions, references=labels)


training_args = TrainingArguments("test-trainer", eval_strategy="epoch", max_steps=cli.max_steps)
model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=2)
trainer = Trainer(model, training_args, train_dataset=tokenized_datasets["train"],
                  eval_dataset=tokenized_datasets["validation"], data_collator=data_collator,
                  tokenizer=tokenizer, compute_metrics=compute_metrics)
trainer.train()
predictions = trainer.predict(tokenized_datasets["validation"])
print(predictions.predictions.shape, predictions.label_ids.shape)   # (408, 2) (408,)
