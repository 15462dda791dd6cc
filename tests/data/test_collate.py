import numpy as np
import torch

from seqtune import DataCollatorWithPadding
from seqtune.data.collate import with_length_buckets


class FakeTokenizer:
    pad_token_id = 9
    padding_side = "right"


ROWS = [
    {"sentence1": "a b", "idx": 4, "input_ids": [1, 2, 3], "attention_mask": [1, 1, 1],
     "token_type_ids": [0, 0, 1], "label": 1},
    {"sentence1": "c", "idx": 5, "input_ids": [1, 2], "attention_mask": [1, 1],
     "token_type_ids": [0, 1], "label": 0},
]


def test_pads_to_longest_and_renames_label():
    batch = DataCollatorWithPadding(FakeTokenizer())(ROWS)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["input_ids"].tolist() == [[1, 2, 3], [1, 2, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1], [0, 1, 0]]
    assert batch["labels"].tolist() == [1, 0] and batch["labels"].dtype == torch.long


def test_pad_to_multiple_of_and_left_padding():
    tokenizer = FakeTokenizer()
    tokenizer.padding_side = "left"
    batch = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=4)(ROWS)
    assert batch["input_ids"].tolist() == [[9, 1, 2, 3], [9, 9, 1, 2]]


def test_float_labels_and_numpy_rows():
    rows = [{"input_ids": np.array([1, 2]), "label": 0.5}, {"input_ids": np.array([3]), "label": 2.0}]
    batch = DataCollatorWithPadding(FakeTokenizer())(rows)
    assert batch["labels"].dtype == torch.float32 and batch["input_ids"].tolist() == [[1, 2], [3, 9]]


def test_real_tokenizer_pairs(embedded_tokenizer):
    encoded = embedded_tokenizer(["a short one", "a much longer sentence than the other"], ["b", "c"])
    rows = [{k: v[i] for k, v in encoded.items()} | {"label": i} for i in range(2)]
    batch = DataCollatorWithPadding(tokenizer=embedded_tokenizer)(rows)
    width = max(len(r["input_ids"]) for r in rows)
    assert batch["input_ids"].shape == (2, width)
    assert int(batch["attention_mask"][0].sum()) == len(rows[0]["input_ids"])


def test_length_buckets_round_our_collator_only():
    ours = DataCollatorWithPadding(FakeTokenizer())
    rounded = with_length_buckets(ours, 8)
    assert rounded is not ours and ours.pad_to_multiple_of is None  # the caller's object is left alone
    assert rounded(ROWS)["input_ids"].shape == (2, 8)
    assert with_length_buckets(ours, None) is ours and with_length_buckets(ours, 1) is ours
    own_multiple = DataCollatorWithPadding(FakeTokenizer(), pad_to_multiple_of=4)
    assert with_length_buckets(own_multiple, 8) is own_multiple
    foreign = lambda rows: rows
    assert with_length_buckets(foreign, 8) is foreign


def test_a_pad_token_chosen_after_the_collator_was_made_counts():
    tokenizer = FakeTokenizer()
    tokenizer.pad_token_id = None  # a decoder's tokenizer: no pad yet
    collator = DataCollatorWithPadding(tokenizer)
    tokenizer.pad_token_id, tokenizer.padding_side = 50, "left"  # what seqtune.models.set_padding may choose
    assert collator(ROWS)["input_ids"].tolist() == [[1, 2, 3], [50, 1, 2]]
