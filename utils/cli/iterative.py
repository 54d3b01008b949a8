"""``advtest_iterative.py``'s flags -> one validated :class:`IterativeConfig` (the only
place its flag values are read), and the original blackbox script's model presets.

    define_flags()                            # in advtest_iterative.define_flags
    config = config_from_flags(flags.FLAGS)   # UsageError on the first bad value
    utils.evaluation.iterative_run.run(config)
"""
from __future__ import annotations

import dataclasses
import math
import types
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple

from absl import flags

from utils.cli.flags import (check_eval_flags, data_source, define_eval_flags,
                             define_model_flags, eval_batch_size, forget_script_flags,
                             model_config_from_flags, model_path_config, model_source,
                             present_flags)
from utils.attacks.core import get_attack
from utils.attacks.iterative import ATTACKS
from utils.attacks.objectives import (OBJECTIVES, check_objective, select_objective,
                                      targeted_counterpart)
from utils.attacks.threat_model import check_norm
from utils.errors import UsageError
from utils.evaluation.detection import SCORES
from utils.evaluation.ensemble import parse_members
from utils.runs.advtrain_config import (ADVTRAIN_ATTACK, ADVTRAIN_EPS_256,
                                        ADVTRAIN_EPS_ITER_256, ADVTRAIN_NUM_ITER)
from utils.evaluation.state import check_state_file
from utils.evaluation.iterative_run import (ENSEMBLE_ATTACKS, IterativeConfig, Plan,
                                            RecordInfo, state_path)

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
_AT_PRESET = dict(use_advtrain=True, attack_method_for_advtrain=ADVTRAIN_ATTACK, adv_ratio=1.0,
                  use_target=False, advtrain_eps_256=ADVTRAIN_EPS_256,
                  advtrain_eps_iter_256=ADVTRAIN_EPS_ITER_256,
                  advtrain_num_iter=ADVTRAIN_NUM_ITER)
TRANSFER_MODELS.update({f"AT-{k}": dict(v, **_AT_PRESET)
                        for k, v in list(TRANSFER_MODELS.items())})
#: The original advtest_iterative_blackbox.py's per-model flags (name -> (definer, default));
#: there its --model_1/--model_2 preset always overrode them, and so it does here.
PER_MODEL_FLAGS = {"mean_var": ("float", 10.0), "use_MMLDA": ("bool", True),
                   "use_ball": ("bool", True), "use_advtrain": ("bool", True),
                   "attack_method_for_advtrain": ("string", "FastGradientMethod"),
                   "use_target": ("bool", False), "adv_ratio": ("float", 1.0),
                   "normalize_output_for_ball": ("bool", True)}


def define_flags() -> None:
    """``advtest_iterative.py``'s flags: the original's names and defaults, then ours (every
    flag of this repository defined before is forgotten first:
    :func:`utils.cli.flags.forget_script_flags`)."""
    forget_script_flags()
    define_model_flags(optimizer="Adam", lr=0.001, batch_size=50, dataset="mnist")
    define_eval_flags(attack_method="FastGradientMethod",
                      attack_help="FastGradientMethod | BasicIterativeMethod | MadryEtAl | "
                                  "MomentumIterativeMethod | " + " | ".join(ENSEMBLE_ATTACKS)
                                  + ".",
                      results_file="results/advtest_iterative.jsonl")
    flags.DEFINE_integer(
        "num_iter", 10, "Attack iterations (APGD-T and MultiTargeted: per "
        "target class; AutoAttack uses 100).")
    flags.DEFINE_list("eps_256", ["8", "16", "24", "32"], "ε values in /256 pixel units.")
    flags.DEFINE_float("eps_iter_256", 2.0, "Step size in /256 pixel units.")
    flags.DEFINE_integer("num_restarts", 1, "Random restarts (per-example worst case).")
    flags.DEFINE_string(
        "attack_backend", "native", "native | cleverhans: whose loop runs "
        "FastGradientMethod, BasicIterativeMethod, MadryEtAl, MomentumIterativeMethod (the "
        "same objective either way).")
    flags.DEFINE_bool(
        "is_calculate_auc", False, "Also the ROC AUC of detecting "
        "adversarial inputs by --auc_score (clean = positive).")
    flags.DEFINE_string(
        "auc_score", None, "max_logit | max_softmax; default max_softmax "
        "with --normalize_output_for_ball, else max_logit.")
    flags.DEFINE_string(
        "model_1", None, "Black-box substitute that crafts the examples: "
        + " | ".join(TRANSFER_MODELS) + " (with --model_2; default: white-box).")
    flags.DEFINE_string("model_2", None, "Black-box target that classifies them.")
    for name, (kind, default) in PER_MODEL_FLAGS.items():
        for i in (1, 2):
            getattr(flags, f"DEFINE_{kind}")(
                f"{name}_{i}", default, f"--{name} of --model_{i}, accepted as the original "
                f"blackbox script's; as there, the --model_{i} preset overrides it.")
    _define_attack_flags()


