"""Tests of ts_centers: MM Gram invariants, min-max and random sets, file I/O, CLI."""
from __future__ import annotations

import logging
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

import ts_centers
from ts_centers import (
    CENTER_SETS,
    get_centers,
    load_centers,
    mat_filename,
    max_cosine,
    save_centers,
    shipped_centers_path,
)
from ts_centers import craft
from utils.errors import UsageError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def mm_gram(num_classes: int, c_mm: float) -> np.ndarray:
    """Expected Gram matrix: c_mm^2 on the diagonal, -c_mm^2/(L-1) off it."""
    gram = np.full((num_classes, num_classes), -c_mm**2 / (num_classes - 1))
    np.fill_diagonal(gram, c_mm**2)
    return gram


def assert_one_line(err: pytest.ExceptionInfo) -> None:
    message = str(err.value)
    assert message and "\n" not in message


# --- MM centers ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "num_classes,feature_dim",
    [(2, 1), (3, 2), (10, 9), (10, 64), (10, 256), (65, 64), (100, 99), (100, 256)],
)
@pytest.mark.parametrize("c_mm", [1.0, 10.0])
def test_mm_gram_matrix(num_classes: int, feature_dim: int, c_mm: float) -> None:
    centers = get_centers("mm", num_classes, feature_dim, c_mm)
    assert centers.shape == (num_classes, feature_dim)
    assert centers.dtype == np.float64
    np.testing.assert_allclose(
        centers @ centers.T, mm_gram(num_classes, c_mm), rtol=0, atol=1e-6 * c_mm**2
    )


@pytest.mark.parametrize("num_classes", [2, 3, 4, 7, 10, 33])
@pytest.mark.parametrize("extra_dim", [0, 1, 5, 40])
@pytest.mark.parametrize("c_mm", [0.1, 1.0, 10.0, 100.0])
def test_mm_properties_grid(num_classes: int, extra_dim: int, c_mm: float) -> None:
    feature_dim = num_classes - 1 + extra_dim
    if feature_dim < 1:
        pytest.skip("feature_dim must be >= 1")
    centers = get_centers("mm", num_classes, feature_dim, c_mm)
    scale = c_mm**2
    np.testing.assert_allclose(np.linalg.norm(centers, axis=1), c_mm, rtol=1e-12)
    np.testing.assert_allclose(centers @ centers.T, mm_gram(num_classes, c_mm),
                               rtol=0, atol=1e-9 * scale)
    # A regular simplex is centred at the origin (up to the ~1e-8 that Algorithm 1's
    # sqrt(|1 - ||mu_L||^2|) leaves in the last row's diagonal entry when L <= d) ...
    np.testing.assert_allclose(centers.sum(axis=0), 0.0, atol=1e-7 * c_mm)
    # ... and all its pairwise distances equal c_mm * sqrt(2L/(L-1)).
    dist = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    off = ~np.eye(num_classes, dtype=bool)
    np.testing.assert_allclose(dist[off], c_mm * np.sqrt(2 * num_classes / (num_classes - 1)),
                               rtol=1e-9)
    # Algorithm 1 fills a lower-triangular pattern: row i is zero beyond column i.
    assert np.all(np.triu(centers, k=1) == 0.0)
    assert max_cosine(centers) == pytest.approx(-1 / (num_classes - 1), abs=1e-12)


def test_mm_first_rows_match_algorithm1_by_hand() -> None:
    centers = ts_centers.mm_algorithm1(3, 2)
    expected = np.array([[1.0, 0.0], [-0.5, np.sqrt(0.75)], [-0.5, -np.sqrt(0.75)]])
    np.testing.assert_allclose(centers, expected, atol=1e-15)


