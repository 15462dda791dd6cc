import random

from seqtune.data.sampling import eval_batches, train_batches


def _padding(batches, lengths):
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1 - sum(lengths) / padded


def test_each_sample_once_per_epoch_same_order_for_same_seed():
    lengths = [random.Random(i).randint(5, 100) for i in range(1001)]
    batches = train_batches(lengths, 8, seed=42, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(1001))
    assert batches == train_batches(lengths, 8, seed=42, epoch=0)
    assert batches != train_batches(lengths, 8, seed=42, epoch=1)
    assert batches != train_batches(lengths, 8, seed=43, epoch=0)


def test_grouping_cuts_padding_and_keeps_order_random():
    lengths = [random.Random(i).randint(5, 100) for i in range(2000)]
    grouped = train_batches(lengths, 8, seed=0, epoch=0, group_by_length=True)
    plain = train_batches(lengths, 8, seed=0, epoch=0, group_by_length=False)
    assert _padding(grouped, lengths) < 0.05 < 0.3 < _padding(plain, lengths)
    first_lengths = [max(lengths[i] for i in b) for b in grouped]
    assert first_lengths != sorted(first_lengths, reverse=True)  # not one long sorted sweep


def test_drop_last():
    assert [len(b) for b in train_batches([3] * 10, 4, 0, 0, drop_last=True)] == [4, 4]


def test_eval_batches_sorted_longest_first():
    lengths = [3, 9, 1, 7]
    assert eval_batches(lengths, 2) == [[1, 3], [0, 2]]


def test_length_grouping_by_default_for_single_label_classification_only():
    from types import SimpleNamespace

    from seqtune.data.sampling import groups_by_length

    def model(**config):
        return SimpleNamespace(config=SimpleNamespace(**config))

    assert groups_by_length(None, model(num_labels=3, problem_type=None))
    assert not groups_by_length(None, model(num_labels=4, problem_type="multi_label_classification"))
    assert not groups_by_length(None, model(num_labels=1, problem_type=None))
    assert not groups_by_length(None, model(num_labels=2, problem_type="regression"))
    assert groups_by_length(True, model(num_labels=1)) and not groups_by_length(False, model(num_labels=3))
