"""Square attack (Andriushchenko et al. 2020): score-based random search, ℓ∞ and ℓ2.

Gradient-free: it only reads logits. From a random start it proposes, per query, a new
perturbation that differs from the best one inside a random ``s x s`` window and keeps it
for each example whose margin ``z_y - max_{i!=y} z_i`` (the C&W ``margin`` objective,
unclipped) decreased. The window's side follows the published ``p`` schedule: with
``p_init = 0.8`` the window covers a share ``p`` of the pixels, halved after queries 10,
50, 200, 500, 1000, 2000, 4000 (6000, 8000), as AutoAttack's standard version runs it
(``resc_schedule=False``; ``rescale_schedule=True`` spreads them over ``n_queries``).

* ℓ∞: vertical-stripe start ``+-eps``; a window is set to ``+-eps`` per channel.
* ℓ2: a grid of pseudo-Gaussian patches at radius ``eps``; a proposal moves the energy of a
  second window into the first and writes a fresh pseudo-Gaussian pattern there
  (AutoAttack's ``attack_single_run``, ℓ2 branch), then rescales to ``||delta||_2 = eps``.

Windows, signs and pattern orientations are drawn per example (AutoAttack shares the
window across the batch); the window side is the schedule's at the current query, the
same for every example still running (examples stop at their first success). Every
proposal is clipped to ``[clip_min, clip_max]`` per pixel, which only shrinks ``|delta|``.
``eps`` is in model input units (``eps_256 / 256``).

    res = square_run(model, x, y_onehot, eps=8 / 256, clip_min=data.clip_min,
                     clip_max=data.clip_max, n_queries=5000, seed=0)
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf

from utils.attacks.core import (AttackSpec, ModelFn, Seed, Tensorish, attack_succeeded,
                                example_indices, example_seeds, fixed_seed, prepare_inputs,
                                register_spec, uniform_per_example)
from utils.attacks.threat_model import DIV_EPS, l2_norm, per_sample, threat_model
from utils.attacks.multitarget import subset_clip
from utils.attacks.objectives import OBJECTIVES
from utils.attacks.square_schedule import (P_INIT, pattern_table, pseudo_gaussian,
                                           window_sides)
from utils.errors import UsageError, check_count

N_QUERIES = 5000


# ---------------------------------------------------------------- starts

def start_draws(shape: Tuple[int, ...], norm: str) -> int:
    """How many uniforms the start of an example of ``shape`` ``(H, W, C)`` takes."""
    h, w, c = shape
    side = max(h // 5, 1)
    return w * c if norm == "linf" else (h // side) * (w // side) * c


def _signs(u: tf.Tensor, shape: Tuple[int, ...]) -> tf.Tensor:
    """``+-1`` of shape ``shape`` from uniforms in [0, 1) ``(B, prod(shape[1:]))``."""
    return tf.reshape(tf.where(u > 0.5, 1.0, -1.0), shape)


def linf_start(shape: Tuple[int, ...], eps: float, u: tf.Tensor,
               seed: Tuple[int, int]) -> tf.Tensor:
    """``(B, H, W, C)`` vertical stripes: ``+-eps`` per (example, column, channel), from
    each example's uniforms ``u`` ``(B, W C)``."""
    b, _, w, c = shape
    return eps * tf.broadcast_to(_signs(u, (b, 1, w, c)), shape)


