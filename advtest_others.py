r"""C&W-L2, SPSA, Gaussian noise and random rotation on a trained model (paper 002 Table 2).

Flags keep the names of the original ``advtest_others.py`` (and its
``advtest_simple_transform.py`` for Gaussian / Rotation); the checkpoint is found from the
training flags as in ``advtest_iterative.py``. Attacks are adaptive by default (C&W:
``mmc_un2`` / ``mmc_tar2`` on MMC models, SPSA: ``mmc_un1`` / ``mmc_tar1``). Each run
prints one line and appends one record to ``--results_file`` (JSON lines + CSV).

All four work on images in [0, 1] pixel units: the model sees ``pixels - mean``, a
translation, so C&W's L2 distortion and SPSA's ε equal those in the model's
(mean-subtracted) input units, and clipping to [0, 1] is clipping to the per-pixel
``[clip_min, clip_max]``.

    python3 advtest_others.py --dataset=fashion_mnist --version=1 --n=1 --optimizer=Adam \
        --lr=0.001 --use_advtrain=False --epoch=2 --attack_method=CarliniWagnerL2 --target=False
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, Optional, Sequence


import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from utils.cli.common import quiet_tensorflow, run_main  # noqa: E402

quiet_tensorflow()  # before utils.cli.flags imports TensorFlow
from utils.errors import UsageError  # noqa: E402
from utils.cli.flags import (check_eval_flags, define_eval_flags,  # noqa: E402
                             define_model_flags, define_once,
                             load_data_and_checkpoint, model_config_from_flags)

FLAGS = flags.FLAGS
ATTACK_METHODS = ("CarliniWagnerL2", "SPSA", "Gaussian", "Rotation")
# The original's sample counts (C&W 500, SPSA 1000); Gaussian / Rotation default to all.
DEFAULT_NUM_EXAMPLES = {"CarliniWagnerL2": 500, "SPSA": 1000}
L2_UNITS = "model input units: pixels/255, mean-subtracted (= L2 in [0,1] pixels)"
# perturb(pixels (b,H,W,C) in [0,1], labels (b,), targets (b,) or None) -> pixels'
Perturb = Callable[[np.ndarray, np.ndarray, Optional[np.ndarray]], np.ndarray]


def define_flags() -> None:
    """This script's flags and defaults (idempotent; re-applies the defaults)."""
    define_model_flags(optimizer="Adam", lr=0.001, batch_size=50, dataset="mnist")
    define_eval_flags(attack_method="CarliniWagnerL2", attack_help=" | ".join(ATTACK_METHODS),
                      results_file="results/advtest_others.jsonl")
    f, d = flags, define_once
    # The original advtest_others.py's flags (CW_confidence: 0 as the paper, the code had 1).
    d(f.DEFINE_float, "CW_confidence", 0.0, "C&W confidence (margin) kappa >= 0.")
    d(f.DEFINE_float, "SPSA_epsilon", 8.0, "SPSA L-inf epsilon in /256 pixel units.")
    for name, default, text in (
            ("CW_binary_search_steps", 9, "C&W binary-search steps over the constant c."),
            ("CW_max_iterations", 1000, "C&W Adam iterations per binary-search step."),
            ("SPSA_nb_iter", 10, "SPSA iterations."),
            ("SPSA_samples", 128, "SPSA samples per iteration (even)."),
    ):
        d(f.DEFINE_integer, name, default, text)
    for name, default, text in (
            ("CW_initial_const", 0.01, "C&W initial constant c."),
            ("CW_learning_rate", 5e-3, "C&W Adam learning rate."),
            ("SPSA_learning_rate", 0.01, "SPSA Adam learning rate."),
            ("SPSA_delta", 0.01, "SPSA finite-difference step."),
            ("noise_sigma", 0.05, "Gaussian noise standard deviation in [0,1] pixel units."),
            ("rotation_degrees", 30.0, "Random rotation uniform in +-this many degrees."),
    ):
        d(f.DEFINE_float, name, default, text)


