"""Shared fixtures: a tiny randomly initialised BERT, the embedded tokenizer, GLUE's real files."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
GLUE_DIR = (ROOT.parent / "shared" / "datasets" / "glue").resolve()


def tiny_bert(num_labels: int = 2, vocab_size: int = 30522, seed: int = 0, **config_overrides):
    """A 2-layer, hidden-32 BERT classifier built from its config: trains in seconds."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=num_labels,
                        **config_overrides)
    return BertForSequenceClassification(config)


def toy_rows(n: int, seed: int = 0, vocab: int = 50) -> list[dict]:
    """A learnable task: label 1 when token 7 occurs in the sequence (lengths vary)."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        length = int(torch.randint(4, 16, (1,), generator=generator))
        ids = torch.randint(10, vocab, (length,), generator=generator).tolist()
        label = i % 2
        if label:
            ids[int(torch.randint(1, length, (1,), generator=generator))] = 7
        rows.append({"input_ids": [1, *ids], "attention_mask": [1] * (length + 1), "label": label})
    return rows


@pytest.fixture
def glue_dir() -> Path:
    if not (GLUE_DIR / "MRPC" / "train.tsv").is_file():
        pytest.skip(f"GLUE MRPC is not at {GLUE_DIR} (the shared data beside the checkout)")
    return GLUE_DIR


@pytest.fixture
def unreachable_network(monkeypatch) -> list:
    """Online mode on a network that never answers; returns the timeouts each connection was given."""
    import socket

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    tried: list = []

    def never_answers(address, timeout=None, **kwargs):
        tried.append(timeout)
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", never_answers)
    return tried


@pytest.fixture(scope="session")
def embedded_tokenizer():
    from transformers import AutoTokenizer

    from seqtune import default_model

    return AutoTokenizer.from_pretrained(default_model())


@pytest.fixture(autouse=True)
def _quiet_and_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    os.environ.pop("GLUE_DIR", None)


TOPICS = {"sports": ["match", "goal", "team", "coach", "league"],
          "food": ["pasta", "soup", "bread", "cheese", "salad"],
          "tech": ["laptop", "code", "chip", "server", "phone"]}
FILLER = ["the", "a", "today", "really", "we", "saw", "some", "and", "very", "new"]


def topic_rows(n: int, seed: int = 0) -> list[dict]:
    """A made-up 3-class dataset: the topic words decide the label; filler words are noise."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = list(TOPICS)[i % 3]
        words = rng.sample(FILLER, 4) + rng.sample(TOPICS[label], 2)
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return rows


def multi_topic_rows(n: int, seed: int = 0) -> list[dict]:
    """Made-up multi-label rows: each row holds 0, 1 or 2 topics, two words of each; "|" joins the labels."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        labels = sorted(rng.sample(list(TOPICS), [0, 1, 1, 2][i % 4]))
        words = rng.sample(FILLER, 4) + [w for label in labels for w in rng.sample(TOPICS[label], 2)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": "|".join(labels)})
    return rows


def write_csv(path: Path, rows: list[dict]) -> str:
    """rows (text, label) as a CSV file with a header; returns its path."""
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_tokenizer) -> Path:
    """A tiny random BERT with the embedded model's tokenizer, saved as a model folder."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    tiny_bert().save_pretrained(folder)
    embedded_tokenizer.save_pretrained(folder)
    return folder
