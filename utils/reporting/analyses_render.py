"""Markdown, PNG and JSON output of the analyses (:mod:`utils.reporting.analyses`).

Each ``render_*`` takes the payload dict ``scripts/analyses.py`` builds and returns
Markdown; :func:`write_analysis` writes ``<name>.json``, ``<name>.md`` (and a PNG) into
the output directory, each atomically, after everything has been rendered.

    md = render_gsce(payload)
    write_analysis("reports/analyses", "gsce_dependency", payload, md)
"""
from __future__ import annotations

import io
import json
import math
import pathlib
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from utils.reporting.analyses import (PAPER_000_GSCE_SHARE_PERCENT, PAPER_000_TABLE1_MIN,
                                      PAPER_000_TABLE3, PAPER_000_TABLE4)
from utils.reporting.markdown import markdown_table
from utils.fileio import bytes_item, text_item, write_set
from utils.runs.checkpoints import ensure_writable_dir

Payload = Dict[str, Any]


def _pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _scores(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}" for v in values)


def _head(payload: Payload, title: str) -> List[str]:
    lines = [f"# {title}", "", f"Command: `{payload['command']}`", ""]
    lines += [f"> {note}" for note in payload.get("notes", [])]
    return lines + ([""] if payload.get("notes") else [])


def render_training_time(payload: Payload) -> str:
    """000 Table 1 at CPU scale: seconds per step and the ratios MMC/SCE, AT/standard."""
    lines = _head(payload, "Training time, SCE vs MMC (000 Table 1)")
    lines += [f"{payload['arch']} on {payload['dataset']}, batch {payload['batch_size']}, "
              f"{payload['optimizer']} lr {payload['lr']:g}; median of {payload['rounds']} "
              f"rounds of {payload['steps']} steps per setup, rounds alternating between "
              f"setups in one process ({payload['device']}). Estimated minutes: 50 epochs of "
              f"{payload['train_images']:,} images at that step time (000's budget).", ""]
    rows = [(r["label"], f"{r['median_step_s'] * 1000:.1f}", f"{r['images_per_s']:.0f}",
             f"{r['minutes_50_epochs']:.1f}",
             PAPER_000_TABLE1_MIN.get(("MNIST", r["label"].replace("-10", "")), "–"))
            for r in payload["rows"]]
    lines += markdown_table(("setup", "ms / step", "images / s", "est. min, 50 epochs",
                             "000 Table 1, MNIST (min, RTX 2080 Ti)"), rows)
    paper = {"MMC/SCE": "1.21 (MNIST), 1.02 (CIFAR-10), 1.06 (CIFAR-100)",
             "AT-MMC/AT-SCE": "1.03 (MNIST)", "AT-SCE/SCE": "6.8 (MNIST)",
             "AT-MMC/MMC": "5.8 (MNIST)"}
    lines += ["", *markdown_table(("ratio of step times", "ours", "000 Table 1"),
                                  [(k, f"{v:.3f}", paper.get(k, "–"))
                                   for k, v in payload["ratios"].items()])]
    return "\n".join(lines) + "\n"


def render_ood(payload: Payload) -> str:
    """000 Table 3: top-3 scores of SCE and MMC models on inputs of another distribution."""
    lines = _head(payload, "Uncertainty on out-of-distribution inputs (000 Table 3)")
    lines += [f"Models trained on {payload['in_dataset']} (checkpoint epoch "
              f"{payload['epoch']}). Scores as 000 reports them: softmax probabilities for "
              "SCE, logits -||z - mu_l||^2 for MMC. Top-3 of the first OOD input (000 used "
              "one image) and the mean of the sorted top-3 over all; in-distribution "
              f"means on {payload['n_in']} test images for reference. AUROC: telling "
              "in-distribution (positive) from OOD inputs by the top score.", ""]
    rows = []
    for model in payload["models"]:
        for name, r in model["results"].items():
            rows.append((model["model"], name, r["score"], _scores(r["first_ood_top_k"]),
                         _scores(r["mean_ood_top_k"]), _scores(r["mean_in_top_k"]),
                         f"{r['mean_max_softmax_ood']:.3f} / {r['mean_max_softmax_in']:.3f}",
                         f"{r['auroc_max_score']:.3f}"))
    lines += markdown_table(("model", "OOD input (n)", "score", "first OOD top-3",
                             "mean OOD top-3", "mean in-dist. top-3", "max softmax OOD / in",
                             "AUROC"), rows)
    lines += ["", "000 Table 3 (one image):", ""]
    lines += markdown_table(("000 model", "dataset", "top-3"),
                            [(m, d, _scores(v)) for (d, m), v in PAPER_000_TABLE3.items()])
    return "\n".join(lines) + "\n"


