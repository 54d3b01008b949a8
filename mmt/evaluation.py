"""Robust accuracy of any Keras model under a cascade of attacks, as a typed result.

:func:`evaluate` is the cascaded evaluation of :func:`utils.evaluation.ensemble.evaluate_ensemble`
(the route every script takes: each attack sees only the points every earlier one left
robust, each point keeps its worst case, results do not depend on ``batch_size``);
:func:`autoattack` is it with AutoAttack's standard members (APGD-CE, APGD-T, FAB-T,
Square, 100 steps / 9 targets / 5000 queries).

    result = mmt.evaluate(model, x, y, attacks="autoattack", eps=8 / 255)
    result.robust_accuracy, result.robust.mean()      # equal
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from utils.evaluation.ensemble import evaluate_ensemble, parse_members
from utils.evaluation.members import PRESETS, EnsembleSettings, MemberSpec, callable_member
from utils.evaluation.stream import BatchOutcome, class_indices

AttackLike = Union[str, Callable[..., Any]]


@dataclasses.dataclass(frozen=True, eq=False)
class EvaluationResult:
    """The outcome of :func:`evaluate` on ``n`` examples.

    Attributes:
        n: number of examples.
        clean_accuracy: share classified correctly without attack, in [0, 1].
        robust_accuracy: share still classified correctly after every attack, in [0, 1]
            (``<= clean_accuracy``; equals ``robust.mean()``).
        clean_correct: ``(n,)`` bool, correct without attack.
        robust: ``(n,)`` bool, correct after the whole cascade (its worst case).
        robust_accuracy_after: member name -> share still robust after it (in order).
        members: the attacks that ran, in order; member_objectives: the objective each
            minimised (``"(callable)"`` for a user's attack function).
        eps, norm: the threat model (eps in the model's input units).
        x_adv: ``(n, ...)`` float32 final inputs (the adversarial example where one was
            found, else ``x``) when ``return_adversarial``, else None.
        record: every field of :func:`utils.evaluation.ensemble.evaluate_ensemble`'s record.
    """

    n: int
    clean_accuracy: float
    robust_accuracy: float
    clean_correct: np.ndarray
    robust: np.ndarray
    robust_accuracy_after: Mapping[str, float]
    members: Tuple[str, ...]
    member_objectives: Mapping[str, str]
    eps: float
    norm: str
    x_adv: Optional[np.ndarray]
    record: Mapping[str, Any]


@dataclasses.dataclass
class PerExample:
    """A metric hook of the cascade's loop that keeps per-example flags (and, if asked,
    the final inputs) of ``n`` examples."""

    n: int
    keep_inputs: bool
    clean_correct: np.ndarray = dataclasses.field(init=False)
    robust: np.ndarray = dataclasses.field(init=False)
    x_adv: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.clean_correct = np.zeros(self.n, bool)
        self.robust = np.zeros(self.n, bool)

    def update(self, out: BatchOutcome) -> None:
        self.clean_correct[out.part] = out.clean_correct
        self.robust[out.part] = out.adv_correct
        if self.keep_inputs:
            if self.x_adv is None:
                self.x_adv = np.zeros((self.n,) + out.x_adv.shape[1:], np.float32)
            self.x_adv[out.part] = out.x_adv

    def fields(self, n: int) -> Dict[str, Any]:
        return {}


def _attack_name(fn: Callable[..., Any]) -> str:
    inner = fn.func if isinstance(fn, functools.partial) else fn
    return getattr(inner, "__name__", type(inner).__name__)


def resolve_attacks(attacks: "AttackLike | Sequence[AttackLike]"
                    ) -> Tuple[List[str], Dict[str, MemberSpec]]:
    """``(member names, custom members)``: a preset or member name, or a list of member
    names and attack callables (each callable becomes a member named after it)."""
    if isinstance(attacks, str) or callable(attacks):
        attacks = [attacks]
    names: List[str] = []
    custom: Dict[str, MemberSpec] = {}
    for attack in attacks:
        if isinstance(attack, str):
            names.append(attack)
            continue
        if not callable(attack):
            raise TypeError(f"an attack is a member name or a callable, got {attack!r}")
        name = f"{_attack_name(attack)}#{len(custom) + 1}"
        custom[name] = callable_member(attack)
        names.append(name)
    if len(names) == 1 and names[0] in PRESETS:  # the preset's members, as the scripts read it
        return list(parse_members(names[0])), custom
    return names, custom


def evaluate(model: Callable[..., Any], x: Any, y: Any, *,
             attacks: "AttackLike | Sequence[AttackLike]" = "autoattack", eps: float,
             norm: str = "linf", batch_size: int = 100, return_adversarial: bool = False,
             clip_min: Any = 0.0, clip_max: Any = 1.0, objective: str = "ce",
             seed: int = 0, progress: bool = False, **settings: Any) -> EvaluationResult:
    """Clean and robust accuracy of ``model`` under the cascade ``attacks``.

    Args:
        model: a ``keras.Model`` mapping ``(batch, H, W, C)`` inputs to LOGITS ``(batch, L)``.
        x: ``(n, H, W, C)`` float32 inputs in ``[clip_min, clip_max]`` (default ``[0, 1]``
            pixels).
        y: ``(n,)`` class indices or ``(n, L)`` one-hot.
        attacks: a preset (``"autoattack"``, ``"autoattack-lite"``, ``"strong"``), or a list
            of member names (``"APGD-CE"``, ``"APGD-T"``, ``"FAB-T"``, ``"Square"``,
            ``"MadryEtAl"`` ...) and attack callables ``fn(model, x, labels_onehot, *, eps,
            norm, clip_min, clip_max, seed, example_index) -> x_adv`` (every
            :mod:`mmt.attacks` function, e.g. ``functools.partial(mmt.pgd, num_iter=20)``).
        eps: radius in the model's INPUT units (``8 / 255`` for [0, 1] pixels).
        norm: ``"linf"`` or ``"l2"``.
        batch_size: examples per batch (the result does not depend on it).
        return_adversarial: keep the final inputs as ``result.x_adv``.
        clip_min: the valid input range's low end (a scalar or per-pixel ``(H, W, C)``).
        clip_max: its high end (same shapes).
        objective: the untargeted objective of APGD-CE / PGD (``"mmc_un1"`` on MMC models).
        seed: example ``i``'s random draws depend only on ``(seed, member, i)``.
        progress: show a progress bar.
        **settings: other :class:`utils.evaluation.members.EnsembleSettings` fields
            (``n_iter``, ``targeted_objective``, ``n_target_classes``, ``num_restarts``,
            ``square_n_queries``, ``fab_n_iter``, ``eps_iter``, ``nb_iter`` ...).
    """
    names, custom = resolve_attacks(attacks)
    config = EnsembleSettings(eps=eps, clip_min=clip_min, clip_max=clip_max, norm=norm,
                              objective=objective, seed=seed, **settings)
    labels = class_indices(y, "y")
    hook = PerExample(len(labels), bool(return_adversarial))
    record = evaluate_ensemble(model, np.asarray(x, np.float32), labels, members=names,
                               settings=config, batch_size=batch_size, progress=progress,
                               custom_members=custom, metrics=[hook])
    return EvaluationResult(
        n=record["n"], clean_accuracy=record["clean_accuracy"],
        robust_accuracy=record["adv_accuracy"], clean_correct=hook.clean_correct,
        robust=hook.robust, robust_accuracy_after=dict(record["robust_accuracy_after"]),
        members=tuple(record["members"]), member_objectives=dict(record["member_objectives"]),
        eps=float(eps), norm=norm, x_adv=hook.x_adv, record=record)


def autoattack(model: Callable[..., Any], x: Any, y: Any, *, eps: float, norm: str = "linf",
               **kwargs: Any) -> EvaluationResult:
    """:func:`evaluate` with AutoAttack's standard version (APGD-CE, APGD-T, FAB-T,
    Square); ``kwargs`` as :func:`evaluate` (``batch_size``, ``clip_min``, ``objective``,
    ``return_adversarial`` ...)."""
    return evaluate(model, x, y, attacks="autoattack", eps=eps, norm=norm, **kwargs)
