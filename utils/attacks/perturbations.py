"""The ``advtest_others.py`` attacks, one :data:`PERTURBATIONS` entry each: a frozen settings
class that validates itself, and a builder of a :data:`Perturb`
``(pixels, labels, targets) -> pixels'`` with ``pixels`` ``(b, H, W, C)`` float32 in
[0, 1], ``labels`` ``(b,)`` int and ``targets`` ``(b,)`` int or None.

The model is seen as ``model_fn(pixels)`` (:func:`utils.evaluation.perturbation.pixel_model`),
so the clip bounds are [0, 1] and distortions are in [0, 1] pixel units (equal to those in
the mean-subtracted model units: the mean is a translation). SPSA's ε is in /256 units.

    spec = PERTURBATIONS.get("CarliniWagnerL2")
    perturb = spec.build(model_fn, "mmc_un2", CWSettings(max_iterations=20), rng)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional, Type

import numpy as np
import tensorflow as tf

from utils.attacks.cleverhans_compat import carlini_wagner_l2, spsa
from utils.attacks.corruptions import gaussian_noise, random_rotation
from utils.attacks.deepfool import deepfool
from utils.attacks.ead import EADConfig, elastic_net
from utils.attacks.jsma import VARIANT_RULE, saliency_map
from utils.attacks.lbfgs import lbfgs
from utils.attacks.objectives import OBJECTIVES
from utils.attacks.settings import (COUNT, EVEN, NONNEGATIVE, POSITIVE, SHARE, AttackSettings,
                                    setting)
from utils.registry import Registry

Perturb = Callable[[np.ndarray, np.ndarray, Optional[np.ndarray]], np.ndarray]
#: ``build(model_fn, objective, settings, rng) -> Perturb`` (objective None: takes none).
Build = Callable[[Callable, Optional[str], Any, np.random.Generator], Perturb]
TARGETING = ("both", "untargeted", "targeted")
FILL_MODE = "nearest"  # rotation: points outside the image take the nearest pixel


# ------------------------------------------------------------------ settings (EAD's: EADConfig)

@dataclasses.dataclass(frozen=True)
class CWSettings(AttackSettings):
    """Carlini & Wagner L2 (the original's: kappa 0, 9 steps, 1000 iterations)."""

    confidence: float = setting(0.0, NONNEGATIVE)
    binary_search_steps: int = setting(9, COUNT)
    max_iterations: int = setting(1000, COUNT)
    learning_rate: float = setting(5e-3, POSITIVE)
    initial_const: float = setting(0.01, POSITIVE)


@dataclasses.dataclass(frozen=True)
class SPSASettings(AttackSettings):
    """SPSA with an L-inf ball of ``eps_256`` in /256 pixel units."""

    eps_256: float = setting(8.0, NONNEGATIVE)
    nb_iter: int = setting(10, COUNT)
    spsa_samples: int = setting(128, EVEN)
    learning_rate: float = setting(0.01, POSITIVE)
    delta: float = setting(0.01, POSITIVE)

    @property
    def eps(self) -> float:
        """The radius in [0, 1] pixel units."""
        return self.eps_256 / 256

    def record_fields(self, prefix: str) -> Dict[str, Any]:
        """``{prefix}_epsilon`` (/256 units), ``eps`` ([0,1] units), then the others."""
        rest = {k: v for k, v in self.kwargs().items() if k != "eps_256"}
        return {f"{prefix}_epsilon": self.eps_256, "eps": self.eps,
                **{f"{prefix}_{k}": v for k, v in rest.items()}}


@dataclasses.dataclass(frozen=True)
class DeepFoolSettings(AttackSettings):
    """DeepFool; ``nb_candidate`` 1 (the original's) takes no step, use >= 2."""

    max_iter: int = setting(10, COUNT)
    nb_candidate: int = setting(1, COUNT)
    overshoot: float = setting(0.02, NONNEGATIVE)


@dataclasses.dataclass(frozen=True)
class LBFGSSettings(AttackSettings):
    """Targeted L-BFGS (the original's: 1 binary-search step, 100 iterations, c 1)."""

    binary_search_steps: int = setting(1, COUNT)
    max_iterations: int = setting(100, COUNT)
    initial_const: float = setting(1.0, POSITIVE)


@dataclasses.dataclass(frozen=True)
class JSMASettings(AttackSettings):
    """Targeted JSMA: ``theta`` added per chosen pixel ([0,1] units), at most a share
    ``gamma`` of the pixels changed, pixels chosen by ``variant``'s rule
    (:data:`utils.attacks.jsma.VARIANTS`; the original's: ``"cleverhans"``)."""

    theta: float = setting(1.0, POSITIVE)
    gamma: float = setting(0.1, SHARE)
    variant: str = setting("logprob", VARIANT_RULE)


@dataclasses.dataclass(frozen=True)
class NoiseSettings(AttackSettings):
    """Gaussian noise of standard deviation ``sigma`` in [0,1] pixel units."""

    sigma: float = setting(0.05, NONNEGATIVE)


@dataclasses.dataclass(frozen=True)
class RotationSettings(AttackSettings):
    """Random rotation, uniform in +-``degrees``; outside points as :data:`FILL_MODE`."""

    degrees: float = setting(30.0, NONNEGATIVE)

    def record_fields(self, prefix: str) -> Dict[str, Any]:
        return {**super().record_fields(prefix), "fill_mode": FILL_MODE}


# ------------------------------------------------------------------ the registry

@dataclasses.dataclass(frozen=True)
class PerturbationSpec:
    """One attack: its settings class, builder, which way it can aim (``targeting``: both |
    untargeted | targeted), whether it takes an objective, whether it searches a minimal
    distortion, the original's sample count (None: all) and its record fields' prefix."""

    name: str
    settings_type: Type[AttackSettings]
    build: Build
    targeting: str
    takes_objective: bool
    minimal_distortion: bool
    original_num_examples: Optional[int]
    record_prefix: str

    def __post_init__(self) -> None:
        if self.targeting not in TARGETING:
            raise ValueError(f"targeting must be one of {TARGETING}, got {self.targeting!r}")


PERTURBATIONS: Registry[PerturbationSpec] = Registry("attack")


def register(name: str, settings_type: Type[AttackSettings], record_prefix: str, *,
             targeting: str = "both", takes_objective: bool = False,
             minimal_distortion: bool = False,
             original_num_examples: Optional[int] = None) -> Callable[[Build], Build]:
    """Decorator registering a builder as the :class:`PerturbationSpec` ``name``."""

    def decorator(build: Build) -> Build:
        PERTURBATIONS.register(name)(PerturbationSpec(
            name, settings_type, build, targeting, takes_objective, minimal_distortion,
            original_num_examples, record_prefix))
        return build

    return decorator


def _onehot(model_fn: Callable, pixels: np.ndarray, labels: Optional[np.ndarray]) -> Any:
    if labels is None:
        return None
    return tf.one_hot(np.asarray(labels), int(model_fn(pixels[:1]).shape[-1]))


@register("CarliniWagnerL2", CWSettings, "CW", takes_objective=True, minimal_distortion=True,
          original_num_examples=500)
def cw_perturbation(model_fn: Callable, objective: Optional[str], settings: CWSettings,
                    rng: np.random.Generator) -> Perturb:
    """C&W-L2 per batch (:func:`utils.attacks.cleverhans_compat.carlini_wagner_l2`)."""

    def perturb(pixels, labels, targets):
        return carlini_wagner_l2(model_fn, pixels, labels, targets=targets, objective=objective,
                                 batch_size=len(pixels), clip_min=0.0, clip_max=1.0,
                                 **settings.kwargs())
    return perturb


@register("SPSA", SPSASettings, "SPSA", takes_objective=True, original_num_examples=1000)
def spsa_perturbation(model_fn: Callable, objective: Optional[str], settings: SPSASettings,
                      rng: np.random.Generator) -> Perturb:
    """SPSA (L-inf ``settings.eps`` in [0,1] pixel units) per batch, one example at a time."""
    kwargs = {k: v for k, v in settings.kwargs().items() if k != "eps_256"}

    def perturb(pixels, labels, targets):
        return spsa(model_fn, pixels, settings.eps, y=labels, targets=targets,
                    objective=objective, clip_min=0.0, clip_max=1.0, **kwargs).numpy()
    return perturb


@register("ElasticNetMethod", EADConfig, "EAD", takes_objective=True,
          minimal_distortion=True, original_num_examples=1000)
def ead_perturbation(model_fn: Callable, objective: Optional[str], settings: EADConfig,
                     rng: np.random.Generator) -> Perturb:
    """EAD (:func:`utils.attacks.ead.elastic_net`)."""
    fn = OBJECTIVES.get(objective).fn

    def perturb(pixels, labels, targets):
        return elastic_net(model_fn, pixels, _onehot(model_fn, pixels, labels), objective=fn,
                           targets_onehot=_onehot(model_fn, pixels, targets), clip_min=0.0,
                           clip_max=1.0, config=settings)
    return perturb


@register("DeepFool", DeepFoolSettings, "DeepFool", targeting="untargeted",
          minimal_distortion=True, original_num_examples=1000)
def deepfool_perturbation(model_fn: Callable, objective: Optional[str],
                          settings: DeepFoolSettings, rng: np.random.Generator) -> Perturb:
    """DeepFool (:func:`utils.attacks.deepfool.deepfool`), untargeted."""
    return lambda pixels, labels, targets: deepfool(model_fn, pixels, clip_min=0.0,
                                                    clip_max=1.0, **settings.kwargs())


@register("LBFGS", LBFGSSettings, "LBFGS", targeting="targeted", takes_objective=True,
          minimal_distortion=True, original_num_examples=1000)
def lbfgs_perturbation(model_fn: Callable, objective: Optional[str], settings: LBFGSSettings,
                       rng: np.random.Generator) -> Perturb:
    """Targeted L-BFGS (:func:`utils.attacks.lbfgs.lbfgs`)."""
    fn = OBJECTIVES.get(objective).fn

    def perturb(pixels, labels, targets):
        return lbfgs(model_fn, pixels, _onehot(model_fn, pixels, labels),
                     _onehot(model_fn, pixels, targets), objective=fn, clip_min=0.0,
                     clip_max=1.0, **settings.kwargs())
    return perturb


@register("SaliencyMapMethod", JSMASettings, "JSMA", targeting="targeted",
          minimal_distortion=True, original_num_examples=100)
def jsma_perturbation(model_fn: Callable, objective: Optional[str], settings: JSMASettings,
                      rng: np.random.Generator) -> Perturb:
    """Targeted JSMA (:func:`utils.attacks.jsma.saliency_map`)."""
    return lambda pixels, labels, targets: saliency_map(
        model_fn, pixels, _onehot(model_fn, pixels, targets), clip_min=0.0, clip_max=1.0,
        **settings.kwargs())


@register("Gaussian", NoiseSettings, "noise", targeting="untargeted")
def noise_perturbation(model_fn: Callable, objective: Optional[str], settings: NoiseSettings,
                       rng: np.random.Generator) -> Perturb:
    """Gaussian noise drawn from ``rng`` (seeded once per run)."""
    return lambda pixels, labels, targets: gaussian_noise(pixels, settings.sigma, rng)


@register("Rotation", RotationSettings, "rotation", targeting="untargeted")
def rotation_perturbation(model_fn: Callable, objective: Optional[str],
                          settings: RotationSettings, rng: np.random.Generator) -> Perturb:
    """Random rotation, angles drawn from ``rng`` (seeded once per run)."""
    return lambda pixels, labels, targets: random_rotation(pixels, settings.degrees, rng,
                                                           fill_mode=FILL_MODE)
