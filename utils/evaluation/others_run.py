"""One ``advtest_others.py`` run: a minimal-distortion attack (C&W, EAD, DeepFool, L-BFGS,
JSMA), SPSA or a random corruption on a trained model, one record appended.

The entry script's flags become one validated :class:`OthersConfig`
(:func:`utils.cli.others.config_from_flags`), which :func:`run` runs; the attack itself is
a :data:`utils.attacks.perturbations.PERTURBATIONS` entry.

    run(config)   # prints one line, appends the record, returns it
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional

import keras
import numpy as np

from utils.attacks.perturbations import PERTURBATIONS, Perturb, PerturbationSpec
from utils.errors import Interrupted
from utils.evaluation.stream import draw_targets
from utils.evaluation.perturbation import evaluate_perturbation, pixel_model
from utils.evaluation.sources import DataSource, ModelSource, load_data, load_model
from utils.models.jit import jit_model
from utils.results import EvalRecord, append_records

UNITS = "[0,1] pixels over all pixels and channels (= mean-subtracted model units)"


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to run (everything but the model and data), validated when built by the
    command line: ``attack_method`` a :data:`PERTURBATIONS` name, ``objective`` its
    objective (None for the attacks taking none), ``params`` the attack's settings object
    (e.g. :class:`utils.attacks.perturbations.CWSettings`), ``seed`` of targets, noise and
    angles."""

    attack_method: str
    targeted: bool
    objective: Optional[str]
    params: Any
    seed: int

    def __post_init__(self) -> None:
        if not isinstance(self.params, self.spec.settings_type):
            raise TypeError(f"{self.attack_method} takes {self.spec.settings_type.__name__}, "
                            f"got {type(self.params).__name__}")

    @property
    def spec(self) -> PerturbationSpec:
        """The attack's registry entry."""
        return PERTURBATIONS.get(self.attack_method)


def make_perturbation(settings: Settings, model_fn: Callable) -> Perturb:
    """The ``Perturb`` of ``settings.attack_method`` (noise and angles seeded once)."""
    return settings.spec.build(model_fn, settings.objective, settings.params,
                               np.random.default_rng(settings.seed))


# ------------------------------------------------------------------ records

def method_fields(settings: Settings) -> Dict[str, Any]:
    """The settings of the method that ran (for its record); the minimal-distortion
    attacks also say the units of their distortions."""
    spec = settings.spec
    fields = settings.params.record_fields(spec.record_prefix)
    return fields | {"distortion_units": UNITS} if spec.minimal_distortion else fields


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4f}"


def summary_line(method: str, result: Dict[str, Any]) -> str:
    """The run's one printed line (distortions for the minimal-distortion attacks)."""
    line = (f"{method} (n={result['n']}): clean {result['clean_accuracy']:.4f}, "
            f"adv_acc {result['adv_accuracy']:.4f}")
    if result["targeted"]:
        line += f", adv_acc_target (success) {result['target_success']:.4f}"
    if PERTURBATIONS.get(method).minimal_distortion:
        line += (f", success {result['success_rate']:.4f}, mean L2 {result['l2_mean']:.4f}"
                 f" (successful only: L1 {_fmt(result['l1_mean_success'])}, L2 "
                 f"{_fmt(result['l2_mean_success'])}, Linf {_fmt(result['linf_mean_success'])}"
                 f", pixels changed {_fmt(result['changed_fraction_mean_success'])})")
    return line


def _result_fields(method: str, result: Dict[str, Any]) -> Dict[str, Any]:
    """Distortion statistics for the minimal-distortion attacks only (the others bound
    none); no success counts for the random transforms (no objective: they aim at
    nothing)."""
    spec = PERTURBATIONS.get(method)
    if spec.minimal_distortion:
        return result
    drop = ("l1_", "l2_", "linf_", "changed_") if spec.takes_objective else (
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
    settings = config.settings
    n = len(data.x_test)
    if config.num_examples is None:
        n = min(n, settings.spec.original_num_examples or n)
    x, y = data.x_test[:n], data.y_test[:n]
    targets = draw_targets(y, data.num_classes, settings.seed) if settings.targeted else None
    keras.utils.set_random_seed(settings.seed)  # SPSA's TF draws
    if settings.attack_method == "DeepFool" and settings.params.nb_candidate == 1:
        print("note: DeepFool with --DeepFool_nb_candidate=1 (the original's setting) has no "
              "other class to move toward and returns the inputs unchanged; use >= 2",
              flush=True)
    model_fn = pixel_model(jit_model(loaded.model) if config.jit_compile else loaded.model,
                           data.mean)
    try:
        return evaluate_perturbation(model_fn, x, y, data.mean,
                                     make_perturbation(settings, model_fn),
                                     batch_size=config.eval_batch_size, targets=targets,
                                     keep_already=settings.spec.minimal_distortion,
                                     progress=config.progress)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted during {settings.attack_method}; no record written "
                          f"to {config.results_file}; rerun to measure") from None


def run(config: OthersConfig) -> Dict[str, Any]:
    """Load the data and model, attack, print one line, append the record; returns it."""
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
