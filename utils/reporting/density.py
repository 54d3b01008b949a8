"""Sample density of training features around their class centers (paper 002, section 3).

002 Eq. (2) defines the sample density near a feature point as ``SD = ΔN / Vol(ΔB)``: the
number of training features in a small region ``ΔB`` over its volume. For the MMC loss the
region is the shell between two loss contours, which are spheres ``||z - mu_y||^2 = 2C``
around the preset center (002 Eq. (17)-(18)), so its Theorem 2 gives
``SD ∝ N_k p_k(C) / C^((d-1)/2)``: density grows with the class count ``N_k`` and with the
features' closeness to the center. :func:`density_profile` measures the ball version of
this: for each class ``k`` and radius ``r``, ``N_k(r)`` = the class-``k`` training features
within ``r`` of the class center, and the mean density inside that ball,
``N_k(r) / V_d(r)`` with ``V_d(r) = pi^(d/2) r^d / Gamma(d/2 + 1)``. The ball is the union of
the MMC shells of loss ``<= r^2 / 2``; for SCE (whose contours are hyperplanes, 002
Remark 1) the ball around the class mean is our choice of a comparable region, not 002's.

Everything is in natural-log space (``V_d`` overflows float64 for ``d = 64`` at ``r`` of a
few tens). Because ``V_d`` scales as ``r^d``, absolute densities of two models mostly
compare their feature scales; :func:`density_profile` therefore also reports the density
with radii in units of the mean distance between the class centers (scale-free).

    profile = density_profile(z, y, centers=mu)   # z (N, d), y (N,), mu (L, d) or None
    print(profile["median_distance"], profile["mean_log_density"])
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence

import numpy as np

from utils.errors import UsageError, check_count
from utils.reporting.analyses import centers_of, features_of

# Radii of the grid: these quantiles of the distances of all features to their class center.
DEFAULT_QUANTILES = tuple(float(q) for q in np.round(np.linspace(0.05, 1.0, 20), 2))


def log_ball_volume(d: int, r: "float | np.ndarray") -> np.ndarray:
    """``ln V_d(r) = (d/2) ln(pi) + d ln(r) - ln Gamma(d/2 + 1)`` of the d-ball of radius
    ``r`` (same shape as ``r``; ``-inf`` at ``r = 0``). ``d`` >= 1; ``r`` >= 0, in feature
    units."""
    check_count("ball dimension d", d)
    r = np.asarray(r, np.float64)
    if np.any(r < 0) or not np.all(np.isfinite(r)):
        raise UsageError("ball radii must be finite and >= 0")
    with np.errstate(divide="ignore"):
        log_r = np.log(r)
    return 0.5 * d * math.log(math.pi) + d * log_r - math.lgamma(0.5 * d + 1)


def class_means(z: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """Mean feature of each class: ``(num_classes, d)``; nan rows for classes without one."""
    return np.stack([z[y == k].mean(axis=0) if np.any(y == k) else np.full(z.shape[1], np.nan)
                     for k in range(num_classes)])


def counts_within(distances: np.ndarray, y: np.ndarray, radii: np.ndarray,
                  num_classes: int) -> np.ndarray:
    """``N_k(r)``: per class ``k`` the features (``distances`` ``(N,)`` to their own class
    center, labels ``y`` ``(N,)``) at distance ``<= r``, for each of ``radii`` ``(R,)``:
    ``(num_classes, R)`` int."""
    radii = np.asarray(radii, np.float64)
    out = np.zeros((num_classes, len(radii)), np.int64)
    for k in range(num_classes):
        out[k] = np.searchsorted(np.sort(distances[y == k]), radii, side="right")
    return out


def log_density(counts: np.ndarray, log_volume: np.ndarray) -> np.ndarray:
    """``ln(counts / V)`` from counts and ``ln V`` (broadcast); ``-inf`` where a count is 0."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(counts, np.float64)) - log_volume


def center_separation(centers: np.ndarray) -> float:
    """Mean distance between two of the ``(L, d)`` centers, nan rows (classes without
    features) left out; nan for fewer than 2."""
    centers = centers[np.all(np.isfinite(centers), axis=1)]
    pairs = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    pairs = pairs[np.triu_indices(len(centers), 1)]
    return float(pairs.mean()) if len(pairs) else float("nan")


def class_mean_spread(z: np.ndarray, y: np.ndarray, num_classes: int) -> Dict[str, float]:
    """Median distance of the features ``(N, d)`` to their class mean, the mean distance
    between two class means, and their ratio (scale-free; lower = tighter classes)."""
    means = class_means(z, y, num_classes)
    median = float(np.median(np.linalg.norm(z - means[y], axis=1)))
    separation = center_separation(means)
    return {"median_distance": median, "separation": separation,
            "ratio": median / separation if separation > 0 else float("nan")}


def finite(a: np.ndarray) -> list:
    """``a`` as (nested) lists with None for -inf / nan (JSON has neither)."""
    return np.where(np.isfinite(a), a, None).tolist()