def test_mm_above_simplex_uses_minmax(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ts_centers.builders"):
        centers = ts_centers.mm_centers(12, 3, seed=4)
    assert any("minmax" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
    np.testing.assert_array_equal(centers, ts_centers.minmax_centers(12, 3, seed=4))
    with pytest.raises(UsageError) as err:
        ts_centers.mm_algorithm1(12, 3)
    assert_one_line(err)


# --- min-max and random sets --------------------------------------------------------

def test_minmax_deterministic_unit_norm() -> None:
    first = ts_centers.minmax_centers(20, 4, seed=3, steps=300)
    again = ts_centers.minmax_centers(20, 4, seed=3, steps=300)
    other = ts_centers.minmax_centers(20, 4, seed=4, steps=300)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-12)


def test_minmax_reaches_simplex_bound() -> None:
    centers = get_centers("minmax", 10, 16, c_mm=1.0)
    assert max_cosine(centers) == pytest.approx(-1 / 9, abs=0.05)
    assert max_cosine(centers) >= -1 / 9 - 1e-12  # nothing beats the bound


@pytest.mark.parametrize("num_classes,feature_dim", [(30, 5), (100, 16)])
def test_minmax_beats_random_init(num_classes: int, feature_dim: int) -> None:
    init = ts_centers.random_centers(num_classes, feature_dim, seed=0)  # minmax's start
    centers = ts_centers.minmax_centers(num_classes, feature_dim, seed=0)
    assert max_cosine(centers) < max_cosine(init) - 0.1


def test_random_seeded_unit_norm() -> None:
    first = get_centers("random", 10, 64, c_mm=1.0, seed=7)
    np.testing.assert_array_equal(first, get_centers("random", 10, 64, c_mm=1.0, seed=7))
    assert not np.array_equal(first, get_centers("random", 10, 64, c_mm=1.0, seed=8))
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-12)
    scaled = get_centers("random", 10, 64, c_mm=10.0, seed=7)
    np.testing.assert_allclose(scaled, 10.0 * first, rtol=1e-15)


def test_registry_lists_sets() -> None:
    assert {"mm", "minmax", "random"} <= set(CENTER_SETS.names())
    assert CENTER_SETS.get("mm") is ts_centers.mm_centers


@pytest.mark.parametrize(
    "args",
    [
        ("nope", 10, 64, 10.0),
        ("mm", 1, 64, 10.0),
        ("mm", 10, 0, 10.0),
        ("mm", 10.5, 64, 10.0),
        ("mm", True, 64, 10.0),
        ("mm", 10, 64, 0.0),
        ("mm", 10, 64, -1.0),
        ("mm", 10, 64, float("nan")),
        ("mm", 10, 64, float("inf")),
        ("mm", 10, 64, "ten"),
    ],
)
def test_get_centers_bad_args(args: tuple) -> None:
    with pytest.raises(UsageError) as err:
        get_centers(*args)
    assert_one_line(err)


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(UsageError, match="minmax, mm, random"):
        get_centers("nope", 10, 64, 1.0)


# --- shipped files ------------------------------------------------------------------

@pytest.mark.parametrize("num_classes,feature_dim", ts_centers.SHIPPED_SIZES)
def test_shipped_files_bit_for_bit(num_classes: int, feature_dim: int) -> None:
    path = shipped_centers_path(num_classes, feature_dim)
    assert path is not None and path.name == mat_filename(num_classes, feature_dim)
    stored = scipy.io.loadmat(str(path))["mean_logits"]
    assert stored.dtype == np.float64
    assert np.array_equal(stored, ts_centers.mm_algorithm1(num_classes, feature_dim))
    assert np.array_equal(load_centers(path), ts_centers.mm_algorithm1(num_classes, feature_dim))


def test_shipped_path_missing_is_none() -> None:
    assert shipped_centers_path(7, 13) is None
    assert mat_filename(10, 64) == "meanvar1_featuredim64_class10.mat"


# --- file I/O -----------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mat", ".npy"])
def test_round_trip_and_scaling(tmp_path: pathlib.Path, suffix: str) -> None:
    unit = get_centers("random", 7, 5, c_mm=1.0, seed=1)
    path = save_centers(tmp_path / f"centers{suffix}", unit)
    assert np.array_equal(load_centers(path), unit)
    loaded = load_centers(path, c_mm=10.0)
    assert loaded.dtype == np.float64
    np.testing.assert_allclose(loaded, 10.0 * unit, rtol=1e-15)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"centers{suffix}"]  # no temp left


