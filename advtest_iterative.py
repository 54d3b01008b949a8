"""White-box iterative attacks (FGSM, BIM, PGD, MIM) on a trained model, adaptive by default.

Flags keep the names and defaults of the original ``advtest_iterative.py``; the checkpoint
is found from the training flags (``--epoch`` picks ``model.NNN.weights.h5``). For every
ε in {8, 16, 24, 32}/256 (step 2/256) it prints and appends one record to
``--results_file`` (JSON lines + CSV). ``--is_calculate_auc`` adds the ROC AUC of telling
clean inputs from adversarial ones by confidence; ``--model_1=SCE --model_2=MMC-10``
crafts on model_1 and classifies with model_2 (black-box transfer, as the original
``advtest_iterative_blackbox.py``; ``--epoch_1``/``--epoch_2`` pick each one's checkpoint).

Beyond the paper: ``--attack_method=APGD`` (Croce & Hein 2020; ``--norm``, ``--apgd_loss``),
``APGD-T`` (targeted APGD over the top ``--n_target_classes`` classes), ``MultiTargeted``
(targeted margin PGD over the same classes) and ``AutoAttack`` (the cascade
``--ensemble``: ``autoattack`` = APGD-CE, APGD-T, FAB-T, Square, AutoAttack's standard
version; default ``autoattack-lite`` = APGD-CE then APGD-T, an upper bound on it). APGD
members run ``--num_iter`` steps (per target), FAB-T ``--fab_n_iter`` per target, Square
``--square_n_queries`` queries; records name the members and the robust accuracy after
each, and a run resumes from ``--state_file``.
Every record carries ``masking_warnings`` (:mod:`utils.evaluation.masking_checks`).
``--attack_backend=cleverhans`` runs FGSM/BIM/PGD/MIM through cleverhans' own loops with the
same objective (:mod:`utils.attacks.cleverhans_backend`); the record names the backend.

    python3 advtest_iterative.py --dataset=fashion_mnist --version=1 --n=1 --optimizer=Adam \
        --lr=0.001 --use_advtrain=False --epoch=2 --attack_method=MadryEtAl --target=False
    python3 advtest_iterative.py ... --attack_method=AutoAttack --target=False --num_iter=100 \
        --state_file=results/aa_state.npz
    python3 advtest_iterative.py ... --attack_method=AutoAttack --ensemble=autoattack \
        --target=False --num_iter=100 --state_file=results/aa_full_state.npz
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
import types
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import flags  # noqa: E402

from utils.cli.common import quiet_tensorflow, run_main  # noqa: E402

quiet_tensorflow()  # before utils.cli.flags imports TensorFlow
from utils.cli import flags as cli_flags  # noqa: E402
from utils.cli.flags import (check_eval_flags, define_eval_flags,  # noqa: E402
                             define_model_flags, define_once,
                             load_data_and_checkpoint, model_config_from_flags,
                             model_path_config)

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The original advtest_iterative.py's flags and defaults, then ours (idempotent)."""
    define_model_flags(optimizer="Adam", lr=0.001, batch_size=50, dataset="mnist")
    define_eval_flags(attack_method="FastGradientMethod",
                      attack_help="FastGradientMethod | BasicIterativeMethod | MadryEtAl | "
                                  "MomentumIterativeMethod | " + " | ".join(ENSEMBLE_ATTACKS)
                                  + ".",
                      results_file="results/advtest_iterative.jsonl")
    d = define_once
    d(flags.DEFINE_integer, "num_iter", 10, "Attack iterations (APGD-T and MultiTargeted: per "
      "target class; AutoAttack uses 100).")
    d(flags.DEFINE_list, "eps_256", ["8", "16", "24", "32"], "ε values in /256 pixel units.")
    d(flags.DEFINE_float, "eps_iter_256", 2.0, "Step size in /256 pixel units.")
    d(flags.DEFINE_integer, "num_restarts", 1, "Random restarts (per-example worst case).")
    d(flags.DEFINE_string, "attack_backend", "native", "native | cleverhans: whose loop runs "
      "FastGradientMethod, BasicIterativeMethod, MadryEtAl, MomentumIterativeMethod (the "
      "same objective either way).")
    d(flags.DEFINE_bool, "is_calculate_auc", False, "Also the ROC AUC of detecting "
      "adversarial inputs by --auc_score (clean = positive).")
    d(flags.DEFINE_string, "auc_score", None, "max_logit | max_softmax; default max_softmax "
      "with --normalize_output_for_ball, else max_logit.")
    d(flags.DEFINE_string, "model_1", None, "Black-box substitute that crafts the examples: "
      + " | ".join(TRANSFER_MODELS) + " (with --model_2; default: white-box).")
    d(flags.DEFINE_string, "model_2", None, "Black-box target that classifies them.")
    for name, (kind, default) in PER_MODEL_FLAGS.items():
        for i in (1, 2):
            d(getattr(flags, f"DEFINE_{kind}"), f"{name}_{i}", default, f"--{name} of "
              f"--model_{i}, accepted as the original blackbox script's; as there, the "
              f"--model_{i} preset overrides it.")
    d(flags.DEFINE_bool, "is_auc_metric_softmax_for_MMC", None, "The original's AUC score "
      "switch: True = --auc_score=max_softmax, False = max_logit (--auc_score wins).")
    d(flags.DEFINE_integer, "epoch_1", None, "Checkpoint epoch of --model_1 (default --epoch).")
    d(flags.DEFINE_integer, "epoch_2", None, "Checkpoint epoch of --model_2 (default --epoch).")
    d(flags.DEFINE_string, "norm", "linf", "APGD threat model: linf | l2 (eps_256 is then an "
      "l2 radius in /256 units).")
    d(flags.DEFINE_string, "apgd_loss", None, "Objective of APGD / APGD-CE (APGD-T uses its "
      "targeted counterpart: ce -> dlr_targeted, mmc_un1 -> mmc_tar1); default: mmc_un1 "
      "(mmc_tar1 with --target) on MMC models with --adaptive, else ce.")
    d(flags.DEFINE_integer, "n_target_classes", 9, "Top-k classes of APGD-T / MultiTargeted "
      "(capped at L - 1).")
    d(flags.DEFINE_string, "ensemble", "autoattack-lite", "AutoAttack members: a preset ("
      "autoattack, autoattack-lite, strong) or a comma list of APGD-CE, APGD-DLR, APGD-T, "
      "FAB-T, Square, MultiTargeted, PGD.")
    d(flags.DEFINE_integer, "fab_n_iter", 100, "FAB-T steps per target class (AutoAttack: "
      "100).")
    d(flags.DEFINE_integer, "square_n_queries", 5000, "Square attack queries per restart "
      "(AutoAttack: 5000).")
    d(flags.DEFINE_string, "state_file", None, "APGD/AutoAttack progress file (.npz, one per "
      "eps: NAME.eps8.npz); an interrupted run resumes from it.")


