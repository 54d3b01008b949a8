"""Markdown tables: the one helper every report and summary renders its tables with."""
from __future__ import annotations

from typing import Any, List, Sequence


def cell(value: Any) -> str:
    """``value`` as one table cell: ``|`` escaped, newlines folded into spaces."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> List[str]:
    """Lines of a GitHub-flavoured Markdown table: header, ``|---|`` rule, one line a row."""
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
