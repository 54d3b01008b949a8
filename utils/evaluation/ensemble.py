"""Cascaded, resumable evaluation with an ensemble of attacks (AutoAttack's scheme).

Attacks run in sequence; each sees only the points every earlier one left robust, and
each point keeps its worst case. Per batch, a state file (written atomically) records
which member broke which example, so an interrupted run resumes at the next batch and
ends with the same record. Only ``(N,)`` int8 arrays are kept: memory stays flat in N.

Members (:data:`MEMBERS`): ``APGD-CE`` (APGD with the untargeted objective, ``ce`` by
default or an adaptive one such as ``mmc_un1``), ``APGD-DLR``, ``APGD-T`` (targeted APGD
over the top-k classes with ``dlr_targeted`` or e.g. ``mmc_tar1``), ``MultiTargeted``
(targeted ``margin`` PGD over the top-k classes) and ``PGD`` (MadryEtAl).

Presets (:data:`PRESETS`): ``autoattack-lite`` = APGD-CE then APGD-T. This is NOT full
AutoAttack: its other two members, FAB-T and Square (black-box), are not implemented, so
the preset can only over-estimate AutoAttack's robust accuracy where those two would
have added something (rarely, in Croce & Hein's tables). Records list the members.

    settings = EnsembleSettings(eps=8 / 256, clip_min=data.clip_min, clip_max=data.clip_max)
    result = evaluate_ensemble(model, data.x_test, data.y_test,
                               members=parse_members("autoattack-lite"), settings=settings,
                               batch_size=50, state_file="results/aa_state.npz")
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from utils.attacks.apgd import apgd, check_norm, checkpoint_schedule, start_noise
from utils.attacks.iterative import ModelFn, restart_seed, worst_case_over_restarts
from utils.errors import UsageError
from utils.evaluation.state import (CLEAN_BROKEN, ROBUST, EvalState, digest, load_state,
                              save_state)
from utils.attacks.multitarget import (apgd_targeted, check_target_classes, multi_targeted_pgd,
                               rank_seed, subset_clip)
from utils.attacks.objectives import OBJECTIVES
from utils.registry import Registry


@dataclasses.dataclass(frozen=True)
class EnsembleSettings:
    """What every member needs.

    eps: radius in model units (``eps_256 / 256``); norm: ``linf`` | ``l2`` (PGD and
    MultiTargeted are ℓ∞ only). clip_min/clip_max: scalars or per-pixel ``(H, W, C)``.
    n_iter: APGD steps per run (per target for APGD-T). eps_iter, nb_iter: step (model
    units) and steps of PGD and MultiTargeted (per target). objective: untargeted
    objective of APGD-CE and PGD (or the targeted one when targets are given);
    targeted_objective: APGD-T's. n_target_classes: k of APGD-T / MultiTargeted (capped
    at ``L - 1``). num_restarts: random starts of APGD-CE and PGD. seed: base seed;
    batch ``b`` uses ``(seed, b)``.
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


@dataclasses.dataclass(frozen=True)
class MemberCall:
    """One member's input: the still-robust subset ``idx`` of a batch of shape
    ``batch_shape``; ``x`` ``(m, ...)``, ``labels`` ``(m, L)`` one-hot, ``targets`` one-hot
    or None. ``seed`` is the batch's; noise is drawn for the whole batch and gathered,
    so an example's attack does not depend on which others are still robust."""

    x: tf.Tensor
    labels: tf.Tensor
    targets: Optional[tf.Tensor]
    idx: np.ndarray
    batch_shape: Tuple[int, ...]
    seed: Tuple[int, int]

    def noise(self, norm: str, seed: Tuple[int, int]) -> tf.Tensor:
        return tf.gather(start_noise(self.batch_shape, seed, norm), self.idx)

    def clip(self, value: Any) -> Any:
        """The subset's clip bound (see :func:`utils.attacks.multitarget.subset_clip`)."""
        return subset_clip(value, self.idx, self.batch_shape)


MemberFn = Callable[[ModelFn, MemberCall, EnsembleSettings], tf.Tensor]
MEMBERS: Registry[MemberFn] = Registry("ensemble member")
MEMBER_OBJECTIVE: Dict[str, Callable[[EnsembleSettings], str]] = {}
TARGETED_OK: Dict[str, bool] = {}  # member -> accepts given targets (targeted evaluation)
PRESETS: Dict[str, Tuple[str, ...]] = {
    "autoattack-lite": ("APGD-CE", "APGD-T"),
    "strong": ("APGD-CE", "APGD-DLR", "APGD-T", "MultiTargeted"),
}


