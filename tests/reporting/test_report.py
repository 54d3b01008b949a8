"""utils/reporting/compare.py, utils/reporting/render.py and scripts/compare_results.py on small synthetic
records and reference cells."""
from __future__ import annotations

import csv
import io
import json
import pathlib

import pytest

from conftest import run_entry
from utils.reporting import compare as R
from utils.errors import UsageError
from utils.reporting.render import render_markdown, render_png

MMC = "resnet32v2_meanvar10_mom_lr0.01_batchsize50_withBN"
SCE = "resnet32v2_mom_lr0.01_batchsize50_withBN"
AT_TAR_MMC = "resnet32v2_meanvar10_mom_lr0.01_batchsize50_targetMadryEtAl_advratio1.0_withBN"


def pgd(model, loss, *, eps=8.0, steps=10, targeted=False, acc=0.30, clean=0.90,
        dataset="cifar10", adaptive=True, n=100, time="2026-01-01T00:00:00Z", **extra):
    """A record as advtest_iterative.py writes it (fractions, not %)."""
    record = dict(script="advtest_iterative", dataset=dataset, model=model, loss=loss,
                  epoch=200, attack_name="MadryEtAl", targeted=targeted, eps_256=eps,
                  nb_iter=steps, adaptive=adaptive,
                  objective="mmc_un1" if loss == "mmc" and adaptive else "ce", n=n,
                  adv_accuracy=acc, clean_accuracy=clean, time=time)
    return dict(record, **extra)


def cell(cell_id, method_fields, **fields):
    """A reference cell with every column; ``method_fields``: loss, centers, c_mm, advtrain."""
    row = {c: "" for c in R.REFERENCE_COLUMNS}
    loss, centers, c_mm, advtrain = method_fields
    row.update(id=cell_id, source="002", table="Table 1", row="r", column="c",
               method=R.method_label(loss, centers or None, float(c_mm) if c_mm else None,
                                     advtrain),
               dataset="cifar10", arch="resnet32", n_blocks="5", loss=loss, centers=centers,
               c_mm=c_mm, advtrain=advtrain, metric="accuracy", relation="=", unit="%")
    row.update({k: str(v) for k, v in fields.items()})
    return row


MMC10 = ("mmc", "mm", "10", "none")
SCE_ROW = ("sce", "", "", "none")