def _define_attack_flags() -> None:
    """APGD, ensembles, AUC switch, transfer epochs."""
    flags.DEFINE_bool(
        "is_auc_metric_softmax_for_MMC", None, "The original's AUC score "
        "switch: True = --auc_score=max_softmax, False = max_logit (--auc_score wins).")
    flags.DEFINE_integer("epoch_1", None, "Checkpoint epoch of --model_1 (default --epoch).")
    flags.DEFINE_integer("epoch_2", None, "Checkpoint epoch of --model_2 (default --epoch).")
    flags.DEFINE_string(
        "norm", "linf", "Threat model (FGSM, BIM, MadryEtAl, MIM, APGD, APGD-T, FAB-T, "
        "Square): linf | l2 (eps_256 is then an l2 radius in /256 units).")
    flags.DEFINE_string(
        "apgd_loss", None, "Objective of APGD / APGD-CE (APGD-T uses its "
        "targeted counterpart: ce -> dlr_targeted, mmc_un1 -> mmc_tar1); default: mmc_un1 "
        "(mmc_tar1 with --target) on MMC models with --adaptive, else ce.")
    flags.DEFINE_integer(
        "n_target_classes", 9, "Top-k classes of APGD-T / MultiTargeted "
        "(capped at L - 1).")
    flags.DEFINE_string(
        "ensemble", "autoattack-lite", "AutoAttack members: a preset ("
        "autoattack, autoattack-lite, strong) or a comma list of APGD-CE, APGD-DLR, APGD-T, "
        "FAB-T, Square, MultiTargeted, PGD.")
    flags.DEFINE_integer(
        "fab_n_iter", 100, "FAB-T steps per target class (AutoAttack: "
        "100).")
    flags.DEFINE_integer(
        "square_n_queries", 5000, "Square attack queries per restart "
        "(AutoAttack: 5000).")
    flags.DEFINE_string(
        "state_file", None, "Progress file of any attack or cascade (.npz, "
        "one per eps: NAME.eps8.npz); an interrupted run resumes from it.")
    flags.DEFINE_bool(
        "masking_checks", True, "Gradient-masking checks: on the first batch (input "
        "gradients, determinism and, untargeted linf, PGD-10 with ce and margin against the "
        "objective in use), over the eps trend and against earlier black-box records. False "
        "skips them; records then carry masking_warnings null (not checked).")


def _eps_list(values: Sequence[str]) -> List[float]:
    try:
        eps = [float(v) for v in values]
    except ValueError:
        raise UsageError(f"--eps_256 must be numbers (in /256 pixel units), got "
                         f"{','.join(values)}") from None
    if not eps or not all(math.isfinite(e) and e >= 0 for e in eps):
        raise UsageError(f"--eps_256 must be finite and >= 0 (in /256 pixel units), got "
                         f"{','.join(values)}")
    return eps


def _check_budget(v: Any) -> Tuple[float, ...]:
    """The ε list; UsageError for a bad ε, step count, restart count or step size."""
    eps_list = _eps_list(v.eps_256)
    if v.num_iter < 1:
        raise UsageError(f"num_iter must be >= 1, got {v.num_iter}")
    if v.num_restarts < 1:
        raise UsageError(f"num_restarts must be >= 1, got {v.num_restarts}")
    if not (math.isfinite(v.eps_iter_256) and v.eps_iter_256 > 0):
        raise UsageError(f"--eps_iter_256 must be finite and > 0 (in /256 pixel units), got "
                         f"{v.eps_iter_256:g}")
    return tuple(eps_list)


def _model_values(v: Any, name: str, epoch: Optional[int]) -> Any:
    """The flag values with the overrides of transfer model ``name`` and its checkpoint
    ``epoch`` (None: ``--epoch``)."""
    if name not in TRANSFER_MODELS:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(TRANSFER_MODELS)}")
    values = dict(vars(v), **TRANSFER_MODELS[name])
    values["epoch"] = v.epoch if epoch is None else epoch
    return types.SimpleNamespace(**values)


def _models(v: Any, given: Collection[str]) -> Tuple[Any, Any, Optional[Any], Optional[Any]]:
    """``(attacker values, its ModelConfig, target values, its ModelConfig)``: white-box,
    the flags' model attacks itself (target None); transfer, ``--model_1`` crafts the
    examples and ``--model_2`` classifies them."""
    if (v.model_1 is None) != (v.model_2 is None):
        raise UsageError("black-box transfer needs both --model_1 (substitute) and --model_2 "
                         "(target), or neither")
    if v.model_path and v.model_1 is not None:
        raise UsageError("--model_path evaluates one file white-box; drop --model_1/--model_2")
    if v.model_path:
        return v, model_path_config(v, given), None, None
    if v.model_1 is None:
        if v.epoch_1 is not None or v.epoch_2 is not None:
            raise UsageError("--epoch_1/--epoch_2 pick the transfer models' checkpoints; pass "
                             "them with --model_1/--model_2 (or use --epoch)")
        return v, model_config_from_flags(v), None, None
    values_1 = _model_values(v, v.model_1, v.epoch_1)
    values_2 = _model_values(v, v.model_2, v.epoch_2)
    return (values_1, model_config_from_flags(values_1), values_2,
            model_config_from_flags(values_2))