def l2_start(shape: Tuple[int, ...], eps: float, u: tf.Tensor,
             seed: Tuple[int, int]) -> tf.Tensor:
    """``(B, H, W, C)`` a grid of ``h // 5`` pseudo-Gaussian patches (orientations from
    ``seed``, shared by the batch) with signs per (example, patch, channel) from each
    example's uniforms ``u``, rescaled to ℓ2 norm ``eps``."""
    b, h, w, c = shape
    side = max(h // 5, 1)
    n_h, n_w = h // side, w // side
    off_h, off_w = (h - side * n_h) // 2, (w - side * n_w) // 2
    grid = np.zeros((h, w), np.float32)
    rng = np.random.default_rng([v % 2**63 for v in seed])
    for i in range(n_h):
        for j in range(n_w):
            patch = pseudo_gaussian(side)
            grid[off_h + i * side:off_h + (i + 1) * side, off_w + j * side:
                 off_w + (j + 1) * side] = patch.T if rng.random() > 0.5 else patch
    rows = np.clip((np.arange(h) - off_h) // side, 0, n_h - 1)
    cols = np.clip((np.arange(w) - off_w) // side, 0, n_w - 1)
    signs = tf.gather(tf.gather(_signs(u, (b, n_h, n_w, c)), rows, axis=1), cols, axis=2)
    delta = grid[None, :, :, None] * signs
    return eps * delta / (l2_norm(delta) + DIV_EPS)


# ---------------------------------------------------------------- graph pieces

def _window(u_row: tf.Tensor, u_col: tf.Tensor, side: tf.Tensor, h: int,
            w: int) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Uniform window positions from ``(b,)`` uniforms: ``(top, left, mask (b, H, W, 1))``."""
    top = tf.minimum(tf.cast(u_row * tf.cast(h - side + 1, tf.float32), tf.int32), h - side)
    left = tf.minimum(tf.cast(u_col * tf.cast(w - side + 1, tf.float32), tf.int32), w - side)
    rel_r = tf.range(h)[None, :] - top[:, None]
    rel_c = tf.range(w)[None, :] - left[:, None]
    in_r = tf.logical_and(rel_r >= 0, rel_r < side)
    in_c = tf.logical_and(rel_c >= 0, rel_c < side)
    mask = tf.logical_and(in_r[:, :, None], in_c[:, None, :])
    return rel_r, rel_c, tf.cast(mask, tf.float32)[..., None]


def _place(pattern: tf.Tensor, rel_r: tf.Tensor, rel_c: tf.Tensor, flip: tf.Tensor,
           mask: tf.Tensor) -> tf.Tensor:
    """``pattern`` ``(S, S)`` (transposed where ``flip``) at each example's window:
    ``(b, H, W, 1)``, zero outside the window."""
    size = tf.shape(pattern)[0]
    r = tf.clip_by_value(rel_r, 0, size - 1)
    c = tf.clip_by_value(rel_c, 0, size - 1)

    def at(p: tf.Tensor) -> tf.Tensor:
        return tf.gather(tf.gather(p, r), c, axis=2, batch_dims=1)

    placed = tf.where(flip[:, None, None], at(tf.transpose(pattern)), at(pattern))
    return placed[..., None] * mask


def _channel_l2(t: tf.Tensor) -> tf.Tensor:
    """Per example and channel ℓ2 norm over the pixels, ``(b, 1, 1, C)``."""
    return tf.sqrt(tf.reduce_sum(tf.square(t), axis=[1, 2], keepdims=True))


class _Draw(NamedTuple):
    """One query's randomness for the running examples: ``u`` ``(b, 5)`` uniforms (window
    rows/columns, ℓ2's second window, orientation) and ``signs`` ``(b, 1, 1, C)``."""

    u: tf.Tensor
    signs: tf.Tensor


def _propose_linf(x: tf.Tensor, x_best: tf.Tensor, eps: tf.Tensor, side: tf.Tensor,
                  d: _Draw, pattern: tf.Tensor) -> tf.Tensor:
    _, h, w, _ = x.shape
    _, _, mask = _window(d.u[:, 0], d.u[:, 1], side, h, w)
    return x + (1.0 - mask) * (x_best - x) + mask * eps * d.signs


def _propose_l2(x: tf.Tensor, x_best: tf.Tensor, eps: tf.Tensor, side: tf.Tensor,
                d: _Draw, pattern: tf.Tensor) -> tf.Tensor:
    _, h, w, c = x.shape
    delta = x_best - x
    rel_r, rel_c, mask1 = _window(d.u[:, 0], d.u[:, 1], side, h, w)
    _, _, mask2 = _window(d.u[:, 2], d.u[:, 3], side, h, w)
    room = tf.maximum(eps ** 2 - tf.square(l2_norm(delta)), 0.0) / float(c)
    # per channel, as AutoAttack's norms_windows (sum over H, W only)
    budget = tf.sqrt(room + tf.square(_channel_l2(delta * tf.maximum(mask1, mask2))))
    fresh = _place(pattern, rel_r, rel_c, d.u[:, 4] > 0.5, mask1) * d.signs
    fresh += delta * mask1 / (_channel_l2(delta * mask1) + DIV_EPS)
    fresh = fresh / (_channel_l2(fresh) + DIV_EPS) * budget
    delta = delta * (1.0 - mask2) * (1.0 - mask1) + fresh * mask1
    return x + eps * delta / (l2_norm(delta) + DIV_EPS)


_PROPOSALS = {"linf": _propose_linf, "l2": _propose_l2}
_STARTS = {"linf": linf_start, "l2": l2_start}


def _margin(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Unclipped ``z_y - max_{i!=y} z_i`` ``(b,)``: what Square minimises."""
    return OBJECTIVES.get("margin").fn(logits, labels, confidence=math.inf)


class _Loop(NamedTuple):
    x_best: tf.Tensor   # (B, H, W, C)
    margin: tf.Tensor   # (B,) margin of x_best
    fooled: tf.Tensor   # (B,) bool
    queries: tf.Tensor  # (B,) int32 model evaluations spent, the start included


@tf.function(reduce_retracing=True)
def square_graph(model_fn: ModelFn, norm: str, x: tf.Tensor, labels: tf.Tensor,
                 start: tf.Tensor, eps: tf.Tensor, low: tf.Tensor, high: tf.Tensor,
                 sides: tf.Tensor, pattern_ids: tf.Tensor, patterns: tf.Tensor,
                 draws: tf.Tensor) -> Tuple[tf.Tensor, ...]:
    """One Square run of a batch; the query loop is a ``tf.while_loop`` that ends when
    every example is fooled. ``start`` ``(B, H, W, C)`` the initial perturbation,
    ``low``/``high`` broadcast to ``x``; ``sides``, ``pattern_ids`` ``(n_queries,)``
    int32 (:func:`window_sides`, :func:`pattern_table`); ``patterns`` ``(K, S, S)``;
    ``draws`` ``(B, n_queries, 5 + C)`` each example's uniforms per query. Returns
    ``(x_best, fooled, margin, queries)``."""
    propose = _PROPOSALS[norm]
    x_best = tf.clip_by_value(x + start, low, high)
    logits = tf.cast(model_fn(x_best), tf.float32)
    batch = tf.shape(x)[0]
    s = _Loop(x_best, _margin(logits, labels), attack_succeeded(logits, labels),
              tf.ones([batch], tf.int32))

    def body(i: tf.Tensor, s: _Loop) -> Tuple[tf.Tensor, _Loop]:
        u = draws[:, i]
        signs = tf.where(u[:, 5:] > 0.5, 1.0, -1.0)  # one sign per example and channel
        run = tf.where(tf.logical_not(s.fooled))
        pick = lambda t: tf.gather_nd(t, run)  # noqa: E731
        draw = _Draw(pick(u[:, :5]), pick(signs)[:, None, None, :])
        x_new = propose(pick(x), pick(s.x_best), eps, sides[i], draw,
                        patterns[pattern_ids[i]])
        x_new = tf.clip_by_value(x_new, pick(low), pick(high))
        logits = tf.cast(model_fn(x_new), tf.float32)
        margin = _margin(logits, pick(labels))
        better = margin < pick(s.margin)
        fooled = tf.logical_and(better, attack_succeeded(logits, pick(labels)))
        x_keep = tf.where(per_sample(better, x_new), x_new, pick(s.x_best))
        return i + 1, _Loop(
            tf.tensor_scatter_nd_update(s.x_best, run, x_keep),
            tf.tensor_scatter_nd_update(s.margin, run, tf.minimum(margin, pick(s.margin))),
            tf.tensor_scatter_nd_update(s.fooled, run, fooled),
            tf.tensor_scatter_nd_add(s.queries, run, tf.ones_like(margin, tf.int32)))

    def more(i: tf.Tensor, s: _Loop) -> tf.Tensor:
        return tf.logical_and(i < tf.shape(sides)[0], tf.logical_not(tf.reduce_all(s.fooled)))

    _, s = tf.while_loop(more, body, (tf.constant(0), s))
    return s.x_best, s.fooled, s.margin, s.queries


# ---------------------------------------------------------------- public API

@dataclasses.dataclass(frozen=True)
class SquareResult:
    """One Square run of ``B`` examples: ``x_adv`` ``(B, ...)`` the best point (the first
    misclassified one where found), ``success`` ``(B,)`` bool, ``margin`` ``(B,)`` its
    logit margin (< 0: misclassified), ``queries`` ``(B,)`` int32 model evaluations."""

    x_adv: tf.Tensor
    success: tf.Tensor
    margin: tf.Tensor
    queries: tf.Tensor


def check_queries(n_queries: int) -> int:
    return check_count("Square n_queries", n_queries)


def square_run(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish, *, eps: float,
               clip_min: Any, clip_max: Any, n_queries: int = N_QUERIES, norm: str = "linf",
               p_init: float = P_INIT, rescale_schedule: bool = False, seed: Seed = None,
               example_index: Optional[Tensorish] = None, restart: int = 0) -> SquareResult:
    """One untargeted Square run (see the module docstring).

    Args:
        model_fn: ``x -> logits`` ``(B, L)``; only its outputs are used.
        x: ``(B, H, W, C)`` float32 in model units within ``[clip_min, clip_max]``.
        labels_onehot: ``(B, L)``.
        eps: radius in model units (ℓ∞, or ℓ2 over the whole input); 0 returns ``x``.
        clip_min: lower input bound: a scalar, per-pixel ``(H, W, C)`` or per-example array.
        clip_max: upper input bound, as ``clip_min``.
        n_queries: proposals after the start (``>= 1``).
        p_init: the schedule's start.
        rescale_schedule: spread its halvings over ``n_queries`` (Square's default)
            instead of AutoAttack's fixed queries (:func:`p_schedule`).
        seed: stateless seed (None: drawn from NumPy); example_index ``(B,)`` global
            example indices (default ``arange(B)``) and restart: example ``i``'s start
            and per-query draws depend only on ``(seed, i, restart)``.

    Returns:
        :class:`SquareResult`; ``|x_adv - x| <= eps`` in ``norm``, within the clips.
    """
    threat_model(norm)
    n_queries = check_queries(n_queries)
    if not 0.0 < p_init <= 1.0:
        raise UsageError(f"p_init must lie in (0, 1], got {p_init}")
    x, labels, _, eps, _, _, low, high = prepare_inputs(x, labels_onehot, None, eps, 1.0, 1,
                                                        clip_min, clip_max)
    if x.shape.rank != 4:
        raise UsageError(f"Square needs images (B, H, W, C), got shape {x.shape}")
    seed = fixed_seed(seed)
    if eps == 0.0:
        logits = model_fn(x)
        return SquareResult(x, attack_succeeded(logits, labels), _margin(logits, labels),
                            tf.ones([x.shape[0]], tf.int32))
    shape = tuple(x.shape)
    sides = window_sides(n_queries, shape[1:], norm, p_init, rescale_schedule)
    table, ids = pattern_table(sides, shape[1:]) if norm == "l2" else \
        (np.zeros((1, 1, 1), np.float32), np.zeros(n_queries, np.int32))
    n_start, per_query = start_draws(shape[1:], norm), 5 + shape[-1]
    seeds = example_seeds(seed, example_indices(example_index, shape[0]), restart)
    u = uniform_per_example((shape[0], n_start + n_queries * per_query), seeds)
    start = _STARTS[norm](shape, eps, u[:, :n_start], seed + (restart,))
    draws = tf.reshape(u[:, n_start:], (shape[0], n_queries, per_query))
    out = square_graph(model_fn, norm, x, labels, start, tf.constant(eps, tf.float32),
                       tf.broadcast_to(low, shape), tf.broadcast_to(high, shape),
                       tf.constant(sides, tf.int32), tf.constant(ids), tf.constant(table),
                       draws)
    return SquareResult(*out)


def square_attack(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish, *,
                  num_restarts: int = 1, seed: Seed = None,
                  example_index: Optional[Tensorish] = None, **kwargs: Any) -> tf.Tensor:
    """Square with ``num_restarts`` runs; restart ``r`` (:func:`square_run` with
    ``restart=r``) attacks only the examples no earlier run fooled. ``kwargs`` as
    :func:`square_run`. Returns ``x_adv`` ``(B, ...)``."""
    check_count("num_restarts", num_restarts)
    seed = fixed_seed(seed)
    index = example_indices(example_index, int(np.shape(x)[0]))
    best = square_run(model_fn, x, labels_onehot, seed=seed, example_index=index, **kwargs)
    x_adv, fooled = best.x_adv.numpy(), best.success.numpy()
    for restart in range(1, int(num_restarts)):
        idx = np.flatnonzero(~fooled)
        if idx.size == 0:
            break
        clips = {k: subset_clip(kwargs[k], idx, x_adv.shape) for k in ("clip_min", "clip_max")}
        run = square_run(model_fn, tf.gather(x, idx), tf.gather(labels_onehot, idx),
                         seed=seed, example_index=tf.gather(index, idx), restart=restart,
                         **{**kwargs, **clips})
        won = run.success.numpy()
        x_adv[idx[won]] = run.x_adv.numpy()[won]
        fooled[idx[won]] = True
    return tf.constant(x_adv)


register_spec(AttackSpec("Square", random_start=True, targeted=False, objective_family="margin",
                         offered_by=frozenset({"ensemble member"})))
