"""The one streaming evaluation loop: attack a test set batch by batch, keep only counts.

Every evaluation (the cascade of :mod:`utils.evaluation.ensemble`, of which a single attack
is the one-member case, and the perturbations of ``advtest_others.py`` in
:mod:`utils.evaluation.perturbation`) is this loop with its own ``attack_batch`` and
metric hooks, so input validation, batching, the progress bar, resume and the accuracy
summary are written once:

    outcome = stream(len(x), batch_size, lambda b, part: BatchOutcome(...),
                     [Accuracy(targeted=False)], progress=True)

``attack_batch(b, part)`` attacks examples ``x[part]`` (batch number ``b``) and returns a
:class:`BatchOutcome`; each :class:`Metric` folds it into running counts, so memory stays
flat in the number of examples (per-example state is at most a few ``(N,)`` int8 arrays).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional, Protocol, Sequence

import keras
import numpy as np

from utils.errors import UsageError, check_count


@dataclasses.dataclass
class BatchOutcome:
    """One attacked batch of ``B`` examples, as the metric hooks see it.

    ``part``: the examples' positions in the test set; ``labels`` / ``targets``: ``(B,)``
    int class indices (``targets`` None when untargeted); ``clean_correct`` /
    ``adv_correct`` / ``target_hit``: ``(B,)`` bool; ``clean_logits`` / ``adv_logits``:
    ``(B, L)`` where a hook needs them (detection scores); ``x`` / ``x_adv``: the inputs
    and their perturbed versions where a hook needs them (distortion norms), in the units
    the hook documents; ``extra``: what one evaluation alone needs (e.g. the cascade's
    ``broken_by``).
    """

    part: slice
    labels: np.ndarray
    clean_correct: np.ndarray
    adv_correct: np.ndarray
    targets: Optional[np.ndarray] = None
    target_hit: Optional[np.ndarray] = None
    clean_logits: Optional[np.ndarray] = None
    adv_logits: Optional[np.ndarray] = None
    x: Optional[np.ndarray] = None
    x_adv: Optional[np.ndarray] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)


class Metric(Protocol):
    """A per-batch hook: ``update`` folds one :class:`BatchOutcome` in; ``fields(n)``
    returns its record fields once the ``n`` examples are done."""

    def update(self, out: BatchOutcome) -> None: ...

    def fields(self, n: int) -> Dict[str, Any]: ...


@dataclasses.dataclass
class Accuracy:
    """Clean and adversarial accuracy (and, targeted, the target hit rate).

    Fields: ``targeted``, ``n``, ``clean_correct``, ``clean_accuracy``, ``adv_correct``,
    ``adv_accuracy`` (still classified as the true label) and, targeted,
    ``target_hits``, ``target_success``; rates are fractions in [0, 1]."""

    targeted: bool
    clean_correct: int = 0
    adv_correct: int = 0
    target_hits: int = 0

    def update(self, out: BatchOutcome) -> None:
        self.clean_correct += int(np.sum(out.clean_correct))
        self.adv_correct += int(np.sum(out.adv_correct))
        if self.targeted:
            self.target_hits += int(np.sum(out.target_hit))

    def fields(self, n: int) -> Dict[str, Any]:
        return accuracy_fields(n, self.clean_correct, self.adv_correct,
                               self.target_hits if self.targeted else None)


def accuracy_fields(n: int, clean_correct: int, adv_correct: int,
                    target_hits: Optional[int]) -> Dict[str, Any]:
    """The accuracy part of every evaluation record (``target_hits`` None: untargeted)."""
    result: Dict[str, Any] = dict(targeted=target_hits is not None, n=n,
                                  clean_correct=clean_correct,
                                  clean_accuracy=clean_correct / n,
                                  adv_correct=adv_correct, adv_accuracy=adv_correct / n)
    if target_hits is not None:
        result.update(target_hits=target_hits, target_success=target_hits / n)
    return result


def logits_outcome(part: slice, labels: np.ndarray, targets: Optional[np.ndarray],
                   clean_logits: np.ndarray, adv_logits: np.ndarray) -> BatchOutcome:
    """The :class:`BatchOutcome` of a batch judged by its clean and adversarial logits
    ``(B, L)``: correct = argmax is the label; target hit = argmax is the target."""
    adv_pred = adv_logits.argmax(axis=-1)
    return BatchOutcome(part, labels, clean_correct=clean_logits.argmax(axis=-1) == labels,
                        adv_correct=adv_pred == labels, targets=targets,
                        target_hit=None if targets is None else adv_pred == targets,
                        clean_logits=clean_logits, adv_logits=adv_logits)


def stream(n: int, batch_size: int, attack_batch: Callable[[int, slice], BatchOutcome],
           metrics: Sequence[Metric], *, first_batch: int = 0,
           after_batch: Optional[Callable[[int, BatchOutcome], None]] = None,
           progress: bool = False) -> Dict[str, Any]:
    """Run ``attack_batch`` over batches ``first_batch, ...`` of ``n`` examples and return
    the metrics' fields merged in order.

    Args:
        n: number of examples (> 0); batch ``b`` covers ``[b * batch_size, ...)``.
        batch_size: examples per batch (>= 1).
        attack_batch: ``(b, part) -> BatchOutcome`` for the examples ``part``.
        metrics: hooks updated with every batch's outcome, in order.
        first_batch: the first batch to attack (a resumed evaluation restores its
            metrics' counts and starts later).
        after_batch: called with ``(b, outcome)`` after the metrics (e.g. to save
            resumable state).
        progress: a ``keras.utils.Progbar`` showing the running adversarial accuracy.
    """
    check_count("batch_size", batch_size)
    bar = None
    if progress:
        bar = keras.utils.Progbar(n, stateful_metrics=["adv_acc"], unit_name="example")
    adv_correct, first = 0, first_batch * batch_size
    for b in range(first_batch, -(-n // batch_size)):
        part = slice(b * batch_size, min((b + 1) * batch_size, n))
        out = attack_batch(b, part)
        for metric in metrics:
            metric.update(out)
        if after_batch is not None:
            after_batch(b, out)
        adv_correct += int(np.sum(out.adv_correct))
        if bar is not None:
            bar.update(part.stop, values=[("adv_acc", adv_correct / (part.stop - first))],
                       finalize=False)
    if bar is not None:
        bar.update(n, finalize=True)
    fields: Dict[str, Any] = {}
    for metric in metrics:
        fields.update(metric.fields(n))
    return fields


# ---------------------------------------------------------------- validation, once

def class_indices(y: Any, name: str) -> np.ndarray:
    """``(N,)`` int64 class indices from indices or one-hot rows."""
    y = np.asarray(y)
    if y.ndim == 2:
        y = y.argmax(axis=-1)
    if y.ndim != 1:
        raise UsageError(f"{name} must be class indices (N,) or one-hot (N, L), got {y.shape}")
    return y.astype(np.int64)


def check_examples(x: np.ndarray, y: np.ndarray, targets: Optional[np.ndarray],
                   num_classes: int, batch_size: int) -> None:
    """What every evaluation needs of its inputs: as many labels as images (> 0), a
    valid batch size, labels in ``[0, num_classes)``, and targets (if any) of the labels'
    shape, valid, and never the true label. :class:`UsageError` otherwise."""
    if len(x) != len(y) or len(x) == 0:
        raise UsageError(f"need as many labels as images (> 0), got {len(x)} images and "
                         f"{len(y)} labels")
    check_count("batch_size", batch_size)
    if y.min() < 0 or y.max() >= num_classes:
        raise UsageError(f"labels must lie in [0, {num_classes}) for this model")
    if targets is not None:
        if np.shape(targets) != y.shape:
            raise UsageError(f"targets shape {np.shape(targets)} != labels shape {y.shape}")
        if np.any(targets == y) or np.min(targets) < 0 or np.max(targets) >= num_classes:
            raise UsageError("every target must be a valid class other than the true label")


def draw_targets(y: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    """Targets uniform among the ``num_classes - 1`` wrong labels of each example.

    Args:
        y: ``(N,)`` integer class indices in ``[0, num_classes)``.
        num_classes: ``L >= 2``.
        seed: NumPy seed; the same ``(y, num_classes, seed)`` gives the same targets.

    Returns:
        ``(N,)`` int32 targets with ``targets[i] != y[i]``.
    """
    if int(num_classes) < 2:
        raise UsageError(f"targeted attacks need at least 2 classes, got {num_classes}")
    y = class_indices(y, "y")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise UsageError(f"labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    shift = np.random.default_rng(seed).integers(1, num_classes, size=y.shape)
    return ((y + shift) % num_classes).astype(np.int32)
