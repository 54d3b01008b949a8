"""One ``advtest_others.py`` run: a minimal-distortion attack (C&W, EAD, DeepFool, L-BFGS,
JSMA), SPSA or a random corruption on a trained model, one record appended.

The entry script validates its flags once into an :class:`OthersConfig`
(:func:`config_from_values`) and calls :func:`run`; tests call both directly.

    run(config)   # prints one line, appends the record, returns it
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, Optional

import numpy as np

from utils.attacks.perturbations import Perturb
from utils.errors import UsageError
from utils.evaluation.perturbation import evaluate_perturbation, pixel_model
from utils.evaluation.sources import DataSource, ModelSource, load_data, load_model

ATTACK_METHODS = ("CarliniWagnerL2", "SPSA", "ElasticNetMethod", "DeepFool", "LBFGS",
                  "SaliencyMapMethod", "Gaussian", "Rotation")
# The original's sample counts; Gaussian / Rotation default to all.
DEFAULT_NUM_EXAMPLES = {"CarliniWagnerL2": 500, "SPSA": 1000, "ElasticNetMethod": 1000,
                        "DeepFool": 1000, "LBFGS": 1000, "SaliencyMapMethod": 100}
UNTARGETED_ONLY = frozenset({"DeepFool"})
TARGETED_ONLY = frozenset({"LBFGS", "SaliencyMapMethod"})
WITH_OBJECTIVE = ("CarliniWagnerL2", "SPSA", "ElasticNetMethod", "LBFGS")
# Minimal-distortion attacks: their records carry the distortion statistics.
MINIMAL = frozenset({"CarliniWagnerL2", "ElasticNetMethod", "DeepFool", "LBFGS",
                     "SaliencyMapMethod"})
UNITS = "[0,1] pixels over all pixels and channels (= mean-subtracted model units)"
# flag -> (settings group, key); integer flags must be >= 1, floats as POSITIVE/NONNEGATIVE.
GROUPS = {
    "CW_confidence": ("cw", "confidence"), "CW_binary_search_steps": ("cw",
                                                                       "binary_search_steps"),
    "CW_max_iterations": ("cw", "max_iterations"), "CW_learning_rate": ("cw", "learning_rate"),
    "CW_initial_const": ("cw", "initial_const"), "SPSA_nb_iter": ("spsa", "nb_iter"),
    "SPSA_samples": ("spsa", "spsa_samples"), "SPSA_learning_rate": ("spsa", "learning_rate"),
    "SPSA_delta": ("spsa", "delta"), "EAD_confidence": ("ead", "confidence"),
    "EAD_learning_rate": ("ead", "learning_rate"),
    "EAD_binary_search_steps": ("ead", "binary_search_steps"),
    "EAD_max_iterations": ("ead", "max_iterations"), "EAD_initial_const": ("ead",
                                                                           "initial_const"),
    "EAD_beta": ("ead", "beta"), "EAD_fista": ("ead", "fista"),
    "EAD_decision_rule": ("ead", "decision_rule"), "DeepFool_max_iter": ("deepfool",
                                                                         "max_iter"),
    "DeepFool_nb_candidate": ("deepfool", "nb_candidate"),
    "DeepFool_overshoot": ("deepfool", "overshoot"),
    "LBFGS_binary_search_steps": ("lbfgs", "binary_search_steps"),
    "LBFGS_max_iterations": ("lbfgs", "max_iterations"),
    "LBFGS_initial_const": ("lbfgs", "initial_const"), "JSMA_theta": ("jsma", "theta"),
    "JSMA_gamma": ("jsma", "gamma"),
}
POSITIVE = ("CW_initial_const", "CW_learning_rate", "SPSA_learning_rate", "SPSA_delta",
            "EAD_learning_rate", "EAD_initial_const", "LBFGS_initial_const", "JSMA_theta")
NONNEGATIVE = ("CW_confidence", "EAD_confidence", "EAD_beta", "DeepFool_overshoot",
               "SPSA_epsilon", "noise_sigma", "rotation_degrees")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated evaluation settings (everything but the model and data); the per-attack
    dicts hold the keyword arguments of :mod:`utils.attacks.perturbations`' builders."""

    attack_method: str
    targeted: bool
    objective: Optional[str]
    cw: Dict[str, Any]
    spsa: Dict[str, Any]
    ead: Dict[str, Any]
    deepfool: Dict[str, Any]
    lbfgs: Dict[str, Any]
    jsma: Dict[str, Any]
    spsa_eps_256: float
    noise_sigma: float
    rotation_degrees: float
    seed: int


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UsageError(message)


