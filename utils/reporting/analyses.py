"""The reproducibility report's analyses (paper 000, sections 4.2, 4.4-4.7) as functions.

Plain arguments in, plain dicts out (rendered by :mod:`utils.reporting.analyses_render`, driven by
``scripts/analyses.py``):

- :func:`time_training`: seconds per training step of several setups (000 Table 1: SCE vs
  MMC, standard and adversarial, same batch), timed in alternating rounds.
- :func:`ood_summary` / :func:`top_k_scores`: top-3 scores on out-of-distribution inputs
  (000 Table 3: softmax probabilities for SCE, ``-||z - mu_l||^2`` for MMC).
- :func:`cmm_row`: clean (and adaptive PGD) accuracy of one MMC model of a C_MM sweep
  (000 Table 4).
- :func:`relative_dependency`: share of test points whose two largest non-true class
  scores are within a factor of 5 (000 section 4.5).
- :func:`features_of` / :func:`spread_ratio`: 2-d features of ``is_2d_demo`` models
  (000 Figure 2, 002 Figure 1).

    stats = relative_dependency(logits, labels)          # logits (N, L), labels (N,)
    print(f"{100 * stats['share']:.2f} % comparable")
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from utils.errors import UsageError
from utils.data import make_distributed_train_dataset
from utils.training.builder import TrainerConfig, build_trainer
from utils.training.distribute import make_strategy
from utils.evaluation.detection import roc_auc
from utils.models.classifier import feature_model, head_layer
from utils.evaluation.ensemble import evaluate_attack

# Rows of the CPU reproduction and the analyses: name -> the original's architecture flags
# (``train_models.py`` / ``advtest_*.py``). AT rows add the adversarial-training flags.
VARIANT_FLAGS: Dict[str, Dict[str, Any]] = {
    "SCE": {"use_MMLDA": False},
    "MMLDA": {"use_MMLDA": True, "use_ball": False, "use_random": False},
    "MMC-10-rand": {"use_MMLDA": True, "use_ball": True, "use_random": True},
    "MMC-10": {"use_MMLDA": True, "use_ball": True, "use_random": False},
}
# 000 Table 1 (minutes, 50 epochs, batch 50, RTX 2080 Ti, the original TF1 code).
PAPER_000_TABLE1_MIN = {
    ("MNIST", "SCE"): 39.8, ("MNIST", "MMC"): 48.075, ("MNIST", "AT-SCE"): 271.14,
    ("MNIST", "AT-MMC"): 280.0, ("CIFAR10", "SCE"): 54.04, ("CIFAR10", "MMC"): 55.23,
    ("CIFAR100", "SCE"): 42.8, ("CIFAR100", "MMC"): 45.55}
# 000 Table 3: top-3 scores of one out-of-distribution image (a lion for MNIST models,
# an MNIST digit for CIFAR models).
PAPER_000_TABLE3 = {
    ("MNIST", "SCE"): (0.997, 0.00292, 0.00004), ("MNIST", "MMC"): (-1618.7, -1670, -1680),
    ("CIFAR-10", "SCE"): (1, 0, 0), ("CIFAR-10", "MMC"): (-10143, -10152, -10564),
    ("CIFAR-100", "SCE"): (1, 0, 0), ("CIFAR-100", "MMC"): (-138439, -139005, -141384)}
# 000 Table 4: clean accuracy (%) of MMC ResNet-32 on CIFAR-10, 200 epochs, per C_MM.
PAPER_000_TABLE4 = {1: 92.16, 10: 92.57, 50: 68.92, 100: 10.0}
# 000 section 4.5: SCE ResNet-32 on CIFAR-10.
PAPER_000_GSCE_SHARE_PERCENT = 9.16


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, L)`` logits, float64, numerically stable."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------ training time

def time_training(setups: Mapping[str, Tuple[Any, Any]], data: Any, *, batch_size: int,
                  steps: int, rounds: int, optimizer: str = "Adam", lr: float = 1e-3,
                  seed: int = 0) -> Dict[str, Dict[str, Any]]:
    """Seconds per training step of each setup, measured in the same process.

    Every setup trains with the real compiled step
    (:func:`utils.training.builder.build_trainer`, the one ``train_models.py`` runs) on
    ``data``'s training images. Round 0 traces the step and is not timed; then ``rounds``
    rounds of ``steps`` steps alternate between the setups so that load on a shared
    machine hits all alike. Each setup keeps one input iterator across rounds: a fresh
    iterator per round refilled the shuffle buffer inside the timed round (0.7-2 s extra
    on 2 cores, in some rounds only) and made the ratios swing between runs.

    Args:
        setups: label -> ``(ModelConfig, AdvTrainConfig or None)``.
        data: :class:`utils.data.sources.PreparedData` (at least ``batch_size`` images).
        batch_size: images per step; steps: timed steps per round; rounds: >= 1.
        optimizer, lr, seed: as ``train_models.py``.

    Returns:
        label -> ``{"round_seconds": [...], "median_step_s": s, "images_per_s": r}``.
    """

    if steps < 1 or rounds < 1:
        raise UsageError(f"timing needs steps >= 1 and rounds >= 1, got {steps}, {rounds}")
    if len(data.x_train) < batch_size:
        raise UsageError(f"{len(data.x_train)} training images for batch_size {batch_size}")
    strategy = make_strategy("auto")
    trainers = {}
    for label, (cfg, adv) in setups.items():
        trainer = build_trainer(strategy, cfg, data.input_shape, data.num_classes,
                                TrainerConfig(optimizer=optimizer, lr=lr, batch_size=batch_size,
                                              advtrain=adv, seed=seed),
                                clip_min=data.clip_min, clip_max=data.clip_max)
        with strategy.scope():
            dataset = make_distributed_train_dataset(
                strategy, data.x_train, data.y_train, global_batch_size=batch_size,
                num_classes=data.num_classes, augment=True, shuffle_seed=seed, repeat=True)
        # One iterator for all rounds (``fit`` calls ``iter`` on it, which returns it):
        # a fresh one per round refills the shuffle buffer inside the timed round.
        trainers[label] = (trainer, iter(dataset))
    seconds: Dict[str, list] = {label: [] for label in setups}
    never = (10 ** 9, 10 ** 9)  # no lr decay while timing
    for round_ in range(rounds + 1):
        for label, (trainer, dataset) in trainers.items():
            start = time.perf_counter()
            trainer.fit(dataset, steps, None, epochs=round_ + 1, initial_epoch=round_,
                        base_lr=lr, lr_boundaries=never, verbose=0)
            if round_:
                seconds[label].append(time.perf_counter() - start)
    out = {}
    for label, values in seconds.items():
        step_s = statistics.median(values) / steps
        out[label] = {"round_seconds": [round(v, 4) for v in values],
                      "median_step_s": step_s, "images_per_s": batch_size / step_s}
    return out


def epoch_minutes(step_s: float, train_images: int, batch_size: int, epochs: int) -> float:
    """Minutes for ``epochs`` epochs of ``train_images`` at ``step_s`` seconds per step."""
    return step_s * math.ceil(train_images / batch_size) * epochs / 60.0


# ------------------------------------------------------------------ OOD uncertainty

def top_k_scores(scores: np.ndarray, k: int = 3) -> np.ndarray:
    """The ``k`` largest scores of each row, descending: ``(N, L)`` -> ``(N, k)``."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or not 1 <= k <= scores.shape[1]:
        raise UsageError(f"top-{k} needs scores (N, L) with L >= {k}, got {scores.shape}")
    return -np.sort(-scores, axis=1)[:, :k]


