"""The sample-density math (utils/reporting/density.py) against known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from utils.errors import UsageError
from utils.reporting import density as dn


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_log_ball_volume_matches_scipy_and_closed_forms(d):
    r = np.array([0.5, 1.0, 2.5])
    expected = np.pi ** (d / 2) * r ** d / special.gamma(d / 2 + 1)
    np.testing.assert_allclose(np.exp(dn.log_ball_volume(d, r)), expected, rtol=1e-12)
    closed = {1: 2 * r, 2: np.pi * r ** 2, 3: 4 / 3 * np.pi * r ** 3}
    if d in closed:
        np.testing.assert_allclose(np.exp(dn.log_ball_volume(d, r)), closed[d], rtol=1e-12)


def test_log_ball_volume_is_finite_where_the_volume_overflows():
    log_v = dn.log_ball_volume(64, np.array([0.0, 1.0, 1e3]))
    assert log_v[0] == -np.inf and np.isfinite(log_v[1:]).all()
    assert log_v[2] - log_v[1] == pytest.approx(64 * math.log(1e3))  # V ∝ r^d
    assert log_v[1] == pytest.approx(32 * math.log(math.pi) - special.gammaln(33))
    for bad in ((0, 1.0), (2.5, 1.0), (3, -1.0), (3, np.inf)):
        with pytest.raises(UsageError):
            dn.log_ball_volume(*bad)


def test_counts_are_non_decreasing_and_reach_the_class_sizes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    z = rng.normal(size=(300, 8)) * (1 + y[:, None])  # class k spreads (k + 1) times wider
    profile = dn.density_profile(z, y, num_classes=4)
    counts = np.array(profile["counts"])
    assert np.all(np.diff(counts, axis=1) >= 0)
    np.testing.assert_array_equal(counts[:, -1], np.bincount(y, minlength=4))
    assert profile["class_sizes"] == np.bincount(y, minlength=4).tolist()
    assert profile["class_mean_spread"]["median_distance"] == profile["median_distance"]
    assert np.all(np.diff(profile["radii"]) >= 0) and profile["center"] == "class mean"
    # Wider classes are sparser at every radius where both have a point.
    dens = np.array([[np.nan if v is None else v for v in row] for row in profile["log_density"]])
    assert np.nanmean(dens[0] - dens[3]) > 0
    assert profile["median_distance_per_class"][0] < profile["median_distance_per_class"][3]


def test_gaussian_cloud_gives_the_chi_counts_and_log_density():
    d, n = 6, 20000
    rng = np.random.default_rng(1)
    centers = np.stack([np.zeros(d), np.full(d, 50.0)])
    y = np.repeat([0, 1], n // 2)
    z = centers[y] + rng.normal(size=(n, d))  # ||z - mu|| ~ chi(d)
    profile = dn.density_profile(z, y, centers=centers, quantiles=(0.25, 0.5, 1.0))
    radii = np.array(profile["radii"])
    expected = stats.chi(d).cdf(radii[:2]) * n / 2
    np.testing.assert_allclose(np.array(profile["counts"])[:, :2], [expected] * 2, rtol=0.05)
    assert profile["median_distance"] == pytest.approx(stats.chi(d).median(), rel=0.03)
    spread = profile["class_mean_spread"]
    assert spread["median_distance"] == pytest.approx(profile["median_distance"], rel=0.01)
    assert spread["ratio"] == pytest.approx(profile["median_distance"] / (50 * math.sqrt(d)),
                                            rel=0.02)
    assert profile["center"] == "head"
    assert profile["center_separation"] == pytest.approx(50 * math.sqrt(d))
    k0 = profile["counts"][0][1]
    assert profile["log_density"][0][1] == pytest.approx(
        math.log(k0) - math.log(np.pi ** (d / 2) * radii[1] ** d / special.gamma(d / 2 + 1)))
    # Scale-free: scaling every feature by 7 moves the radii, not the normalized density.
    scaled = dn.density_profile(7 * z, y, centers=7 * centers, quantiles=(0.25, 0.5, 1.0))
    np.testing.assert_allclose(scaled["radii"], 7 * radii)
    np.testing.assert_allclose(scaled["normalized_mean_log_density"],
                               profile["normalized_mean_log_density"])
    np.testing.assert_allclose(np.array(scaled["mean_log_density"]),
                               np.array(profile["mean_log_density"]) - d * math.log(7))


def test_empty_balls_are_none_and_bad_input_is_a_usage_error():
    z = np.array([[0.0, 0], [1, 0], [10, 0], [10, 2]])
    y = np.array([0, 0, 1, 1])
    profile = dn.density_profile(z, y, centers=np.array([[0.0, 0], [10, 0]]),
                                 quantiles=(0.25, 1.0))
    assert profile["counts"] == [[1, 2], [1, 2]]  # the two points on their centers
    assert profile["radii"][0] == 0.0 and profile["log_density"][0][0] is None
    for kwargs in (dict(z=z[:, :1].ravel(), y=y), dict(z=z, y=y[:3]),
                   dict(z=z, y=y, centers=np.zeros((2, 3))), dict(z=z, y=y, quantiles=(0.5, 0.2)),
                   dict(z=z, y=y, quantiles=(0.0, 1.0)), dict(z=z, y=y + 1, num_classes=2)):
        with pytest.raises(UsageError):
            dn.density_profile(**kwargs)
    # A class without features (small subsets): counted as 0, left out of the separation.
    lone = dn.density_profile(z, np.array([0, 0, 2, 2]), num_classes=3, quantiles=(1.0,))
    assert lone["class_sizes"] == [2, 0, 2] and lone["counts"] == [[2], [0], [2]]
    assert lone["log_density"][1] == [None] and lone["median_distance_per_class"][1] is None
    assert lone["center_separation"] == pytest.approx(np.hypot(9.5, 1))


def test_render_density_table_and_png():
    from utils.reporting.analyses_render import render_density, render_density_png

    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 30)
    z = rng.normal(size=(60, 3)) + 5 * y[:, None]
    models = [{"model": "SCE", "run_name": "r", "clean_accuracy": 0.5,
               "profile": dn.density_profile(z, y)},
              {"model": "MMC-10", "run_name": "m", "clean_accuracy": 0.75,
               "profile": dn.density_profile(z / 4, y, centers=np.eye(2, 3) * 4)}]
    payload = {"command": "scripts/analyses.py --which=sample_density", "arch": "ResNet-8",
               "dataset": "fashion_mnist", "epoch": 2, "n": 60, "models": models}
    md = render_density(payload, "sample_density.png")
    assert md.startswith("# Sample density") and "![sample density](sample_density.png)" in md
    p = models[0]["profile"]
    i = p["quantiles"].index(0.5)
    assert (f"| SCE | class mean | 3 | {p['median_distance']:.3g} | "
            f"{p['center_separation']:.3g} |") in md
    assert f"| {p['mean_log_density'][i]:.1f} | " in md and "| 50.0 |" in md
    assert md.count("| MMC-10 | ") == 3  # summary row + one row per class
    assert render_density_png(models).startswith(b"\x89PNG")
