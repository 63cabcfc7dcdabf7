import numpy as np
import pytest
from scipy import stats as sps

from quality.stats import bootstrap, fit_logistic4, krocc, logistic4, plcc, srocc


@pytest.fixture
def data():
    rng = np.random.default_rng(42)
    mos = rng.uniform(0, 5, 300)
    pred = np.tanh((mos - 2.5) / 1.5) * 3 + rng.normal(0, 0.4, 300)  # monotone, nonlinear, noisy
    return pred, mos


def test_rank_correlations_match_scipy(data):
    pred, mos = data
    assert srocc(pred, mos) == pytest.approx(sps.spearmanr(pred, mos)[0])
    assert krocc(pred, mos) == pytest.approx(sps.kendalltau(pred, mos)[0])
    assert srocc(-pred, mos) == pytest.approx(-srocc(pred, mos))


def test_plcc_after_logistic_fit_beats_plain_pearson_on_nonlinear_data(data):
    pred, mos = data
    raw = sps.pearsonr(pred, mos)[0]
    assert plcc(pred, mos, fit=False) == pytest.approx(raw)
    assert plcc(pred, mos) > raw


def test_logistic_fit_recovers_known_parameters():
    x = np.linspace(-5, 5, 200)
    y = logistic4(x, 4.0, 1.0, 0.5, 1.2)
    params = fit_logistic4(x, y)
    assert params is not None
    assert np.allclose(logistic4(x, *params), y, atol=1e-4)
    assert fit_logistic4(np.ones(10), np.arange(10.0)) is None  # constant predictions


def test_bootstrap_interval_contains_the_estimate_and_is_reproducible(data):
    pred, mos = data
    a = bootstrap(srocc, pred, mos, resamples=300, seed=1)
    b = bootstrap(srocc, pred, mos, resamples=300, seed=1)
    assert a == b
    assert a.low < a.value < a.high and a.high - a.low < 0.2
    half = bootstrap(srocc, pred[:40], mos[:40], resamples=300, seed=1)
    assert (half.high - half.low) > (a.high - a.low)  # fewer samples, wider interval
    d = a.as_dict()
    assert set(d) == {"value", "ci_low", "ci_high"}
