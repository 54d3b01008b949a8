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

from typing import Sequence

from absl import flags

from utils.cli.common import quiet_tensorflow, run_main

quiet_tensorflow()  # before utils.cli.flags imports TensorFlow
from utils.cli import flags as cli_flags  # noqa: E402
from utils.cli.flags import (define_eval_flags, define_model_flags,  # noqa: E402
                             forget_script_flags)
from utils.cli.iterative import (PER_MODEL_FLAGS, TRANSFER_MODELS,  # noqa: E402,F401
                                 config_from_flags)
from utils.errors import UsageError  # noqa: E402
from utils.evaluation.iterative_run import ENSEMBLE_ATTACKS, run  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The original advtest_iterative.py's flags and defaults, then ours. Called once below;
    in-process runners (tests, scripts/reproduce_cpu.py) call it again to make these the
    defined flags (:func:`utils.cli.flags.forget_script_flags`)."""
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
    # Flags defined through utils.cli.flags belong to it: list them in --helpshort.
    flags.adopt_module_key_flags(cli_flags)


def _define_attack_flags() -> None:
    """APGD, ensembles, AUC switch, transfer epochs."""
    flags.DEFINE_bool(
        "is_auc_metric_softmax_for_MMC", None, "The original's AUC score "
        "switch: True = --auc_score=max_softmax, False = max_logit (--auc_score wins).")
    flags.DEFINE_integer("epoch_1", None, "Checkpoint epoch of --model_1 (default --epoch).")
    flags.DEFINE_integer("epoch_2", None, "Checkpoint epoch of --model_2 (default --epoch).")
    flags.DEFINE_string(
        "norm", "linf", "APGD threat model: linf | l2 (eps_256 is then an "
        "l2 radius in /256 units).")
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


define_flags()


def main(argv: Sequence[str]) -> None:
    """Validate every flag into one config (nothing loaded yet), then run it."""
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    run(config_from_flags(FLAGS))


if __name__ == "__main__":
    run_main(main)
