"""One ``advtest_iterative.py`` run: white-box (or transfer) iterative attacks over a list
of ε, one result record per ε appended to the results file.

The entry script builds an :class:`IterativeConfig` from its flags once
(:func:`utils.cli.iterative.config_from_flags`, which validates every value) and calls
:func:`run`; tests call :func:`run` (or :func:`load` then :func:`evaluate`) directly.

    records = run(config)   # prints one line per ε, appends the records, returns them
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf

from utils.attacks.multitarget import top_k_targets
from utils.attacks.objectives import OBJECTIVES
from utils.errors import Interrupted
from utils.evaluation.detection import SCORES
from utils.evaluation.ensemble import check_settings, evaluate_ensemble
from utils.evaluation.masking_checks import (accuracy_trend, batch_checks,
                                             blackbox_from_records, weaker_objective)
from utils.evaluation.members import EnsembleSettings
from utils.evaluation.sources import DataSource, ModelSource, load_data, load_model
from utils.evaluation.stream import draw_targets
from utils.models.jit import jit_model
from utils.results import EvalRecord, append_records, read_records

#: --attack_method names beyond the gradient attacks -> their cascade members (None: the
#: ``ensemble`` setting's). All are untargeted by construction but APGD. A gradient attack
#: (FGSM/BIM/MadryEtAl/MIM) runs as the one-member cascade of itself.
ENSEMBLE_ATTACKS: Dict[str, Optional[Tuple[str, ...]]] = {
    "APGD": ("APGD-CE",), "APGD-T": ("APGD-T",), "MultiTargeted": ("MultiTargeted",),
    "AutoAttack": None}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to run: the cascade ``members`` (:mod:`utils.evaluation.ensemble`; a gradient
    attack alone is ``(attack,)``); ``objective`` the (untargeted, or targeted with
    ``targeted``) objective, ``targeted_objective`` APGD-T's."""

    attack: str
    members: Tuple[str, ...]
    targeted: bool
    objective: str
    targeted_objective: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class RecordInfo:
    """What every record says about the evaluated model beyond the results: its ``loss``
    and checkpoint ``epoch``, adversarial training (``advtrain``: attack_method_for_advtrain,
    adv_ratio, use_target; None: standard training or a file) and, for a transfer run, the
    two models' names, the substitute's loss and both epochs."""

    dataset: str
    loss: str
    epoch: int
    adaptive: bool
    normalize_output_for_ball: bool
    advtrain: Optional[Tuple[str, float, bool]] = None
    model_1: Optional[str] = None
    model_2: Optional[str] = None
    substitute_loss: Optional[str] = None
    epoch_1: Optional[int] = None
    epoch_2: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class IterativeConfig:
    """A validated run. ε values and steps in /256 pixel units; ``model`` crafts the
    examples, ``target`` (transfer; None: white-box) classifies them; ``batch_size`` is the
    first batch the masking checks use, ``eval_batch_size`` the images attacked per batch;
    ``state_file`` NAME.npz keeps the progress per ε (NAME.eps8.npz); ``masking_checks``
    False skips :mod:`utils.evaluation.masking_checks` (records: ``masking_warnings`` None)."""

    plan: Plan
    eps_256: Tuple[float, ...]
    data: DataSource
    model: ModelSource
    info: RecordInfo
    target: Optional[ModelSource] = None
    eps_iter_256: float = 2.0
    num_iter: int = 10
    num_restarts: int = 1
    attack_backend: str = "native"
    norm: str = "linf"
    n_target_classes: int = 9
    fab_n_iter: int = 100
    square_n_queries: int = 5000
    state_file: Optional[str] = None
    auc_score: Optional[str] = None
    seed: int = 0
    batch_size: int = 50
    eval_batch_size: int = 50
    progress: bool = True
    jit_compile: bool = False
    masking_checks: bool = True
    results_file: str = "results/advtest_iterative.jsonl"


@dataclasses.dataclass(frozen=True)
class Loaded:
    """The data and models of a run: ``attacker`` crafts, ``evaluated`` classifies (the
    same model white-box); ``targets`` the drawn target labels (targeted runs only)."""

    data: Any
    attacker: Any
    evaluated: Any
    targets: Any = None


def state_path(state_file: Optional[str], eps_256: float) -> Optional[pathlib.Path]:
    """``state_file`` NAME.npz -> NAME.eps{eps}.npz (one state per ε); None stays None."""
    if state_file is None:
        return None
    path = pathlib.Path(state_file)
    return path.with_name(f"{path.stem}.eps{eps_256:g}{path.suffix or '.npz'}")