def test_mat_layout_matches_original(tmp_path: pathlib.Path) -> None:
    unit = ts_centers.mm_algorithm1(10, 64)
    path = save_centers(tmp_path / mat_filename(10, 64), unit)
    stored = scipy.io.loadmat(str(path))
    assert stored["mean_logits"].shape == (10, 64)


def test_truncated_files(tmp_path: pathlib.Path) -> None:
    unit = ts_centers.mm_algorithm1(10, 64)
    for suffix in (".mat", ".npy"):
        full = save_centers(tmp_path / f"full{suffix}", unit).read_bytes()
        for cut in (10, len(full) // 2, len(full) - 3):
            bad = tmp_path / f"cut{cut}{suffix}"
            bad.write_bytes(full[:cut])
            with pytest.raises(UsageError) as err:
                load_centers(bad)
            assert_one_line(err)


def test_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(UsageError, match="not found; expected") as err:
        load_centers(tmp_path / mat_filename(10, 64))
    assert_one_line(err)


def test_wrong_key_and_bad_arrays(tmp_path: pathlib.Path) -> None:
    scipy.io.savemat(str(tmp_path / "key.mat"), {"means": np.eye(3)})
    with pytest.raises(UsageError, match="no variable 'mean_logits'.*means"):
        load_centers(tmp_path / "key.mat")
    for name, array in [("flat", np.ones(4)), ("cube", np.ones((2, 2, 2))),
                        ("scaled", 10 * ts_centers.mm_algorithm1(3, 2)),
                        ("nan", np.full((3, 2), np.nan)), ("text", np.array([["a", "b"]]))]:
        np.save(tmp_path / f"{name}.npy", array)
        with pytest.raises(UsageError) as err:
            load_centers(tmp_path / f"{name}.npy")
        assert_one_line(err)
    scipy.io.savemat(str(tmp_path / "cube.mat"), {"mean_logits": np.ones((2, 2, 2))})
    with pytest.raises(UsageError, match="shape"):
        load_centers(tmp_path / "cube.mat")


def test_unknown_suffix_and_bad_c_mm(tmp_path: pathlib.Path) -> None:
    unit = ts_centers.mm_algorithm1(3, 2)
    with pytest.raises(UsageError, match="suffix"):
        save_centers(tmp_path / "centers.txt", unit)
    with pytest.raises(UsageError, match="suffix"):
        load_centers(tmp_path / "centers.h5")
    path = save_centers(tmp_path / "c.npy", unit)
    with pytest.raises(UsageError):
        load_centers(path, c_mm=-1.0)


def test_save_refuses_bad_centers_and_keeps_old_file(tmp_path: pathlib.Path) -> None:
    unit = ts_centers.mm_algorithm1(3, 2)
    path = save_centers(tmp_path / "c.mat", unit)
    before = path.read_bytes()
    with pytest.raises(UsageError, match="unit-norm"):
        save_centers(path, 10.0 * unit)
    with pytest.raises(UsageError, match="does not exist"):
        save_centers(tmp_path / "missing_dir" / "c.mat", unit)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.mat"]


# --- command line -------------------------------------------------------------------

def test_craft_main(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture) -> None:
    assert craft.main(["--num_classes=10", "--feature_dim=64", f"--out={tmp_path}"]) == 0
    written = tmp_path / mat_filename(10, 64)
    assert capsys.readouterr().out.strip() == str(written)
    assert np.array_equal(load_centers(written), ts_centers.mm_algorithm1(10, 64))
    assert craft.main(["--name=random", "--num_classes=4", "--feature_dim=3", "--seed=2",
                       f"--out={tmp_path}"]) == 0
    assert np.array_equal(load_centers(tmp_path / "random_seed2_featuredim3_class4.mat"),
                          ts_centers.random_centers(4, 3, seed=2))
    assert craft.main(["--num_classes=1", "--feature_dim=64", f"--out={tmp_path}"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_craft_module_runs(tmp_path: pathlib.Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "ts_centers.craft", "--num_classes=10", "--feature_dim=64",
         f"--out={tmp_path}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert np.array_equal(load_centers(tmp_path / mat_filename(10, 64)),
                          load_centers(shipped_centers_path(10, 64)))
