r"""Every attack of the original ``advtest_others.py`` on a trained model (paper 002 Table 2),
plus Gaussian noise and random rotation.

``--attack_method``: ``CarliniWagnerL2``, ``SPSA``, ``ElasticNetMethod`` (EAD),
``DeepFool``, ``LBFGS``, ``SaliencyMapMethod`` (JSMA), ``Gaussian``, ``Rotation``. Flags
keep the names of the original (and of its ``advtest_simple_transform.py`` for Gaussian /
Rotation) and its settings as defaults (EAD: kappa 0.1, lr 0.01, 1 binary-search step,
1000 iterations, c 1, beta 0.01, FISTA, EN rule, 1000 images; DeepFool: 10 iterations,
1 candidate, overshoot 0.02, 1000 images; L-BFGS: targeted, 1 binary-search step, 100
iterations, c 1, 1000 images; JSMA: targeted, theta 1, gamma 0.1, 100 images). The
checkpoint is found from the training flags as in ``advtest_iterative.py``. Attacks are
adaptive by default (C&W, EAD: ``mmc_un2`` / ``mmc_tar2`` on MMC models; SPSA, L-BFGS:
``mmc_un1`` / ``mmc_tar1``). DeepFool is untargeted, L-BFGS and JSMA targeted by
construction. Each run prints one line and appends one record to ``--results_file``
(JSON lines + CSV) with accuracy, success and, for the minimal-distortion attacks, the
mean L1 / L2 / L-inf distortion and share of pixels changed over successful examples.

All work on images in [0, 1] pixel units: the model sees ``pixels - mean``, a translation,
so distortions equal those in the model's (mean-subtracted) input units, and clipping to
[0, 1] is clipping to the per-pixel ``[clip_min, clip_max]``.

    python3 advtest_others.py --dataset=fashion_mnist --version=1 --n=1 --optimizer=Adam \
        --lr=0.001 --use_advtrain=False --epoch=2 --attack_method=CarliniWagnerL2 --target=False
    python3 advtest_others.py ... --attack_method=ElasticNetMethod --target=False
"""
from __future__ import annotations

from typing import Any, Sequence

from absl import flags

from utils.cli.common import quiet_tensorflow, run_main

quiet_tensorflow()  # before utils.cli.flags imports TensorFlow
from utils.cli import flags as cli_flags  # noqa: E402
from utils.cli.flags import (check_eval_flags, data_source, define_eval_flags,  # noqa: E402
                             define_model_flags, eval_batch_size, forget_script_flags,
                             model_config_from_flags, model_path_config, model_source,
                             present_flags)
from utils.errors import UsageError  # noqa: E402
from utils.evaluation.others_run import (ATTACK_METHODS, OthersConfig, run,  # noqa: E402
                                         settings_from_flags)

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This script's flags and defaults. Called once below; in-process runners (tests,
    scripts/reproduce_cpu.py) call it again to make these the defined flags
    (:func:`utils.cli.flags.forget_script_flags`)."""
    forget_script_flags()
    define_model_flags(optimizer="Adam", lr=0.001, batch_size=50, dataset="mnist")
    define_eval_flags(attack_method="CarliniWagnerL2", attack_help=" | ".join(ATTACK_METHODS),
                      results_file="results/advtest_others.jsonl")
    # The original advtest_others.py's flags (CW_confidence: 0 as the paper, the code had 1)
    # and its hard-coded settings of the other attacks as defaults.
    for name, default, text in (
            ("CW_binary_search_steps", 9, "C&W binary-search steps over the constant c."),
            ("CW_max_iterations", 1000, "C&W Adam iterations per binary-search step."),
            ("SPSA_nb_iter", 10, "SPSA iterations."),
            ("SPSA_samples", 128, "SPSA samples per iteration (even)."),
            ("EAD_binary_search_steps", 1, "EAD binary-search steps over the constant c."),
            ("EAD_max_iterations", 1000, "EAD ISTA/FISTA iterations per binary-search step."),
            ("DeepFool_max_iter", 10, "DeepFool iterations."),
            ("DeepFool_nb_candidate", 1, "DeepFool top classes compared (the original: 1, "
             "which takes no step; cleverhans' default 10)."),
            ("LBFGS_binary_search_steps", 1, "L-BFGS binary-search steps over c."),
            ("LBFGS_max_iterations", 100, "L-BFGS-B iterations per binary-search step."),
    ):
        flags.DEFINE_integer(name, default, text)
    for name, default, text in (
            ("CW_confidence", 0.0, "C&W confidence (margin) kappa >= 0."),
            ("SPSA_epsilon", 8.0, "SPSA L-inf epsilon in /256 pixel units."),
            ("CW_initial_const", 0.01, "C&W initial constant c."),
            ("CW_learning_rate", 5e-3, "C&W Adam learning rate."),
            ("SPSA_learning_rate", 0.01, "SPSA Adam learning rate."),
            ("SPSA_delta", 0.01, "SPSA finite-difference step."),
            ("EAD_confidence", 0.1, "EAD confidence (margin) kappa >= 0."),
            ("EAD_learning_rate", 0.01, "EAD initial learning rate (decayed as sqrt)."),
            ("EAD_initial_const", 1.0, "EAD initial constant c."),
            ("EAD_beta", 1e-2, "EAD L1 weight beta."),
            ("DeepFool_overshoot", 0.02, "DeepFool overshoot."),
            ("LBFGS_initial_const", 1.0, "L-BFGS initial constant c."),
            ("JSMA_theta", 1.0, "JSMA amount added per chosen pixel ([0,1] units)."),
            ("JSMA_gamma", 0.1, "JSMA largest share of pixels changed."),
            ("noise_sigma", 0.05, "Gaussian noise standard deviation in [0,1] pixel units."),
            ("rotation_degrees", 30.0, "Random rotation uniform in +-this many degrees."),
    ):
        flags.DEFINE_float(name, default, text)
    flags.DEFINE_bool("EAD_fista", True, "EAD: FISTA (else ISTA).")
    flags.DEFINE_string("EAD_decision_rule", "EN", "EAD best-example rule: EN | L1.")
    # Flags defined through utils.cli.flags belong to it: list them in --helpshort.
    flags.adopt_module_key_flags(cli_flags)


define_flags()


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


def main(argv: Sequence[str]) -> None:
    """Validate every flag into one config, then run it."""
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    run(config_from_flags(FLAGS))


if __name__ == "__main__":
    run_main(main)
