"""The faster formulations in the calibration features give exactly the values of the straightforward ones."""

import cv2
import numpy as np
import pytest

from quality.analysis import ImagePlanes
from quality.backends import nss_math as nm
from quality.backends.nss import nss_features
from quality.calibration import features as F
from quality.calibration.runtime import SMALL_BATCH, KernelSVR, QuantileNormal
from tests.quality.conftest import textured

QS = [(50, 90, 99), (1, 99), (90,), (0, 100), (0, 25, 33.3, 50, 75, 100)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_percentiles_equal_numpy(dtype):
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(1, 40)) if trial % 2 else int(rng.integers(40, 5000))
        values = (rng.gamma(2.0, 3.0, n) * rng.choice([1e-3, 1.0, 1e3])).astype(dtype)
        if trial % 3 == 0:
            values = np.round(values)  # ties
        qs = QS[trial % len(QS)]
        assert F._fast_pct(values, qs) == [float(v) for v in np.percentile(values, qs)], (n, qs)
    with_nan = np.array([1.0, np.nan, 3.0], dtype)
    assert np.isnan(F._fast_pct(with_nan, (50,))[0])


def test_histogram_percentiles_of_integer_values_equal_numpy():
    rng = np.random.default_rng(1)
    for trial in range(200):
        n = int(rng.integers(1, 3000))
        values = np.clip(np.round(rng.normal(128, rng.uniform(1, 90), n)), 0, 255).astype(np.float32)
        hist = np.bincount(values.astype(np.uint8), minlength=256)
        qs = QS[trial % len(QS)]
        assert F._hist_pct(hist, qs, np.float32) == [float(v) for v in np.percentile(values, qs)]


def test_half_turns_equal_numpy_mod_on_cart_to_polar_angles():
    rng = np.random.default_rng(2)
    gx, gy = (rng.normal(0, 50, (300, 300)).round().astype(np.float32) for _ in range(2))
    _, ang = cv2.cartToPolar(gx, gy)
    pi, two_pi = np.float32(np.pi), np.float32(2 * np.pi)
    edges = np.float32([0, pi, two_pi, np.nextafter(pi, 0), np.nextafter(two_pi, 9)])
    for a in (ang, edges):
        assert np.array_equal(F._half_turns(a), np.mod(a, np.pi))


def _lbp_reference(y):
    c = y[1:-1, 1:-1]
    h, w = c.shape
    bits = [(y[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] >= c) for dy, dx in F._RING]
    ones = sum(b.astype(np.int32) for b in bits)
    transitions = sum((bits[i] != bits[(i + 1) % 8]).astype(np.int32) for i in range(8))
    hist = np.bincount(np.where(transitions <= 2, ones, 9).ravel(), minlength=10).astype(np.float64)
    return hist / hist.sum()


def test_lbp_by_lookup_table_equals_the_bit_count_definition():
    for seed in range(3):
        y = nm.luma(np.asarray(textured(seed=seed, size=97)))
        assert np.array_equal(F._lbp_histogram(y), _lbp_reference(y))


def test_features_are_the_same_with_and_without_shared_planes():
    rgb = np.ascontiguousarray(np.asarray(textured(seed=5, size=200)))
    nss = nss_features(rgb)
    assert isinstance(nss["planes"], ImagePlanes) and nss["planes"].rgb is rgb
    shared = F.extract(rgb, nss)
    alone = F.extract(rgb.copy())  # other pixels' object: nothing shared
    assert shared == alone
    assert F.extract(rgb, nss, planes=ImagePlanes(rgb)) == alone


def test_kernel_svr_small_batches_agree_with_blas_products():
    rng = np.random.default_rng(4)
    train = rng.normal(size=(300, 6))
    svr = KernelSVR(QuantileNormal.fit(train), rng.normal(size=(50, 6)), rng.normal(size=50), 0.3, 0.2)
    x = rng.normal(size=(3 * SMALL_BATCH, 6))
    batch = svr.predict(x)  # more rows than SMALL_BATCH: BLAS
    one_by_one = np.concatenate([svr.predict(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(one_by_one, batch, rtol=0, atol=1e-12)
    z = svr.transform(x)
    d2 = ((z[:, None, :] - svr.support[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_allclose(batch, np.exp(-svr.gamma * d2) @ svr.dual + svr.intercept, rtol=0, atol=1e-10)
