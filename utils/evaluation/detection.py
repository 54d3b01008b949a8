"""Detecting adversarial inputs by a confidence score: scores and the ROC AUC.

The original ``advtest_iterative_blackbox.py --is_calculate_auc`` separates clean test
inputs (positives) from their adversarial versions (negatives) by the model's confidence;
a higher score means "more clean".

    score = SCORES.get("max_softmax")              # logits (N, L) -> (N,)
    auc = roc_auc(score(clean_logits), score(adv_logits))
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import rankdata

from utils.errors import UsageError
from utils.registry import Registry

ScoreFn = Callable[[np.ndarray], np.ndarray]
SCORES: Registry[ScoreFn] = Registry("detection score")


@SCORES.register("max_logit")
def max_logit(logits: np.ndarray) -> np.ndarray:
    """``(N, L)`` logits -> ``(N,)`` largest logit."""
    return np.asarray(logits, dtype=np.float64).max(axis=-1)


@SCORES.register("max_softmax")
def max_softmax(logits: np.ndarray) -> np.ndarray:
    """``(N, L)`` logits -> ``(N,)`` largest softmax probability (numerically stable)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return 1.0 / np.exp(z).sum(axis=-1)  # exp(max - max) = 1 over the partition sum


def roc_auc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` separating positives from negatives.

    The Mann-Whitney U statistic: P(s_pos > s_neg) + 1/2 P(s_pos == s_neg), from average
    ranks in O(n log n).

    Args:
        scores_pos: ``(P,)`` scores of the positives (label 1, here clean inputs).
        scores_neg: ``(M,)`` scores of the negatives (label 0, adversarial inputs).

    Returns:
        AUC in [0, 1]: 1.0 when every positive scores above every negative, 0.5 for ties.
    """
    pos = np.asarray(scores_pos, dtype=np.float64).ravel()
    neg = np.asarray(scores_neg, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise UsageError(f"AUC needs positives and negatives, got {pos.size} and {neg.size}")
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(neg))):
        raise UsageError("AUC scores must be finite")
    ranks = rankdata(np.concatenate([pos, neg]))  # ties get their average rank
    u_stat = ranks[:pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u_stat / (pos.size * neg.size))