def ood_summary(logits_in: np.ndarray, logits_ood: np.ndarray, *, head: str,
                k: int = 3) -> Dict[str, Any]:
    """Top-``k`` scores of a model on in-distribution and out-of-distribution inputs.

    The scores are what 000 Table 3 reports: softmax probabilities for a ``dense`` (SCE)
    head, the logits ``-||z - mu_l||^2`` (negative squared distances to the centers) for
    an ``mmc`` head. Both get the max-softmax confidence too, and the ROC AUC of telling
    in-distribution (positive) from OOD inputs by the max score.

    Args:
        logits_in: ``(N, L)`` logits on in-distribution test images.
        logits_ood: ``(M, L)`` logits on OOD inputs; the first one is 000's "an image".
        head: ``"dense"`` or ``"mmc"`` (:data:`utils.losses.LOSSES` ``head``).
        k: how many top scores.

    Returns:
        dict with ``score`` (its name), ``first_ood_top_k`` ``[k]``, ``mean_ood_top_k``
        and ``mean_in_top_k`` ``[k]`` (means of the sorted scores), ``mean_max_softmax_ood``
        / ``_in`` in [0, 1], and ``auroc_max_score`` in [0, 1] (1: OOD always scores lower).
    """
    if head not in ("dense", "mmc"):
        raise UsageError(f"OOD scores are defined for dense (SCE) and mmc heads, not {head!r}")
    score = softmax if head == "dense" else (lambda z: np.asarray(z, np.float64))
    top_in, top_ood = top_k_scores(score(logits_in), k), top_k_scores(score(logits_ood), k)
    return {
        "score": "softmax probability" if head == "dense" else "-||z - mu_l||^2 (logit)",
        "n_in": int(len(top_in)), "n_ood": int(len(top_ood)),
        "first_ood_top_k": top_ood[0].tolist(),
        "mean_ood_top_k": top_ood.mean(axis=0).tolist(),
        "mean_in_top_k": top_in.mean(axis=0).tolist(),
        "mean_max_softmax_ood": float(softmax(logits_ood).max(axis=1).mean()),
        "mean_max_softmax_in": float(softmax(logits_in).max(axis=1).mean()),
        "auroc_max_score": roc_auc(top_in[:, 0], top_ood[:, 0]),
    }


