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
Every record carries ``masking_warnings`` (:mod:`utils.evaluation.masking_checks`; null with
``--masking_checks=False``, which skips them).
``--attack_backend=cleverhans`` runs FGSM/BIM/PGD/MIM through cleverhans' own loops with the
same objective (:mod:`utils.attacks.cleverhans_backend`); the record names the backend.

    python3 advtest_iterative.py --dataset=fashion_mnist --version=1 --n=1 --optimizer=Adam \
        --lr=0.001 --use_advtrain=False --epoch=2 --attack_method=MadryEtAl --target=False
    python3 advtest_iterative.py ... --attack_method=AutoAttack --target=False --num_iter=100 \
        --state_file=results/aa_state.npz
    python3 advtest_iterative.py ... --attack_method=AutoAttack --ensemble=autoattack \
        --target=False --num_iter=100 --state_file=results/aa_full_state.npz
    mmt-advtest-iterative ...   # the same, as the installed console script

Importing this module defines no flags and loads no TensorFlow (:func:`console_main` does).
"""
from __future__ import annotations

from typing import Any, Sequence

from absl import flags

from utils.cli.common import refuse_arguments, start_script

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Define this script's flags (:func:`utils.cli.iterative.define_flags`; called by
    :func:`console_main`, and again by in-process runners: tests,
    ``scripts/reproduce_cpu.py``)."""
    # Imported when called: utils.cli loads TensorFlow, which importing this module must not.
    from utils.cli import flags as cli_flags
    from utils.cli import iterative as cli_iterative
    cli_iterative.define_flags()
    # Flags defined through utils.cli belong to it: list them in --helpshort.
    flags.adopt_module_key_flags(cli_flags)
    flags.adopt_module_key_flags(cli_iterative)


def config_from_flags(values: Any) -> Any:
    """The validated :class:`utils.evaluation.iterative_run.IterativeConfig` of the parsed
    flags ``values`` (:func:`utils.cli.iterative.config_from_flags`)."""
    from utils.cli.iterative import config_from_flags as build
    return build(values)


def main(argv: Sequence[str]) -> None:
    """Validate every flag into one config (nothing loaded yet), then run it."""
    from utils.evaluation.iterative_run import run

    refuse_arguments(argv)
    run(config_from_flags(FLAGS))


def console_main() -> None:
    """``python3 advtest_iterative.py`` and the ``mmt-advtest-iterative`` console script."""
    start_script(define_flags, main)


if __name__ == "__main__":
    console_main()