def ensemble_settings(config: IterativeConfig, eps_256: float, data: Any) -> EnsembleSettings:
    """The :class:`utils.evaluation.members.EnsembleSettings` of one ε."""
    plan = config.plan
    return EnsembleSettings(
        eps=eps_256 / 256, clip_min=data.clip_min, clip_max=data.clip_max, norm=config.norm,
        n_iter=config.num_iter, eps_iter=config.eps_iter_256 / 256, nb_iter=config.num_iter,
        objective=plan.objective, targeted_objective=plan.targeted_objective or "dlr_targeted",
        n_target_classes=config.n_target_classes, num_restarts=config.num_restarts,
        seed=config.seed, fab_n_iter=config.fab_n_iter,
        square_n_queries=config.square_n_queries, attack_backend=config.attack_backend)


def load(config: IterativeConfig) -> Loaded:
    """Load the data and model(s), check the cascade settings against them, draw targets."""
    data = load_data(config.data)
    attacker = load_model(config.model, data)
    check_settings(config.plan.members, ensemble_settings(config, config.eps_256[0], data),
                   data.num_classes, config.plan.targeted)
    evaluated = attacker if config.target is None else load_model(config.target, data,
                                                                  check_finite=False)
    targets = (draw_targets(data.y_test, data.num_classes, config.seed)
               if config.plan.targeted else None)
    return Loaded(data, attacker, evaluated, targets)


def _evaluate_eps(config: IterativeConfig, eps: float, loaded: Loaded) -> Dict[str, Any]:
    """One ε: the result dict of :func:`utils.evaluation.ensemble.evaluate_ensemble`."""
    plan, data = config.plan, loaded.data
    attacked, evaluated = loaded.attacker.model, loaded.evaluated.model
    if config.jit_compile:
        attacked, evaluated = jit_model(attacked), jit_model(evaluated)
    result = evaluate_ensemble(
        attacked, data.x_test, data.y_test, members=plan.members,
        settings=ensemble_settings(config, eps, data), batch_size=config.eval_batch_size,
        targets=loaded.targets, eval_model=evaluated,
        state_file=state_path(config.state_file, eps),
        score_fn=SCORES.get(config.auc_score) if config.auc_score else None,
        progress=config.progress)
    # The objective of the first member (APGD-T alone: its targeted objective).
    return dict(result, attack_name=plan.attack,
                objective_name=result["member_objectives"][plan.members[0]])


def _evaluate_or_interrupted(config: IterativeConfig, eps: float,
                             loaded: Loaded) -> Dict[str, Any]:
    """:func:`_evaluate_eps`; an interrupt says what was kept (``utils.errors.Interrupted``)."""
    try:
        return _evaluate_eps(config, eps, loaded)
    except KeyboardInterrupt:
        path = state_path(config.state_file, eps)
        if path is not None and path.exists():
            raise Interrupted(f"interrupted at eps {eps:g}/256; state saved to {path}; "
                              "rerun the same command to resume") from None
        raise Interrupted(f"interrupted at eps {eps:g}/256; no results written for it "
                          "(--state_file makes a run resumable)") from None


def summary_line(eps: float, result: Dict[str, Any], auc_score: Optional[str]) -> str:
    """The line printed for one ε."""
    line = f"eps {eps:g}/256: clean {result['clean_accuracy']:.4f}, " \
           f"adv_acc {result['adv_accuracy']:.4f}"
    if result["targeted"]:
        line += f", adv_acc_target (success) {result['target_success']:.4f}"
    if auc_score:
        line += f", auc ({auc_score}) {result['auc']:.4f}"
    after = result.get("robust_accuracy_after") or result.get("target_success_after")
    if after and len(after) > 1:
        line += " (after " + ", ".join(f"{m} {a:.4f}" for m, a in after.items()) + ")"
    return line


