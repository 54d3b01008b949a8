"""The one streaming loop: batching, resume, metric hooks, validation."""
import numpy as np
import pytest

from utils.errors import UsageError
from utils.evaluation.stream import (Accuracy, BatchOutcome, accuracy_fields, check_examples,
                                     class_indices, logits_outcome, stream)

LABELS = np.array([0, 1, 2, 0, 1, 2, 0])
CLEAN = np.array([1, 1, 1, 0, 1, 1, 0], bool)
ADV = np.array([1, 0, 0, 0, 1, 0, 0], bool)


def outcome(b: int, part: slice) -> BatchOutcome:
    return BatchOutcome(part, LABELS[part], clean_correct=CLEAN[part], adv_correct=ADV[part])


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 50])
def test_counts_do_not_depend_on_batch_size(batch_size):
    fields = stream(len(LABELS), batch_size, outcome, [Accuracy(targeted=False)])
    assert fields == dict(targeted=False, n=7, clean_correct=5, clean_accuracy=5 / 7,
                          adv_correct=2, adv_accuracy=2 / 7)


def test_batches_cover_each_example_once_and_resume_starts_later():
    seen = []
    stream(7, 3, lambda b, part: (seen.append((b, part.start, part.stop)), outcome(b, part))[1],
           [])
    assert seen == [(0, 0, 3), (1, 3, 6), (2, 6, 7)]
    seen.clear()
    after = []
    stream(7, 3, lambda b, part: (seen.append(b), outcome(b, part))[1], [], first_batch=1,
           after_batch=lambda b, out: after.append((b, out.part.stop)))
    assert seen == [1, 2] and after == [(1, 6), (2, 7)]


def test_targeted_fields_and_logits_outcome():
    clean = np.eye(3)[[0, 1, 1]]          # predictions 0, 1, 1
    adv = np.eye(3)[[2, 1, 0]]            # predictions 2, 1, 0
    out = logits_outcome(slice(0, 3), np.array([0, 1, 2]), np.array([2, 0, 0]), clean, adv)
    assert out.clean_correct.tolist() == [True, True, False]
    assert out.adv_correct.tolist() == [False, True, False]
    assert out.target_hit.tolist() == [True, False, True]
    acc = Accuracy(targeted=True)
    acc.update(out)
    assert acc.fields(3) == accuracy_fields(3, 2, 1, 2)
    assert acc.fields(3)["target_success"] == 2 / 3


def test_validation_once():
    x, y = np.zeros((4, 2)), np.array([0, 1, 2, 1])
    check_examples(x, y, np.array([1, 2, 0, 0]), 3, 2)
    for bad in [dict(x=np.zeros((3, 2))), dict(batch_size=0), dict(batch_size=1.5),
                dict(num_classes=2), dict(targets=np.array([0, 2, 0, 0])),
                dict(targets=np.array([1, 2]))]:
        args = dict(x=x, y=y, targets=None, num_classes=3, batch_size=2)
        args.update(bad)
        with pytest.raises(UsageError):
            check_examples(**args)
    assert class_indices(np.eye(3)[[2, 0]], "y").tolist() == [2, 0]
    with pytest.raises(UsageError):
        class_indices(np.zeros((2, 2, 2)), "y")