def register_member(name: str, objective: Callable[[EnsembleSettings], str],
                    targeted_ok: bool) -> Callable[[MemberFn], MemberFn]:
    def decorator(fn: MemberFn) -> MemberFn:
        MEMBERS.register(name)(fn)
        MEMBER_OBJECTIVE[name] = objective
        TARGETED_OK[name] = targeted_ok
        return fn
    return decorator


def _apgd_member(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings,
                 objective: str) -> tf.Tensor:
    return apgd(model_fn, call.x, call.labels, objective=OBJECTIVES.get(objective).fn,
                eps=s.eps, clip_min=call.clip(s.clip_min), clip_max=call.clip(s.clip_max),
                n_iter=s.n_iter, norm=s.norm, targets_onehot=call.targets,
                success_on_target=call.targets is not None, num_restarts=s.num_restarts,
                seed=call.seed,
                noise_for_restart=lambda r: call.noise(s.norm, restart_seed(call.seed, r)))


@register_member("APGD-CE", lambda s: s.objective, targeted_ok=True)
def apgd_ce(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings) -> tf.Tensor:
    return _apgd_member(model_fn, call, s, s.objective)


@register_member("APGD-DLR", lambda s: "dlr", targeted_ok=False)
def apgd_dlr(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings) -> tf.Tensor:
    return _apgd_member(model_fn, call, s, "dlr")


@register_member("APGD-T", lambda s: s.targeted_objective, targeted_ok=False)
def apgd_t(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings) -> tf.Tensor:
    return apgd_targeted(model_fn, call.x, call.labels, eps=s.eps,
                         clip_min=call.clip(s.clip_min), clip_max=call.clip(s.clip_max),
                         n_iter=s.n_iter, norm=s.norm,
                         objective=OBJECTIVES.get(s.targeted_objective).fn,
                         n_target_classes=s.n_target_classes,
                         noise_for_rank=lambda r: call.noise(s.norm, rank_seed(call.seed, r)))


@register_member("MultiTargeted", lambda s: "margin", targeted_ok=False)
def multi_targeted(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings) -> tf.Tensor:
    return multi_targeted_pgd(model_fn, call.x, call.labels, eps=s.eps, eps_iter=s.eps_iter,
                              nb_iter=s.nb_iter, clip_min=call.clip(s.clip_min),
                              clip_max=call.clip(s.clip_max),
                              n_target_classes=s.n_target_classes, seed=call.seed)


@register_member("PGD", lambda s: s.objective, targeted_ok=True)
def pgd(model_fn: ModelFn, call: MemberCall, s: EnsembleSettings) -> tf.Tensor:
    return worst_case_over_restarts(
        "MadryEtAl", model_fn, call.x, call.labels, num_restarts=s.num_restarts,
        seed=call.seed, targets_onehot=call.targets, objective=OBJECTIVES.get(s.objective).fn,
        eps=s.eps, eps_iter=s.eps_iter, nb_iter=s.nb_iter, clip_min=call.clip(s.clip_min),
        clip_max=call.clip(s.clip_max))


# ---------------------------------------------------------------- validation

def parse_members(spec: "str | Sequence[str]") -> Tuple[str, ...]:
    """A preset name or a comma list of member names -> member names, validated."""
    if isinstance(spec, str):
        if spec in PRESETS:
            return PRESETS[spec]
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    names = tuple(spec)
    if not names:
        raise UsageError(f"empty ensemble; name members ({', '.join(MEMBERS.names())}) or a "
                         f"preset ({', '.join(sorted(PRESETS))})")
    for name in names:
        if name not in MEMBERS:
            raise UsageError(f"unknown ensemble member {name!r}; choose from: "
                             f"{', '.join(MEMBERS.names())}, or a preset: "
                             f"{', '.join(sorted(PRESETS))}")
    if len(set(names)) != len(names):
        raise UsageError(f"ensemble members repeat: {', '.join(names)}")
    return names


def member_objectives(members: Sequence[str], settings: EnsembleSettings) -> Dict[str, str]:
    """``member -> objective name`` it uses under ``settings``."""
    return {m: MEMBER_OBJECTIVE[m](settings) for m in members}


def check_settings(members: Sequence[str], s: EnsembleSettings, num_classes: int,
                   targeted: bool) -> None:
    """UsageError for anything a member would fail on halfway through a run."""
    check_norm(s.norm)
    checkpoint_schedule(s.n_iter)
    for name, value, positive in (("eps", s.eps, False), ("eps_iter", s.eps_iter, True)):
        if not np.isfinite(value) or value < 0 or (positive and value == 0):
            raise UsageError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}"
                             f", got {value}")
    for name, value in (("nb_iter", s.nb_iter), ("num_restarts", s.num_restarts)):
        if int(value) != value or value < 1:
            raise UsageError(f"{name} must be an integer >= 1, got {value}")
    check_target_classes(s.n_target_classes, num_classes)
    for member, objective in member_objectives(members, s).items():
        _check_member(member, objective, s, num_classes, targeted)


