"""Cascaded, resumable evaluation with an ensemble of attacks (AutoAttack's scheme).

Attacks run in sequence; each sees only the points every earlier one left robust, and
each point keeps its worst case. Per batch, a state file (written atomically) records
which member broke which example, so an interrupted run resumes at the next batch and
ends with the same record. Only ``(N,)`` int8 arrays are kept: memory stays flat in N.

Members and presets live in :mod:`utils.evaluation.members` (registered there):
``APGD-CE``, ``APGD-DLR``, ``APGD-T``, ``FAB-T``, ``Square``, ``MultiTargeted``, ``PGD``.
``autoattack`` = APGD-CE, APGD-T, FAB-T, Square is AutoAttack's standard version (its
members, order and settings: 100 APGD steps, 9 target classes, 100 FAB-T steps, 5000
Square queries); ``autoattack-lite`` = APGD-CE then APGD-T is its faster part, whose
accuracy is an upper bound on full AutoAttack's. Records list the members that ran.

    settings = EnsembleSettings(eps=8 / 256, clip_min=data.clip_min, clip_max=data.clip_max)
    result = evaluate_ensemble(model, data.x_test, data.y_test,
                               members=parse_members("autoattack-lite"), settings=settings,
                               batch_size=50, state_file="results/aa_state.npz")
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import warnings
from typing import Any, Dict, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from utils.attacks.core import attack_succeeded, get_attack
from utils.attacks.multitarget import check_target_classes
from utils.attacks.objectives import OBJECTIVES
from utils.errors import UsageError
from utils.evaluation.members import (CALLABLE_OBJECTIVE, MEMBERS, PRESETS, EnsembleSettings,
                                      MemberCall, MemberSpec, member_catalog)
from utils.evaluation.state import (CLEAN_BROKEN, ROBUST, EvalState, digest, load_state,
                                    save_state)
from utils.evaluation.detection import ScoreFn, roc_auc
from utils.evaluation.masking_checks import probability_outputs
from utils.evaluation.stream import (BatchOutcome, Metric, accuracy_fields, check_examples,
                                     class_indices, logits_outcome, stream)
from utils.registry import Registry


# ---------------------------------------------------------------- validation

def parse_members(spec: "str | Sequence[str]", catalog: Registry[MemberSpec] = MEMBERS
                  ) -> Tuple[str, ...]:
    """A preset name or a comma list of member names (of ``catalog``) -> names, validated."""
    if isinstance(spec, str):
        if spec in PRESETS:
            return PRESETS[spec]
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    names = tuple(spec)
    if not names:
        raise UsageError(f"empty ensemble; name members ({', '.join(catalog.names())}) or a "
                         f"preset ({', '.join(sorted(PRESETS))})")
    for name in names:
        if name not in catalog:
            raise UsageError(f"unknown ensemble member {name!r}; choose from: "
                             f"{', '.join(catalog.names())}, or a preset: "
                             f"{', '.join(sorted(PRESETS))}")
    if len(set(names)) != len(names):
        raise UsageError(f"ensemble members repeat: {', '.join(names)}")
    return names


def member_objectives(members: Sequence[str], settings: EnsembleSettings,
                      catalog: Registry[MemberSpec] = MEMBERS) -> Dict[str, str]:
    """``member -> objective name`` it uses under ``settings``."""
    return {m: catalog.get(m).objective(settings) for m in members}


def check_settings(members: Sequence[str], s: EnsembleSettings, num_classes: int,
                   targeted: bool, catalog: Registry[MemberSpec] = MEMBERS) -> None:
    """UsageError for anything a member would fail on halfway through a run that
    :class:`EnsembleSettings` (validated when built) cannot know alone: the model's class
    count and each member's objective."""
    check_target_classes(s.n_target_classes, num_classes)
    for member, objective in member_objectives(members, s, catalog).items():
        _check_member(catalog.get(member), member, objective, s, num_classes, targeted)