def render_cmm(payload: Payload) -> str:
    """000 Table 4 at CPU scale: clean (and PGD) accuracy per C_MM."""
    lines = _head(payload, "C_MM sweep (000 Table 4)")
    lines += [f"MMC {payload['arch']} on {payload['dataset']}, {payload['train_images']:,} "
              f"training images, {payload['epochs']} epoch(s), {payload['optimizer']} lr "
              f"{payload['lr']:g}; clean accuracy on {payload['n_clean']} test images"
              + (f", adaptive PGD-{payload['pgd_nb_iter']} (mmc_un1, ε "
                 f"{payload['pgd_eps_256']:g}/256, untargeted) on the first "
                 f"{payload['n_pgd']}" if payload.get("n_pgd") else "") + ".", ""]
    rows = [(f"{r['c_mm']:g}", _pct(r["clean_accuracy"]), _pct(r.get("pgd_accuracy")),
             PAPER_000_TABLE4.get(int(r["c_mm"]) if float(r["c_mm"]).is_integer() else None,
                                  "–"))
            for r in payload["rows"]]
    lines += markdown_table(("C_MM", "clean %", "PGD %", "000 Table 4 clean % (CIFAR-10, "
                             "ResNet-32, 200 epochs)"), rows)
    return "\n".join(lines) + "\n"


def render_gsce(payload: Payload) -> str:
    """000 section 4.5: share of points with comparable top non-true scores."""
    lines = _head(payload, "Relative dependency in the g-SCE loss (000 section 4.5)")
    f = payload["factor"]
    lines += [f"A test point counts when its two compared class scores are within a factor "
              f"of {f:g} as softmax probabilities (logit gap < ln {f:g} = "
              f"{math.log(f):.3f}). `non-true`: the largest and second-largest non-true "
              "logits (h_ỹ and the runner-up); `overall`: the 2nd and 3rd largest logits "
              "(000's wording; the same when the prediction is right). LSE error: "
              "log Σ_{l≠y} exp(h_l) − h_ỹ, the error of the approximation 000 questions "
              f"(0 = exact, at most ln(L−1)). 000: {PAPER_000_GSCE_SHARE_PERCENT} % "
              "(SCE ResNet-32, CIFAR-10).", ""]
    rows = [(m["model"], m["non_true"]["n"], f"{100 * m['non_true']['share']:.2f}",
             f"{100 * m['overall']['share']:.2f}", f"{m['non_true']['median_gap']:.3f}",
             f"{m['non_true']['lse_error_mean']:.3f} / {m['non_true']['lse_error_median']:.3f}")
            for m in payload["models"]]
    lines += markdown_table(("model", "n", "share % (non-true)", "share % (overall)",
                             "median gap (logits)", "LSE error mean / median"), rows)
    return "\n".join(lines) + "\n"


def render_features(payload: Payload, png_name: Optional[str]) -> str:
    """The 2-d feature plot's page: spread ratios and the image."""
    lines = _head(payload, "2-d features, SCE vs MMC (is_2d_demo; 000 Figure 2)")
    lines += [f"{payload['arch']} with a 2-d feature layer on {payload['dataset']}, "
              f"{payload['epochs']} epoch(s) on {payload['train_images']:,} images; "
              f"{payload['n']} test images plotted. Spread ratio: mean distance to the class "
              "mean over the mean distance between class means (lower: denser classes).", ""]
    rows = [(m["model"], _pct(m["clean_accuracy"]), f"{m['spread_ratio']:.3f}")
            for m in payload["models"]]
    lines += markdown_table(("model", "clean %", "spread ratio"), rows)
    if png_name:
        lines += ["", f"![2-d features]({png_name})"]
    return "\n".join(lines) + "\n"


def render_features_png(panels: Sequence[Dict[str, Any]]) -> bytes:
    """PNG of one scatter panel per model: ``z`` ``(N, 2)`` coloured by ``y`` ``(N,)``,
    centers ``(L, 2)`` (or None) as black crosses, ``title``."""
    import matplotlib  # lazy: plotting is optional and matplotlib slow to import
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: optional plotting

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 5.0), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        z, y = np.asarray(panel["z"]), np.asarray(panel["y"])
        points = ax.scatter(z[:, 0], z[:, 1], c=y, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
        if panel.get("centers") is not None:
            c = np.asarray(panel["centers"])
            ax.scatter(c[:, 0], c[:, 1], marker="x", c="black", s=60, label="centers")
            ax.legend(loc="upper right", fontsize=7)
        ax.set_title(panel["title"], fontsize=8, wrap=True)
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]")
        ax.set_aspect("equal", adjustable="datalim")
    fig.colorbar(points, ax=list(axes[0]), ticks=range(10), label="class")
    return _png_bytes(fig)


def _at(profile: Payload, q: float) -> int:
    """Index of the grid quantile nearest ``q``."""
    return int(np.argmin(np.abs(np.asarray(profile["quantiles"]) - q)))


