"""Render a :class:`utils.reporting.compare.Comparison` as Markdown, CSV and an accuracy-vs-ε PNG.

Everything is rendered in memory first, then each file is written atomically, so bad
input never leaves a half-written report.

    comparison = compare(cells, records, relax=("dataset",))
    paths = write_report(comparison, "reports", "comparison", header=["Command: ..."])
"""
from __future__ import annotations

import collections
import csv
import io
import math
import pathlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

from utils.reporting.compare import ROW_COLUMNS, Comparison
from utils.reporting.reference import Record
from utils.reporting.markdown import markdown_table
from utils.fileio import bytes_item, text_item, write_set
from utils.runs.checkpoints import ensure_writable_dir

_PREFIX = {"<=": "≤", ">": ">", "~": "≈", "=": ""}
_RELAXED_TEXT = {"dataset": "datasets differ", "n_blocks": "architectures (ResNet depth) "
                 "differ", "nb_iter": "attack steps differ"}


def _num(value: Any, metric: str = "accuracy", signed: bool = False) -> str:
    """Accuracy (%) to one decimal, as the paper prints it; mean L2 to two."""
    if value is None or value == "":
        return "–"
    return f"{float(value):{'+' if signed else ''}.{2 if metric == 'mean_l2' else 1}f}"


def _warnings(comparison: Comparison) -> List[str]:
    """Loud notes for every relaxed field that actually differs in a matched row."""
    notes = []
    matched = [r for r in comparison.rows if r["status"] == "matched"]
    for field in comparison.relaxed:
        prefix = "arch " if field == "n_blocks" else f"{field} "
        pairs = sorted({part for r in matched for part in r["differs"].split("; ")
                        if part.startswith(prefix)})
        if pairs:
            what = "; ".join(p[len(prefix):].replace(" vs ", " (ours) vs ") + " (paper)"
                             for p in pairs[:6])
            text = _RELAXED_TEXT[field]
            notes.append(f"> **{text[0].upper() + text[1:]}** (matched with "
                         f"`{field}` relaxed): {what}{' …' if len(pairs) > 6 else ''}. "
                         "These rows compare different setups; Δ is not a reproduction "
                         "error.")
            notes.append("")
    return notes


def _matched_lines(rows: Sequence[Record]) -> List[str]:
    body = [(f"{r['source']} {r['table']}", r["method"], r["column"],
             _PREFIX[r["relation"]] + r["paper"], _num(r["ours"], r["metric"]),
             _num(r["delta"], r["metric"], signed=True) + (" ⚠" if r["flag"] else ""),
             f"{r['ours_model']} ({r['ours_dataset']}, epoch {r['ours_epoch']})",
             r["ours_n"], r["differs"] or "–") for r in rows]
    return markdown_table(("paper source", "method", "column", "paper", "ours", "Δ",
                           "our model", "n", "differs"), body)


def _not_run_lines(rows: Sequence[Record]) -> List[str]:
    groups: Dict[Tuple, List[str]] = collections.OrderedDict()
    for r in rows:
        key = (f"{r['source']} {r['table']}", r["method"], r["paper_dataset"], r["paper_arch"])
        groups.setdefault(key, []).append(
            f"{r['column']} ({_PREFIX[r['relation']]}{r['paper']})")
    body = [(*key, "; ".join(columns)) for key, columns in groups.items()]
    return markdown_table(("paper source", "method", "dataset", "arch",
                           "cells not run (paper value)"), body)


def _ours_only_lines(rows: Sequence[Record]) -> List[str]:
    body = [(r["ours_method"], r["ours_model"], r["ours_dataset"], r["ours_attack"],
             r["ours_targeted"], "–" if r["ours_eps_256"] is None else f"{r['ours_eps_256']:g}",
             r["ours_nb_iter"] or "–",
             r["ours_objective"] or "–", r["ours_n"]) for r in rows]
    return markdown_table(("method", "model", "dataset", "attack", "targeted", "ε (/256)", "steps",
                           "objective", "n"), body)


