"""Griffe extension for the API reference: Sphinx roles in docstrings as Markdown code.

The docstrings are Google style ("Args:", "Returns:") but cross-reference with Sphinx
roles (``:func:`attack_graph` ``, ``:class:`~utils.runs.spec.RunSpec` ``), which Markdown
would print verbatim. This rewrites each role to a code span of its target (``~`` keeps the
last name, as Sphinx does), and a reST literal-block marker (a line ending in ``::``) to a
plain colon (the indented block after it is already a Markdown code block), when
mkdocstrings loads the sources; the source files are not changed. Excluded from the site
by ``exclude_docs`` in mkdocs.yml.
"""
from __future__ import annotations

import re
from typing import Any

import griffe

_LITERAL_MARKER = re.compile(r"(?<=\S)::$", re.MULTILINE)
_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc|const):`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


class SphinxRolesToCode(griffe.Extension):
    """Rewrites Sphinx roles and ``::`` markers in every loaded docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            value = _ROLE.sub(_code, obj.docstring.value)
            obj.docstring.value = _LITERAL_MARKER.sub(":", value)
