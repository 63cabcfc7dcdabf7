import math

import pytest

from quality.errors import ConfigError, MetricError
from quality.normalize import band_score, in_plausible_range, to_score
from quality.specs import DIMENSIONS, METRICS, BandMap, LinearMap, metric, metrics_of


def test_lower_is_better_metrics_map_best_to_10_and_worst_to_0():
    brisque = metric("brisque")
    assert to_score(brisque, brisque.mapping.best) == pytest.approx(10)
    assert to_score(brisque, brisque.mapping.worst) == pytest.approx(0)
    assert to_score(brisque, 20.0) > to_score(brisque, 40.0)


def test_real_ranges_are_not_squashed():
    # NIQE lives in ~2–20: a typical good value (3) must score high, a bad one (10) low. The original design's
    # 0–100 range would have given both ~9.7–9.9.
    niqe = metric("niqe")
    assert to_score(niqe, 3.0) > 9.0
    assert to_score(niqe, 10.0) < 2.5
    # BRISQUE beyond its nominal 0–100 clamps instead of failing; the raw value is kept by the scorer
    brisque = metric("brisque")
    assert to_score(brisque, -5.0) == 10.0
    assert to_score(brisque, 120.0) == 0.0
    assert in_plausible_range(brisque, 120.0) and not in_plausible_range(brisque, 400.0)


def test_band_penalises_both_sides():
    band = BandMap(zero_low=0.01, ideal_low=0.05, ideal_high=0.15, zero_high=0.5)
    assert band_score(band, 0.1) == 10
    assert band_score(band, 0.01) == 0 and band_score(band, 0.5) == 0
    assert 0 < band_score(band, 0.02) < 10 and 0 < band_score(band, 0.3) < 10
    assert band_score(band, 0.0) == 0
    # linear in log10: the geometric midpoint scores 5
    assert band_score(band, math.sqrt(0.01 * 0.05)) == pytest.approx(5)


def test_non_finite_values_raise_instead_of_being_invented():
    with pytest.raises(MetricError):
        to_score(metric("niqe"), float("nan"))
    with pytest.raises(MetricError):
        to_score(metric("brisque"), float("inf"))


def test_spec_table_is_consistent():
    assert {s.dimension for s in METRICS.values()} == set(DIMENSIONS)
    for spec in METRICS.values():
        lo, hi = spec.plausible
        if isinstance(spec.mapping, LinearMap):
            assert lo <= spec.mapping.worst <= hi and lo <= spec.mapping.best <= hi, spec.name
    assert [s.name for s in metrics_of("technical")] == ["brisque", "niqe"]
    assert metric("clip_score").needs_prompt


def test_unknown_metric_and_bad_maps_raise_config_errors():
    with pytest.raises(ConfigError, match="known metrics"):
        metric("psnr")
    with pytest.raises(ConfigError):
        LinearMap(worst=1, best=1)
    with pytest.raises(ConfigError):
        BandMap(zero_low=0.1, ideal_low=0.05, ideal_high=0.2, zero_high=0.3)
