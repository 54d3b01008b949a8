"""The transcribed reference numbers (reports/reference/paper_numbers.csv) against cells read
by hand from the paper texts in ../shared/papers, and their internal consistency."""
from __future__ import annotations

import collections
import pathlib

import pytest

from utils.reporting.compare import METRICS, load_reference, method_label

REFERENCE = pathlib.Path(__file__).resolve().parents[2] / "reports/reference/paper_numbers.csv"

# (id, value, relation) read from the paper text, by table.
EXPECTED = [
    # 002 Table 1 (CIFAR-10, ResNet-32): row, then column (eps/255, PGD steps, mode).
    ("002-T1-SCE-clean", 92.9, "="),
    ("002-T1-SCE-pgd10tar-eps8", 1.0, "<="),                 # "≤ 1"
    ("002-T1-SCE-pgd50un-eps16", 2.6, "="),
    ("002-T1-MMLDA-pgd10un-eps8", 16.5, "="),
    ("002-T1-L-GM-pgd50tar-eps8", 8.9, "="),
    ("002-T1-MMC-10rand-pgd10tar-eps16", 31.3, "="),
    ("002-T1-MMC-10-pgd50un-eps16", 17.5, "="),
    ("002-T1-ATtar-SCE-pgd50un-eps16", 16.0, "="),
    ("002-T1-ATtar-MMC-10-pgd50un-eps16", 45.1, "="),
    ("002-T1-ATun-MMC-10-pgd50un-eps8", 55.0, "="),           # the 55.0 RobustBench revisits
    ("002-T1-ATun-SCE-clean", 80.9, "="),
    # 002 Table 2 (as on the 003 slide): C&W mean L2, SPSA accuracy, noise, rotation.
    ("002-T2-SCE-cwtar", 0.12, "="),
    ("002-T2-MMC-10-cwun", 0.17, "="),
    ("002-T2-SCE-spsa10un-eps16", 1.0, "<="),
    ("002-T2-MMC-10-spsa10tar-eps8", 69.5, "="),
    ("002-T2-L-GM-noise", 59.2, "="),
    ("002-T2-ATtar-MMC-10-cwtar", 1.91, "="),
    ("002-T2-ATun-MMC-10-rotation", 75.8, "="),
    # 002 Table 5 (as on the 003 slide 'Different Architectures').
    ("002-T5-cifar10-res32-SCE-clean", 93.6, "="),            # 92.9 in Table 1
    ("002-T5-cifar10-res110-MMC-pgd10tar-eps8", 54.7, "="),
    ("002-T5-cifar100-res32-MMC-pgd50un-eps8", 21.9, "="),
    ("002-T5-cifar100-res110-SCE-pgd10un-eps16", 4.7, "="),
    ("002-T5-cifar100-res110-MMC-pgd50un-eps16", 10.5, "="),
    # Re-evaluations (DESIGN.md) and the reproducibility report 000, Table 4.
    ("RB-ATun-MMC-10-autoattack-eps8", 43.48, "="),
    ("000-T4-MMC-50-clean", 68.92, "="),
]


@pytest.fixture(scope="module")
def cells():
    return {c["id"]: c for c in load_reference(REFERENCE)}


@pytest.mark.parametrize("cell_id,value,relation", EXPECTED)
def test_cell_as_in_the_paper(cells, cell_id, value, relation):
    assert cells[cell_id]["value"] == pytest.approx(value)
    assert cells[cell_id]["relation"] == relation


def test_cell_fields_match_our_records(cells):
    c = cells["002-T1-ATtar-MMC-10-pgd50un-eps16"]
    assert (c["dataset"], c["arch"], c["n_blocks"], c["loss"], c["centers"], c["c_mm"],
            c["advtrain"], c["attack"], c["targeted"], c["eps_256"], c["eps_stated"],
            c["nb_iter"], c["adaptive"], c["metric"]) == (
        "cifar10", "resnet32", 5, "mmc", "mm", 10.0, "tar", "MadryEtAl", False, 16.0, "16/255",
        50, True, "accuracy")
    cw = cells["002-T2-MMC-10-cwtar"]
    assert (cw["attack"], cw["targeted"], cw["nb_iter"], cw["metric"]) == (
        "CarliniWagnerL2", True, 1000, "mean_l2")
    rand = cells["002-T1-MMC-10rand-clean"]
    assert (rand["centers"], rand["attack"], rand["targeted"], rand["eps_256"]) == (
        "random", "clean", None, None)


def test_counts_per_table(cells):
    counts = collections.Counter((c["source"], c["table"]) for c in cells.values())
    assert counts[("002", "Table 1")] == 10 * 9     # 10 rows x (clean + 8 PGD columns)
    assert counts[("002", "Table 2")] == 9 * 8      # 9 rows x (2 C&W, 4 SPSA, noise, rotation)
    assert counts[("002", "Table 5")] == 8 * 9      # 2 datasets x 2 depths x 2 losses
    assert counts[("000", "Table 4")] == 4


def test_labels_units_and_eps_are_consistent(cells):
    for c in cells.values():
        assert method_label(c["loss"], c["centers"], c["c_mm"], c["advtrain"]) == c["method"]
        assert c["metric"] in METRICS
        assert c["unit"] == ("%" if c["metric"] == "accuracy" else "L2 distortion, [0,1] pixels")
        if c["eps_256"] is not None:  # the paper's n/255 is the original code's n/256
            assert c["eps_stated"] == f"{c['eps_256']:g}/255"
        if c["metric"] == "accuracy":
            assert 0.0 <= c["value"] <= 100.0
