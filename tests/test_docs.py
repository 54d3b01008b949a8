"""The documentation: the README's shape (fast) and the MkDocs site building with --strict
(slow), which fails on broken links and anchors, pages missing from the nav, and
docstrings that disagree with their signatures (the API reference is generated from them)."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 300
# An internal tracker's numbers mean nothing to a reader: say what the thing is instead.
ISSUE_NUMBER = re.compile(r"issue [0-9]", re.IGNORECASE)


def _doc_files():
    yield README
    yield ROOT / "Makefile"
    yield from sorted(p for p in (ROOT / "docs").rglob("*") if p.is_file())


def test_readme_starts_with_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "```sh" and lines[3] == "```", lines[:4]
    assert [line.split("#")[0].strip() for line in lines[1:3]] == ["make demo", "make test"]


def test_readme_is_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move detail into docs/"


def test_readme_has_the_library_example_slot():
    lines = README.read_text(encoding="utf-8").splitlines()
    i = lines.index("<!-- readme-example -->")
    assert lines[i + 1] == "```python"


def test_readme_links_into_docs_resolve():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\((docs/[^)#\s]+)", text)
    assert targets, "README.md links to no docs/ page"
    missing = sorted({t for t in targets if not (ROOT / t).exists()})
    assert not missing, missing


def test_no_internal_issue_numbers_in_user_facing_text():
    hits = []
    for path in _doc_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        hits += [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                 for n, line in enumerate(text.splitlines(), 1) if ISSUE_NUMBER.search(line)]
    assert not hits, "\n".join(hits)


@pytest.mark.slow
def test_docs_build_strict(tmp_path):
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]'; the test extra has it)")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                          str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "reference" / "attacks" / "index.html").exists()