# --attack_method names beyond utils.attacks.iterative.ATTACKS -> their ensemble members (None: the
# --ensemble flag's). All are untargeted by construction except APGD.
ENSEMBLE_ATTACKS: Dict[str, Optional[Tuple[str, ...]]] = {
    "APGD": ("APGD-CE",), "APGD-T": ("APGD-T",), "MultiTargeted": ("MultiTargeted",),
    "AutoAttack": None}


# The original blackbox script's model names -> architecture flag overrides; AT-* also
# take the adversarial-training flags (--attack_method_for_advtrain, --adv_ratio, ...).
# ``loss``/``centers`` None: the names mean the original flags, whatever --loss says.
TRANSFER_MODELS: Dict[str, Dict[str, Any]] = {
    "SCE": dict(use_MMLDA=False, use_advtrain=False, loss=None, centers=None),
    "MMC-10": dict(use_MMLDA=True, use_ball=True, mean_var=10.0, use_advtrain=False,
                   loss=None, centers=None),
    "MMC-100": dict(use_MMLDA=True, use_ball=True, mean_var=100.0, use_advtrain=False,
                    loss=None, centers=None),
}
# AT-*: the original fixed them to PGD (MadryEtAl) adversarial training, adv_ratio 1.0,
# untargeted, advtrain.py's crafting settings, whatever the other flags say.
_AT_PRESET = dict(use_advtrain=True, attack_method_for_advtrain="MadryEtAl", adv_ratio=1.0,
                  use_target=False, advtrain_eps_256=8.0, advtrain_eps_iter_256=2.0,
                  advtrain_num_iter=10)
