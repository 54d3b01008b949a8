"""Crafting class-center sets: the registry, the Max-Mahalanobis (MM) centers and friends.

Every center set is one function registered with ``@register_centers(name)`` that returns
*unit-norm* centers; :func:`get_centers` scales them by ``C_MM`` (the ``mean_var`` flag).

    centers = get_centers("mm", num_classes=10, feature_dim=64, c_mm=10.0)  # (10, 64)
    gram = centers @ centers.T  # 100 on the diagonal, -100/9 off it
"""
from __future__ import annotations

import inspect
import logging
import math
import operator
from typing import Any, Protocol

import numpy as np

from utils.errors import UsageError
from utils.registry import Registry

logger = logging.getLogger(__name__)


class CenterCrafter(Protocol):
    """Contract of a registered center set.

    ``crafter(num_classes, feature_dim, *, seed=0)`` returns a float64 array of shape
    ``(num_classes, feature_dim)`` whose rows have unit L2 norm (dimensionless; the scale
    ``C_MM`` is applied by :func:`get_centers` or at load time). Deterministic in ``seed``.
    A crafter may take more keyword options (:func:`get_centers` passes those it names);
    ``hierarchical`` is the one set whose rows are not unit norm (see its docstring).
    """

    def __call__(self, num_classes: int, feature_dim: int, *, seed: int = 0) -> np.ndarray:
        ...


CENTER_SETS: Registry[CenterCrafter] = Registry("center set")
register_centers = CENTER_SETS.register


def check_sizes(num_classes: int, feature_dim: int) -> tuple[int, int]:
    """Validated ``(num_classes, feature_dim)`` as ints; :class:`UsageError` otherwise."""
    try:
        num_classes_int = operator.index(num_classes)
        feature_dim_int = operator.index(feature_dim)
    except TypeError:
        raise UsageError(
            f"num_classes and feature_dim must be integers, got {num_classes!r} and "
            f"{feature_dim!r}; pass whole numbers such as 10 and 64"
        ) from None
    if isinstance(num_classes, bool) or num_classes_int < 2:
        raise UsageError(
            f"num_classes must be an integer >= 2, got {num_classes!r}; "
            "pass the dataset's number of classes"
        )
    if isinstance(feature_dim, bool) or feature_dim_int < 1:
        raise UsageError(
            f"feature_dim must be an integer >= 1, got {feature_dim!r}; "
            "pass the width of the feature layer such as 64 or 256"
        )
    return num_classes_int, feature_dim_int