def rendered_digits(n: int, size: int = 28, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """MNIST-like generated inputs: white digits 0-9 drawn with matplotlib's default font
    on black, random size, offset and slant; for when real MNIST is not on the machine.

    Returns:
        ``(pixels (n, size, size) float32 in [0, 1], digits (n,) int)``.
    """
    import matplotlib  # lazy: plotting is optional and matplotlib slow to import
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(seed)
    digits = rng.integers(0, 10, size=n)
    images = np.zeros((n, size, size), np.float32)
    for i, digit in enumerate(digits):
        fig = Figure(figsize=(1, 1), dpi=size)
        canvas = FigureCanvasAgg(fig)
        fig.patch.set_facecolor("black")
        fig.text(0.5 + rng.uniform(-0.08, 0.08), 0.5 + rng.uniform(-0.08, 0.08), str(digit),
                 color="white", fontsize=rng.uniform(14, 20), ha="center", va="center",
                 rotation=rng.uniform(-15, 15), fontweight="bold")
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba(), np.float32)[:size, :size, :3]
        images[i] = rgba.mean(axis=-1) / 255.0
    return images, digits


# ------------------------------------------------------------------ g-SCE dependency

def relative_dependency(logits: np.ndarray, labels: np.ndarray, *, factor: float = 5.0,
                        ranking: str = "non_true") -> Dict[str, Any]:
    """000 section 4.5: how often ``log sum_{l != y} exp(h_l)`` is NOT close to ``h_ỹ``.

    The approximation (002's g-SCE analysis, 000 Remark 3) holds when the largest
    non-true logit ``h_ỹ`` dominates the others. A point counts as *comparable* when the
    two scores ``a >= b`` compared are within ``factor`` of each other on the softmax
    (probability) scale, i.e. ``exp(a - b) < factor`` (logit gap below ``ln factor``):
    000 compares the "second and third class scores" of SCE outputs, which it reports
    as probabilities (its Table 3).

    Args:
        logits: ``(N, L)`` with ``L >= 3``; labels: ``(N,)`` true classes.
        factor: > 1 (000: 5).
        ranking: ``"non_true"``: the largest and second-largest non-true logits (``h_ỹ``
            and the runner-up; the same as 000's 2nd/3rd when the prediction is right),
            or ``"overall"``: the 2nd and 3rd largest of all logits (000's words).

    Returns:
        dict: ``n``, ``n_comparable``, ``share`` in [0, 1], ``median_gap`` (logits),
        ``lse_error_mean`` / ``lse_error_median`` / ``lse_error_max`` of
        ``log sum_{l != y} exp(h_l) - h_ỹ`` (in ``[0, ln(L - 1)]``; 0 = exact).
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels).astype(np.int64).ravel()
    if z.ndim != 2 or z.shape[1] < 3 or y.shape != (len(z),) or not len(z):
        raise UsageError(f"need logits (N, L>=3) and labels (N,), got {z.shape}, {y.shape}")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise UsageError(f"labels must lie in [0, {z.shape[1]})")
    if not factor > 1:
        raise UsageError(f"factor must be > 1, got {factor}")
    others = np.where(np.eye(z.shape[1], dtype=bool)[y], -np.inf, z)
    top_other = -np.sort(-others, axis=1)
    if ranking == "non_true":
        a, b = top_other[:, 0], top_other[:, 1]
    elif ranking == "overall":
        ordered = -np.sort(-z, axis=1)
        a, b = ordered[:, 1], ordered[:, 2]
    else:
        raise UsageError(f"ranking must be non_true or overall, got {ranking!r}")
    gap = a - b
    comparable = gap < math.log(factor)
    h_tilde = top_other[:, 0]
    lse = h_tilde + np.log(np.sum(np.exp(others - h_tilde[:, None]), axis=1))
    error = lse - h_tilde
    return {"n": int(len(z)), "n_comparable": int(comparable.sum()),
            "share": float(comparable.mean()), "median_gap": float(np.median(gap)),
            "lse_error_mean": float(error.mean()), "lse_error_median": float(np.median(error)),
            "lse_error_max": float(error.max()), "factor": float(factor), "ranking": ranking}


# ------------------------------------------------------------------ models and features

def predict(model: Any, x: np.ndarray, batch_size: int = 200) -> np.ndarray:
    """``model`` on ``x`` ``(N, H, W, C)`` in batches (inference mode): ``(N, L)``."""
    outs = [np.asarray(model(x[i:i + batch_size], training=False))
            for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0, 0))


def features_of(model: Any, x: np.ndarray, batch_size: int = 200) -> np.ndarray:
    """Features ``z`` ``(N, feature_dim)`` of a classifier (its ``features`` sub-model)."""
    return predict(feature_model(model), x, batch_size)


def centers_of(model: Any) -> Optional[np.ndarray]:
    """The class centers ``(L, feature_dim)`` of an MMC/MMLDA head, else None."""
    centers = getattr(head_layer(model), "centers", None)
    return None if centers is None else np.asarray(centers)


def spread_ratio(z: np.ndarray, y: np.ndarray) -> float:
    """Mean distance of features to their class mean over the mean distance between class
    means: small = dense, well-separated classes (a sample-density proxy for the plots)."""
    z, y = np.asarray(z, np.float64), np.asarray(y).ravel()
    classes = np.unique(y)
    if len(classes) < 2:
        raise UsageError("spread_ratio needs at least 2 classes")
    means = np.stack([z[y == c].mean(axis=0) for c in classes])
    within = np.mean([np.linalg.norm(z[y == c] - m, axis=1).mean()
                      for c, m in zip(classes, means)])
    between = np.linalg.norm(means[:, None] - means[None], axis=-1)
    return float(within / between[np.triu_indices(len(classes), 1)].mean())


def accuracy(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 200) -> float:
    """Share of ``x`` classified as ``y`` (argmax of the logits), in [0, 1]."""
    return float(np.mean(predict(model, x, batch_size).argmax(axis=1) == np.asarray(y)))


def cmm_row(model: Any, data: Any, *, c_mm: float, pgd_examples: int, eps_256: float = 8.0,
            num_iter: int = 10, seed: int = 0) -> Dict[str, Any]:
    """One row of a C_MM sweep: clean accuracy on ``data.x_test`` and, when
    ``pgd_examples`` > 0, adaptive untargeted PGD (``mmc_un1``, step 2/256) accuracy on
    its first ``pgd_examples`` images. Accuracies are fractions in [0, 1]."""
    row: Dict[str, Any] = {"c_mm": c_mm, "n_clean": int(len(data.x_test)),
                           "clean_accuracy": accuracy(model, data.x_test, data.y_test)}
    if pgd_examples > 0:
        n = min(pgd_examples, len(data.x_test))
        result = evaluate_attack(
            model, data.x_test[:n], data.y_test[:n], attack_name="MadryEtAl",
            objective_name="mmc_un1", eps=eps_256 / 256, eps_iter=2 / 256, num_iter=num_iter,
            clip_min=data.clip_min, clip_max=data.clip_max, batch_size=50, seed=seed,
            progress=False)
        row.update(n_pgd=n, pgd_eps_256=eps_256, pgd_nb_iter=num_iter,
                   pgd_objective="mmc_un1", pgd_accuracy=result["adv_accuracy"])
    return row
