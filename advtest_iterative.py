"""White-box iterative attacks (FGSM, BIM, PGD, MIM) on a trained model, adaptive by default.

Flags keep the names and defaults of the original ``advtest_iterative.py``; the checkpoint
is found from the training flags (``--epoch`` picks ``model.NNN.weights.h5``). For every
ε in {8, 16, 24, 32}/256 (step 2/256) it prints and appends one record to
``--results_file`` (JSON lines + CSV). ``--is_calculate_auc`` adds the ROC AUC of telling
clean inputs from adversarial ones by confidence; ``--model_1=SCE --model_2=MMC-10``
crafts on model_1 and classifies with model_2 (black-box transfer, as the original
``advtest_iterative_blackbox.py``).

    python3 advtest_iterative.py --dataset=fashion_mnist --version=1 --n=1 --optimizer=Adam \
        --lr=0.001 --use_advtrain=False --epoch=2 --attack_method=MadryEtAl --target=False
"""
from __future__ import annotations

import os
import types
from typing import Any, Dict, List, Optional, Sequence, Tuple

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
    d(flags.DEFINE_bool, "is_calculate_auc", False, "Also the ROC AUC of detecting "
      "adversarial inputs by --auc_score (clean = positive).")
    d(flags.DEFINE_string, "auc_score", None, "max_logit | max_softmax; default max_softmax "
      "with --normalize_output_for_ball, else max_logit.")
    d(flags.DEFINE_string, "model_1", None, "Black-box substitute that crafts the examples: "
      + " | ".join(TRANSFER_MODELS) + " (with --model_2; default: white-box).")
    d(flags.DEFINE_string, "model_2", None, "Black-box target that classifies them.")


# The original blackbox script's model names -> architecture flag overrides; AT-* also
# take the adversarial-training flags (--attack_method_for_advtrain, --adv_ratio, ...).
TRANSFER_MODELS: Dict[str, Dict[str, Any]] = {
    "SCE": dict(use_MMLDA=False, use_advtrain=False),
    "MMC-10": dict(use_MMLDA=True, use_ball=True, mean_var=10.0, use_advtrain=False),
    "MMC-100": dict(use_MMLDA=True, use_ball=True, mean_var=100.0, use_advtrain=False),
}
TRANSFER_MODELS.update({f"AT-{k}": dict(v, use_advtrain=True) for k, v in
                        list(TRANSFER_MODELS.items())})

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


def _model_flags(name: str) -> Any:
    """FLAGS with the overrides of transfer model ``name``."""
    from utils.errors import UsageError
    if name not in TRANSFER_MODELS:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(TRANSFER_MODELS)}")
    return types.SimpleNamespace(**dict(FLAGS.flag_values_dict(), **TRANSFER_MODELS[name]))


def _configs() -> Tuple[Any, Any, Optional[Any], Optional[Any]]:
    """``(attacker flags, its ModelConfig, target flags, its ModelConfig)``.

    White-box: the flags' model attacks itself (target None). Transfer: ``--model_1``
    crafts the examples and ``--model_2`` classifies them.
    """
    from utils.errors import UsageError
    if (FLAGS.model_1 is None) != (FLAGS.model_2 is None):
        raise UsageError("black-box transfer needs both --model_1 (substitute) and --model_2 "
                         "(target), or neither")
    if FLAGS.model_1 is None:
        return FLAGS, model_config_from_flags(FLAGS), None, None
    values_1, values_2 = _model_flags(FLAGS.model_1), _model_flags(FLAGS.model_2)
    return (values_1, model_config_from_flags(values_1), values_2,
            model_config_from_flags(values_2))


def _load_target(values: Any, cfg: Any, data: Any) -> Any:
    """The transfer target's :class:`utils.model_loading.LoadedModel`."""
    from utils.model_loading import load_checkpoint_model
    return load_checkpoint_model(
        cfg, data.input_shape, data.num_classes, model_dir=values.model_dir,
        dataset=values.dataset, optimizer=values.optimizer, lr=values.lr,
        batch_size=values.batch_size, epoch=values.epoch, use_advtrain=values.use_advtrain,
        attack_method_for_advtrain=values.attack_method_for_advtrain,
        adv_ratio=values.adv_ratio, use_target=values.use_target)


def _auc_score() -> Optional[str]:
    from utils.detection import SCORES
    if not FLAGS.is_calculate_auc:
        return None
    name = FLAGS.auc_score or ("max_softmax" if FLAGS.normalize_output_for_ball
                               else "max_logit")
    SCORES.get(name)
    return name


def main(argv: Sequence[str]) -> None:
    from utils.attacks import ATTACKS
    from utils.detection import SCORES
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
    auc_score = _auc_score()
    values, cfg, target_values, target_cfg = _configs()
    # The objective is the adaptive one for the model that crafts the examples.
    objective = FLAGS.objective or select_objective(cfg.loss, FLAGS.attack_method, FLAGS.target,
                                                    FLAGS.adaptive)
    check_objective(objective, cfg.loss, FLAGS.target)
    check_writable(FLAGS.results_file)
    data, loaded = load_data_and_checkpoint(values, cfg)
    target = loaded if target_values is None else _load_target(target_values, target_cfg, data)
    transfer = target_values is not None
    targets = draw_targets(data.y_test, data.num_classes, FLAGS.seed) if FLAGS.target else None
    records: List[Dict[str, Any]] = []
    for eps in eps_list:
        result = evaluate_attack(
            loaded.model, data.x_test, data.y_test, attack_name=FLAGS.attack_method,
            objective_name=objective, eps=eps / 256, eps_iter=FLAGS.eps_iter_256 / 256,
            nb_iter=FLAGS.num_iter, clip_min=data.clip_min, clip_max=data.clip_max,
            batch_size=FLAGS.batch_size, targets=targets, num_restarts=FLAGS.num_restarts,
            seed=FLAGS.seed, progress=FLAGS.progress, eval_model=target.model,
            score_fn=SCORES.get(auc_score) if auc_score else None)
        line = f"eps {eps:g}/256: clean {result['clean_accuracy']:.4f}, " \
               f"adv_acc {result['adv_accuracy']:.4f}"
        if FLAGS.target:
            line += f", adv_acc_target (success) {result['target_success']:.4f}"
        if auc_score:
            line += f", auc ({auc_score}) {result['auc']:.4f}"
        print(line, flush=True)
        extra: Dict[str, Any] = {"transfer": transfer}
        if transfer:
            extra.update(model_1=FLAGS.model_1, model_2=FLAGS.model_2,
                         substitute=loaded.run_name, substitute_loss=cfg.loss)
        if auc_score:
            extra["auc_score"] = auc_score
        records.append(dict(result, script="advtest_iterative", dataset=FLAGS.dataset,
                            model=target.run_name, loss=target_cfg.loss if transfer else
                            cfg.loss, epoch=FLAGS.epoch, adaptive=FLAGS.adaptive,
                            objective=objective, eps_256=eps, eps_iter_256=FLAGS.eps_iter_256,
                            normalize_output_for_ball=FLAGS.normalize_output_for_ball,
                            **extra, **provenance()))
    append_records(FLAGS.results_file, records)
    print(f"{len(records)} records appended to {FLAGS.results_file}")


if __name__ == "__main__":
    run_main(main)
