"""Threat models: the ℓ∞ and ℓ2 ε-balls as every attack uses them.

A :class:`ThreatModel` is the geometry of one norm: the steepest-ascent ``direction`` of
unit length, the ``project``-ion onto the ε-ball around ``x`` and into the clip box, the
random starts (Madry's ``start_delta`` of the iterative attacks, AutoAttack's ``init``)
and their per-example ``noise``. FGSM/BIM/PGD/MIM, APGD, FAB-T and Square take their
geometry from here, so each has both norms. Tensors are ``(batch, ...)`` float32 in
model input units; ``eps`` is in the same units (ℓ2: over the whole input).

    tm = threat_model("l2")
    x_adv = tm.project(x + step * tm.direction(grad), x, eps, clip_min, clip_max)
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import tensorflow as tf

from utils.attacks.core import normal_per_example, uniform_per_example
from utils.registry import Registry

DIV_EPS = 1e-12  # keeps ℓ2 normalisations finite


def per_sample(v: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """``(batch,)`` -> ``(batch, 1, ..., 1)`` broadcastable to ``like``."""
    return tf.reshape(v, tf.concat([tf.shape(v), tf.ones([tf.rank(like) - 1], tf.int32)], 0))


def l2_norm(t: tf.Tensor) -> tf.Tensor:
    """Per-sample ℓ2 norm, ``(batch, 1, ..., 1)``."""
    return tf.sqrt(tf.reduce_sum(tf.square(t), axis=tf.range(1, tf.rank(t)), keepdims=True))


def linf_norm(t: tf.Tensor) -> tf.Tensor:
    """Per-sample ℓ∞ norm, ``(batch, 1, ..., 1)``."""
    return tf.reduce_max(tf.abs(t), axis=tf.range(1, tf.rank(t)), keepdims=True)


@dataclasses.dataclass(frozen=True)
class ThreatModel:
    """One norm's ε-ball (subclasses fill :meth:`size`, :meth:`ball`, :meth:`direction`,
    :meth:`noise`); frozen and hashable, so compiled graphs are cached per norm."""

    name: str

    def size(self, delta: tf.Tensor) -> tf.Tensor:
        """Per-sample norm of ``delta``, ``(batch, 1, ..., 1)``."""
        raise NotImplementedError

    def ball(self, delta: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
        """``delta`` onto the ε-ball around 0."""
        raise NotImplementedError

    def direction(self, grad: tf.Tensor) -> tf.Tensor:
        """Steepest-ascent direction of unit length for ``grad``."""
        raise NotImplementedError

    def noise(self, shape: Sequence[int], seeds: tf.Tensor) -> tf.Tensor:
        """Start noise ``shape`` from per-example seeds ``(batch, 2)``."""
        raise NotImplementedError

    def batch_noise(self, shape: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """The same noise for a whole batch from one ``(2,)`` seed (``shape`` may be a
        dynamic ``tf.shape``): what adversarial training draws inside its compiled step,
        where batch-size invariance is not needed and a loop over rows would slow every
        step."""
        raise NotImplementedError

    def project_delta(self, delta: tf.Tensor, eps: tf.Tensor, low: tf.Tensor,
                      high: tf.Tensor) -> tf.Tensor:
        """``delta`` onto the ε-ball, then into ``[low, high] = [clip_min - x,
        clip_max - x]``; the box clip only shrinks ``|delta|`` coordinate-wise, so the
        result stays in the ball (exact for ℓ∞)."""
        return tf.clip_by_value(self.ball(delta, eps), low, high)

    def project(self, x_adv: tf.Tensor, x: tf.Tensor, eps: tf.Tensor, clip_min: tf.Tensor,
                clip_max: tf.Tensor) -> tf.Tensor:
        """``x_adv`` onto the ε-ball around ``x``, then into ``[clip_min, clip_max]``."""
        return tf.clip_by_value(x + self.ball(x_adv - x, eps), clip_min, clip_max)

    def start_delta(self, noise: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
        """The iterative attacks' (Madry's) start: ``eps * noise`` for ℓ∞ (uniform in the
        ball), ``noise`` rescaled to length ``eps`` for ℓ2."""
        return eps * noise

    def init(self, x: tf.Tensor, noise: tf.Tensor, eps: tf.Tensor, clip_min: tf.Tensor,
             clip_max: tf.Tensor) -> tf.Tensor:
        """AutoAttack's start (APGD): ``noise`` rescaled to length ``eps``, projected."""
        return self.project(x + eps * noise / (self.size(noise) + DIV_EPS), x, eps, clip_min,
                            clip_max)


@dataclasses.dataclass(frozen=True)
class Linf(ThreatModel):
    name: str = "linf"

    def size(self, delta: tf.Tensor) -> tf.Tensor:
        return linf_norm(delta)

    def ball(self, delta: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(delta, -eps, eps)

    def project(self, x_adv: tf.Tensor, x: tf.Tensor, eps: tf.Tensor, clip_min: tf.Tensor,
                clip_max: tf.Tensor) -> tf.Tensor:
        """Clipped to ``[x - eps, x + eps]`` in input coordinates, as AutoAttack rounds
        it (``x + clip(x_adv - x)`` can differ from ``x_adv`` in the last bit)."""
        return tf.clip_by_value(tf.clip_by_value(x_adv, x - eps, x + eps), clip_min,
                                clip_max)

    def direction(self, grad: tf.Tensor) -> tf.Tensor:
        return tf.sign(grad)

    def noise(self, shape: Sequence[int], seeds: tf.Tensor) -> tf.Tensor:
        """Uniform in ``[-1, 1]``."""
        return uniform_per_example(shape, seeds, -1.0, 1.0)

    def batch_noise(self, shape: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return tf.random.stateless_uniform(shape, seed, -1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class L2(ThreatModel):
    name: str = "l2"

    def size(self, delta: tf.Tensor) -> tf.Tensor:
        return l2_norm(delta)

    def ball(self, delta: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
        """``delta / (|delta| + 1e-12) * min(eps, |delta|)``, AutoAttack's arithmetic."""
        size = l2_norm(delta)
        return delta / (size + DIV_EPS) * tf.minimum(eps, size)

    def direction(self, grad: tf.Tensor) -> tf.Tensor:
        return grad / (l2_norm(grad) + DIV_EPS)

    def noise(self, shape: Sequence[int], seeds: tf.Tensor) -> tf.Tensor:
        """Standard normal."""
        return normal_per_example(shape, seeds)

    def batch_noise(self, shape: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return tf.random.stateless_normal(shape, seed)

    def start_delta(self, noise: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
        return eps * noise / (l2_norm(noise) + DIV_EPS)


THREAT_MODELS: Registry[ThreatModel] = Registry("norm")
THREAT_MODELS.register("linf")(Linf())
THREAT_MODELS.register("l2")(L2())
NORMS = tuple(THREAT_MODELS.names())


def threat_model(norm: str) -> ThreatModel:
    """The :class:`ThreatModel` of ``norm`` (``linf`` | ``l2``); UsageError otherwise."""
    return THREAT_MODELS.get(norm)


def check_norm(norm: str) -> str:
    """``norm`` if it is one of :data:`NORMS`, else UsageError (the registry's)."""
    return threat_model(norm).name