def render_markdown(comparison: Comparison, header: Sequence[str] = (),
                    plot_name: Optional[str] = None, threshold: float = 5.0) -> str:
    """The report: matched cells (paper, ours, Δ = ours − paper), paper cells not run,
    our records without a paper cell; loud notes when datasets/architectures differ."""
    by = collections.defaultdict(list)
    for r in comparison.rows:
        by[r["status"]].append(r)
    flagged = sum(1 for r in by["matched"] if r["flag"])
    lines = ["# Paper numbers vs ours", "", *header, ""]
    lines += _warnings(comparison)
    lines += [f"{len(by['matched'])} matched rows "
              f"({len({r['id'] for r in by['matched']})} paper cells), "
              f"{len(by['not_run'])} paper cells not run, {len(by['ours_only'])} records of "
              f"ours with no paper cell; {flagged} matched rows differ by more than "
              f"{threshold:g} points (⚠). Accuracies in %, C&W in mean L2 ([0,1] pixels); "
              "Δ = ours − paper (for a bound such as ≤1: the distance past it).", ""]
    if plot_name:
        lines += [f"![accuracy vs ε, ours solid, paper dashed]({plot_name})", ""]
    for title, status, render in (("Matched cells", "matched", _matched_lines),
                                  ("Paper cells we have not run", "not_run", _not_run_lines),
                                  ("Our records with no paper cell", "ours_only",
                                   _ours_only_lines)):
        lines += [f"## {title} ({len(by[status])})", ""]
        lines += (render(by[status]) if by[status] else ["None."]) + [""]
    return "\n".join(lines)