define_flags()


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated evaluation settings (everything but the model and data)."""

    attack_method: str
    targeted: bool
    objective: Optional[str]
    cw: Dict[str, Any]
    spsa: Dict[str, Any]
    spsa_eps_256: float
    noise_sigma: float
    rotation_degrees: float
    seed: int


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UsageError(message)


def _finite(value: float) -> bool:
    return math.isfinite(float(value))


def settings_from_flags(values: Any, loss: str) -> Settings:
    """Check the evaluation flags; :class:`UsageError` on the first bad one."""
    from utils.attacks.objectives import check_objective, select_objective

    method = values.attack_method
    _require(method in ATTACK_METHODS, f"unknown attack {method!r}; choose one of: "
             f"{', '.join(ATTACK_METHODS)}")
    _require(values.SPSA_epsilon >= 0 and _finite(values.SPSA_epsilon),
             f"SPSA_epsilon must be >= 0, got {values.SPSA_epsilon}")
    _require(values.noise_sigma >= 0 and _finite(values.noise_sigma),
             f"noise_sigma must be >= 0, got {values.noise_sigma}")
    _require(values.rotation_degrees >= 0 and _finite(values.rotation_degrees),
             f"rotation_degrees must be >= 0, got {values.rotation_degrees}")
    for name in ("CW_max_iterations", "CW_binary_search_steps", "SPSA_nb_iter"):
        _require(getattr(values, name) >= 1, f"{name} must be >= 1, got {getattr(values, name)}")
    for name in ("CW_initial_const", "CW_learning_rate", "SPSA_learning_rate", "SPSA_delta"):
        value = getattr(values, name)
        _require(value > 0 and _finite(value), f"{name} must be > 0, got {value}")
    _require(values.CW_confidence >= 0 and _finite(values.CW_confidence),
             f"CW_confidence must be >= 0, got {values.CW_confidence}")
    _require(values.SPSA_samples >= 2 and values.SPSA_samples % 2 == 0,
             f"SPSA_samples must be even and >= 2, got {values.SPSA_samples}")
    is_attack = method in ("CarliniWagnerL2", "SPSA")
    _require(is_attack or values.objective is None,
             f"--objective applies to CarliniWagnerL2 and SPSA, not {method}")
    targeted = bool(values.target) and is_attack
    objective = None
    if is_attack:
        objective = values.objective or select_objective(loss, method, targeted,
                                                         values.adaptive)
        check_objective(objective, loss, targeted)
    return Settings(
        attack_method=method, targeted=targeted, objective=objective,
        cw=dict(confidence=float(values.CW_confidence),
                binary_search_steps=int(values.CW_binary_search_steps),
                max_iterations=int(values.CW_max_iterations),
                learning_rate=float(values.CW_learning_rate),
                initial_const=float(values.CW_initial_const)),
        spsa=dict(nb_iter=int(values.SPSA_nb_iter), spsa_samples=int(values.SPSA_samples),
                  learning_rate=float(values.SPSA_learning_rate),
                  delta=float(values.SPSA_delta)),
        spsa_eps_256=float(values.SPSA_epsilon), noise_sigma=float(values.noise_sigma),
        rotation_degrees=float(values.rotation_degrees), seed=int(values.seed))


# ------------------------------------------------------------------ pixel-frame model

def pixel_model(model: Any, mean: np.ndarray) -> Callable[[Any], Any]:
    """``pixels -> model(pixels - mean)``: the model on [0, 1] images."""
    import tensorflow as tf
    mean_t = tf.constant(mean, dtype=tf.float32)
    return lambda pixels: model(tf.convert_to_tensor(pixels, tf.float32) - mean_t)


def to_pixels(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Mean-subtracted inputs back to [0, 1] pixels (clipped against rounding)."""
    return np.clip(np.asarray(x, np.float32) + mean, 0.0, 1.0).astype(np.float32)


