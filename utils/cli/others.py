"""``advtest_others.py``'s flags -> one validated :class:`OthersConfig` (the only place its
flag values are read).

Each attack's settings flags are ``<prefix>_<field>`` for the fields of its
:data:`utils.attacks.perturbations.PERTURBATIONS` settings class (the original's names:
``CW_confidence``, ``EAD_beta``, ``SPSA_epsilon``, ``noise_sigma``, ...); their defaults are
those classes' defaults (the original's settings, but ``JSMA_variant``: the original's is
``cleverhans``, the default the stronger ``logprob``).

    define_flags()                            # in advtest_others.define_flags
    config = config_from_flags(flags.FLAGS)   # UsageError on the first bad value
    utils.evaluation.others_run.run(config)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Tuple

from absl import flags

from utils.attacks.objectives import check_objective, select_objective
from utils.attacks.perturbations import PERTURBATIONS, PerturbationSpec
from utils.attacks.settings import SettingError
from utils.cli.flags import (check_eval_flags, data_source, define_eval_flags,
                             define_model_flags, eval_batch_size, forget_script_flags,
                             model_config_from_flags, model_path_config, model_source,
                             present_flags)
from utils.errors import UsageError
from utils.evaluation.others_run import OthersConfig, Settings

# A settings flag is <record_prefix>_<field> (the spec's prefix: the original's flag and
# record names share it); RENAMED: the original's names that are not.
RENAMED = {"SPSA_eps_256": "SPSA_epsilon", "SPSA_spsa_samples": "SPSA_samples"}
HELP = {
    "CW_confidence": "C&W confidence (margin) kappa >= 0 (0 as the paper; the original "
                     "code had 1).",
    "CW_binary_search_steps": "C&W binary-search steps over the constant c.",
    "CW_max_iterations": "C&W Adam iterations per binary-search step.",
    "CW_learning_rate": "C&W Adam learning rate.",
    "CW_initial_const": "C&W initial constant c.",
    "SPSA_epsilon": "SPSA L-inf epsilon in /256 pixel units.",
    "SPSA_nb_iter": "SPSA iterations.",
    "SPSA_samples": "SPSA samples per iteration (even).",
    "SPSA_learning_rate": "SPSA Adam learning rate.",
    "SPSA_delta": "SPSA finite-difference step.",
    "EAD_confidence": "EAD confidence (margin) kappa >= 0.",
    "EAD_learning_rate": "EAD initial learning rate (decayed as sqrt).",
    "EAD_binary_search_steps": "EAD binary-search steps over the constant c.",
    "EAD_max_iterations": "EAD ISTA/FISTA iterations per binary-search step.",
    "EAD_initial_const": "EAD initial constant c.",
    "EAD_beta": "EAD L1 weight beta.",
    "EAD_fista": "EAD: FISTA (else ISTA).",
    "EAD_decision_rule": "EAD best-example rule: EN | L1.",
    "DeepFool_max_iter": "DeepFool iterations.",
    "DeepFool_nb_candidate": "DeepFool top classes compared (the original: 1, which takes "
                             "no step; cleverhans' default 10).",
    "DeepFool_overshoot": "DeepFool overshoot.",
    "LBFGS_binary_search_steps": "L-BFGS binary-search steps over c.",
    "LBFGS_max_iterations": "L-BFGS-B iterations per binary-search step.",
    "LBFGS_initial_const": "L-BFGS initial constant c.",
    "JSMA_theta": "JSMA amount added per chosen pixel ([0,1] units).",
    "JSMA_gamma": "JSMA largest share of pixels changed.",
    "JSMA_variant": "JSMA pixel choice: logprob (one pixel per step by the target's "
                    "log-probability gradient; strongest) | art (ART's: two by the target "
                    "logit's) | cleverhans (the original's pair score).",
    "noise_sigma": "Gaussian noise standard deviation in [0,1] pixel units.",
    "rotation_degrees": "Random rotation uniform in +-this many degrees.",
}


def flag_name(attack: str, field: str) -> str:
    """The flag that sets ``field`` of ``attack``'s settings."""
    name = f"{PERTURBATIONS.get(attack).record_prefix}_{field}"
    return RENAMED.get(name, name)