def _check_member(member_spec: MemberSpec, member: str, objective: str, s: EnsembleSettings,
                  num_classes: int, targeted: bool) -> None:
    member_targeted = targeted if member_spec.targeted_ok else member_spec.top_k_targets
    if s.attack_backend != "native":
        if member_spec.attack is None:
            raise UsageError(f"{member} runs natively only; pass --attack_backend=native")
        get_attack(member_spec.attack, s.attack_backend)
    if targeted and not member_spec.targeted_ok:
        raise UsageError(f"{member} is an untargeted attack (its targets are the top-k "
                         "classes); run it without given targets (--target=False)")
    if objective == CALLABLE_OBJECTIVE:  # a user's callable: its objective is its own
        return
    spec = OBJECTIVES.get(objective)
    if spec.targeted is not None and spec.targeted != member_targeted:
        mode = "targeted" if spec.targeted else "untargeted"
        need = "a targeted" if member_targeted else "an untargeted"
        raise UsageError(f"{member} needs {need} objective; {objective} is {mode}")
    need = {"dlr": 3, "dlr_targeted": 4}.get(objective, 2)
    if num_classes < need:
        raise UsageError(f"{member} with {objective} needs at least {need} classes, the "
                         f"model has {num_classes}")


# ---------------------------------------------------------------- cascaded evaluation

def fingerprint(model: keras.Model, eval_model: keras.Model, x: np.ndarray, y: np.ndarray,
                targets: Optional[np.ndarray], members: Sequence[str],
                settings: EnsembleSettings, batch_size: int,
                score_fn: Optional[ScoreFn] = None) -> str:
    """What a state file must match to be resumed: data, weights, members, settings,
    the detection score."""
    fields = {k: v for k, v in dataclasses.asdict(settings).items()
              if k not in ("clip_min", "clip_max")}
    return json.dumps(dict(
        fields, members=list(members), batch_size=int(batch_size), n=len(x),
        score=None if score_fn is None else getattr(score_fn, "__name__", repr(score_fn)),
        clips=digest(settings.clip_min, settings.clip_max), data=digest(x, y),
        targets=None if targets is None else digest(targets),
        model=digest(*[w.numpy() for w in model.weights]),
        eval_model=digest(*[w.numpy() for w in eval_model.weights])), sort_keys=True)