def _check_member(member: str, objective: str, s: EnsembleSettings, num_classes: int,
                  targeted: bool) -> None:
    spec = OBJECTIVES.get(objective)
    member_targeted = targeted if TARGETED_OK[member] else member in ("APGD-T", "MultiTargeted")
    if targeted and not TARGETED_OK[member]:
        raise UsageError(f"{member} is an untargeted attack (its targets are the top-k "
                         "classes); run it without given targets (--target=False)")
    if spec.targeted is not None and spec.targeted != member_targeted:
        mode = "targeted" if spec.targeted else "untargeted"
        need = "a targeted" if member_targeted else "an untargeted"
        raise UsageError(f"{member} needs {need} objective; {objective} is {mode}")
    need = {"dlr": 3, "dlr_targeted": 4}.get(objective, 2)
    if num_classes < need:
        raise UsageError(f"{member} with {objective} needs at least {need} classes, the "
                         f"model has {num_classes}")
    if s.norm != "linf" and member in ("PGD", "MultiTargeted"):
        raise UsageError(f"{member} is ℓ∞ only; use APGD members for --norm={s.norm}")


# ---------------------------------------------------------------- cascaded evaluation

def fingerprint(model: keras.Model, eval_model: keras.Model, x: np.ndarray, y: np.ndarray,
                targets: Optional[np.ndarray], members: Sequence[str],
                settings: EnsembleSettings, batch_size: int) -> str:
    """What a state file must match to be resumed: data, weights, members, settings."""
    fields = {k: v for k, v in dataclasses.asdict(settings).items()
              if k not in ("clip_min", "clip_max")}
    return json.dumps(dict(
        fields, members=list(members), batch_size=int(batch_size), n=len(x),
        clips=digest(settings.clip_min, settings.clip_max), data=digest(x, y),
        targets=None if targets is None else digest(targets),
        model=digest(*[w.numpy() for w in model.weights]),
        eval_model=digest(*[w.numpy() for w in eval_model.weights])), sort_keys=True)