def batch_warnings(config: IterativeConfig, loaded: Loaded) -> List[str]:
    """:func:`utils.evaluation.masking_checks.batch_checks` on the first batch with the run's
    objective (a targeted-only one aims at the top wrong class when no targets are set);
    untargeted ℓ∞, also :func:`utils.evaluation.masking_checks.weaker_objective` at the
    first ε > 0."""
    plan, data, model = config.plan, loaded.data, loaded.attacker.model
    eps_256 = next((e for e in config.eps_256 if e > 0), 0.0)
    x = data.x_test[:config.batch_size]
    labels = tf.one_hot(data.y_test[:len(x)], data.num_classes)
    spec = OBJECTIVES.get(plan.objective)
    aim = None
    if loaded.targets is not None and spec.targeted is not False:
        aim = tf.one_hot(loaded.targets[:len(x)], data.num_classes)
    elif spec.targeted:
        aim = tf.one_hot(top_k_targets(model(x), labels, 1)[0], data.num_classes)
    found = batch_checks(model, x, labels, spec.fn, aim)
    if spec.targeted is False and not plan.targeted and eps_256 > 0 and config.norm == "linf":
        found += weaker_objective(model, x, labels, plan.objective, eps=eps_256 / 256,
                                  eps_iter=config.eps_iter_256 / 256, clip_min=data.clip_min,
                                  clip_max=data.clip_max, seed=config.seed)
    return found


def add_masking_warnings(config: IterativeConfig, records: List[Dict[str, Any]],
                         batch: Optional[List[str]]) -> None:
    """Batch checks, the ε trend of this run and, white-box, earlier black-box records
    of the results file; ``batch`` None (``config.masking_checks`` False): None, not
    checked."""
    if batch is None:
        for record in records:
            record["masking_warnings"] = None
        return
    trend = accuracy_trend([(r["eps_256"], config.num_iter, r["adv_accuracy"])
                            for r in records])
    previous = [] if config.target is not None else read_records(config.results_file)
    for record in records:
        record["masking_warnings"] = batch + trend + blackbox_from_records(previous, record)
        for message in record["masking_warnings"]:
            print(f"masking warning (eps {record['eps_256']:g}/256): {message}", flush=True)


def _extra_fields(config: IterativeConfig, loaded: Loaded) -> Dict[str, Any]:
    """Record fields on adversarial training, transfer and the AUC score."""
    info = config.info
    extra: Dict[str, Any] = {"transfer": config.target is not None,
                             "use_advtrain": info.advtrain is not None}
    if info.advtrain is not None:  # which adversarial-training run was evaluated
        extra.update(zip(("attack_method_for_advtrain", "adv_ratio", "use_target"),
                         info.advtrain))
    if config.target is not None:
        extra.update(model_1=info.model_1, model_2=info.model_2,
                     substitute=loaded.attacker.run_name, substitute_loss=info.substitute_loss,
                     epoch_1=info.epoch_1, epoch_2=info.epoch_2)
    if config.auc_score:
        extra["auc_score"] = config.auc_score
    return extra


def record(config: IterativeConfig, loaded: Loaded, eps: float,
           result: Dict[str, Any]) -> Dict[str, Any]:
    """The result record of one ε (without its masking warnings)."""
    info, evaluated = config.info, loaded.evaluated
    return EvalRecord(
        script="advtest_iterative", dataset=info.dataset, model=evaluated.run_name,
        model_fields=evaluated.record_fields(), loss=info.loss, epoch=info.epoch,
        adaptive=info.adaptive, objective=result["objective_name"],
        normalize_output_for_ball=info.normalize_output_for_ball,
        # a cascade's result echoes its settings' untargeted ``objective``; the record's
        # ``objective`` is the one its first member used (``objective_name``), as before
        outcome={k: v for k, v in result.items() if k != "objective"},
        settings=dict(eps_256=eps, eps_iter_256=config.eps_iter_256,
                      **_extra_fields(config, loaded))).to_dict()


def evaluate(config: IterativeConfig, loaded: Loaded) -> List[Dict[str, Any]]:
    """Attack every ε of ``config`` (printing one line each); the records, with their
    masking warnings, not yet written."""
    warnings = batch_warnings(config, loaded) if config.masking_checks else None
    records = []
    for eps in config.eps_256:
        result = _evaluate_or_interrupted(config, eps, loaded)
        print(summary_line(eps, result, config.auc_score), flush=True)
        records.append(record(config, loaded, eps, result))
    add_masking_warnings(config, records, warnings)
    return records


def run(config: IterativeConfig, loaded: Optional[Loaded] = None) -> List[Dict[str, Any]]:
    """Load (unless ``loaded`` is given), evaluate and append the records to
    ``config.results_file`` (JSON lines + CSV); returns them."""
    records = evaluate(config, load(config) if loaded is None else loaded)
    append_records(config.results_file, records)
    print(f"{len(records)} records appended to {config.results_file}")
    return records
