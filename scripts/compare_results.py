r"""Compare our result records with the paper's numbers: Markdown + CSV table and a PNG.

Reads the records ``advtest_iterative.py`` / ``advtest_others.py`` append (JSON lines) and
the reference cells (``reports/reference/paper_numbers.csv``: 002 Tables 1, 2, 5, the
reproducibility report's C_MM sweep and the AutoAttack re-evaluations), matches them on
dataset, ResNet depth, loss, centers, C_MM, adversarial training, attack, targeted, ε
(/256), steps and adaptivity, and writes ``<out_dir>/<report_name>.md``, ``.csv`` and
``.png`` (accuracy vs ε under PGD; ours solid, paper dashed).

    python scripts/compare_results.py --results='reports/*.jsonl'
    python scripts/compare_results.py --results=runs/cifar10/results/*.jsonl --dataset=cifar10
    # Fashion-MNIST runs against the CIFAR-10 table (the report says the datasets differ):
    python scripts/compare_results.py --match_dataset=False --match_arch=False \
        --paper_dataset=cifar10 --sources=002,003
"""
from __future__ import annotations

import dataclasses
import pathlib
import sys
from typing import Any, List, Optional, Sequence, Tuple

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from absl import flags  # noqa: E402

from utils.cli.common import refuse_arguments, start_script  # noqa: E402

FLAGS = flags.FLAGS
DEFAULT_REFERENCE = "reports/reference/paper_numbers.csv"


def define_flags() -> None:
    """This script's flags and defaults (called again by in-process runners to make these
    the defined flags: :func:`utils.cli.flags.forget_script_flags`)."""
    # Imported when called: utils.cli.flags loads TensorFlow, which importing this module
    # must not (console_main starts it quietly first).
    from utils.cli.flags import forget_script_flags
    forget_script_flags()
    flags.DEFINE_list(
        "results", ["reports/*.jsonl"], "Our JSON-lines result files or "
        "globs (comma-separated).")
    flags.DEFINE_string("reference", DEFAULT_REFERENCE, "Reference cells (CSV).")
    flags.DEFINE_string("out_dir", "reports", "Where the report files go.")
    flags.DEFINE_string("report_name", "comparison", "Base name of the .md/.csv/.png.")
    flags.DEFINE_string("dataset", None, "Only our records on this dataset (default: all).")
    flags.DEFINE_string(
        "paper_dataset", None, "Only paper cells on this dataset "
        "(default: all).")
    flags.DEFINE_list(
        "sources", [], "Only paper cells from these sources: 002 (Table 1), "
        "003 (002 Tables 2 and 5, read from the slides), 000 (C_MM sweep), DESIGN.md "
        "(re-evaluations); default: all.")
    flags.DEFINE_bool(
        "match_dataset", True, "Match on the dataset; False compares, e.g., "
        "Fashion-MNIST runs with CIFAR-10 cells, marked as such in the output.")
    flags.DEFINE_bool("match_arch", True, "Match on the ResNet depth (blocks per stage).")
    flags.DEFINE_bool("match_steps", True, "Match on the attack's steps / iterations.")
    flags.DEFINE_float(
        "threshold", 5.0, "Flag accuracy differences above this many "
        "percentage points.", lower_bound=0.0)
    flags.DEFINE_bool("plot", True, "Also write the accuracy-vs-ε PNG.")


OWN_FLAGS = ("results", "reference", "out_dir", "report_name", "dataset", "paper_dataset",
             "sources", "match_dataset", "match_arch", "match_steps", "threshold", "plot")


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """The validated flags (names as :data:`OWN_FLAGS`); ``command`` is this run's command
    line (the flags given), for the report's header."""

    results: Tuple[str, ...]
    reference: str
    out_dir: str
    report_name: str
    dataset: Optional[str]
    paper_dataset: Optional[str]
    sources: Tuple[str, ...]
    match_dataset: bool
    match_arch: bool
    match_steps: bool
    threshold: float
    plot: bool
    command: str


def config_from_flags(fv: Any) -> CompareConfig:
    """One :class:`CompareConfig` from the parsed flags ``fv``; UsageError on a bad one."""
    from utils.errors import UsageError

    def text(value: object) -> str:
        return ",".join(value) if isinstance(value, list) else str(value)

    if not fv.results:
        raise UsageError("--results is empty; pass one or more JSON-lines files or globs")
    given = [f"--{n}={text(fv[n].value)}" for n in OWN_FLAGS if fv[n].present]
    own = {n: tuple(fv[n].value) if isinstance(fv[n].value, list) else fv[n].value
           for n in OWN_FLAGS}
    return CompareConfig(**own, command=" ".join(["scripts/compare_results.py", *given]))


def _filter(values: List[dict], field: str, wanted: "str | None", flag: str) -> List[dict]:
    from utils.errors import UsageError
    if wanted is None:
        return values
    present = sorted({str(v[field]) for v in values})
    if wanted not in present:
        raise UsageError(f"--{flag}={wanted!r} matches nothing; present: {', '.join(present)}")
    return [v for v in values if v[field] == wanted]


def compare_and_write(config: CompareConfig) -> None:
    """Compare the records with the reference cells, write the report, print one line."""
    from utils.errors import UsageError
    from utils.reporting.compare import compare, load_reference, load_results
    from utils.reporting.render import write_report

    cells = _filter(load_reference(config.reference), "dataset", config.paper_dataset,
                    "paper_dataset")
    if config.sources:
        cells = [c for c in cells if c["source"] in config.sources]
        if not cells:
            raise UsageError(f"--sources={','.join(config.sources)} matches no reference cell; "
                             "sources are 002, 003, 000, DESIGN.md")
    records = _filter(load_results(list(config.results)), "dataset", config.dataset, "dataset")
    relax = [name for name, keep in (("dataset", config.match_dataset),
                                     ("arch", config.match_arch),
                                     ("steps", config.match_steps)) if not keep]
    comparison = compare(cells, records, relax=relax, threshold=config.threshold)
    header = [f"Command: `{config.command}`",
              "", f"Reference: `{config.reference}` ({len(cells)} cells); results: "
              f"`{', '.join(config.results)}` ({len(records)} records, "
              f"{len(comparison.records)} after keeping one per setting)."]
    paths = write_report(comparison, config.out_dir, config.report_name, header=header,
                         plot=config.plot, threshold=config.threshold)
    counts = {s: sum(r["status"] == s for r in comparison.rows)
              for s in ("matched", "not_run", "ours_only")}
    print(f"{counts['matched']} matched rows, {counts['not_run']} paper cells not run, "
          f"{counts['ours_only']} records of ours without a paper cell; wrote "
          f"{', '.join(str(p) for p in paths)}")


def main(argv: Sequence[str]) -> None:
    refuse_arguments(argv)
    compare_and_write(config_from_flags(FLAGS))


def console_main() -> None:
    """``python3 scripts/compare_results.py``: TensorFlow started quietly, flags, run."""
    start_script(define_flags, main)


if __name__ == "__main__":
    console_main()