TRANSFER_MODELS.update({f"AT-{k}": dict(v, **_AT_PRESET)
                        for k, v in list(TRANSFER_MODELS.items())})
#: The original advtest_iterative_blackbox.py's per-model flags (name -> (definer, default));
#: there its --model_1/--model_2 preset always overrode them, and so it does here.
PER_MODEL_FLAGS = {"mean_var": ("float", 10.0), "use_MMLDA": ("bool", True),
                   "use_ball": ("bool", True), "use_advtrain": ("bool", True),
                   "attack_method_for_advtrain": ("string", "FastGradientMethod"),
                   "use_target": ("bool", False), "adv_ratio": ("float", 1.0),
                   "normalize_output_for_ball": ("bool", True)}

define_flags()
# Flags defined through utils.cli.flags belong to it: list them in this script's --helpshort.
flags.adopt_module_key_flags(cli_flags)


def _eps_list(values: Sequence[str]) -> List[float]:
    from utils.errors import UsageError
    try:
        eps = [float(v) for v in values]
    except ValueError:
        raise UsageError(f"--eps_256 must be numbers (in /256 pixel units), got "
                         f"{','.join(values)}") from None
    if not eps or not all(math.isfinite(e) and e >= 0 for e in eps):
        raise UsageError(f"--eps_256 must be finite and >= 0 (in /256 pixel units), got "
                         f"{','.join(values)}")
    return eps


def _model_flags(name: str, epoch: Optional[int]) -> Any:
    """FLAGS with the overrides of transfer model ``name`` and its checkpoint ``epoch``
    (None: ``--epoch``)."""
    from utils.errors import UsageError
    if name not in TRANSFER_MODELS:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(TRANSFER_MODELS)}")
    values = dict(FLAGS.flag_values_dict(), **TRANSFER_MODELS[name])
    values["epoch"] = FLAGS.epoch if epoch is None else epoch
    return types.SimpleNamespace(**values)


def _configs() -> Tuple[Any, Any, Optional[Any], Optional[Any]]:
    """``(attacker flags, its ModelConfig, target flags, its ModelConfig)``.

    White-box: the flags' model attacks itself (target None). Transfer: ``--model_1``
    crafts the examples and ``--model_2`` classifies them.
    """
    from utils.errors import UsageError
    if (FLAGS.model_1 is None) != (FLAGS.model_2 is None):
        raise UsageError("black-box transfer needs both --model_1 (substitute) and --model_2 "
                         "(target), or neither")
    if FLAGS.model_path and FLAGS.model_1 is not None:
        raise UsageError("--model_path evaluates one file white-box; drop --model_1/--model_2")
    if FLAGS.model_path:
        return FLAGS, model_path_config(FLAGS), None, None
    if FLAGS.model_1 is None:
        if FLAGS.epoch_1 is not None or FLAGS.epoch_2 is not None:
            raise UsageError("--epoch_1/--epoch_2 pick the transfer models' checkpoints; pass "
                             "them with --model_1/--model_2 (or use --epoch)")
        return FLAGS, model_config_from_flags(FLAGS), None, None
    values_1 = _model_flags(FLAGS.model_1, FLAGS.epoch_1)
    values_2 = _model_flags(FLAGS.model_2, FLAGS.epoch_2)
    return (values_1, model_config_from_flags(values_1), values_2,
            model_config_from_flags(values_2))


def _load_target(values: Any, cfg: Any, data: Any) -> Any:
    """The transfer target's :class:`utils.models.loading.LoadedModel`."""
    from utils.cli.flags import eval_run_spec
    from utils.models.loading import load_run
    return load_run(eval_run_spec(values, cfg), data.input_shape, data.num_classes,
                    model_dir=values.model_dir, epoch=values.epoch)


def _auc_score() -> Optional[str]:
    from utils.evaluation.detection import SCORES
    if not FLAGS.is_calculate_auc:
        return None
    switch = FLAGS.is_auc_metric_softmax_for_MMC
    if switch is None:
        switch = FLAGS.normalize_output_for_ball
    name = FLAGS.auc_score or ("max_softmax" if switch else "max_logit")
    SCORES.get(name)
    return name


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to run: ``members`` None for a :data:`utils.attacks.iterative.ATTACKS` attack, else the
    ensemble members (:mod:`utils.evaluation.ensemble`); ``objective`` the (untargeted, or targeted
    with ``targeted``) objective, ``targeted_objective`` APGD-T's."""

    attack: str
    members: Optional[Tuple[str, ...]]
    targeted: bool
    objective: str
    targeted_objective: Optional[str] = None