def attack_batch(model: keras.Model, eval_model: keras.Model, xb: np.ndarray, yb: np.ndarray,
                 tb: Optional[np.ndarray], members: Sequence[str], settings: EnsembleSettings,
                 seed: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cascade over one batch. Returns ``(broken_by, clean_correct, adv_correct)``
    ``(B,)`` int8; success is judged by ``eval_model`` (misclassified, or predicted as
    the target when ``tb`` is given)."""
    num_classes = int(eval_model.output_shape[-1])
    x = tf.convert_to_tensor(xb, tf.float32)
    labels = tf.one_hot(yb, num_classes)
    targets = None if tb is None else tf.one_hot(tb, num_classes)

    def done(pred: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return pred != yb[idx] if tb is None else pred == tb[idx]

    clean_pred = np.asarray(eval_model(x)).argmax(-1)
    everyone = np.arange(len(yb))
    broken = np.where(done(clean_pred, everyone), CLEAN_BROKEN, ROBUST).astype(np.int8)
    x_adv = np.array(xb, dtype=np.float32)
    for m, name in enumerate(members):
        idx = np.flatnonzero(broken == ROBUST)
        if idx.size == 0:
            break
        call = MemberCall(tf.gather(x, idx), tf.gather(labels, idx),
                          None if targets is None else tf.gather(targets, idx), idx,
                          tuple(x.shape), seed)
        adv = np.asarray(MEMBERS.get(name)(model, call, settings))
        x_adv[idx] = adv
        broken[idx[done(np.asarray(eval_model(tf.constant(adv))).argmax(-1), idx)]] = m
    adv_pred = np.asarray(eval_model(tf.constant(x_adv))).argmax(-1)
    return broken, (clean_pred == yb).astype(np.int8), (adv_pred == yb).astype(np.int8)


def evaluate_ensemble(model: keras.Model, x: np.ndarray, y: np.ndarray, *,
                      members: Sequence[str], settings: EnsembleSettings, batch_size: int,
                      targets: Optional[np.ndarray] = None,
                      eval_model: Optional[keras.Model] = None,
                      state_file: "str | pathlib.Path | None" = None,
                      progress: bool = True) -> Dict[str, Any]:
    """Clean and robust accuracy under the cascade ``members``, batch by batch.

    Args:
        model: ``x -> logits`` ``(batch, L)``, the attacked model.
        x: ``(N, H, W, C)`` float32 inputs in model units within the clips; y: ``(N,)``.
        members: names from :data:`MEMBERS` (see :func:`parse_members`), run in order.
        settings: :class:`EnsembleSettings`.
        batch_size: examples per batch; batch ``b`` is attacked with seed
            ``(settings.seed, b)``.
        targets: ``(N,)`` target classes for a targeted evaluation (members APGD-CE and
            PGD only), else None.
        eval_model: the model that classifies (black-box transfer); default ``model``.
        state_file: ``.npz`` progress file, rewritten after every batch; an existing one
            of the same evaluation is resumed, one of another raises UsageError.
        progress: show a progress bar.

    Returns:
        dict with ``n``, ``clean_correct``, ``clean_accuracy``, ``adv_correct``,
        ``adv_accuracy``, ``targeted`` (+ ``target_hits``, ``target_success``),
        ``members``, ``member_objectives``, ``broken_by_member`` (counts) and
        ``robust_accuracy_after`` (untargeted: share still robust after each member, in
        order) or ``target_success_after`` (targeted); rates are fractions in [0, 1].
    """
    x, y = np.asarray(x), np.asarray(y).astype(np.int64)
    eval_model = eval_model or model
    num_classes = int(model.output_shape[-1])
    members = parse_members(list(members))
    _validate_run(x, y, targets, num_classes, eval_model, batch_size)
    check_settings(members, settings, num_classes, targets is not None)
    fp = fingerprint(model, eval_model, x, y, targets, members, settings, batch_size)
    state = (load_state(state_file, fp, len(x)) if state_file else None) or \
        EvalState.fresh(len(x))
    if state.next_batch:
        print(f"resumed from {state_file}: {min(state.next_batch * batch_size, len(x))} of "
              f"{len(x)} examples already evaluated", flush=True)
    starts = list(range(0, len(x), batch_size))
    bar = keras.utils.Progbar(len(x), unit_name="example") if progress else None
    for batch in range(state.next_batch, len(starts)):
        part = slice(starts[batch], min(starts[batch] + batch_size, len(x)))
        out = attack_batch(model, eval_model, x[part], y[part],
                           None if targets is None else targets[part], members, settings,
                           (int(settings.seed), batch))
        state.broken_by[part], state.clean_correct[part], state.adv_correct[part] = out
        state.next_batch = batch + 1
        if state_file:
            save_state(state_file, fp, state)
        if bar is not None:
            bar.update(part.stop)
    return ensemble_summary(state, members, settings, targets is not None)


def _validate_run(x: np.ndarray, y: np.ndarray, targets: Optional[np.ndarray],
                  num_classes: int, eval_model: keras.Model, batch_size: int) -> None:
    if len(x) != len(y) or len(x) == 0:
        raise UsageError(f"need as many labels as images (> 0), got {len(x)} and {len(y)}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise UsageError(f"batch_size must be an integer >= 1, got {batch_size}")
    if y.min() < 0 or y.max() >= num_classes:
        raise UsageError(f"labels must lie in [0, {num_classes}) for this model")
    if int(eval_model.output_shape[-1]) != num_classes:
        raise UsageError(f"eval_model has {eval_model.output_shape[-1]} classes, the attacked "
                         f"model {num_classes}")
    if targets is not None and (np.shape(targets) != y.shape or np.any(targets == y)
                                or np.min(targets) < 0 or np.max(targets) >= num_classes):
        raise UsageError("targets must be (N,) valid classes other than the true labels")


def ensemble_summary(state: EvalState, members: Sequence[str], settings: EnsembleSettings,
                     targeted: bool) -> Dict[str, Any]:
    """The record fields of a finished :class:`EvalState`."""
    n = len(state.broken_by)
    broken = state.broken_by.astype(np.int64)
    per_member = {m: int(np.sum(broken == j)) for j, m in enumerate(members)}
    fields = {k: v for k, v in dataclasses.asdict(settings).items()
              if k not in ("clip_min", "clip_max")}
    clean, adv = int(np.sum(state.clean_correct == 1)), int(np.sum(state.adv_correct == 1))
    result: Dict[str, Any] = dict(
        fields, members=list(members), member_objectives=member_objectives(members, settings),
        targeted=targeted, n=n, clean_correct=clean, clean_accuracy=clean / n,
        adv_correct=adv, adv_accuracy=adv / n, broken_by_member=per_member)
    if targeted:
        hits = int(np.sum(broken >= 0))
        result.update(target_hits=hits, target_success=hits / n, target_success_after={
            m: float(np.sum((broken >= 0) & (broken <= j)) / n) for j, m in enumerate(members)})
    else:
        result["robust_accuracy_after"] = {
            m: float(np.sum((broken == ROBUST) | (broken > j)) / n)
            for j, m in enumerate(members)}
    return result