def write_reference(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=R.REFERENCE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


REFERENCE_ROWS = [
    cell("mmc-clean", MMC10, attack="clean", value="92.7"),
    cell("mmc-un8", MMC10, attack="MadryEtAl", targeted="false", eps_256="8",
         eps_stated="8/255", nb_iter="10", adaptive="true", value="36.0"),
    cell("mmc-un16", MMC10, attack="MadryEtAl", targeted="false", eps_256="16",
         eps_stated="16/255", nb_iter="10", adaptive="true", value="25.2"),
    cell("sce-tar8", SCE_ROW, attack="MadryEtAl", targeted="true", eps_256="8",
         eps_stated="8/255", nb_iter="10", relation="<=", value="1"),
    cell("at-cw", ("mmc", "mm", "10", "tar"), attack="CarliniWagnerL2", targeted="true",
         nb_iter="1000", adaptive="true", metric="mean_l2", unit="L2", value="1.91"),
]


@pytest.fixture
def reference(tmp_path):
    return write_reference(tmp_path / "ref.csv", REFERENCE_ROWS)


# ------------------------------------------------------------------ library

def test_normalize_reads_run_names():
    r = R.normalize_record(pgd(AT_TAR_MMC, "mmc"), "f:1")
    assert (r["arch"], r["n_blocks"], r["c_mm"], r["centers"], r["advtrain"], r["method"]) == (
        "resnet32v2", 5, 10.0, "mm", "tar", "AT-tar (MMC-10)")
    assert r["accuracy"] == pytest.approx(30.0) and r["clean"] == pytest.approx(90.0)
    small = R.normalize_record(pgd("resnet14v1_meanvar10_Adam_lr0.001_batchsize50_withBN_random",
                                   "mmc"), "f:2")
    assert (small["n_blocks"], small["centers"], small["method"]) == (2, "random",
                                                                      "MMC-10 (rand)")
    spsa = R.normalize_record(dict(dataset="cifar10", model=SCE, attack_name="SPSA",
                                   SPSA_epsilon=16.0, SPSA_nb_iter=10, eps=0.0625,
                                   adv_accuracy=0.1, clean_accuracy=0.9), "f:3")
    assert (spsa["eps_256"], spsa["nb_iter"], spsa["advtrain"], spsa["loss"]) == (
        16.0, 10, "none", "sce")


def test_strict_match_delta_bounds_and_not_run(reference):
    records = [R.normalize_record(r, f"f:{i}") for i, r in enumerate([
        pgd(MMC, "mmc", acc=0.30, clean=0.90, n=100),
        pgd(MMC, "mmc", acc=0.10, adaptive=False),  # non-adaptive: no paper cell
        pgd(SCE, "sce", targeted=True, acc=0.004),
        pgd(MMC, "mmc", dataset="fashion_mnist"),
    ])]
    rows = R.compare(R.load_reference(reference), records).rows
    by_id = {r["id"]: r for r in rows if r["status"] == "matched"}
    assert set(by_id) == {"mmc-clean", "mmc-un8", "sce-tar8"}
    assert by_id["mmc-un8"]["delta"] == pytest.approx(30.0 - 36.0)
    assert by_id["mmc-clean"]["ours"] == pytest.approx(90.0)
    assert by_id["sce-tar8"]["delta"] == 0.0  # 0.4 % is within "≤ 1"
    assert by_id["mmc-un8"]["flag"] and not by_id["sce-tar8"]["flag"]
    assert {r["id"] for r in rows if r["status"] == "not_run"} == {"mmc-un16", "at-cw"}
    assert sorted(r["ours_dataset"] + str(r["ours_objective"]) for r in rows
                  if r["status"] == "ours_only") == ["cifar10ce", "fashion_mnistmmc_un1"]


def test_latest_run_of_a_setting_wins(reference):
    old = pgd(MMC, "mmc", acc=0.5, time="2026-01-01T00:00:00Z")
    new = pgd(MMC, "mmc", acc=0.2, time="2026-02-01T00:00:00Z")
    records = [R.normalize_record(r, "f") for r in (new, old)]
    rows = [r for r in R.compare(R.load_reference(reference), records).rows
            if r["id"] == "mmc-un8"]
    assert [r["ours"] for r in rows] == [pytest.approx(20.0)]


def test_ensemble_presets_are_separate_settings():
    """autoattack-lite and full AutoAttack of one model and ε are two settings (neither
    replaces the other), told apart in the report; Square's budget is part of the key."""
    lite, full = ["APGD-CE", "APGD-T"], ["APGD-CE", "APGD-T", "FAB-T", "Square"]

    def aa(members, acc, queries=5000, time="2026-01-01T00:00:00Z"):
        return pgd(MMC, "mmc", acc=acc, attack_name="AutoAttack", members=members,
                   fab_n_iter=100, square_n_queries=queries, time=time,
                   robust_accuracy_after=dict(zip(members, [0.4, acc, acc, acc])))

    records = [R.normalize_record(r, "f") for r in (
        aa(lite, 0.3), aa(full, 0.2), aa(full, 0.25, 1000, "2026-02-01T00:00:00Z"))]
    assert (records[0]["members"], records[0]["square_n_queries"]) == (tuple(lite), None)
    assert records[1]["after"] == {"APGD-CE": 40.0, "APGD-T": 20.0, "FAB-T": 20.0,
                                   "Square": 20.0}
    kept = R.latest_per_setting(records)
    assert sorted(r["accuracy"] for r in kept) == pytest.approx([20.0, 25.0, 30.0])
    rows = R.compare([], kept).rows
    assert sorted(r["ours_attack"] for r in rows)[::2] == [
        "AutoAttack (APGD-CE+APGD-T)", "AutoAttack (APGD-CE+APGD-T+FAB-T+Square)"]


def test_mean_l2_and_advtrain(reference):
    cw = dict(dataset="cifar10", model=AT_TAR_MMC, loss="mmc", attack_name="CarliniWagnerL2",
              targeted=True, CW_max_iterations=1000, adaptive=True, objective="mmc_tar2",
              adv_accuracy=0.1, clean_accuracy=0.8, l2_mean=1.5, n=500)
    rows = R.compare(R.load_reference(reference), [R.normalize_record(cw, "f")]).rows
    [row] = [r for r in rows if r["status"] == "matched"]
    assert (row["id"], row["ours"], row["delta"], row["flag"]) == (
        "at-cw", 1.5, pytest.approx(1.5 - 1.91), "")


def test_relaxed_dataset_is_marked(reference):
    records = [R.normalize_record(pgd("resnet14v1_meanvar10_Adam_lr0.001_batchsize50_withBN",
                                      "mmc", dataset="fashion_mnist"), "f")]
    cells = R.load_reference(reference)
    assert not [r for r in R.compare(cells, records).rows if r["status"] == "matched"]
    comparison = R.compare(cells, records, relax=("dataset", "arch"))
    matched = [r for r in comparison.rows if r["status"] == "matched"]
    assert {r["id"] for r in matched} == {"mmc-clean", "mmc-un8"}
    assert "dataset fashion_mnist vs cifar10" in matched[0]["differs"]
    assert "arch resnet14v1 vs resnet32" in matched[0]["differs"]
    text = render_markdown(comparison)
    assert "**Datasets differ**" in text and "fashion_mnist (ours) vs cifar10 (paper)" in text
    assert render_png(comparison)[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UsageError, match="cannot relax"):
        R.compare(cells, records, relax=("model",))


@pytest.mark.parametrize("mutate,match", [
    (lambda rows: [dict(r, extra="x") for r in rows], "unknown columns"),
    (lambda rows: [{k: v for k, v in r.items() if k != "unit"} for r in rows], "missing columns"),
    (lambda rows: [dict(rows[0], value="abc")], "not a number"),
    (lambda rows: [dict(rows[0], targeted="maybe")], "not a bool"),
    (lambda rows: [dict(rows[0], metric="auc")], "metric"),
    (lambda rows: [rows[0], rows[0]], "duplicate id"),
])
def test_bad_reference(tmp_path, mutate, match):
    rows = mutate([dict(r) for r in REFERENCE_ROWS])
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(UsageError, match=match):
        R.load_reference(path)


def test_truncated_reference(tmp_path, reference):
    text = reference.read_text()
    path = tmp_path / "cut.csv"
    path.write_text(text[:text.index("mmc-un8") + 20])
    with pytest.raises(UsageError, match="truncated"):
        R.load_reference(path)


# ------------------------------------------------------------------ entry script

def _compare(tmp_path, capsys, *args):
    return run_entry("scripts.compare_results", [f"--out_dir={tmp_path / 'out'}", *args], capsys)


def test_compare_results_writes_markdown_csv_png(tmp_path, capsys, reference):
    write_jsonl(tmp_path / "pgd.jsonl", [pgd(MMC, "mmc"), pgd(MMC, "mmc", eps=16, acc=0.2)])
    code, out, err = _compare(tmp_path, capsys, f"--results={tmp_path}/*.jsonl",
                              f"--reference={reference}", "--report_name=cmp")
    assert code == 0, err
    assert "3 matched rows, 2 paper cells not run" in out
    md = (tmp_path / "out/cmp.md").read_text()
    assert "![accuracy vs ε" in md and "## Paper cells we have not run (2)" in md
    assert f"--results={tmp_path}/*.jsonl" in md
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out/cmp.csv").read_text())))
    assert [r["status"] for r in rows].count("matched") == 3
    assert tuple(rows[0]) == R.ROW_COLUMNS
    assert (tmp_path / "out/cmp.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_across_datasets_flag(tmp_path, capsys, reference):
    write_jsonl(tmp_path / "fm.jsonl", [pgd(MMC, "mmc", dataset="fashion_mnist")])
    code, out, err = _compare(tmp_path, capsys, f"--results={tmp_path / 'fm.jsonl'}",
                              f"--reference={reference}", "--match_dataset=False",
                              "--dataset=fashion_mnist", "--paper_dataset=cifar10")
    assert code == 0, err
    assert "Datasets differ" in (tmp_path / "out/comparison.md").read_text()


@pytest.mark.parametrize("content,extra,match", [
    (None, [], "no results file matches"),
    ('{"dataset": "cifar10", "model": "x"', [], "not JSON"),
    ('{"dataset": "cifar10", "model": "x"}', [], "lacks attack_name"),
    ("[1, 2]", [], "not a JSON object"),
    (json.dumps(pgd(MMC, "mmc", acc="n/a")), [], "are not numbers"),
    (json.dumps(pgd(MMC, "mmc")), ["--dataset=mnist"], "--dataset='mnist' matches nothing"),
    (json.dumps(pgd(MMC, "mmc")), ["--sources=999"], "matches no reference cell"),
    (json.dumps(pgd(MMC, "mmc")), ["--reference=/nonexistent/ref.csv"], "cannot read reference"),
    (json.dumps(pgd(MMC, "mmc")), ["--threshold=-1"], "threshold"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, reference,
                                                          content, extra, match):
    results = tmp_path / "r.jsonl"
    if content is not None:
        results.write_text(content + "\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "comparison.md").write_text("previous report")
    code, _, err = _compare(tmp_path, capsys, f"--results={results}",
                            f"--reference={reference}", *extra)
    assert code == 2
    assert match in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["comparison.md"]
    assert (out_dir / "comparison.md").read_text() == "previous report"


def test_committed_reference_loads_with_defaults(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(pathlib.Path(__file__).resolve().parents[2])
    write_jsonl(tmp_path / "r.jsonl", [pgd(MMC, "mmc", acc=0.3), pgd(SCE, "sce", acc=0.02)])
    code, out, err = _compare(tmp_path, capsys, f"--results={tmp_path / 'r.jsonl'}",
                              "--plot=False")
    assert code == 0, err
    md = (tmp_path / "out/comparison.md").read_text()
    assert "| 002 Table 1 | MMC-10 | eps=8/255 PGD_{10}^{un} | 36.0 | 30.0 | -6.0 ⚠ |" in md
    assert not (tmp_path / "out/comparison.png").exists()