def settings_flags() -> Iterator[Tuple[str, dataclasses.Field]]:
    """``(flag name, settings field)`` of every attack, in registry order."""
    for attack in PERTURBATIONS:
        for field in dataclasses.fields(PERTURBATIONS.get(attack).settings_type):
            yield flag_name(attack, field.name), field


def define_flags() -> None:
    """``advtest_others.py``'s flags and defaults (every flag of this repository defined
    before is forgotten first: :func:`utils.cli.flags.forget_script_flags`)."""
    forget_script_flags()
    define_model_flags(optimizer="Adam", lr=0.001, batch_size=50, dataset="mnist")
    define_eval_flags(attack_method="CarliniWagnerL2",
                      attack_help=" | ".join(PERTURBATIONS.names()),
                      results_file="results/advtest_others.jsonl")
    definers = ((bool, flags.DEFINE_bool), (int, flags.DEFINE_integer),
                (float, flags.DEFINE_float), (str, flags.DEFINE_string))
    for name, field in settings_flags():
        define = next(d for kind, d in definers if isinstance(field.default, kind))
        define(name, field.default, HELP[name])


def _params(values: Any, spec: PerturbationSpec) -> Any:
    """The settings object of ``spec`` from its flags; UsageError naming the flag."""
    kwargs = {f.name: getattr(values, flag_name(spec.name, f.name))
              for f in dataclasses.fields(spec.settings_type)}
    try:
        return spec.settings_type(**kwargs)
    except SettingError as exc:
        raise UsageError(f"{flag_name(spec.name, exc.field)} {exc.rule}, got "
                         f"{exc.shown}") from None


def _targeted(spec: PerturbationSpec, target: bool, explicit: bool) -> bool:
    """``--target`` for attacks that go both ways; refuses an ``explicit`` (given on the
    command line) contradiction."""
    if spec.targeting == "untargeted":
        if explicit and target:
            raise UsageError(f"{spec.name} is untargeted; pass --target=False")
        return False
    if spec.targeting == "targeted":
        if explicit and not target:
            raise UsageError(f"{spec.name} is targeted by construction; pass --target=True")
        return True
    return bool(target)


def settings_from_flags(values: Any, loss: str, target_given: bool = False) -> Settings:
    """The attack's :class:`Settings` against a model trained with ``loss``
    (``target_given``: ``--target`` was on the command line); UsageError on the first
    bad value."""
    spec = PERTURBATIONS.get(values.attack_method)
    params = _params(values, spec)
    if not spec.takes_objective and values.objective is not None:
        with_objective = [n for n in PERTURBATIONS if PERTURBATIONS.get(n).takes_objective]
        raise UsageError(f"--objective applies to {', '.join(with_objective)}, not "
                         f"{spec.name}")
    targeted = _targeted(spec, values.target, target_given)
    objective = None
    if spec.takes_objective:
        objective = values.objective or select_objective(loss, spec.name, targeted,
                                                         values.adaptive)
        check_objective(objective, loss, targeted)
    return Settings(attack_method=spec.name, targeted=targeted, objective=objective,
                    params=params, seed=int(values.seed))


def config_from_flags(values: Any) -> OthersConfig:
    """Validate the parsed flags (nothing loaded; the results file checked) into one
    :class:`OthersConfig`; UsageError on the first bad value."""
    given = present_flags()
    cfg = model_path_config(values, given) if values.model_path else \
        model_config_from_flags(values)
    settings = settings_from_flags(values, cfg.loss, "target" in given)
    check_eval_flags(values, values.results_file)
    return OthersConfig(
        settings=settings, data=data_source(values), model=model_source(values, cfg),
        loss=cfg.loss, epoch=values.epoch,
        use_advtrain=values.use_advtrain and not values.model_path, adaptive=values.adaptive,
        normalize_output_for_ball=values.normalize_output_for_ball,
        num_examples=values.num_examples, eval_batch_size=eval_batch_size(values),
        progress=values.progress, jit_compile=values.jit_compile,
        results_file=values.results_file)
