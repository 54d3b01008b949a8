"""The members of the cascaded evaluation (:mod:`utils.evaluation.ensemble`) and its presets.

A member is ``member(model_fn, call, settings) -> x_adv`` on the still-robust subset of a
batch (:class:`MemberCall`), registered with :func:`register_member` as one
:class:`MemberSpec` (the function, the objective it reports, whether it accepts given
targets, the backend attack it runs). A single attack is a one-member cascade.

Members: ``APGD-CE`` (APGD with the untargeted objective, ``ce`` or an adaptive one such
as ``mmc_un1``), ``APGD-DLR``, ``APGD-T`` (targeted APGD over the top-k classes,
``dlr_targeted`` or e.g. ``mmc_tar1``), ``FAB-T`` (targeted FAB over the top-k classes,
minimum-norm; a point counts only if the distance found is ``<= eps``), ``Square``
(gradient-free random search on the logit margin), ``MultiTargeted`` (targeted
``margin`` PGD over the top-k classes) and the gradient attacks of ``advtest_iterative.py``
under their original names (``FastGradientMethod``, ``BasicIterativeMethod``,
``MadryEtAl`` = PGD, ``MomentumIterativeMethod``), on the native or cleverhans backend.

Presets: ``autoattack`` = APGD-CE, APGD-T, FAB-T, Square (AutoAttack's standard version,
in its order); ``autoattack-lite`` = APGD-CE, APGD-T; ``strong``.

    fn = MEMBERS.get("Square")
    x_adv = fn(model, call, EnsembleSettings(eps=8 / 256, clip_min=0.0, clip_max=1.0))
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from utils.attacks.apgd import apgd
from utils.attacks.core import ATTACK_SPECS, BACKEND_MODULES, ModelFn, offered_by
from utils.attacks.fab import ALPHA_MAX, BETA, ETA, check_fab, fab_targeted
from utils.attacks.iterative import worst_case_over_restarts
from utils.attacks.multitarget import apgd_targeted, multi_targeted_pgd, subset_clip
from utils.attacks.objectives import OBJECTIVES
from utils.attacks.threat_model import check_norm
from utils.attacks.square import check_queries, square_attack
from utils.errors import UsageError, check_count, check_real
from utils.registry import Registry


@dataclasses.dataclass(frozen=True)
class EnsembleSettings:
    """What every member needs.

    eps: radius in model units (``eps_256 / 256``); norm: ``linf`` | ``l2``.
    clip_min/clip_max: scalars or per-pixel ``(H, W, C)``.
    n_iter: APGD steps per run (per target for APGD-T). eps_iter, nb_iter: step (model
    units) and steps of PGD and MultiTargeted (per target). objective: untargeted
    objective of APGD-CE and PGD (or the targeted one when targets are given);
    targeted_objective: APGD-T's. n_target_classes: k of APGD-T / FAB-T / MultiTargeted
    (capped at ``L - 1``). num_restarts: random starts of APGD-CE, PGD and Square. seed:
    base seed; member ``m`` draws for example ``i`` from ``(seed, m)`` and ``i``
    (:func:`utils.attacks.core.example_seeds`), whatever the batch. fab_n_iter: FAB-T
    steps per target; square_n_queries: Square's queries per restart. attack_backend:
    ``native`` or ``cleverhans`` (the gradient attacks only; see
    :data:`utils.attacks.core.BACKENDS`). The step counts keep the names
    ``n_iter``/``nb_iter``/``fab_n_iter`` because these fields are record and state-file
    keys; the attacks take them as ``num_iter``.
    """

    eps: float
    clip_min: Any
    clip_max: Any
    norm: str = "linf"
    n_iter: int = 100
    eps_iter: float = 2.0 / 256
    nb_iter: int = 100
    objective: str = "ce"
    targeted_objective: str = "dlr_targeted"
    n_target_classes: int = 9
    num_restarts: int = 1
    seed: int = 0
    fab_n_iter: int = 100
    square_n_queries: int = 5000
    attack_backend: str = "native"

    def __post_init__(self) -> None:
        """Validated once, here (UsageError); what depends on the members or the model's
        class count is checked by :func:`utils.evaluation.ensemble.check_settings`."""
        check_norm(self.norm)
        check_real("eps", self.eps)
        check_real("eps_iter", self.eps_iter, positive=True)
        for name in ("n_iter", "nb_iter", "num_restarts", "n_target_classes"):
            check_count(name, getattr(self, name))
        check_queries(self.square_n_queries)
        if self.attack_backend not in BACKEND_MODULES:
            raise UsageError(f"unknown attack backend {self.attack_backend!r}; choose one of: "
                             f"{', '.join(sorted(BACKEND_MODULES))}")
        check_fab(self.fab_n_iter, ALPHA_MAX, ETA, BETA)


@dataclasses.dataclass(frozen=True)
class MemberCall:
    """One member's input: the still-robust subset ``idx`` of a batch of shape
    ``batch_shape``; ``x`` ``(m, ...)``, ``labels`` ``(m, L)`` one-hot, ``targets`` one-hot
    or None. ``seed`` is ``(run seed, member)`` and ``index`` ``(m,)`` the examples'
    global indices, so an example's draws depend neither on the batch nor on which
    others are still robust."""

    x: tf.Tensor
    labels: tf.Tensor
    targets: Optional[tf.Tensor]
    idx: np.ndarray
    batch_shape: Tuple[int, ...]
    seed: Tuple[int, int]
    index: np.ndarray

    def clip(self, value: Any) -> Any:
        """The subset's clip bound (see :func:`utils.attacks.multitarget.subset_clip`)."""
        return subset_clip(value, self.idx, self.batch_shape)


