"""Raw metric value → 0–10 score, driven only by the spec table in :mod:`quality.specs`."""

from __future__ import annotations

import math

from quality.errors import MetricError
from quality.specs import BandMap, LinearMap, MetricSpec


def _clamp01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def linear_score(mapping: LinearMap, raw: float) -> float:
    return 10.0 * _clamp01((raw - mapping.worst) / (mapping.best - mapping.worst))


def band_score(mapping: BandMap, raw: float) -> float:
    """10 inside the ideal band, linear in log10 down to 0 at the zero points (0 for raw <= 0)."""
    if raw <= 0.0:
        return 0.0
    x = math.log10(raw)
    if raw < mapping.ideal_low:
        lo, hi = math.log10(mapping.zero_low), math.log10(mapping.ideal_low)
        return 10.0 * _clamp01((x - lo) / (hi - lo))
    if raw > mapping.ideal_high:
        lo, hi = math.log10(mapping.ideal_high), math.log10(mapping.zero_high)
        return 10.0 * _clamp01((hi - x) / (hi - lo))
    return 10.0


def to_score(spec: MetricSpec, raw: float) -> float:
    """Map a raw value of ``spec`` onto 0–10. Raises :class:`MetricError` on NaN/inf (never a made-up value)."""
    if not math.isfinite(raw):
        raise MetricError(f"{spec.name} produced a non-finite value ({raw})", metric=spec.name)
    if isinstance(spec.mapping, LinearMap):
        return linear_score(spec.mapping, raw)
    return band_score(spec.mapping, raw)


def in_plausible_range(spec: MetricSpec, raw: float) -> bool:
    lo, hi = spec.plausible
    return lo <= raw <= hi
