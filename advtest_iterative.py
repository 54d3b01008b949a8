"""White-box iterative attacks (FGSM, BIM, PGD, MIM) on a trained model, adaptive by default.

Flags keep the names and defaults of the original ``advtest_iterative.py``; the checkpoint
is found from the training flags (``--epoch`` picks ``model.NNN.weights.h5``). For every
ε in {8, 16, 24, 32}/256 (step 2/256) it prints and appends one record to
``--results_file`` (JSON lines + CSV).

    python3 advtest_iterative.py --dataset=fashion_mnist --version=1 --n=1 --optimizer=Adam \
        --lr=0.001 --use_advtrain=False --epoch=2 --attack_method=MadryEtAl --target=False
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from utils.cli import run_main  # noqa: E402
from utils.flag_defs import (define_eval_flags, define_model_flags, define_once,  # noqa: E402
                             load_data_and_checkpoint, model_config_from_flags)

FLAGS = flags.FLAGS

def define_flags() -> None:
    """The original advtest_iterative.py's flags and defaults, then ours (idempotent)."""
    define_model_flags(optimizer="Adam", lr=0.001, batch_size=50, dataset="mnist")
    define_eval_flags(attack_method="FastGradientMethod",
                      attack_help="FastGradientMethod | BasicIterativeMethod | MadryEtAl | "
                                  "MomentumIterativeMethod.",
                      results_file="results/advtest_iterative.jsonl")
    d = define_once
    d(flags.DEFINE_integer, "num_iter", 10, "Attack iterations.")
    d(flags.DEFINE_list, "eps_256", ["8", "16", "24", "32"], "ε values in /256 pixel units.")
    d(flags.DEFINE_float, "eps_iter_256", 2.0, "Step size in /256 pixel units.")
    d(flags.DEFINE_integer, "num_restarts", 1, "Random restarts (per-example worst case).")


define_flags()

def _eps_list(values: Sequence[str]) -> List[float]:
    from utils.errors import UsageError
    try:
        eps = [float(v) for v in values]
    except ValueError:
        raise UsageError(f"eps_256 must be numbers, got {list(values)}") from None
    if not eps or min(eps) < 0:
        raise UsageError(f"eps_256 must be >= 0, got {list(values)}")
    return eps


def main(argv: Sequence[str]) -> None:
    from utils.attacks import ATTACKS
    from utils.errors import UsageError
    from utils.evaluation import draw_targets, evaluate_attack
    from utils.objectives import check_objective, select_objective
    from utils.results import append_records, check_writable, provenance

    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    ATTACKS.get(FLAGS.attack_method)
    eps_list = _eps_list(FLAGS.eps_256)
    if FLAGS.num_iter < 1:
        raise UsageError(f"num_iter must be >= 1, got {FLAGS.num_iter}")
    if FLAGS.num_restarts < 1:
        raise UsageError(f"num_restarts must be >= 1, got {FLAGS.num_restarts}")
    cfg = model_config_from_flags(FLAGS)
    objective = FLAGS.objective or select_objective(cfg.loss, FLAGS.attack_method, FLAGS.target,
                                                    FLAGS.adaptive)
    check_objective(objective, cfg.loss, FLAGS.target)
    check_writable(FLAGS.results_file)
    data, loaded = load_data_and_checkpoint(FLAGS, cfg)
    model, name = loaded.model, loaded.run_name
    targets = draw_targets(data.y_test, data.num_classes, FLAGS.seed) if FLAGS.target else None
    records: List[Dict[str, Any]] = []
    for eps in eps_list:
        result = evaluate_attack(
            model, data.x_test, data.y_test, attack_name=FLAGS.attack_method,
            objective_name=objective, eps=eps / 256, eps_iter=FLAGS.eps_iter_256 / 256,
            nb_iter=FLAGS.num_iter, clip_min=data.clip_min, clip_max=data.clip_max,
            batch_size=FLAGS.batch_size, targets=targets, num_restarts=FLAGS.num_restarts,
            seed=FLAGS.seed, progress=FLAGS.progress)
        line = f"eps {eps:g}/256: clean {result['clean_accuracy']:.4f}, " \
               f"adv_acc {result['adv_accuracy']:.4f}"
        if FLAGS.target:
            line += f", adv_acc_target (success) {result['target_success']:.4f}"
        print(line, flush=True)
        records.append(dict(result, script="advtest_iterative", dataset=FLAGS.dataset,
                            model=name, loss=cfg.loss, epoch=FLAGS.epoch, adaptive=FLAGS.adaptive,
                            objective=objective, eps_256=eps, eps_iter_256=FLAGS.eps_iter_256,
                            normalize_output_for_ball=FLAGS.normalize_output_for_ball,
                            **provenance()))
    append_records(FLAGS.results_file, records)
    print(f"{len(records)} records appended to {FLAGS.results_file}")


if __name__ == "__main__":
    run_main(main)