MemberFn = Callable[[ModelFn, MemberCall, EnsembleSettings], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class MemberSpec:
    """One cascade member: ``fn``; ``objective(settings)`` the objective name it uses and
    reports; ``targeted_ok`` whether it accepts given targets (a targeted evaluation);
    ``top_k_targets`` whether it runs targeted over the top-k classes itself (an
    untargeted sweep of targeted runs: its objective must be a targeted one); ``attack``
    the backend attack it runs (:func:`utils.attacks.core.get_attack`; None: native
    only)."""

    fn: MemberFn
    objective: Callable[[EnsembleSettings], str]
    targeted_ok: bool
    attack: Optional[str] = None
    top_k_targets: bool = False


MEMBERS: Registry[MemberSpec] = Registry("ensemble member")
PRESETS: Dict[str, Tuple[str, ...]] = {
    "autoattack": ("APGD-CE", "APGD-T", "FAB-T", "Square"),
    "autoattack-lite": ("APGD-CE", "APGD-T"),
    "strong": ("APGD-CE", "APGD-DLR", "APGD-T", "MultiTargeted"),
}


#: What :func:`callable_member` reports as its objective (the callable is opaque).
CALLABLE_OBJECTIVE = "(callable)"


def callable_member(fn: Callable[..., Any]) -> MemberSpec:
    """A cascade member around a user's attack ``fn(model_fn, x, labels_onehot, *, eps,
    norm, clip_min, clip_max, seed, example_index) -> x_adv`` (every :mod:`mmt` attack has
    this signature); untargeted, native, its objective reported as
    :data:`CALLABLE_OBJECTIVE`."""

    def member(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings) -> tf.Tensor:
        return fn(model_fn, call.x, call.labels, eps=s.eps, norm=s.norm,
                  clip_min=call.clip(s.clip_min), clip_max=call.clip(s.clip_max),
                  seed=call.seed, example_index=call.index)

    return MemberSpec(member, lambda s: CALLABLE_OBJECTIVE, targeted_ok=False)


def member_catalog(custom: Optional[Dict[str, MemberSpec]] = None) -> Registry[MemberSpec]:
    """:data:`MEMBERS` plus the ``custom`` members (UsageError on a name they share)."""
    if not custom:
        return MEMBERS
    catalog: Registry[MemberSpec] = Registry("ensemble member")
    for name in MEMBERS:
        catalog.register(name)(MEMBERS.get(name))
    for name, spec in custom.items():
        if name in catalog:
            raise UsageError(f"custom ensemble member {name!r} shadows a registered one")
        catalog.register(name)(spec)
    return catalog


def register_member(name: str, objective: Callable[[EnsembleSettings], str],
                    targeted_ok: bool, attack: Optional[str] = None,
                    top_k_targets: bool = False) -> Callable[[MemberFn], MemberFn]:
    def decorator(fn: MemberFn) -> MemberFn:
        MEMBERS.register(name)(MemberSpec(fn, objective, targeted_ok, attack, top_k_targets))
        return fn
    return decorator


def _apgd_member(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings,
                 objective: str) -> tf.Tensor:
    return apgd(model_fn, call.x, call.labels, objective=OBJECTIVES.get(objective).fn,
                eps=s.eps, clip_min=call.clip(s.clip_min), clip_max=call.clip(s.clip_max),
                num_iter=s.n_iter, norm=s.norm, targets_onehot=call.targets,
                success_on_target=call.targets is not None, num_restarts=s.num_restarts,
                seed=call.seed, example_index=call.index)


@register_member("APGD-CE", lambda s: s.objective, targeted_ok=True)
def apgd_ce(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings) -> tf.Tensor:
    return _apgd_member(model_fn, call, s, s.objective)


@register_member("APGD-DLR", lambda s: "dlr", targeted_ok=False)
def apgd_dlr(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings) -> tf.Tensor:
    return _apgd_member(model_fn, call, s, "dlr")


@register_member("APGD-T", lambda s: s.targeted_objective, targeted_ok=False,
                 top_k_targets=True)
def apgd_t(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings) -> tf.Tensor:
    return apgd_targeted(model_fn, call.x, call.labels, eps=s.eps,
                         clip_min=call.clip(s.clip_min), clip_max=call.clip(s.clip_max),
                         num_iter=s.n_iter, norm=s.norm,
                         objective=OBJECTIVES.get(s.targeted_objective).fn,
                         n_target_classes=s.n_target_classes, seed=call.seed,
                         example_index=call.index)


@register_member("MultiTargeted", lambda s: "margin", targeted_ok=False, top_k_targets=True)
def multi_targeted(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings) -> tf.Tensor:
    return multi_targeted_pgd(model_fn, call.x, call.labels, eps=s.eps, eps_iter=s.eps_iter,
                              num_iter=s.nb_iter, clip_min=call.clip(s.clip_min),
                              clip_max=call.clip(s.clip_max), norm=s.norm,
                              n_target_classes=s.n_target_classes, seed=call.seed,
                              example_index=call.index)


def _gradient_member(name: str) -> MemberFn:
    """The member running gradient attack ``name`` (FGSM/BIM/PGD/MIM) on the settings'
    backend, per-example worst case over ``num_restarts`` random starts."""

    def member(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings) -> tf.Tensor:
        return worst_case_over_restarts(
            name, model_fn, call.x, call.labels, num_restarts=s.num_restarts, seed=call.seed,
            targets_onehot=call.targets, objective=OBJECTIVES.get(s.objective).fn, eps=s.eps,
            eps_iter=s.eps_iter, num_iter=s.nb_iter, clip_min=call.clip(s.clip_min),
            clip_max=call.clip(s.clip_max), norm=s.norm, backend=s.attack_backend,
            example_index=call.index)

    member.__name__ = member.__qualname__ = name
    return member


for _name in offered_by("iterative"):
    if ATTACK_SPECS.get(_name).step is not None:
        register_member(_name, lambda s: s.objective, targeted_ok=ATTACK_SPECS.get(
            _name).targeted, attack=_name)(_gradient_member(_name))


# FAB-T reports "margin": it linearises z_y - z_t, the targeted margin toward each target.
@register_member("FAB-T", lambda s: "margin", targeted_ok=False, top_k_targets=True)
def fab_t(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings) -> tf.Tensor:
    return fab_targeted(model_fn, call.x, call.labels, eps=s.eps,
                        clip_min=call.clip(s.clip_min), clip_max=call.clip(s.clip_max),
                        num_iter=s.fab_n_iter, norm=s.norm, n_target_classes=s.n_target_classes)


@register_member("Square", lambda s: "margin", targeted_ok=False)
def square(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings) -> tf.Tensor:
    return square_attack(model_fn, call.x, call.labels, eps=s.eps,
                         clip_min=call.clip(s.clip_min), clip_max=call.clip(s.clip_max),
                         n_queries=s.square_n_queries, norm=s.norm,
                         num_restarts=s.num_restarts, seed=call.seed, example_index=call.index)