def _ln(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.1f}"


def render_density(payload: Payload, png_name: Optional[str]) -> str:
    """002 section 3: sample density around the class centers, per model and per class."""
    lines = _head(payload, "Sample density of training features (002 section 3)")
    lines += [f"{payload['arch']} on {payload['dataset']}, checkpoint epoch "
              f"{payload['epoch']}; features of {payload['n']:,} training images. "
              "N_k(r): class-k features within r of the class center (the head's mu_k for "
              "MMC/MMLDA, the class mean for SCE); density ρ_k(r) = N_k(r) / V_d(r), "
              "V_d(r) = π^(d/2) r^d / Γ(d/2+1), as natural logs. Radii: quantiles of all "
              "features' distances to their center (each model's own scale). Because "
              "V_d ∝ r^d, absolute densities mostly compare feature scales; the normalized "
              "column measures lengths in units of D, the mean distance between two "
              "centers (scale-free: higher = tighter classes for their separation). The "
              "class-means column measures every model the SCE way (spread around the "
              "class means over the distance between class means).", ""]
    rows = []
    for m in payload["models"]:
        p, i = m["profile"], _at(m["profile"], 0.5)
        rows.append((m["model"], p["center"], p["d"], f"{p['median_distance']:.3g}",
                     f"{p['center_separation']:.3g}",
                     f"{p['median_distance'] / p['center_separation']:.3f}",
                     f"{p['class_mean_spread']['ratio']:.3f}",
                     _ln(p["mean_log_density"][i]), _ln(p["normalized_mean_log_density"][i]),
                     _pct(m.get("clean_accuracy"))))
    lines += markdown_table(("model", "center", "d", "median distance r50", "D", "r50 / D",
                             "same around the class means / their separation",
                             "ln ρ(r50), avg. over classes", "ln ρ(r50), units of D",
                             "clean % (test)"), rows)
    lines += ["", "Per class (r25, r50, r100: the model's 25 %, 50 %, 100 % distance "
              "quantiles):", ""]
    rows = []
    for m in payload["models"]:
        p = m["profile"]
        at = [_at(p, q) for q in (0.25, 0.5, 1.0)]
        for k, size in enumerate(p["class_sizes"]):
            rows.append((m["model"], k, size, f"{p['median_distance_per_class'][k]:.3g}",
                         p["counts"][k][at[1]], *(_ln(p["log_density"][k][i]) for i in at)))
    lines += markdown_table(("model", "class", "N_k", "median distance", "N_k(r50)",
                             "ln ρ_k(r25)", "ln ρ_k(r50)", "ln ρ_k(r100)"), rows)
    if png_name:
        lines += ["", f"![sample density]({png_name})"]
    return "\n".join(lines) + "\n"


def render_density_png(models: Sequence[Payload]) -> bytes:
    """PNG: class-averaged ln density against r (left, log axis) and against r / D in
    units of D (right), one curve per model (``{"model", "profile"}`` dicts)."""
    import matplotlib  # lazy: plotting is optional and matplotlib slow to import
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: optional plotting

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for m in models:
        p = m["profile"]
        left.plot(p["radii"], _nan(p["mean_log_density"]), marker=".", label=m["model"])
        right.plot(_nan(p["radii_over_separation"]), _nan(p["normalized_mean_log_density"]),
                   marker=".", label=m["model"])
    left.set(xscale="log", xlabel="radius r (feature units)",
             ylabel="ln mean_k N_k(r) / V_d(r)", title="density, own units")
    right.set(xlabel="r / D (D: mean distance between centers)",
              ylabel="ln density in units of D^-d", title="density, scale-free")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png_bytes(fig)


def _png_bytes(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (90 dpi); closes it."""
    import matplotlib.pyplot as plt  # lazy: optional plotting

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _nan(values: Sequence[Optional[float]]) -> List[float]:
    return [float("nan") if v is None else v for v in values]


def write_analysis(out_dir: "str | pathlib.Path", name: str, payload: Payload,
                   markdown: str, png: Optional[bytes] = None) -> List[pathlib.Path]:
    """Write ``<name>.json``, ``<name>.md`` and (given) ``<name>.png`` as one set.

    Raises:
      UsageError: ``out_dir`` cannot be created or written.
    """

    out = pathlib.Path(out_dir)
    text = json.dumps(payload, indent=1, sort_keys=True, default=float) + "\n"
    ensure_writable_dir(out, flag="--out_dir")
    items = {out / f"{name}.json": text_item(out / f"{name}.json", text)}
    if png is not None:
        items[out / f"{name}.png"] = bytes_item(out / f"{name}.png", png)
    items[out / f"{name}.md"] = text_item(out / f"{name}.md", markdown)
    write_set(list(items.values()))  # together: the markdown links the png
    written = list(items)
    return written
