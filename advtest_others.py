r"""Every attack of the original ``advtest_others.py`` on a trained model (paper 002 Table 2),
plus Gaussian noise and random rotation.

``--attack_method``: ``CarliniWagnerL2``, ``SPSA``, ``ElasticNetMethod`` (EAD),
``DeepFool``, ``LBFGS``, ``SaliencyMapMethod`` (JSMA), ``Gaussian``, ``Rotation``. Flags
keep the names of the original (and of its ``advtest_simple_transform.py`` for Gaussian /
Rotation) and its settings as defaults (EAD: kappa 0.1, lr 0.01, 1 binary-search step,
1000 iterations, c 1, beta 0.01, FISTA, EN rule, 1000 images; DeepFool: 10 iterations,
1 candidate, overshoot 0.02, 1000 images; L-BFGS: targeted, 1 binary-search step, 100
iterations, c 1, 1000 images; JSMA: targeted, theta 1, gamma 0.1, 100 images, but the
stronger ``--JSMA_variant=logprob`` pixel choice: the original's is ``cleverhans``). The
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
    mmt-advtest-others ...      # the same, as the installed console script

Importing this module defines no flags and loads no TensorFlow (:func:`console_main` does).
"""
from __future__ import annotations

from typing import Any, Sequence

from absl import flags

from utils.cli.common import refuse_arguments, start_script

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This script's flags and defaults (:func:`utils.cli.others.define_flags`: the
    original advtest_others.py's flags, its hard-coded settings of the other attacks as
    defaults). Called by :func:`console_main`, and again by in-process runners (tests,
    ``scripts/reproduce_cpu.py``) to make these the defined flags."""
    # Imported when called: utils.cli loads TensorFlow, which importing this module must not.
    from utils.cli import flags as cli_flags
    from utils.cli import others as cli_others
    cli_others.define_flags()
    # Flags defined through utils.cli belong to it: list them in --helpshort.
    flags.adopt_module_key_flags(cli_flags)
    flags.adopt_module_key_flags(cli_others)


def config_from_flags(values: Any) -> Any:
    """The validated :class:`utils.evaluation.others_run.OthersConfig` of the parsed flags
    ``values`` (:func:`utils.cli.others.config_from_flags`)."""
    from utils.cli.others import config_from_flags as build
    return build(values)


def main(argv: Sequence[str]) -> None:
    """Validate every flag into one config, then run it."""
    from utils.evaluation.others_run import run

    refuse_arguments(argv)
    run(config_from_flags(FLAGS))


def console_main() -> None:
    """``python3 advtest_others.py`` and the ``mmt-advtest-others`` console script."""
    start_script(define_flags, main)


if __name__ == "__main__":
    console_main()