def attack_batch(model: keras.Model, eval_model: keras.Model, xb: np.ndarray, yb: np.ndarray,
                 tb: Optional[np.ndarray], members: Sequence[str], settings: EnsembleSettings,
                 index: np.ndarray, catalog: Registry[MemberSpec] = MEMBERS
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cascade over one batch of the examples ``index`` ``(B,)`` (global indices: the
    random draws of member ``m`` use seed ``(settings.seed, m)`` and these, so they depend
    neither on the batch nor on which examples an earlier member broke).

    Returns:
        ``(broken_by (B,) int8, clean_logits (B, L), adv_logits (B, L), x_adv)``, logits by
        ``eval_model``; success is judged by ``eval_model`` (misclassified, or predicted
        as the target when ``tb`` is given).
    """
    num_classes = int(eval_model.output_shape[-1])
    x = tf.convert_to_tensor(xb, tf.float32)
    labels = tf.one_hot(yb, num_classes)
    targets = None if tb is None else tf.one_hot(tb, num_classes)

    def done(logits: tf.Tensor, idx: np.ndarray) -> np.ndarray:
        return attack_succeeded(logits, yb[idx], None if tb is None else tb[idx]).numpy()

    clean_logits = np.asarray(eval_model(x))
    everyone = np.arange(len(yb))
    broken = np.where(done(clean_logits, everyone), CLEAN_BROKEN, ROBUST).astype(np.int8)
    x_adv = np.array(xb, dtype=np.float32)
    for m, name in enumerate(members):
        idx = np.flatnonzero(broken == ROBUST)
        if idx.size == 0:
            break
        call = MemberCall(tf.gather(x, idx), tf.gather(labels, idx),
                          None if targets is None else tf.gather(targets, idx), idx,
                          tuple(x.shape), (int(settings.seed), m), index[idx])
        adv = np.asarray(catalog.get(name).fn(model, call, settings))
        x_adv[idx] = adv
        broken[idx[done(eval_model(tf.constant(adv)), idx)]] = m
    return broken, clean_logits, np.asarray(eval_model(tf.constant(x_adv))), x_adv


def _warn_probability_outputs(logits: np.ndarray) -> None:
    """auto-attack's check (:func:`utils.evaluation.masking_checks.probability_outputs`):
    an output that looks like probabilities hides gradients; warned at run time."""
    for message in probability_outputs(logits):
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def evaluate_ensemble(model: keras.Model, x: np.ndarray, y: np.ndarray, *,
                      members: Sequence[str], settings: EnsembleSettings, batch_size: int,
                      targets: Optional[np.ndarray] = None,
                      eval_model: Optional[keras.Model] = None,
                      state_file: "str | pathlib.Path | None" = None,
                      score_fn: Optional[ScoreFn] = None,
                      progress: bool = True,
                      custom_members: Optional[Dict[str, MemberSpec]] = None,
                      metrics: Sequence[Metric] = ()) -> Dict[str, Any]:
    """Clean and robust accuracy under the cascade ``members``, batch by batch (a single
    attack is the one-member cascade: :func:`evaluate_attack`).

    Args:
        model: ``x -> logits`` ``(batch, L)``, the attacked model.
        x: ``(N, H, W, C)`` float32 inputs in model units within the clips; y: ``(N,)``.
        members: names from :data:`MEMBERS` (see :func:`parse_members`), run in order.
        settings: :class:`EnsembleSettings`.
        batch_size: examples per batch (results do not depend on it).
        targets: ``(N,)`` target classes for a targeted evaluation (members that accept
            given targets only), else None.
        eval_model: the model that classifies (black-box transfer); default ``model``.
        state_file: ``.npz`` progress file, rewritten after every batch; an existing one
            of the same evaluation is resumed, one of another raises UsageError.
        score_fn: logits ``(batch, L)`` -> ``(batch,)`` detection score (higher = more
            clean, :data:`utils.evaluation.detection.SCORES`); adds ``auc`` of clean vs
            final adversarial inputs by ``eval_model``'s score (kept in the state file).
        progress: show a progress bar.
        custom_members: members by name beside :data:`MEMBERS` (e.g.
            :func:`utils.evaluation.members.callable_member`); ``members`` may name them.
            Not with ``state_file`` (a resumed run could not tell their code apart).
        metrics: more :class:`utils.evaluation.stream.Metric` hooks; each batch's
            outcome carries ``x_adv`` (the final inputs) for them.

    Returns:
        dict with ``n``, ``clean_correct``, ``clean_accuracy``, ``adv_correct``,
        ``adv_accuracy``, ``targeted`` (+ ``target_hits``, ``target_success``),
        ``members``, ``member_objectives``, ``broken_by_member`` (counts) and
        ``robust_accuracy_after`` (untargeted: share still robust after each member, in
        order) or ``target_success_after`` (targeted); rates are fractions in [0, 1].
    """
    x, y = np.asarray(x), class_indices(y, "y").astype(np.int64)
    eval_model = eval_model or model
    num_classes = int(model.output_shape[-1])
    catalog = member_catalog(custom_members)
    members = parse_members(list(members), catalog)
    if custom_members and state_file:
        raise UsageError("custom ensemble members cannot resume from a state file")
    targets = None if targets is None else class_indices(targets, "targets")
    check_examples(x, y, targets, num_classes, batch_size)
    if int(eval_model.output_shape[-1]) != num_classes:
        raise UsageError(f"eval_model has {eval_model.output_shape[-1]} classes, the attacked "
                         f"model {num_classes}")
    check_settings(members, settings, num_classes, targets is not None, catalog)
    fp = fingerprint(model, eval_model, x, y, targets, members, settings, batch_size,
                     score_fn)
    state = (load_state(state_file, fp, len(x)) if state_file else None) or \
        EvalState.fresh(len(x))
    if state.next_batch:
        print(f"resumed from {state_file}: {min(state.next_batch * batch_size, len(x))} of "
              f"{len(x)} examples already evaluated", flush=True)

    def run_batch(b: int, part: slice) -> BatchOutcome:
        tb = None if targets is None else targets[part]
        broken, clean_logits, adv_logits, x_adv = attack_batch(
            model, eval_model, x[part], y[part], tb, members, settings,
            np.arange(part.start, part.stop), catalog)
        if b == 0:
            _warn_probability_outputs(clean_logits)
        scores = None if score_fn is None else (score_fn(clean_logits), score_fn(adv_logits))
        out = logits_outcome(part, y[part], tb, clean_logits, adv_logits)
        out.extra.update(broken_by=broken, scores=scores)
        out.x_adv = x_adv
        return out

    def save(b: int, out: BatchOutcome) -> None:
        state.next_batch = b + 1
        if state_file:
            save_state(state_file, fp, state)

    return stream(len(x), batch_size, run_batch,
                  [CascadeRecord(state, members, settings, targets is not None,
                                 score_fn is not None, catalog)] + list(metrics),
                  first_batch=state.next_batch, after_batch=save, progress=progress)


def evaluate_attack(model: keras.Model, x: np.ndarray, y: np.ndarray, *, attack_name: str,
                    objective_name: str, eps: float, eps_iter: float, num_iter: int,
                    clip_min: Any, clip_max: Any, batch_size: int,
                    targets: Optional[np.ndarray] = None, num_restarts: int = 1, seed: int = 0,
                    norm: str = "linf", backend: str = "native", **options: Any
                    ) -> Dict[str, Any]:
    """One gradient attack (FGSM/BIM/PGD/MIM by its original name) as the one-member
    cascade of :func:`evaluate_ensemble` (``options``: its ``eval_model``,
    ``state_file``, ``score_fn``, ``progress``).

    ``eps``, ``eps_iter``: radius and step in model units in ``norm`` (``eps_256 / 256``);
    ``num_iter``: steps; ``num_restarts``: random starts, per-example worst case;
    ``seed``: example ``i``'s draws depend on ``(seed, i)`` only; ``backend``: ``native``
    or ``cleverhans``. Returns :func:`evaluate_ensemble`'s fields plus ``attack_name`` and
    ``objective_name``.
    """
    if attack_name not in MEMBERS or MEMBERS.get(attack_name).attack != attack_name:
        raise UsageError(f"unknown attack {attack_name!r}; choose one of: "
                         f"{', '.join(n for n in MEMBERS.names() if MEMBERS.get(n).attack)}")
    settings = EnsembleSettings(eps=eps, clip_min=clip_min, clip_max=clip_max, norm=norm,
                                n_iter=num_iter, eps_iter=eps_iter, nb_iter=num_iter,
                                objective=objective_name, num_restarts=num_restarts, seed=seed,
                                attack_backend=backend)
    result = evaluate_ensemble(model, x, y, members=(attack_name,), settings=settings,
                               batch_size=batch_size, targets=targets, **options)
    return dict(result, attack_name=attack_name, objective_name=objective_name)


@dataclasses.dataclass
class CascadeRecord:
    """The cascade's metric hook: keeps the per-example :class:`EvalState` (``(N,)`` int8
    arrays, resumable) and summarises it with :func:`ensemble_summary`."""

    state: EvalState
    members: Sequence[str]
    settings: EnsembleSettings
    targeted: bool
    auc: bool = False
    catalog: Registry[MemberSpec] = MEMBERS

    def update(self, out: BatchOutcome) -> None:
        self.state.broken_by[out.part] = out.extra["broken_by"]
        self.state.clean_correct[out.part] = out.clean_correct.astype(np.int8)
        self.state.adv_correct[out.part] = out.adv_correct.astype(np.int8)
        if out.extra.get("scores") is not None:
            self.state.clean_score[out.part], self.state.adv_score[out.part] = \
                out.extra["scores"]

    def fields(self, n: int) -> Dict[str, Any]:
        result = ensemble_summary(self.state, self.members, self.settings, self.targeted,
                                  self.catalog)
        if self.auc:
            result["auc"] = roc_auc(self.state.clean_score, self.state.adv_score)
        return result


def ensemble_summary(state: EvalState, members: Sequence[str], settings: EnsembleSettings,
                     targeted: bool, catalog: Registry[MemberSpec] = MEMBERS
                     ) -> Dict[str, Any]:
    """The record fields of a finished :class:`EvalState`."""
    n = len(state.broken_by)
    broken = state.broken_by.astype(np.int64)
    per_member = {m: int(np.sum(broken == j)) for j, m in enumerate(members)}
    fields = {k: v for k, v in dataclasses.asdict(settings).items()
              if k not in ("clip_min", "clip_max")}
    clean, adv = int(np.sum(state.clean_correct == 1)), int(np.sum(state.adv_correct == 1))
    # Targeted: a hit is a final input predicted as its target, also one that already was.
    hit = (broken >= 0) | (broken == CLEAN_BROKEN)
    hits = int(np.sum(hit)) if targeted else None
    result: Dict[str, Any] = dict(
        fields, members=list(members),
        member_objectives=member_objectives(members, settings, catalog),
        **accuracy_fields(n, clean, adv, hits), broken_by_member=per_member)
    if targeted:
        result.update(target_success_after={
            m: float(np.sum(hit & (broken <= j)) / n) for j, m in enumerate(members)})
    else:
        result["robust_accuracy_after"] = {
            m: float(np.sum((broken == ROBUST) | (broken > j)) / n)
            for j, m in enumerate(members)}
    return result
