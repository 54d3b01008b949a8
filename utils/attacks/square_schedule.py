"""Square attack's schedule and patterns (Andriushchenko et al. 2020; AutoAttack's code):
the share ``p`` of pixels a window covers per query, the window sides, and the ℓ2
pseudo-Gaussian patches. Plain NumPy, computed once per run by
:mod:`utils.attacks.square`.

    sides = window_sides(5000, (28, 28, 1), "linf")   # (5000,) int, 25 at the start
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

P_INIT = 0.8
N_QUERIES = 5000
# Rescaled iteration (of 10000) after which p is divided by 2, 4, ..., 512.
P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


# ---------------------------------------------------------------- the schedule

def p_schedule(n_queries: int, p_init: float = P_INIT, rescale: bool = False) -> np.ndarray:
    """``(n_queries,)`` share of pixels the window covers at each query: ``p_init``
    divided by ``2**j``, ``j`` the number of :data:`P_HALVINGS` passed at query ``i``.

    ``rescale=False`` is AutoAttack's standard version (``SquareAttack(...,
    resc_schedule=False)``): the halvings fall at queries 10, 50, ..., 4000 whatever
    ``n_queries``. ``rescale=True`` (Square's own default) reads them at
    ``int(i / n * 10000)``: with 5000 queries at 5, 25, ..., 4000."""
    steps = np.arange(n_queries)
    if rescale:
        steps = (steps / n_queries * 10000).astype(np.int64)
    halvings = np.searchsorted(np.asarray(P_HALVINGS), steps, side="left")
    return p_init / 2.0 ** halvings


def window_sides(n_queries: int, shape: Tuple[int, ...], norm: str,
                 p_init: float = P_INIT, rescale: bool = False) -> np.ndarray:
    """``(n_queries,)`` int window side ``s = round(sqrt(p h w))``: at least 1 (ℓ∞) or
    an odd number >= 3 (ℓ2), at most ``min(h, w)``."""
    h, w = shape[0], shape[1]
    sides = np.round(np.sqrt(p_schedule(n_queries, p_init, rescale) * h * w)).astype(np.int64)
    if norm == "l2":
        sides = np.maximum(sides, 3)
        sides += 1 - sides % 2
    return np.clip(sides, 1, min(h, w))


def _eta_rectangles(rows: int, cols: int) -> np.ndarray:
    """AutoAttack's nested-rectangle bump ``(rows, cols)``, unit ℓ2 norm."""
    delta = np.zeros((rows, cols))
    cr, cc = rows // 2, cols // 2
    for k in range(max(rows // 2 + 1, cols // 2 + 1)):
        delta[max(cr - k, 0):min(cr + k + 1, rows), max(cc - k, 0):min(cc + k + 1, cols)] \
            += 1.0 / (k + 1) ** 2
    return delta / np.sqrt(np.sum(delta ** 2))


def pseudo_gaussian(side: int) -> np.ndarray:
    """``(side, side)`` float32: a bump on the top half, minus one on the bottom half,
    unit ℓ2 norm (AutoAttack's ``meta_pseudo_gaussian_pert`` before its random flip)."""
    delta = np.zeros((side, side))
    if side >= 2:
        delta[:side // 2] = _eta_rectangles(side // 2, side)
    delta[side // 2:] = -_eta_rectangles(side - side // 2, side)
    return (delta / np.sqrt(np.sum(delta ** 2))).astype(np.float32)


def pattern_table(sides: np.ndarray, shape: Tuple[int, ...]) -> Tuple[np.ndarray, np.ndarray]:
    """``(K, S, S)`` pseudo-Gaussian patterns of the distinct sides (zero-padded to
    ``S = max(h, w)``) and ``(n_queries,)`` the index of each query's pattern."""
    distinct, index = np.unique(sides, return_inverse=True)
    size = max(shape[0], shape[1])
    table = np.zeros((len(distinct), size, size), np.float32)
    for k, side in enumerate(distinct):
        table[k, :side, :side] = pseudo_gaussian(int(side))
    return table, index.astype(np.int32)
