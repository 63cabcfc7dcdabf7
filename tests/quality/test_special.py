"""quality.special agrees with scipy.special (the reference) to a few units in the last place."""

from __future__ import annotations

import numpy as np
from scipy import special as sp

from quality.special import lgamma, ndtri


def test_ndtri_matches_scipy_over_the_whole_range():
    rng = np.random.default_rng(0)
    p = np.concatenate([
        rng.uniform(0, 1, 50_000),                      # central and near tails
        10.0 ** -rng.uniform(1, 300, 5_000),            # far lower tail (r > 5 branch)
        1 - 10.0 ** -rng.uniform(1, 15, 2_000),         # upper tail
        [0.5, 0.075, 0.925, 1e-7, 1 - 1e-7],            # branch boundaries, the calibration's clip bounds
    ])  # fmt: skip
    ours, ref = ndtri(p), sp.ndtri(p)
    assert np.all(np.isfinite(ours))
    assert np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-3)) < 1e-14
    assert np.all(np.diff(ndtri(np.linspace(1e-9, 1 - 1e-9, 10_001))) > 0)  # strictly increasing


def test_ndtri_edges_and_shapes():
    assert ndtri(0.0) == -np.inf and ndtri(1.0) == np.inf and ndtri(0.5) == 0.0
    assert np.isnan(ndtri([-0.1, 1.1, np.nan])).all()
    assert ndtri(np.full((3, 4), 0.975)).shape == (3, 4)
    assert ndtri(0.975) == np.float64(sp.ndtri(0.975)) or abs(ndtri(0.975) - 1.959963984540054) < 1e-15


def test_lgamma_matches_scipy_on_the_shape_grid():
    a = np.arange(0.2, 10.001, 0.001)  # the BRISQUE/NIQE shape grid
    for k in (1.0, 2.0, 3.0):
        x = k / a
        np.testing.assert_allclose(lgamma(x), sp.gammaln(x), rtol=1e-14, atol=1e-14)
    assert lgamma(np.ones((2, 2))).shape == (2, 2)