def _check_numbers(values: Any) -> None:
    """Integer flags >= 1, POSITIVE > 0, NONNEGATIVE >= 0, all finite."""
    for name in GROUPS:
        value = getattr(values, name)
        if isinstance(value, int) and not isinstance(value, bool):
            _require(value >= 1, f"{name} must be >= 1, got {value}")
    for name in POSITIVE:
        value = getattr(values, name)
        _require(value > 0 and math.isfinite(value), f"{name} must be > 0, got {value}")
    for name in NONNEGATIVE:
        value = getattr(values, name)
        _require(value >= 0 and math.isfinite(value), f"{name} must be >= 0, got {value}")
    _require(values.SPSA_samples >= 2 and values.SPSA_samples % 2 == 0,
             f"SPSA_samples must be even and >= 2, got {values.SPSA_samples}")
    _require(0 < values.JSMA_gamma <= 1, f"JSMA_gamma must be in (0, 1], got "
             f"{values.JSMA_gamma}")
    _require(values.EAD_decision_rule in ("EN", "L1"), "EAD_decision_rule must be EN or L1, "
             f"got {values.EAD_decision_rule!r}")


def _targeted(values: Any, method: str, explicit: bool) -> bool:
    """``--target`` for attacks that go both ways; refuses an explicit (``explicit``: given
    on the command line) contradiction."""
    if method in UNTARGETED_ONLY:
        _require(not (explicit and values.target), f"{method} is untargeted; pass "
                 "--target=False")
        return False
    if method in TARGETED_ONLY:
        _require(not explicit or values.target, f"{method} is targeted by construction; "
                 "pass --target=True")
        return True
    return bool(values.target) and method in WITH_OBJECTIVE


def settings_from_flags(values: Any, loss: str, target_given: bool = False) -> Settings:
    """Check the evaluation flags (``target_given``: ``--target`` was on the command line);
    :class:`UsageError` on the first bad one."""
    from utils.attacks.objectives import check_objective, select_objective

    method = values.attack_method
    _require(method in ATTACK_METHODS, f"unknown attack {method!r}; choose one of: "
             f"{', '.join(ATTACK_METHODS)}")
    _check_numbers(values)
    _require(method in WITH_OBJECTIVE or values.objective is None,
             f"--objective applies to {', '.join(WITH_OBJECTIVE)}, not {method}")
    targeted = _targeted(values, method, target_given)
    objective = None
    if method in WITH_OBJECTIVE:
        objective = values.objective or select_objective(loss, method, targeted,
                                                         values.adaptive)
        check_objective(objective, loss, targeted)
    groups: Dict[str, Dict[str, Any]] = {g: {} for g in ("cw", "spsa", "ead", "deepfool",
                                                         "lbfgs", "jsma")}
    for name, (group, key) in GROUPS.items():
        groups[group][key] = getattr(values, name)
    return Settings(attack_method=method, targeted=targeted, objective=objective, **groups,
                    spsa_eps_256=float(values.SPSA_epsilon),
                    noise_sigma=float(values.noise_sigma),
                    rotation_degrees=float(values.rotation_degrees), seed=int(values.seed))


def make_perturbation(settings: Settings, model_fn: Callable) -> Perturb:
    """The ``Perturb`` of ``settings.attack_method`` (noise and angles seeded once)."""
    from utils.attacks import perturbations as p
    rng = np.random.default_rng(settings.seed)
    s = settings
    builders: Dict[str, Callable[[], Perturb]] = {
        "CarliniWagnerL2": lambda: p.cw_perturbation(model_fn, s.objective, s.cw),
        "SPSA": lambda: p.spsa_perturbation(model_fn, s.objective, s.spsa_eps_256 / 256,
                                            s.spsa),
        "ElasticNetMethod": lambda: p.ead_perturbation(model_fn, s.objective, s.ead),
        "DeepFool": lambda: p.deepfool_perturbation(model_fn, s.deepfool),
        "LBFGS": lambda: p.lbfgs_perturbation(model_fn, s.objective, s.lbfgs),
        "SaliencyMapMethod": lambda: p.jsma_perturbation(model_fn, s.jsma),
        "Gaussian": lambda: p.noise_perturbation(s.noise_sigma, rng),
        "Rotation": lambda: p.rotation_perturbation(s.rotation_degrees, rng),
    }
    return builders[s.attack_method]()


# ------------------------------------------------------------------ records

def method_fields(settings: Settings) -> Dict[str, Any]:
    """The settings of the method that ran (for its record)."""
    method = settings.attack_method
    prefix = {"CarliniWagnerL2": ("CW", settings.cw), "ElasticNetMethod": ("EAD", settings.ead),
              "DeepFool": ("DeepFool", settings.deepfool), "LBFGS": ("LBFGS", settings.lbfgs),
              "SaliencyMapMethod": ("JSMA", settings.jsma)}
    if method in prefix:
        name, group = prefix[method]
        return {f"{name}_{k}": v for k, v in group.items()} | {"distortion_units": UNITS}
    if method == "SPSA":
        return {"SPSA_epsilon": settings.spsa_eps_256, "eps": settings.spsa_eps_256 / 256,
                **{f"SPSA_{k}": v for k, v in settings.spsa.items()}}
    if method == "Gaussian":
        return {"noise_sigma": settings.noise_sigma}
    return {"rotation_degrees": settings.rotation_degrees, "fill_mode": "nearest"}


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4f}"