def render_csv(comparison: Comparison) -> str:
    """All rows with :data:`utils.reporting.compare.ROW_COLUMNS` (floats rounded to 4 decimals)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=ROW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in comparison.rows:
        writer.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    return out.getvalue()


# ------------------------------------------------------------------ plot

Series = Dict[Tuple, Dict[float, float]]  # (panel, label, method) -> {eps_256: accuracy %}


def _paper_groups(comparison: Comparison) -> Optional[set]:
    """Paper rows to draw: those with a matched cell; else those of our methods; else all
    (None)."""
    group = [(c["source"], c["table"], c["method"], c["dataset"], c["arch"])
             for c in comparison.cells]
    matched = {r["id"] for r in comparison.rows if r["status"] == "matched"}
    wanted = {g for g, c in zip(group, comparison.cells) if c["id"] in matched}
    ours = {r["method"] for r in comparison.records}
    return wanted or {g for g in group if g[2] in ours} or None


def _pgd_series(comparison: Comparison) -> Tuple[Series, Series]:
    """Accuracy-vs-ε curves under PGD (``MadryEtAl``): ours and the paper's, ε = 0 being
    the clean accuracy (see :func:`_paper_groups` for which paper rows)."""
    wanted = _paper_groups(comparison)
    paper: Series = collections.defaultdict(dict)

    def group(c: Record) -> Optional[Tuple]:
        g = (c["source"], c["table"], c["method"], c["dataset"], c["arch"])
        return g if c["metric"] == "accuracy" and (wanted is None or g in wanted) else None

    clean = {group(c): c["value"] for c in comparison.cells
             if c["attack"] == "clean" and group(c)}
    for c in comparison.cells:
        if c["attack"] == "MadryEtAl" and c["eps_256"] is not None and c["nb_iter"] \
                and group(c):
            key = ((c["nb_iter"], c["targeted"]), f"paper {c['method']} ({c['dataset']}, "
                   f"{c['arch']}, {c['source']} {c['table'].split(' (')[0]})", c["method"])
            paper[key][c["eps_256"]] = c["value"]
            if group(c) in clean:
                paper[key][0.0] = clean[group(c)]
    ours: Series = collections.defaultdict(dict)
    for r in comparison.records:
        if r["attack"] == "MadryEtAl" and r["eps_256"] is not None and r["nb_iter"]:
            key = ((r["nb_iter"], r["targeted"]), f"ours {r['method']} ({r['dataset']}, "
                   f"{r['model']}, epoch {r['epoch']}, {r['objective']})", r["method"])
            ours[key][r["eps_256"]] = r["accuracy"]
            ours[key][0.0] = r["clean"]
    return paper, ours


def render_png(comparison: Comparison) -> Optional[bytes]:
    """PNG bytes of accuracy (%) vs ε (/256) per PGD setting (steps, targeted): ours
    solid, paper dashed, one colour per method; None when there is no PGD curve."""
    paper, ours = _pgd_series(comparison)
    panels = sorted({k[0] for k in list(paper) + list(ours)}, key=str)
    if not panels:
        return None
    import matplotlib  # lazy: plotting is optional and matplotlib slow to import
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: optional plotting

    methods = sorted({k[2] for k in list(paper) + list(ours)})
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    colour = {m: cmap(i % cmap.N) for i, m in enumerate(methods)}
    markers = "osv^D<>ph*"
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.2 * rows), squeeze=False)
    legend: Dict[str, Any] = {}
    for ax, panel in zip(axes.flat, panels):
        for series, style in ((ours, "-"), (paper, "--")):
            labels = sorted({k[1] for k in series})
            for (p, label, method), curve in sorted(series.items(), key=str):
                xs = sorted(x for x in curve if not math.isnan(curve[x]))
                if p != panel or not xs:
                    continue
                marker = markers[labels.index(label) % len(markers)]
                line, = ax.plot(xs, [curve[x] for x in xs], style, marker=marker,
                                color=colour[method], label=label, markersize=4)
                legend.setdefault(label, line)
        steps, targeted = panel
        ax.set_title(f"PGD-{steps} {'targeted' if targeted else 'untargeted'}")
        ax.set_xlabel("ε (/256 pixel units; paper: /255); 0 = clean")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    ncol = 2 if len(legend) > 8 and max(map(len, legend)) * cols <= 180 else 1
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=ncol, fontsize=7)
    legend_rows = math.ceil(len(legend) / ncol)
    fig.set_size_inches(fig.get_size_inches()[0],
                        fig.get_size_inches()[1] + 0.16 * legend_rows + 0.3)
    title = "ours solid, paper dashed"
    if "dataset" in comparison.relaxed:
        title += " — DATASETS DIFFER (compared across datasets)"
    fig.suptitle(title)
    bottom = (0.16 * legend_rows + 0.3) / fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, bottom, 1, 0.97))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def write_report(comparison: Comparison, out_dir: "str | pathlib.Path", name: str, *,
                 header: Sequence[str] = (), plot: bool = True,
                 threshold: float = 5.0) -> List[pathlib.Path]:
    """Write ``<out_dir>/<name>.md``, ``.csv`` and (with a PGD curve) ``.png`` as one
    set (:func:`utils.fileio.write_set`), after everything has been rendered. Returns
    the paths written.

    Raises:
      UsageError: ``out_dir`` cannot be created or written.
    """

    png = render_png(comparison) if plot else None
    out = pathlib.Path(out_dir)
    markdown = render_markdown(comparison, header, f"{name}.png" if png else None, threshold)
    ensure_writable_dir(out, flag="--out_dir")
    # The markdown links the png: all files are renamed together, the markdown last.
    items = {out / f"{name}.csv": text_item(out / f"{name}.csv", render_csv(comparison))}
    if png is not None:
        items[out / f"{name}.png"] = bytes_item(out / f"{name}.png", png)
    items[out / f"{name}.md"] = text_item(out / f"{name}.md", markdown)
    write_set(list(items.values()))
    written = list(items)
    return written