def _auc_score(v: Any) -> Optional[str]:
    if not v.is_calculate_auc:
        return None
    switch = v.is_auc_metric_softmax_for_MMC
    if switch is None:
        switch = v.normalize_output_for_ball
    name = v.auc_score or ("max_softmax" if switch else "max_logit")
    SCORES.get(name)
    return name


def _plan(v: Any, given: Collection[str], loss: str) -> Plan:
    """The attack flags checked against the crafting model's ``loss``; a gradient attack
    is the one-member cascade of itself."""
    name = v.attack_method
    if name not in ATTACKS and name not in ENSEMBLE_ATTACKS:
        raise UsageError(f"unknown attack {name!r}; choose one of: "
                         f"{', '.join(ATTACKS.names() + list(ENSEMBLE_ATTACKS))}")
    if name not in ATTACKS:
        return _ensemble_plan(v, given, name, loss)
    get_attack(name, v.attack_backend)
    if v.apgd_loss is not None:
        raise UsageError(f"--apgd_loss applies to --attack_method="
                         f"{'|'.join(ENSEMBLE_ATTACKS)} only")
    check_norm(v.norm)
    objective = v.objective or select_objective(loss, name, v.target, v.adaptive)
    check_objective(objective, loss, v.target)
    return Plan(name, (name,), v.target, objective)


def _ensemble_plan(v: Any, given: Collection[str], name: str, loss: str) -> Plan:
    check_norm(v.norm)
    members = ENSEMBLE_ATTACKS[name] or parse_members(v.ensemble)
    targeted = v.target if name == "APGD" else False
    if name != "APGD" and "target" in given and v.target:
        raise UsageError(f"{name} is untargeted by construction (it targets the top "
                         "classes itself); pass --target=False")
    objective = v.apgd_loss or v.objective or select_objective(loss, "APGD", targeted,
                                                               v.adaptive)
    targeted_objective = targeted_counterpart(objective)
    for used in dict.fromkeys((objective, targeted_objective)):  # MMC-only objectives
        check_objective(used, loss, bool(OBJECTIVES.get(used).targeted))
    return Plan(name, tuple(members), targeted, objective, targeted_objective)


def _record_info(v: Any, values: Any, cfg: Any, target_values: Any,
                 target_cfg: Any) -> RecordInfo:
    transfer = target_values is not None
    evaluated = target_values if transfer else values
    advtrain = None
    if bool(evaluated.use_advtrain) and not v.model_path:
        advtrain = (evaluated.attack_method_for_advtrain, evaluated.adv_ratio,
                    evaluated.use_target)
    return RecordInfo(
        dataset=v.dataset, loss=target_cfg.loss if transfer else cfg.loss,
        epoch=target_values.epoch if transfer else v.epoch, adaptive=v.adaptive,
        normalize_output_for_ball=v.normalize_output_for_ball, advtrain=advtrain,
        model_1=v.model_1, model_2=v.model_2, substitute_loss=cfg.loss if transfer else None,
        epoch_1=values.epoch if transfer else None,
        epoch_2=target_values.epoch if transfer else None)


def config_from_flags(flag_values: flags.FlagValues) -> IterativeConfig:
    """Validate ``advtest_iterative.py``'s parsed flags (no data needed: the results file
    and state files are checked, nothing is loaded) into one :class:`IterativeConfig`.

    Raises:
      UsageError: the first bad value, in the order the script always checked them.
    """
    v = types.SimpleNamespace(**flag_values.flag_values_dict())
    given = present_flags() if flag_values is flags.FLAGS else frozenset(
        name for name in flag_values if flag_values[name].present)
    eps_list = _check_budget(v)
    auc_score = _auc_score(v)
    values, cfg, target_values, target_cfg = _models(v, given)
    # The objective is the adaptive one for the model that crafts the examples.
    plan = _plan(v, given, cfg.loss)
    check_eval_flags(values, v.results_file)
    for eps in eps_list if v.state_file else ():
        check_state_file(state_path(v.state_file, eps))
    target = None
    if target_values is not None:
        # As the original: no --use_advtrain hint or finite-logits check for the target.
        target = dataclasses.replace(model_source(target_values, target_cfg),
                                     use_advtrain=False)
    return IterativeConfig(
        plan=plan, eps_256=eps_list, data=data_source(values),
        model=model_source(values, cfg), target=target,
        info=_record_info(v, values, cfg, target_values, target_cfg),
        eps_iter_256=v.eps_iter_256, num_iter=v.num_iter, num_restarts=v.num_restarts,
        attack_backend=v.attack_backend, norm=v.norm, n_target_classes=v.n_target_classes,
        fab_n_iter=v.fab_n_iter, square_n_queries=v.square_n_queries,
        state_file=v.state_file, auc_score=auc_score, seed=v.seed, batch_size=v.batch_size,
        eval_batch_size=eval_batch_size(v), progress=v.progress, jit_compile=v.jit_compile,
        masking_checks=v.masking_checks, results_file=v.results_file)