def check_c_mm(c_mm: float) -> float:
    """Validated ``C_MM`` (the norm of every center) as a float; :class:`UsageError` otherwise."""
    try:
        value = float(c_mm)
    except (TypeError, ValueError):
        raise UsageError(
            f"c_mm (mean_var) must be a number, got {c_mm!r}; pass a positive C_MM such as 10"
        ) from None
    if isinstance(c_mm, bool) or not math.isfinite(value) or value <= 0.0:
        raise UsageError(
            f"c_mm (mean_var) must be finite and > 0, got {c_mm!r}; "
            "pass a positive C_MM such as 10"
        )
    return value


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (shape ``(n, d)``) divided by their L2 norms."""
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def max_cosine(centers: np.ndarray) -> float:
    """Largest cosine between two distinct rows of ``centers`` (shape ``(L, d)``, L >= 2).

    For unit rows this is ``max_{i != j} <mu_i, mu_j>``, the quantity ``minmax`` minimises;
    it is at least ``-1/(L-1)``, with equality exactly for MM centers.
    """
    unit = _normalize_rows(np.asarray(centers, dtype=np.float64))
    gram = unit @ unit.T
    np.fill_diagonal(gram, -np.inf)
    return float(gram.max())


def mm_algorithm1(num_classes: int, feature_dim: int) -> np.ndarray:
    """Algorithm 1 of Pang et al. (2020), i.e. the original ``craft_MMcenters.m``.

    ``mu_1 = e_1``; for ``i = 2..L``, for ``j < i``:
    ``mu_i[j] = -(1/(L-1) + <mu_i, mu_j>) / mu_j[j]`` (with ``mu_i`` as filled so far), then
    ``mu_i[i] = sqrt(|1 - ||mu_i||^2|)``. Sums use ``math.fsum`` over elementwise products,
    so the result is bit-identical on every platform and BLAS build. The last row's
    diagonal entry is mathematically 0 (the row already has unit norm); rounding makes it
    about 1e-8 when ``L <= d``, as in the original. When ``L = d + 1`` it would fall in
    column ``d`` and is dropped.

    Args:
        num_classes: ``L >= 2``.
        feature_dim: ``d >= L - 1``.

    Returns:
        float64 array of shape ``(L, d)`` with unit rows and Gram matrix ``1`` on the
        diagonal, ``-1/(L-1)`` off it (to about 1e-15).
    """
    num_classes, feature_dim = check_sizes(num_classes, feature_dim)
    if num_classes > feature_dim + 1:
        raise UsageError(
            f"Algorithm 1 needs num_classes <= feature_dim + 1, got {num_classes} > "
            f"{feature_dim} + 1; use center set 'minmax' or a larger feature_dim"
        )
    inv = 1.0 / (num_classes - 1)
    mu = np.zeros((num_classes, feature_dim), dtype=np.float64)
    mu[0, 0] = 1.0
    for i in range(1, num_classes):
        row = mu[i]
        for j in range(i):
            # Row j is zero beyond column j and row i is zero from column j on.
            dot = math.fsum(row[:j] * mu[j, :j])
            row[j] = -(inv + dot) / mu[j, j]
        if i < feature_dim:
            row[i] = math.sqrt(abs(1.0 - math.fsum(row[:i] * row[:i])))
    return mu


@register_centers("mm")
def mm_centers(num_classes: int, feature_dim: int, *, seed: int = 0) -> np.ndarray:
    """Max-Mahalanobis centers: unit rows, pairwise cosine ``-1/(L-1)``; shape ``(L, d)``.

    Uses :func:`mm_algorithm1` (``seed`` is ignored) when ``L <= d + 1``. Otherwise MM
    centers do not exist; like the original repository it falls back to the min-max
    optimisation (:func:`minmax_centers` with ``seed``) and logs that at INFO level.
    """
    num_classes, feature_dim = check_sizes(num_classes, feature_dim)
    if num_classes <= feature_dim + 1:
        return mm_algorithm1(num_classes, feature_dim)
    logger.info(
        "MM centers need num_classes <= feature_dim + 1 (got L=%d, d=%d); "
        "using the min-max optimised centers ('minmax', seed=%d) instead",
        num_classes, feature_dim, seed,
    )
    return minmax_centers(num_classes, feature_dim, seed=seed)


@register_centers("minmax")
def minmax_centers(
    num_classes: int,
    feature_dim: int,
    *,
    seed: int = 0,
    steps: int = 2000,
    lr_range: tuple[float, float] = (5e-2, 1e-4),
    temperature_range: tuple[float, float] = (1e-1, 1e-3),
) -> np.ndarray:
    """Unit centers minimising ``max_{i != j} <mu_i, mu_j>`` (works for any ``L``, ``d``).

    The original (``craft_MMLDA_means_whenDlessthanL.py``) ran TF1 Adam on the
    subgradient of that max. Here Adam runs in numpy on a log-sum-exp surrogate
    ``t * log sum_{i != j} exp(<mu_i, mu_j> / t)`` whose temperature ``t`` and learning
    rate decay geometrically; gradients are projected onto the sphere's tangent space and
    rows renormalised after every step; the best iterate (by the exact max) is returned.
    Cost ``O(steps * L^2 * d)``: about 0.5 s for ``L=100, d=16``.

    Args:
        num_classes: ``L >= 2``.
        feature_dim: ``d >= 1``.
        seed: seed of ``np.random.default_rng`` drawing the Gaussian initialisation.
        steps: Adam steps (>= 1).
        lr_range: (first, last) Adam learning rate, in unit-sphere coordinates.
        temperature_range: (first, last) surrogate temperature, in cosine units.

    Returns:
        float64 array of shape ``(L, d)`` with unit rows. For ``L <= d + 1`` its max cosine
        is close to the bound ``-1/(L-1)``.
    """
    num_classes, feature_dim = check_sizes(num_classes, feature_dim)
    steps = max(int(steps), 1)
    rng = np.random.default_rng(seed)
    x = _normalize_rows(rng.standard_normal((num_classes, feature_dim)))
    off_diag = ~np.eye(num_classes, dtype=bool)
    moment1, moment2 = np.zeros_like(x), np.zeros_like(x)
    beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
    best, best_cost = x, math.inf
    for step in range(steps + 1):
        gram = x @ x.T
        cost = float(gram[off_diag].max())
        if cost < best_cost:
            best, best_cost = x, cost
        if step == steps:
            break
        frac = step / max(steps - 1, 1)
        temperature = temperature_range[0] * (temperature_range[1] / temperature_range[0]) ** frac
        lr = lr_range[0] * (lr_range[1] / lr_range[0]) ** frac
        # Shifted by the max and clipped so exp never produces (slow) subnormals.
        weights = np.exp(np.clip((gram - cost) / temperature, -60.0, 0.0))
        weights[~off_diag] = 0.0
        grad = 2.0 * (weights / weights.sum()) @ x
        grad -= np.sum(grad * x, axis=1, keepdims=True) * x
        moment1 = beta1 * moment1 + (1.0 - beta1) * grad
        moment2 = beta2 * moment2 + (1.0 - beta2) * grad * grad
        m_hat = moment1 / (1.0 - beta1 ** (step + 1))
        v_hat = moment2 / (1.0 - beta2 ** (step + 1))
        x = _normalize_rows(x - lr * m_hat / (np.sqrt(v_hat) + adam_eps))
    return best


@register_centers("random")
def random_centers(num_classes: int, feature_dim: int, *, seed: int = 0) -> np.ndarray:
    """Rows drawn uniformly on the unit sphere (normalised Gaussians); shape ``(L, d)``.

    The "MMC-10 (rand)" ablation of the paper. ``seed`` seeds ``np.random.default_rng``.
    """
    num_classes, feature_dim = check_sizes(num_classes, feature_dim)
    rng = np.random.default_rng(seed)
    return _normalize_rows(rng.standard_normal((num_classes, feature_dim)))


def get_centers(
    name: str, num_classes: int, feature_dim: int, c_mm: float, seed: int = 0,
    **options: Any,
) -> np.ndarray:
    """Class centers ``mu*`` of the registered set ``name``, scaled to norm ``c_mm``.

    Args:
        name: a registered center set (``CENTER_SETS.names()``: mm, minmax, random, ...).
        num_classes: ``L >= 2``.
        feature_dim: ``d >= 1``.
        c_mm: ``C_MM`` (flag ``mean_var``), the L2 norm of every center; finite, > 0.
        seed: forwarded to the crafter (ignored by deterministic sets such as ``mm``).
        **options: set-specific keyword options (``hierarchical``: ``sub_ratio``); each
            crafter receives only the options its signature names.

    Returns:
        float64 array of shape ``(L, d)``; for ``mm`` with ``L <= d + 1`` its Gram matrix
        is ``c_mm**2`` on the diagonal and ``-c_mm**2/(L-1)`` off it.

    Raises:
        UsageError: unknown ``name`` or invalid sizes / ``c_mm``.
    """
    crafter = CENTER_SETS.get(name)
    num_classes, feature_dim = check_sizes(num_classes, feature_dim)
    scale = check_c_mm(c_mm)
    accepted = inspect.signature(crafter).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted}
    unit = np.asarray(crafter(num_classes, feature_dim, seed=seed, **kwargs), dtype=np.float64)
    if unit.shape != (num_classes, feature_dim):
        raise ValueError(
            f"center set {name!r} returned shape {unit.shape}, "
            f"expected {(num_classes, feature_dim)}"
        )
    return unit * scale