def summary_line(method: str, result: Dict[str, Any]) -> str:
    line = (f"{method} (n={result['n']}): clean {result['clean_accuracy']:.4f}, "
            f"adv_acc {result['adv_accuracy']:.4f}")
    if result["targeted"]:
        line += f", adv_acc_target (success) {result['target_success']:.4f}"
    if method in MINIMAL:
        line += (f", success {result['success_rate']:.4f}, mean L2 {result['l2_mean']:.4f}"
                 f" (successful only: L1 {_fmt(result['l1_mean_success'])}, L2 "
                 f"{_fmt(result['l2_mean_success'])}, Linf {_fmt(result['linf_mean_success'])}"
                 f", pixels changed {_fmt(result['changed_fraction_mean_success'])})")
    return line


def _result_fields(method: str, result: Dict[str, Any]) -> Dict[str, Any]:
    """Distortion statistics for the minimal-distortion attacks only (the others bound
    none); no success counts for the random transforms (they aim at nothing)."""
    if method in MINIMAL:
        return result
    drop = ("l1_", "l2_", "linf_", "changed_") if method == "SPSA" else (
        "l1_", "l2_", "linf_", "changed_", "success", "already_")
    return {k: v for k, v in result.items() if not k.startswith(drop)}


# ------------------------------------------------------------------ the run

@dataclasses.dataclass(frozen=True)
class OthersConfig:
    """A validated run: ``settings`` of the attack, the test ``data`` and ``model``
    (:mod:`utils.evaluation.sources`), the record's description of the model (``loss``,
    ``epoch``, ``use_advtrain``, ``adaptive``, ``normalize_output_for_ball``) and where the
    record goes. ``num_examples`` None: the original's count for the attack."""

    settings: Settings
    data: DataSource
    model: ModelSource
    loss: str
    epoch: int
    use_advtrain: bool
    adaptive: bool
    normalize_output_for_ball: bool
    num_examples: Optional[int] = None
    eval_batch_size: int = 50
    progress: bool = True
    jit_compile: bool = False
    results_file: str = "results/advtest_others.jsonl"


def _attack(config: OthersConfig, data: Any, loaded: Any) -> Dict[str, Any]:
    """The result dict of :func:`utils.evaluation.perturbation.evaluate_perturbation`."""
    import keras

    from utils.errors import Interrupted
    from utils.evaluation.stream import draw_targets
    from utils.models.jit import jit_model

    settings = config.settings
    n = len(data.x_test)
    if config.num_examples is None:
        n = min(n, DEFAULT_NUM_EXAMPLES.get(settings.attack_method, n))
    x, y = data.x_test[:n], data.y_test[:n]
    targets = draw_targets(y, data.num_classes, settings.seed) if settings.targeted else None
    keras.utils.set_random_seed(settings.seed)  # SPSA's TF draws
    if settings.attack_method == "DeepFool" and settings.deepfool["nb_candidate"] == 1:
        print("note: DeepFool with --DeepFool_nb_candidate=1 (the original's setting) has no "
              "other class to move toward and returns the inputs unchanged; use >= 2",
              flush=True)
    model_fn = pixel_model(jit_model(loaded.model) if config.jit_compile else loaded.model,
                           data.mean)
    try:
        return evaluate_perturbation(model_fn, x, y, data.mean,
                                     make_perturbation(settings, model_fn),
                                     batch_size=config.eval_batch_size, targets=targets,
                                     keep_already=settings.attack_method in MINIMAL,
                                     progress=config.progress)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted during {settings.attack_method}; no record written "
                          f"to {config.results_file}; rerun to measure") from None


def run(config: OthersConfig) -> Dict[str, Any]:
    """Load the data and model, attack, print one line, append the record; returns it."""
    from utils.results import EvalRecord, append_records

    settings = config.settings
    data = load_data(config.data)
    loaded = load_model(config.model, data)
    result = _attack(config, data, loaded)
    print(summary_line(settings.attack_method, result), flush=True)
    record = EvalRecord(
        script="advtest_others", dataset=config.data.dataset, model=loaded.run_name,
        model_fields=loaded.record_fields(), loss=config.loss, epoch=config.epoch,
        adaptive=config.adaptive, objective=settings.objective,
        normalize_output_for_ball=config.normalize_output_for_ball,
        outcome=_result_fields(settings.attack_method, result),
        settings=dict(use_advtrain=config.use_advtrain, attack_name=settings.attack_method,
                      seed=settings.seed, **method_fields(settings))).to_dict()
    append_records(config.results_file, [record])
    print(f"1 record appended to {config.results_file}")
    return record
