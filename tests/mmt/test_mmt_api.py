"""mmt's public face: every name of __all__ imports, and nothing below imports mmt."""
from __future__ import annotations

import importlib

import mmt


def test_all_names_are_importable_and_documented():
    assert len(set(mmt.__all__)) == len(mmt.__all__)
    for name in mmt.__all__:
        obj = getattr(mmt, name)
        if callable(obj) and not isinstance(obj, dict):
            assert (obj.__doc__ or "").strip(), name
    namespace = {}
    exec("from mmt import *", namespace)
    assert set(mmt.__all__) <= set(namespace)


def test_submodules_document_units():
    for module in ("mmt", "mmt.losses", "mmt.attacks", "mmt.evaluation", "mmt.models"):
        doc = importlib.import_module(module).__doc__
        assert doc and len(doc.splitlines()) > 3, module
    assert "input units" in mmt.attacks.__doc__.lower()
    assert "[0, 1]" in mmt.__doc__