def l2_distortion(x_adv: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-example L2 norm of ``x_adv - x`` over all pixels and channels: ``(batch,)``."""
    diff = np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)
    return np.sqrt(np.sum(diff.reshape(len(diff), -1) ** 2, axis=1))


# ------------------------------------------------------------------ perturbations

def cw_perturbation(model_fn: Callable, objective: str, cw: Dict[str, Any]) -> Perturb:
    """C&W-L2 per batch (``cw``: :class:`utils.attacks.cleverhans_compat.CWConfig` fields)."""
    from utils.attacks.cleverhans_compat import carlini_wagner_l2

    def perturb(pixels, labels, targets):
        return carlini_wagner_l2(model_fn, pixels, labels, targets=targets, objective=objective,
                                 batch_size=len(pixels), clip_min=0.0, clip_max=1.0, **cw)
    return perturb


def spsa_perturbation(model_fn: Callable, objective: str, eps: float,
                      spsa: Dict[str, Any]) -> Perturb:
    """SPSA (L-inf ``eps`` in [0,1] pixel units) per batch, one example at a time."""
    from utils.attacks.cleverhans_compat import spsa as spsa_attack

    def perturb(pixels, labels, targets):
        return spsa_attack(model_fn, pixels, eps, y=labels, targets=targets,
                           objective=objective, clip_min=0.0, clip_max=1.0, **spsa).numpy()
    return perturb


def noise_perturbation(sigma: float, rng: np.random.Generator) -> Perturb:
    from utils.attacks.corruptions import gaussian_noise
    return lambda pixels, labels, targets: gaussian_noise(pixels, sigma, rng)


def rotation_perturbation(max_degrees: float, rng: np.random.Generator) -> Perturb:
    from utils.attacks.corruptions import random_rotation
    return lambda pixels, labels, targets: random_rotation(pixels, max_degrees, rng)


def make_perturbation(settings: Settings, model_fn: Callable) -> Perturb:
    """The ``Perturb`` of ``settings.attack_method`` (noise and angles seeded once)."""
    rng = np.random.default_rng(settings.seed)
    builders: Dict[str, Callable[[], Perturb]] = {
        "CarliniWagnerL2": lambda: cw_perturbation(model_fn, settings.objective, settings.cw),
        "SPSA": lambda: spsa_perturbation(model_fn, settings.objective,
                                          settings.spsa_eps_256 / 256, settings.spsa),
        "Gaussian": lambda: noise_perturbation(settings.noise_sigma, rng),
        "Rotation": lambda: rotation_perturbation(settings.rotation_degrees, rng),
    }
    return builders[settings.attack_method]()


# ------------------------------------------------------------------ streaming evaluation

def evaluate_perturbation(model_fn: Callable, x: np.ndarray, y: np.ndarray, mean: np.ndarray,
                          perturb: Perturb, *, batch_size: int,
                          targets: Optional[np.ndarray] = None, keep_already: bool = False,
                          progress: bool = False) -> Dict[str, Any]:
    """Clean and perturbed accuracy of ``model_fn`` (on [0,1] pixels), batch by batch.

    Args:
        model_fn: ``pixels -> logits`` (:func:`pixel_model`).
        x: ``(N, H, W, C)`` mean-subtracted float32 inputs; y: ``(N,)`` int labels.
        mean: ``(H, W, C)`` the dataset's pixel mean (``x + mean`` are the pixels).
        perturb: returns the perturbed pixels of a batch.
        batch_size: examples per batch; targets: ``(N,)`` for targeted attacks, else None.
        keep_already: inputs that already succeed stay unperturbed (distortion 0), as
            C&W defines its minimal distortion whatever ``confidence``.
        progress: show a ``keras.utils.Progbar``.

    Returns:
        dict: ``n``, ``clean_correct``/``clean_accuracy``, ``adv_correct``/``adv_accuracy``,
        ``success``/``success_rate`` (misclassified, or predicted as the target when
        targeted), ``already_adversarial`` (clean inputs that already succeed),
        ``l2_mean`` (over all; failed C&W returns the input, distortion 0, as the original
        reported), ``l2_mean_success`` (over successes; None if none), ``l2_max``; targeted
        also ``target_hits``/``target_success``. Rates are fractions in [0, 1].
    """
    import keras

    n = len(x)
    c = dict(clean_correct=0, adv_correct=0, success=0, already_adversarial=0,
             l2_sum=0.0, l2_success_sum=0.0, l2_max=0.0)
    bar = keras.utils.Progbar(n, stateful_metrics=["adv_acc"], unit_name="example") \
        if progress else None
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        pixels, labels = to_pixels(x[start:stop], mean), np.asarray(y[start:stop])
        tb = None if targets is None else np.asarray(targets[start:stop])
        clean_pred = np.asarray(model_fn(pixels)).argmax(axis=-1)
        already = clean_pred != labels if tb is None else clean_pred == tb
        adv = np.asarray(perturb(pixels, labels, tb), np.float32)
        if keep_already:
            adv[already] = pixels[already]
        adv_pred = np.asarray(model_fn(adv)).argmax(axis=-1)
        success = adv_pred != labels if tb is None else adv_pred == tb
        dist = l2_distortion(adv, pixels)
        c["clean_correct"] += int(np.sum(clean_pred == labels))
        c["adv_correct"] += int(np.sum(adv_pred == labels))
        c["success"] += int(np.sum(success))
        c["already_adversarial"] += int(np.sum(already))
        c["l2_sum"] += float(dist.sum())
        c["l2_success_sum"] += float(dist[success].sum())
        c["l2_max"] = max(c["l2_max"], float(dist.max()))
        if bar is not None:
            bar.update(stop, values=[("adv_acc", c["adv_correct"] / stop)], finalize=False)
    if bar is not None:
        bar.update(n, finalize=True)
    return _summary(c, n, targets is not None)


def _summary(c: Dict[str, Any], n: int, targeted: bool) -> Dict[str, Any]:
    result = dict(n=n, targeted=targeted, clean_correct=c["clean_correct"],
                  clean_accuracy=c["clean_correct"] / n, adv_correct=c["adv_correct"],
                  adv_accuracy=c["adv_correct"] / n, success=c["success"],
                  success_rate=c["success"] / n, already_adversarial=c["already_adversarial"],
                  l2_mean=c["l2_sum"] / n, l2_max=c["l2_max"],
                  l2_mean_success=(c["l2_success_sum"] / c["success"] if c["success"]
                                   else None))
    if targeted:
        result.update(target_hits=c["success"], target_success=c["success"] / n)
    return result


# ------------------------------------------------------------------ records

def method_fields(settings: Settings) -> Dict[str, Any]:
    """The settings of the method that ran (for its record)."""
    method = settings.attack_method
    if method == "CarliniWagnerL2":
        return {f"CW_{k}": v for k, v in settings.cw.items()} | {"l2_units": L2_UNITS}
    if method == "SPSA":
        return {"SPSA_epsilon": settings.spsa_eps_256, "eps": settings.spsa_eps_256 / 256,
                **{f"SPSA_{k}": v for k, v in settings.spsa.items()}}
    if method == "Gaussian":
        return {"noise_sigma": settings.noise_sigma}
    return {"rotation_degrees": settings.rotation_degrees, "fill_mode": "nearest"}


def summary_line(method: str, result: Dict[str, Any]) -> str:
    line = (f"{method} (n={result['n']}): clean {result['clean_accuracy']:.4f}, "
            f"adv_acc {result['adv_accuracy']:.4f}")
    if result["targeted"]:
        line += f", adv_acc_target (success) {result['target_success']:.4f}"
    if method == "CarliniWagnerL2":
        on_success = result["l2_mean_success"]
        line += (f", success {result['success_rate']:.4f}, mean L2 {result['l2_mean']:.4f}"
                 f" (successful only: {'-' if on_success is None else f'{on_success:.4f}'})")
    return line


def _result_fields(method: str, result: Dict[str, Any]) -> Dict[str, Any]:
    """L2 statistics for C&W only (the others bound no L2); no success counts for the
    random transforms (they aim at nothing)."""
    if method == "CarliniWagnerL2":
        return result
    drop = ("l2_",) if method == "SPSA" else ("l2_", "success", "already_")
    return {k: v for k, v in result.items() if not k.startswith(drop)}


def main(argv: Sequence[str]) -> None:
    import keras

    from utils.evaluation.loop import draw_targets
    from utils.errors import Interrupted
    from utils.results import append_records, provenance

    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    cfg = model_config_from_flags(FLAGS)
    settings = settings_from_flags(FLAGS, cfg.loss)
    check_eval_flags(FLAGS, FLAGS.results_file)
    data, loaded = load_data_and_checkpoint(FLAGS, cfg)
    n = len(data.x_test)
    if FLAGS.num_examples is None:
        n = min(n, DEFAULT_NUM_EXAMPLES.get(settings.attack_method, n))
    x, y = data.x_test[:n], data.y_test[:n]
    targets = draw_targets(y, data.num_classes, settings.seed) if settings.targeted else None
    keras.utils.set_random_seed(settings.seed)  # SPSA's TF draws
    model_fn = pixel_model(loaded.model, data.mean)
    try:
        result = evaluate_perturbation(model_fn, x, y, data.mean,
                                       make_perturbation(settings, model_fn),
                                       batch_size=FLAGS.batch_size, targets=targets,
                                       keep_already=settings.attack_method == "CarliniWagnerL2",
                                       progress=FLAGS.progress)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted during {settings.attack_method}; no record written "
                          f"to {FLAGS.results_file}; rerun to measure") from None
    print(summary_line(settings.attack_method, result), flush=True)
    record = dict(_result_fields(settings.attack_method, result), script="advtest_others",
                  dataset=FLAGS.dataset, model=loaded.run_name, loss=cfg.loss,
                  epoch=FLAGS.epoch, use_advtrain=FLAGS.use_advtrain,
                  attack_name=settings.attack_method, adaptive=FLAGS.adaptive,
                  objective=settings.objective, seed=settings.seed,
                  normalize_output_for_ball=FLAGS.normalize_output_for_ball,
                  **method_fields(settings), **provenance())
    append_records(FLAGS.results_file, [record])
    print(f"1 record appended to {FLAGS.results_file}")


if __name__ == "__main__":
    run_main(main)
