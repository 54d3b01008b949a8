"""The files ``scripts/reproduce_cpu.py`` writes beside its records: the paper's reference
subset it is compared with and ``summary.md`` (training, budgets, the comparison table).
"""
from __future__ import annotations

import argparse
import pathlib
from typing import Any, Dict, List

from scripts.reproduce_plan import MODELS, Budget, checkpoint_state, reference_path
from utils.reporting.summary import SQUARE_QUERIES

ROOT = pathlib.Path(__file__).resolve().parents[1]

LABELS = {"SCE": "SCE", "MMLDA": "MMLDA", "MMC-10-rand": "MMC-10 (rand)", "MMC-10": "MMC-10",
          "AT-MMC-10": "AT-un (MMC-10)"}
PAPER_TABLES = ("Table 1", "Table 2")
# Later re-evaluations of the paper's models beside them (the AutoAttack column).
REEVALUATIONS = (("DESIGN.md", "RobustBench / AutoAttack entry"),)
REFERENCE = ROOT / "reports" / "reference" / "paper_numbers.csv"


def write_reference_subset(args: argparse.Namespace) -> None:
    """002 Tables 1-2 (CIFAR-10, ResNet-32) of the reference and the RobustBench AutoAttack
    re-evaluation of its AT-MMC model, the setting compared with (Table 5's ResNet-110 /
    CIFAR-100 rows and the other sources left out)."""
    from utils.reporting.summary import write_reference_subset as write
    write(REFERENCE, pathlib.Path(reference_path(args)), source="002", tables=PAPER_TABLES,
          dataset="cifar10", n_blocks=5, also=REEVALUATIONS)


def _training(args: argparse.Namespace, budget: Budget) -> Dict[str, Dict[str, Any]]:
    """Per method label: epochs, images, training minutes and last test accuracy
    (history.csv), evaluation minutes (timings.json)."""
    import csv
    import json
    timings = pathlib.Path(args.report_dir) / "timings.json"
    steps = json.loads(timings.read_text()) if timings.exists() else []
    out: Dict[str, Dict[str, Any]] = {}
    for model in MODELS:
        row = out.setdefault(LABELS[model], {})
        seconds = [s["seconds"] for s in steps if s["step"] == f"eval {model}"]
        if seconds:
            row["eval_minutes"] = sum(seconds) / 60
        run_dir, last, _ = checkpoint_state(model, args, budget)
        history = run_dir / "history.csv"
        if last is None or not history.exists():
            continue
        with open(history, newline="") as f:
            rows = list(csv.DictReader(f))
        at = model.startswith("AT-")
        row.update(epochs=len(rows), minutes=sum(float(r["seconds"]) for r in rows) / 60,
                   train_images=(budget.at_train_size if at else budget.train_size) or "all",
                   test_accuracy=float(rows[-1]["val_accuracy"]) if rows else None)
    return out


def _intro(args: argparse.Namespace, budget: Budget) -> List[str]:
    all_images = "all" if budget.train_size is None else f"{budget.train_size:,}"
    return [
        "# CPU-scale reproduction: ours vs paper 002 (Tables 1-2)", "",
        f"Made by `python {args.command}`; "
        "every number's exact command line is in `pgd.jsonl` / `others.jsonl` / `apgd.jsonl` "
        "/ `autoattack.jsonl` beside this file, the cell-by-cell comparison (Δ, flags) in "
        "[report.md](report.md).", "",
        f"> **Datasets and models differ.** Ours: {args.dataset}, ResNet-{6 * budget.n + 2} "
        f"v1, Adam lr 1e-3, batch 50, {budget.epochs} epoch(s) on {all_images} training "
        f"images (AT-MMC-10: PGD-10 adversarial training, {budget.at_epochs} epoch(s) on "
        f"{budget.at_train_size:,} images). Paper rows: CIFAR-10, ResNet-32, momentum SGD, "
        "200 epochs. Compare orderings and gaps, not absolute values.", "",
        f"> **Reduced C&W budget**: {budget.cw_binary_search_steps} binary-search steps × "
        f"{budget.cw_max_iterations} iterations on {budget.cw_examples} images (paper: 9 × "
        "1,000 on 500); a weaker attack reports larger distortions, so our C&W L2 is an "
        "upper bound on what the paper's budget would find. Its paper cells are 'not run' "
        "in report.md (steps differ) and shown side by side here.", "",
        f"PGD: adaptive objectives (mmc_un1 / mmc_tar1 for the MMC heads; cross-entropy, "
        "the loss they train on, for SCE and MMLDA), random start, step 2/256, "
        f"PGD-{budget.pgd_steps[0]} and "
        f"PGD-{budget.pgd_steps[1]} on the first {budget.num_examples} test images; "
        "targeted columns give the accuracy on the true labels (targets uniform among the "
        "wrong labels). Noise σ 0.05 and rotation ±30° on "
        f"{budget.transform_examples or 'all'} test images. Accuracies in %, C&W in mean "
        "L2 ([0, 1] pixels; failures count 0, as the original).",
        *_square_note(budget)]


def _square_note(budget: Budget) -> List[str]:
    if budget.square_n_queries == SQUARE_QUERIES:
        return []
    return ["", f"> **Reduced Square budget** in full AutoAttack: {budget.square_n_queries:,} "
            f"queries (AutoAttack: {SQUARE_QUERIES:,}; FAB-T at AutoAttack's "
            f"{budget.fab_n_iter} steps per target): a weaker Square, so the full-AutoAttack "
            "accuracies are upper bounds on what the standard budget would leave."]


def write_summary(args: argparse.Namespace, budget: Budget) -> pathlib.Path:
    """``<report_dir>/summary.md``: :func:`utils.reporting.summary.render_summary`."""
    from utils.fileio import atomic_write_text
    from utils.reporting.compare import load_reference, load_results
    from utils.reporting.summary import render_summary, strong_columns, summary_columns

    records = load_results([f"{args.report_dir}/*.jsonl"])
    cells = load_reference(reference_path(args))
    text = render_summary(records, cells, summary_columns(budget.pgd_steps),
                          [LABELS[m] for m in MODELS], _training(args, budget),
                          intro=_intro(args, budget),
                          strong=strong_columns(budget.strong_steps, budget.pgd_steps[-1],
                                                full=(budget.fab_n_iter,
                                                      budget.square_n_queries)))
    path = pathlib.Path(args.report_dir) / "summary.md"
    atomic_write_text(path, text)
    return path