def _plan(loss: str) -> Plan:
    """Check the attack flags against the model's ``loss`` before loading anything."""
    from utils.attacks.iterative import ATTACKS, get_attack
    from utils.errors import UsageError
    from utils.attacks.objectives import check_objective, select_objective

    name = FLAGS.attack_method
    if name not in ATTACKS and name not in ENSEMBLE_ATTACKS:
        raise UsageError(f"unknown attack {name!r}; choose one of: "
                         f"{', '.join(ATTACKS.names() + list(ENSEMBLE_ATTACKS))}")
    if name in ATTACKS:
        get_attack(name, FLAGS.attack_backend)
        for flag in ("apgd_loss", "state_file"):
            if FLAGS[flag].value is not None:
                raise UsageError(f"--{flag} applies to --attack_method="
                                 f"{'|'.join(ENSEMBLE_ATTACKS)} only")
        if FLAGS.norm != "linf":
            raise UsageError(f"{name} is an l-inf attack; --norm={FLAGS.norm} needs APGD")
        objective = FLAGS.objective or select_objective(loss, name, FLAGS.target,
                                                        FLAGS.adaptive)
        check_objective(objective, loss, FLAGS.target)
        return Plan(name, None, FLAGS.target, objective)
    return _ensemble_plan(name, loss)


def _ensemble_plan(name: str, loss: str) -> Plan:
    from utils.attacks.apgd import check_norm
    from utils.evaluation.ensemble import parse_members
    from utils.errors import UsageError
    from utils.attacks.objectives import (OBJECTIVES, check_objective, select_objective,
                                  targeted_counterpart)

    if FLAGS.is_calculate_auc:
        raise UsageError(f"--is_calculate_auc is not supported with {name}; use MadryEtAl")
    if FLAGS.attack_backend != "native":
        raise UsageError(f"{name} runs natively only; pass --attack_backend=native")
    check_norm(FLAGS.norm)
    members = ENSEMBLE_ATTACKS[name] or parse_members(FLAGS.ensemble)
    targeted = FLAGS.target if name == "APGD" else False
    if name != "APGD" and FLAGS["target"].present and FLAGS.target:
        raise UsageError(f"{name} is untargeted by construction (it targets the top "
                         "classes itself); pass --target=False")
    objective = FLAGS.apgd_loss or FLAGS.objective or select_objective(
        loss, "APGD", targeted, FLAGS.adaptive)
    targeted_objective = targeted_counterpart(objective)
    for used in dict.fromkeys((objective, targeted_objective)):  # MMC-only objectives
        check_objective(used, loss, bool(OBJECTIVES.get(used).targeted))
    return Plan(name, tuple(members), targeted, objective, targeted_objective)


def _settings(plan: Plan, eps_256: float, data: Any) -> Any:
    from utils.evaluation.ensemble import EnsembleSettings
    return EnsembleSettings(
        eps=eps_256 / 256, clip_min=data.clip_min, clip_max=data.clip_max, norm=FLAGS.norm,
        n_iter=FLAGS.num_iter, eps_iter=FLAGS.eps_iter_256 / 256, nb_iter=FLAGS.num_iter,
        objective=plan.objective, targeted_objective=plan.targeted_objective or "dlr_targeted",
        n_target_classes=FLAGS.n_target_classes, num_restarts=FLAGS.num_restarts,
        seed=FLAGS.seed, fab_n_iter=FLAGS.fab_n_iter, square_n_queries=FLAGS.square_n_queries)


def _state_path(eps_256: float) -> Optional[pathlib.Path]:
    """``--state_file`` NAME.npz -> NAME.eps{eps}.npz (one state per ε)."""
    if FLAGS.state_file is None:
        return None
    path = pathlib.Path(FLAGS.state_file)
    return path.with_name(f"{path.stem}.eps{eps_256:g}{path.suffix or '.npz'}")


