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


def test_pair_accuracy_counts_within_group_pairs_with_a_large_enough_gap():
    from quality.stats import pair_accuracy

    mos = np.array([1.0, 2.0, 3.0, 1.0, 1.2, 4.0])
    groups = ["a", "a", "a", "b", "b", "c"]
    # group a: 3 pairs (gaps 1, 1, 2), b: gap 0.2 < 0.5 (left out), c: a single image
    perfect = mos.copy()
    assert pair_accuracy(perfect, mos, groups) == (1.0, 3)
    assert pair_accuracy(-perfect, mos, groups) == (0.0, 3)
    one_wrong = np.array([2.5, 2.0, 3.0, 0.0, 0.0, 0.0])  # orders (1,2) wrongly, (1,3), (2,3) rightly
    assert pair_accuracy(one_wrong, mos, groups) == pytest.approx((2 / 3, 3))
    tie = np.array([2.0, 2.0, 3.0, 0.0, 0.0, 0.0])  # a tie counts one half
    assert pair_accuracy(tie, mos, groups) == pytest.approx((2.5 / 3, 3))
    # pairs across groups never count: one group per image leaves nothing
    acc, pairs = pair_accuracy(perfect, mos, list("abcdef"))
    assert pairs == 0 and np.isnan(acc)
    assert pair_accuracy(perfect, mos, groups, min_delta=1.5) == (1.0, 1)


def test_selection_gain_is_the_share_of_the_oracles_gain():
    from quality.stats import selection_gain

    mos = np.array([1.0, 2.0, 3.0, 0.0, 4.0])
    groups = ["a", "a", "a", "b", "b"]
    # oracle gains: a: 3 - 2 = 1, b: 4 - 2 = 2 (total 3)
    assert selection_gain(mos, mos, groups) == (1.0, 2)
    assert selection_gain(-mos, mos, groups) == (pytest.approx(-1.0), 2)
    picks_middle_in_a = np.array([0.0, 9.0, 1.0, 0.0, 1.0])  # a: 2 - 2 = 0; b: best
    assert selection_gain(picks_middle_in_a, mos, groups) == (pytest.approx(2 / 3), 2)
    all_tied = np.zeros(5)  # a tied top pick is the group's mean: no gain
    assert selection_gain(all_tied, mos, groups) == (pytest.approx(0.0), 2)
    gain, n = selection_gain(mos, np.ones(5), groups)  # people rated every image alike: nothing to gain
    assert n == 0 and np.isnan(gain)