def _checked(z: np.ndarray, y: np.ndarray, centers: Optional[np.ndarray],
             num_classes: Optional[int], quantiles: Sequence[float]
             ) -> "tuple[np.ndarray, np.ndarray, int, np.ndarray]":
    z = np.asarray(z, np.float64)
    y = np.asarray(y).astype(np.int64).ravel()
    if z.ndim != 2 or y.shape != (len(z),) or len(z) < 2 or not np.all(np.isfinite(z)):
        raise UsageError(f"need finite features (N>=2, d) and labels (N,), got {z.shape}, "
                         f"{y.shape}")
    if num_classes is None:
        num_classes = len(centers) if centers is not None else int(y.max()) + 1
    if y.min() < 0 or y.max() >= num_classes:
        raise UsageError(f"labels must lie in [0, {num_classes})")
    if centers is not None and np.shape(centers) != (num_classes, z.shape[1]):
        raise UsageError(f"centers must be ({num_classes}, {z.shape[1]}), got "
                         f"{np.shape(centers)}")
    q = np.asarray(quantiles, np.float64)
    if q.ndim != 1 or not len(q) or q.min() <= 0 or q.max() > 1 or np.any(np.diff(q) <= 0):
        raise UsageError(f"quantiles must increase within (0, 1], got {list(quantiles)}")
    return z, y, num_classes, q


def density_profile(z: np.ndarray, y: np.ndarray, *, centers: Optional[np.ndarray] = None,
                    num_classes: Optional[int] = None,
                    quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Dict[str, Any]:
    """Counts and log-densities of class features in balls around their class centers.

    Args:
        z: ``(N, d)`` features of training images; y: ``(N,)`` labels in ``[0, L)``.
        centers: ``(L, d)`` class centers (an MMC/MMLDA head's ``mu_k``), or None for the
            class means of ``z`` (SCE).
        num_classes: ``L`` (default: ``len(centers)``, else ``max(y) + 1``); quantiles:
            increasing, in (0, 1]: the radii are these quantiles of all features' distances
            to their class center (a grid on the model's own feature scale).

    Returns:
        dict (lists, JSON-ready): ``d``, ``n``, ``center`` (``"head"`` / ``"class mean"``),
        ``quantiles``, ``radii`` ``[R]``, ``class_sizes`` ``[L]``, ``counts`` ``[L][R]``
        (``N_k(r)``), ``log_volume`` ``[R]`` (``ln V_d(r)``), ``log_density`` ``[L][R]``
        (``ln(N_k(r) / V_d(r))``, None where ``N_k(r) = 0``), ``mean_log_density`` ``[R]``
        (ln of the class-averaged density ``mean_k N_k(r) / V_d(r)``), ``median_distance``,
        ``median_distance_per_class`` ``[L]``, ``class_mean_spread`` (around the class
        means whatever the centers: :func:`class_mean_spread`), ``center_separation`` ``D`` (mean distance
        between two centers), scale-free ``radii_over_separation`` ``[R]`` and
        ``normalized_mean_log_density`` ``[R]`` (lengths in units of D: ``+ d ln D``).
    """
    z, y, num_classes, q = _checked(z, y, centers, num_classes, quantiles)
    mu = class_means(z, y, num_classes) if centers is None else np.asarray(centers, np.float64)
    distances = np.linalg.norm(z - mu[y], axis=1)
    radii = np.quantile(distances, q)
    counts = counts_within(distances, y, radii, num_classes)
    d = z.shape[1]
    log_v = log_ball_volume(d, radii)
    sizes = np.bincount(y, minlength=num_classes)
    mean_log = log_density(counts.mean(axis=0), log_v)
    separation = center_separation(mu)
    return {
        "d": d, "n": int(len(z)), "center": "class mean" if centers is None else "head",
        "quantiles": q.tolist(), "radii": radii.tolist(), "class_sizes": sizes.tolist(),
        "counts": counts.tolist(), "log_volume": finite(log_v),
        "log_density": finite(log_density(counts, log_v[None])),
        "mean_log_density": finite(mean_log),
        "median_distance": float(np.median(distances)),
        "class_mean_spread": class_mean_spread(z, y, num_classes),
        "median_distance_per_class": [float(np.median(distances[y == k])) if sizes[k] else None
                                      for k in range(num_classes)],
        "center_separation": separation,
        "radii_over_separation": finite(radii / separation if separation > 0 else radii * np.nan),
        "normalized_mean_log_density": finite(
            mean_log + d * math.log(separation) if separation > 0 else mean_log * np.nan),
    }


def model_density(model: Any, x: np.ndarray, y: np.ndarray, num_classes: int,
                  quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Dict[str, Any]:
    """:func:`density_profile` of a classifier's features of ``x`` ``(N, H, W, C)``
    (preprocessed as it was trained) with labels ``y`` ``(N,)``, around its head's
    centers (MMC/MMLDA) or, for a dense head, the class means."""
    return density_profile(features_of(model, x), y, centers=centers_of(model),
                           num_classes=num_classes, quantiles=quantiles)