def _evaluate(plan: Plan, eps: float, loaded: Any, target: Any, data: Any,
              targets: Any, auc_score: Optional[str]) -> Dict[str, Any]:
    """One ε: the result dict of :func:`utils.evaluation.loop.evaluate_attack` or
    :func:`utils.evaluation.ensemble.evaluate_ensemble`."""
    from utils.evaluation.detection import SCORES
    from utils.evaluation.ensemble import evaluate_ensemble
    from utils.evaluation.loop import evaluate_attack
    from utils.models.jit import jit_model

    attacked, evaluated = loaded.model, target.model
    if FLAGS.jit_compile:
        attacked, evaluated = jit_model(attacked), jit_model(evaluated)
    if plan.members is None:
        return evaluate_attack(
            attacked, data.x_test, data.y_test, attack_name=plan.attack,
            objective_name=plan.objective, eps=eps / 256, eps_iter=FLAGS.eps_iter_256 / 256,
            nb_iter=FLAGS.num_iter, clip_min=data.clip_min, clip_max=data.clip_max,
            batch_size=cli_flags.eval_batch_size(FLAGS), targets=targets,
            num_restarts=FLAGS.num_restarts,
            seed=FLAGS.seed, progress=FLAGS.progress, eval_model=evaluated,
            score_fn=SCORES.get(auc_score) if auc_score else None,
            backend=FLAGS.attack_backend)
    result = evaluate_ensemble(
        attacked, data.x_test, data.y_test, members=plan.members,
        settings=_settings(plan, eps, data), batch_size=cli_flags.eval_batch_size(FLAGS),
        targets=targets,
        eval_model=evaluated, state_file=_state_path(eps), progress=FLAGS.progress)
    # The objective of the first member (APGD-T alone: its targeted objective).
    return dict(result, attack_name=plan.attack,
                objective_name=result["member_objectives"][plan.members[0]])


def _evaluate_or_interrupted(plan: Plan, eps: float, *args: Any) -> Dict[str, Any]:
    """:func:`_evaluate`; an interrupt says what was kept (``utils.errors.Interrupted``)."""
    from utils.errors import Interrupted
    try:
        return _evaluate(plan, eps, *args)
    except KeyboardInterrupt:
        path = _state_path(eps) if plan.members is not None else None
        if path is not None and path.exists():
            raise Interrupted(f"interrupted at eps {eps:g}/256; state saved to {path}; "
                              "rerun the same command to resume") from None
        raise Interrupted(f"interrupted at eps {eps:g}/256; no results written for it "
                          "(--state_file makes APGD/AutoAttack runs resumable)") from None


def _summary_line(eps: float, result: Dict[str, Any], auc_score: Optional[str]) -> str:
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


def _batch_warnings(plan: Plan, model: Any, data: Any, targets: Any,
                    eps_256: float) -> List[str]:
    """:func:`utils.evaluation.masking_checks.batch_checks` on the first batch with the run's
    objective (a targeted-only one aims at the top wrong class when no targets are set);
    untargeted ℓ∞, also :func:`utils.evaluation.masking_checks.weaker_objective` at the first ε > 0."""
    import tensorflow as tf

    from utils.evaluation.masking_checks import batch_checks, weaker_objective
    from utils.attacks.multitarget import top_k_targets
    from utils.attacks.objectives import OBJECTIVES

    x = data.x_test[:FLAGS.batch_size]
    labels = tf.one_hot(data.y_test[:len(x)], data.num_classes)
    spec = OBJECTIVES.get(plan.objective)
    aim = None
    if targets is not None and spec.targeted is not False:
        aim = tf.one_hot(targets[:len(x)], data.num_classes)
    elif spec.targeted:
        aim = tf.one_hot(top_k_targets(model(x), labels, 1)[0], data.num_classes)
    found = batch_checks(model, x, labels, spec.fn, aim)
    if spec.targeted is False and not plan.targeted and eps_256 > 0 and FLAGS.norm == "linf":
        found += weaker_objective(model, x, labels, plan.objective, eps=eps_256 / 256,
                                  eps_iter=FLAGS.eps_iter_256 / 256, clip_min=data.clip_min,
                                  clip_max=data.clip_max, seed=FLAGS.seed)
    return found


