"""Hierarchical Max-Mahalanobis (HM) centers, paper 002 appendix B.3.

A class tree (CIFAR-100: 20 super-classes of 5 classes each) gets MM centers at every
level: ``mu_l = mu_super(l) + r * mu_sub(l)`` with ``mu_super`` the MM centers of the
super-classes (unit norm, ``C^1 = C_MM`` after scaling) and ``mu_sub`` the MM centers of
the classes inside one super-class (unit norm, so ``C^2 = r * C_MM``, ``r << 1``). As in
the paper's example, every super-class uses the same sub-center set; the ``j``-th class
of a super-class (by class index) gets ``mu_sub[j]``. When ``d`` leaves room, the
sub-centers are moved (a coordinate permutation, one of the paper's "rotations") into
coordinates the super-centers do not use, so the two levels are orthogonal: every row
then has norm ``C_MM sqrt(1 + r^2)`` and ``<mu_l, mu_k> = C1^2 <u, u'> + C2^2 <v, v'>``.

    centers = get_centers("hierarchical", 100, 256, c_mm=10.0, sub_ratio=0.1)
    check_coarse_labels(data.y_train, data.coarse_train, data.num_classes)
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import numpy as np

from ts_centers.builders import check_sizes, mm_centers, register_centers
from utils.errors import UsageError

# CIFAR-100's fine -> coarse label map (the dataset's own "coarse_labels" field, by fine index).
CIFAR100_COARSE_OF = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)
# Class trees known by number of classes; only CIFAR-100 ships coarse labels.
KNOWN_TREES: Dict[int, Sequence[int]] = {len(CIFAR100_COARSE_OF): CIFAR100_COARSE_OF}
DEFAULT_SUB_RATIO = 0.1


def check_sub_ratio(sub_ratio: float) -> float:
    """``C^2 / C^1`` as a float in ``(0, 1)``; UsageError otherwise."""
    value = float(sub_ratio)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise UsageError(f"sub_center_ratio (C^2/C^1 of hierarchical centers) must lie in "
                         f"(0, 1), got {sub_ratio}; the paper wants C^2 << C^1, e.g. 0.1")
    return value


def _tree_for(num_classes: int, coarse_of: Optional[Sequence[int]]) -> np.ndarray:
    if coarse_of is None:
        if num_classes not in KNOWN_TREES:
            raise UsageError(
                f"hierarchical centers need coarse (super-class) labels, and no class tree "
                f"is known for {num_classes} classes (only CIFAR-100's); use --centers=mm "
                "or --dataset=cifar100")
        coarse_of = KNOWN_TREES[num_classes]
    tree = np.asarray(coarse_of, dtype=np.int64)
    if tree.shape != (num_classes,) or tree.min() < 0:
        raise UsageError(f"coarse_of must give a super-class index >= 0 for each of the "
                         f"{num_classes} classes, got shape {tree.shape}")
    return tree


@register_centers("hierarchical")
def hierarchical_centers(num_classes: int, feature_dim: int, *, seed: int = 0,
                         sub_ratio: float = DEFAULT_SUB_RATIO,
                         coarse_of: Optional[Sequence[int]] = None) -> np.ndarray:
    """HM centers ``mu_l = u_super(l) + sub_ratio * v_sub(l)``; shape ``(L, d)``, float64.

    Unlike the other sets the rows are NOT unit norm: the super-class part has norm 1 and
    the sub-class part norm ``sub_ratio`` (``get_centers`` then scales both by ``C_MM``).

    Args:
        num_classes: ``L``.
        feature_dim: ``d``; MM centers need ``d >= S - 1`` for ``S`` super-classes (else
            the min-max fallback of :func:`mm_centers` is used, seeded with ``seed``).
        seed: forwarded to :func:`mm_centers`.
        sub_ratio: ``C^2 / C^1`` in ``(0, 1)``.
        coarse_of: super-class index of every class; default: the known tree for ``L``.

    Raises:
        UsageError: no tree for ``L`` classes, a bad ``coarse_of`` or ``sub_ratio``.
    """
    num_classes, feature_dim = check_sizes(num_classes, feature_dim)
    ratio = check_sub_ratio(sub_ratio)
    tree = _tree_for(num_classes, coarse_of)
    supers = np.unique(tree)
    if len(supers) < 2:
        raise UsageError("hierarchical centers need at least 2 super-classes")
    top = mm_centers(len(supers), feature_dim, seed=seed)
    sizes = [int(np.sum(tree == c)) for c in supers]
    # Algorithm 1 fills the first L columns; shift the sub-level past the super-level's.
    shift = len(supers) if feature_dim >= len(supers) + max(sizes) else 0
    centers = np.empty((num_classes, feature_dim), dtype=np.float64)
    sub_sets: Dict[int, np.ndarray] = {}
    for row, (super_class, size) in enumerate(zip(supers, sizes)):
        if size not in sub_sets:  # a single class needs no sub-center
            sub = (mm_centers(size, feature_dim, seed=seed) if size > 1
                   else np.zeros((1, feature_dim)))
            sub_sets[size] = np.roll(sub, shift, axis=1)
        centers[tree == super_class] = top[row] + ratio * sub_sets[size]
    return centers


def check_coarse_labels(y: np.ndarray, coarse: Optional[np.ndarray], num_classes: int,
                        dataset: str = "this dataset") -> None:
    """UsageError unless the data's ``(fine, coarse)`` label pairs follow the known tree.

    Args:
        y: ``(N,)`` fine labels.
        coarse: ``(N,)`` super-class labels, or None (no coarse labels, e.g. MNIST).
        num_classes: ``L``.
        dataset: its name, for the message.
    """
    if coarse is None:
        raise UsageError(f"--centers=hierarchical needs coarse (super-class) labels and "
                         f"{dataset} has none (cifar100 has); use --centers=mm")
    tree = _tree_for(num_classes, None)
    mismatch = np.flatnonzero(tree[np.asarray(y)] != np.asarray(coarse))
    if mismatch.size:
        i = int(mismatch[0])
        raise UsageError(f"{dataset}'s coarse labels do not follow the CIFAR-100 tree "
                         f"(example {i}: class {int(y[i])} in super-class {int(coarse[i])}, "
                         f"expected {int(tree[int(y[i])])}); check the dataset files")
