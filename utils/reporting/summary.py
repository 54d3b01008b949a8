"""Summary page of a reproduction run: our numbers beside the paper's row, per model.

Complements ``scripts/compare_results.py`` (cell-by-cell matching with Δ) with the view
a reader wants first: one row of ours and one of the paper per method, over the columns
of 002 Tables 1 and 2 (clean, PGD-10/50 targeted/untargeted at two ε, C&W mean L2,
Gaussian noise, rotation), and whether the ordering the paper predicts under adaptive PGD
(SCE < MMLDA < MMC-10 (rand) < MMC-10) holds in ours. A second table sets the paper's
PGD-50 beside our PGD-50 and the stronger attacks of :mod:`utils.attacks.apgd` / :mod:`utils.evaluation.ensemble`
(APGD-CE, APGD-T, the AutoAttack-style cascade) on the same images.

    cols = summary_columns(pgd_steps=(10, 50))
    md = render_summary(records, cells, cols, methods, training, intro=["..."],
                        strong=strong_columns(steps=50, pgd_steps=50))
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import pathlib
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from utils.fileio import atomic_write_text
from utils.runs.checkpoints import ensure_writable_dir

from utils.reporting.records import latest_per_setting
from utils.reporting.reference import Record
from utils.reporting.markdown import markdown_table

EXPECTED_ORDER = ("SCE", "MMLDA", "MMC-10 (rand)", "MMC-10")
PAPER_PGD_STEPS = (10, 50)
# Untargeted white-box attacks whose accuracy columns the ordering check reads.
ORDERED_ATTACKS = ("MadryEtAl", "APGD", "APGD-T", "AutoAttack")
_RELATION = {"<=": "≤", ">": ">", "~": "≈", "=": ""}


@dataclasses.dataclass(frozen=True)
class Column:
    """One summary column: ``label``; what our record and the paper cell must be
    (``attack``, ``targeted``, ``eps_256``, ``steps`` ours / ``paper_steps``); ``metric``
    ``accuracy`` (%) or ``mean_l2``; ``where``: further ``(field, value)`` pairs our
    normalized record must have (e.g. the ensemble ``members``)."""

    label: str
    attack: str
    targeted: Optional[bool] = None
    eps_256: Optional[float] = None
    steps: Optional[int] = None
    paper_steps: Optional[int] = None
    metric: str = "accuracy"
    where: Tuple[Tuple[str, Any], ...] = ()


def summary_columns(pgd_steps: Sequence[int] = PAPER_PGD_STEPS) -> List[Column]:
    """Clean, PGD (our ``pgd_steps`` against the paper's 10 and 50) tar/un at ε 8 and 16,
    C&W tar/un (mean L2), noise, rotation."""
    cols = [Column("clean", "clean")]
    for eps in (8, 16):
        for steps, paper_steps in zip(pgd_steps, PAPER_PGD_STEPS):
            for targeted in (True, False):
                label = f"ε{eps} PGD{steps}-{'tar' if targeted else 'un'}"
                cols.append(Column(label, "MadryEtAl", targeted, float(eps), steps,
                                   paper_steps))
    cols += [Column("C&W-tar L2", "CarliniWagnerL2", True, metric="mean_l2"),
             Column("C&W-un L2", "CarliniWagnerL2", False, metric="mean_l2"),
             Column("noise", "Gaussian"), Column("rotation", "Rotation")]
    return cols


LITE = ("APGD-CE", "APGD-T")  # utils.evaluation.members.PRESETS["autoattack-lite"]
FULL_AA = ("APGD-CE", "APGD-T", "FAB-T", "Square")  # PRESETS["autoattack"]
SQUARE_QUERIES = 5000  # AutoAttack's standard Square budget


def strong_columns(steps: int, pgd_steps: int, eps: Sequence[int] = (8, 16),
                   full: Optional[Tuple[int, int]] = None) -> List[Column]:
    """Per ε (/256): untargeted PGD-``pgd_steps`` (the paper's PGD-50 beside it), then
    APGD-CE, APGD-T and the AutoAttack-style cascade (``autoattack-lite``), each with
    ``steps`` iterations (APGD-T: per target class) -- all untargeted, adaptive -- and,
    with ``full = (fab_n_iter, square_n_queries)``, full AutoAttack (preset ``autoattack``:
    also FAB-T and Square with those budgets; a Square budget other than 5000 is in the
    label)."""
    cols: List[Column] = []
    for e in eps:
        cols.append(Column(f"ε{e} PGD{pgd_steps}-un", "MadryEtAl", False, float(e), pgd_steps,
                           PAPER_PGD_STEPS[-1]))
        cols += [Column(f"ε{e} {label}", attack, False, float(e), steps, where=where)
                 for label, attack, where in (
                     ("APGD-CE", "APGD", ()), ("APGD-T", "APGD-T", ()),
                     ("AA-lite", "AutoAttack", (("members", LITE),)))]
        if full is not None:
            label = f"ε{e} AutoAttack" + ("" if full[1] == SQUARE_QUERIES
                                          else f" (Square {full[1]} q.)")
            cols.append(Column(label, "AutoAttack", False, float(e), steps, where=(
                ("members", FULL_AA), ("fab_n_iter", full[0]), ("square_n_queries", full[1]))))
    return cols


def _matches(item: Record, method: str, col: Column, steps: Optional[int],
             where: bool = True) -> bool:
    if item["method"] != method or item["attack"] != col.attack:
        return False
    if col.targeted is not None and bool(item["targeted"]) != col.targeted:
        return False
    if col.eps_256 is not None and (item["eps_256"] is None
                                    or abs(float(item["eps_256"]) - col.eps_256) > 1e-6):
        return False
    if where and any(item.get(field) != value for field, value in col.where):
        return False
    return steps is None or item["nb_iter"] == steps


def ours_value(records: Sequence[Record], method: str, col: Column) -> Optional[float]:
    """Our value of ``col`` for ``method`` (normalized records, :mod:`utils.reporting.records`):
    accuracy % or mean L2; the clean column takes the clean accuracy of the record on
    most images. None when not run."""
    if col.attack == "clean":
        own = [r for r in latest_per_setting(records) if r["method"] == method]
        return max(own, key=lambda r: (r["n"] or 0, r["time"]))["clean"] if own else None
    best = ours_record(records, method, col)
    return None if best is None else best[col.metric]


def ours_record(records: Sequence[Record], method: str, col: Column) -> Optional[Record]:
    """Our (normalized) record behind ``col`` for ``method``: on most images, then the
    latest; None when not run."""
    hits = [r for r in latest_per_setting(records) if _matches(r, method, col, col.steps)]
    return max(hits, key=lambda r: (r["n"] or 0, r["time"])) if hits else None


def paper_value(cells: Sequence[Record], method: str, col: Column) -> Optional[str]:
    """The paper's printed value of ``col`` for ``method`` (``≤1`` for bounds), or None.
    A published AutoAttack figure is full AutoAttack's: not shown beside a column of
    other ensemble members (``autoattack-lite``)."""
    if dict(col.where).get("members", FULL_AA) != FULL_AA:
        return None
    for cell in cells:
        if cell["metric"] == col.metric and _matches(cell, method, col, col.paper_steps,
                                                     where=False):
            return _RELATION[cell["relation"]] + cell["value_text"]
    return None


def _fmt(value: Optional[float], metric: str) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if metric == "mean_l2" else f"{value:.1f}"


def _paper_number(text: Optional[str]) -> Optional[float]:
    """``"≤1"`` -> 1.0, ``"36.0"`` -> 36.0 (a bound counts as its value)."""
    if text is None:
        return None
    return float(text.lstrip("≤>≈"))


def _ascending(values: Sequence[Tuple[str, Optional[float]]]) -> Optional[bool]:
    if any(v is None for _, v in values):
        return None
    return (all(a[1] <= b[1] for a, b in zip(values, values[1:]))
            and values[0][1] < values[-1][1])


def ordering(records: Sequence[Record], cells: Sequence[Record], cols: Sequence[Column],
             order: Sequence[str] = EXPECTED_ORDER
             ) -> List[Tuple[str, str, Optional[bool], Optional[bool]]]:
    """Per PGD column: ``(label, "SCE 2.0 < MMLDA 9.1 = ...", ours holds, paper holds)``;
    a ``holds`` is True when the accuracy never decreases along ``order`` (the paper's
    own SCE and MMLDA tie at ≤1 under targeted PGD) and the last beats the first; None
    when a value is missing."""
    out = []
    for col in cols:
        if col.attack not in ORDERED_ATTACKS or col.metric != "accuracy":
            continue
        ours = [(m, ours_value(records, m, col)) for m in order]
        paper = _ascending([(m, _paper_number(paper_value(cells, m, col))) for m in order])
        if any(v is None for _, v in ours):
            out.append((col.label, "not all run", None, paper))
            continue
        ranked = sorted(ours, key=lambda mv: mv[1])
        text = f"{ranked[0][0]} {ranked[0][1]:.1f}"
        for (_, before), (method, value) in zip(ranked, ranked[1:]):
            text += f" {'=' if value == before else '<'} {method} {value:.1f}"
        out.append((col.label, text, _ascending(ours), paper))
    return out


def render_summary(records: Sequence[Record], cells: Sequence[Record], cols: Sequence[Column],
                   methods: Sequence[str], training: Dict[str, Dict[str, Any]],
                   intro: Sequence[str] = (), strong: Sequence[Column] = ()) -> str:
    """Markdown: ``intro`` lines, the ours/paper table, the training budget per model, the
    stronger-attack table (when ``strong`` columns are given) and the ordering check.

    Args:
        records: normalized records (:func:`utils.reporting.records.load_results`).
        cells: reference cells (:func:`utils.reporting.reference.load_reference`), already
            restricted to the paper setting shown (e.g. CIFAR-10 ResNet-32).
        cols: :func:`summary_columns`; methods: row labels
            (:func:`utils.reporting.reference.method_label`).
        training: method -> ``{"epochs", "train_images", "minutes", "eval_minutes",
            "test_accuracy"}`` (missing keys print as –).
        strong: :func:`strong_columns`; its first column per ε is the PGD baseline the
            others are compared with (the table adds "PGD − AutoAttack" in points).
    """
    rows = []
    for method in methods:
        rows.append([method, "ours", *[_fmt(ours_value(records, method, c), c.metric)
                                       for c in cols]])
        rows.append(["", "paper", *[paper_value(cells, method, c) or "–" for c in cols]])
    lines = [*intro, "", *markdown_table(["method", "", *[c.label for c in cols]], rows)]
    lines += ["", "Training and evaluation time (ours; evaluation: all attacks of the model):",
              ""]
    rows = []
    for method in methods:
        t = training.get(method, {})
        accuracy = t.get("test_accuracy")
        rows.append([method, t.get("epochs", "–"), t.get("train_images", "–"),
                     _fmt(t.get("minutes"), "accuracy"), _fmt(t.get("eval_minutes"), "accuracy"),
                     _fmt(None if accuracy is None else 100 * accuracy, "accuracy")])
    lines += markdown_table(["method", "epochs", "training images", "training min",
                             "evaluation min", "test accuracy % (all test images)"], rows)
    if strong:
        lines += ["", *render_strong(records, cells, strong, methods)]
        members = render_members(records, strong, methods)
        lines += ["", *members] if members else []
    checks = ordering(records, cells, [*cols, *[c for c in strong if c not in cols]])
    held = [c for c in checks if c[2]]

    def yes(flag: Optional[bool]) -> str:
        return "–" if flag is None else "yes" if flag else "no"

    first, last = EXPECTED_ORDER[0], EXPECTED_ORDER[-1]
    lines += ["", f"Ordering the paper predicts under adaptive PGD, accuracy "
              f"{' ≤ '.join(EXPECTED_ORDER)} (and {first} < {last}): holds in {len(held)} of "
              f"{sum(c[2] is not None for c in checks)} white-box columns of ours.", ""]
    lines += markdown_table(("column", "ours, ascending", "holds (ours)", "holds (paper)"),
                            [(label, text, yes(ours), yes(paper))
                             for label, text, ours, paper in checks])
    return "\n".join(lines) + "\n"


def render_strong(records: Sequence[Record], cells: Sequence[Record],
                  cols: Sequence[Column], methods: Sequence[str]) -> List[str]:
    """Markdown lines: per method, the paper's and our value of each ``cols`` column
    (:func:`strong_columns`) and, per ε, by how many points the cascade
    (``autoattack-lite``) lowers our PGD accuracy (– where either is missing). Full
    AutoAttack is compared with the cascade in :func:`render_members`, within its own
    record (the same checkpoint)."""
    header = ["method", "", *[c.label for c in cols]]
    gaps = [(c, next(d for d in cols if d.eps_256 == c.eps_256
                     and dict(d.where).get("members") == LITE))
            for c in cols if c.attack == "MadryEtAl"]
    header += [f"{c.label} − {d.label.split(' ', 1)[1]}" for c, d in gaps]
    lines = ["Beyond the paper: the same models and images under APGD-CE, APGD-T, the "
             "AutoAttack-style cascade `autoattack-lite` (AA-lite: APGD-CE then APGD-T) and, "
             "where run, full AutoAttack (`--ensemble=autoattack`: APGD-CE, APGD-T, FAB-T, "
             "Square) (utils/attacks/, utils/evaluation/ensemble.py; untargeted, adaptive "
             "objectives, accuracy %). The paper's row has its PGD-50 and, where one was "
             "published later, the AutoAttack re-evaluation of the paper's model "
             "(RobustBench, full AutoAttack, CIFAR-10).", ""]
    rows = []
    for method in methods:
        values = [ours_value(records, method, c) for c in cols]
        drops = []
        for pgd_col, aa_col in gaps:
            pgd, aa = ours_value(records, method, pgd_col), ours_value(records, method, aa_col)
            drops.append("–" if pgd is None or aa is None else f"{pgd - aa:.1f}")
        rows.append([method, "ours", *[_fmt(v, c.metric) for v, c in zip(values, cols)], *drops])
        rows.append(["", "paper", *[paper_value(cells, method, c) or "–" for c in cols],
                     *["–"] * len(gaps)])
    return lines + markdown_table(header, rows)


def render_members(records: Sequence[Record], cols: Sequence[Column],
                   methods: Sequence[str]) -> List[str]:
    """Markdown lines: per method and ε with a full-AutoAttack record (a ``cols`` column
    whose members are :data:`FULL_AA`), its clean accuracy, the robust accuracy after each
    member (its ``robust_accuracy_after``; after APGD-T is what ``autoattack-lite`` leaves,
    as the first two members run alike), that minus the full accuracy, the members after
    APGD-T that broke points (with the points each took; – when none did), and, for
    reference, the separate ``autoattack-lite`` record's clean and robust accuracy (it
    may come from another checkpoint of the same run name). Empty when no full run."""
    fulls = [c for c in cols if dict(c.where).get("members") == FULL_AA]
    rows, differ = [], []
    for method in methods:
        for col in fulls:
            full = ours_record(records, method, col)
            if full is None or not full.get("after"):
                continue
            lite = ours_record(records, method, next(
                c for c in cols if c.eps_256 == col.eps_256
                and dict(c.where).get("members") == LITE))
            after = [full["after"].get(m) for m in FULL_AA]
            if lite is not None and abs(lite["clean"] - full["clean"]) > 1e-9:
                differ.append(f"{method} ε{col.eps_256:g}")
            extra = [f"{m} {a - b:.1f}" for m, a, b in zip(FULL_AA[2:], after[1:], after[2:])
                     if a is not None and b is not None and a - b > 0]
            rows.append([method, f"{col.eps_256:g}", _fmt(full["clean"], "accuracy"),
                         *[_fmt(a, "accuracy") for a in after],
                         "–" if after[1] is None else f"{after[1] - full['accuracy']:.1f}",
                         ", ".join(extra) or "–",
                         "–" if lite is None else f"{lite['clean']:.1f} / {lite['accuracy']:.1f}"])
    if not rows:
        return []
    return ["Full AutoAttack member by member (accuracy % on the same images; each member "
            "attacks only the points every earlier one left robust, so 'after APGD-T' is "
            "what autoattack-lite leaves on the same checkpoint; 'made the difference' names "
            "the members after APGD-T that lowered the accuracy, by how many points):", "",
            *markdown_table(["method", "ε (/256)", "clean", *[f"after {m}" for m in FULL_AA],
                             "after APGD-T − full", "made the difference",
                             "AA-lite record: clean / robust"], rows),
            *(["", f"Clean accuracy differs between the full run and the AA-lite record "
                   f"({', '.join(differ)}): they were made on different checkpoints of the "
                   "same run name (retrained; the training table describes the checkpoints "
                   "trained last); compare full AutoAttack with 'after APGD-T' of its own "
                   "run, not with the other tables' figures."] if differ else [])]


def write_reference_subset(reference: pathlib.Path, out: pathlib.Path, *, source: str,
                           tables: Sequence[str], dataset: str, n_blocks: int,
                           also: Sequence[Tuple[str, str]] = ()) -> None:
    """Copy the rows of ``reference`` (the paper-numbers CSV) from ``source`` / ``tables``
    -- and from the ``(source, table)`` pairs in ``also`` (e.g. the AutoAttack
    re-evaluations) -- on ``dataset`` with ``n_blocks`` ResNet blocks per stage to ``out``,
    atomically."""
    with open(reference, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader
                if ((r["source"] == source and r["table"] in tables)
                    or (r["source"], r["table"]) in also)
                and r["dataset"] == dataset and r["n_blocks"] == str(n_blocks)]
        fields = list(reader.fieldnames or [])
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    ensure_writable_dir(out.parent, flag="--report_dir")
    atomic_write_text(out, text.getvalue())


def log_seconds(path: pathlib.Path, step: str, command: str, seconds: float) -> None:
    """Append ``{step, command, seconds, time}`` to the JSON list in ``path`` (atomic)."""
    rows = json.loads(path.read_text()) if path.exists() else []
    rows.append({"step": step, "command": command, "seconds": round(seconds, 1),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    ensure_writable_dir(path.parent, flag="--report_dir")
    atomic_write_text(path, json.dumps(rows, indent=1) + "\n")