def _add_masking_warnings(records: List[Dict[str, Any]], batch: List[str],
                          transfer: bool) -> None:
    """Batch checks, the ε trend of this run and, white-box, earlier black-box records."""
    from utils.evaluation.masking_checks import accuracy_trend, blackbox_from_records
    from utils.results import read_records

    trend = accuracy_trend([(r["eps_256"], FLAGS.num_iter, r["adv_accuracy"])
                            for r in records])
    previous = [] if transfer else read_records(FLAGS.results_file)
    for record in records:
        record["masking_warnings"] = batch + trend + blackbox_from_records(previous, record)
        for message in record["masking_warnings"]:
            print(f"masking warning (eps {record['eps_256']:g}/256): {message}", flush=True)


def main(argv: Sequence[str]) -> None:
    from utils.errors import UsageError
    from utils.evaluation.loop import draw_targets
    from utils.evaluation.state import check_state_file
    from utils.results import append_records, provenance

    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    eps_list = _eps_list(FLAGS.eps_256)
    if FLAGS.num_iter < 1:
        raise UsageError(f"num_iter must be >= 1, got {FLAGS.num_iter}")
    if FLAGS.num_restarts < 1:
        raise UsageError(f"num_restarts must be >= 1, got {FLAGS.num_restarts}")
    if not (math.isfinite(FLAGS.eps_iter_256) and FLAGS.eps_iter_256 > 0):
        raise UsageError(f"--eps_iter_256 must be finite and > 0 (in /256 pixel units), got "
                         f"{FLAGS.eps_iter_256:g}")
    auc_score = _auc_score()
    values, cfg, target_values, target_cfg = _configs()
    # The objective is the adaptive one for the model that crafts the examples.
    plan = _plan(cfg.loss)
    check_eval_flags(values, FLAGS.results_file)
    for eps in eps_list if FLAGS.state_file else ():
        check_state_file(_state_path(eps))
    data, loaded = load_data_and_checkpoint(values, cfg)
    if plan.members is not None:
        from utils.evaluation.ensemble import check_settings
        check_settings(plan.members, _settings(plan, eps_list[0], data), data.num_classes,
                       plan.targeted)
    target = loaded if target_values is None else _load_target(target_values, target_cfg, data)
    transfer = target_values is not None
    targets = draw_targets(data.y_test, data.num_classes, FLAGS.seed) if plan.targeted else None
    batch_warnings = _batch_warnings(plan, loaded.model, data, targets,
                                     next((e for e in eps_list if e > 0), 0.0))
    records: List[Dict[str, Any]] = []
    for eps in eps_list:
        result = _evaluate_or_interrupted(plan, eps, loaded, target, data, targets, auc_score)
        print(_summary_line(eps, result, auc_score), flush=True)
        evaluated = target_values if transfer else values
        advtrained = bool(evaluated.use_advtrain) and not FLAGS.model_path
        extra: Dict[str, Any] = {"transfer": transfer, "use_advtrain": advtrained}
        if advtrained:  # which adversarial-training run was evaluated
            extra.update(attack_method_for_advtrain=evaluated.attack_method_for_advtrain,
                         adv_ratio=evaluated.adv_ratio, use_target=evaluated.use_target)
        if transfer:
            extra.update(model_1=FLAGS.model_1, model_2=FLAGS.model_2,
                         substitute=loaded.run_name, substitute_loss=cfg.loss,
                         epoch_1=values.epoch, epoch_2=target_values.epoch)
        if auc_score:
            extra["auc_score"] = auc_score
        records.append(dict(result, script="advtest_iterative", dataset=FLAGS.dataset,
                            model=target.run_name, **target.record_fields(),
                            loss=target_cfg.loss if transfer else
                            cfg.loss, epoch=target_values.epoch if transfer else FLAGS.epoch,
                            adaptive=FLAGS.adaptive, objective=result["objective_name"],
                            eps_256=eps,
                            eps_iter_256=FLAGS.eps_iter_256,
                            normalize_output_for_ball=FLAGS.normalize_output_for_ball,
                            **extra, **provenance()))
    _add_masking_warnings(records, batch_warnings, transfer)
    append_records(FLAGS.results_file, records)
    print(f"{len(records)} records appended to {FLAGS.results_file}")


if __name__ == "__main__":
    run_main(main)
