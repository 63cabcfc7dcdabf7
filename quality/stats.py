"""Agreement statistics used in image-quality research: SROCC, KROCC, PLCC after a 4-parameter logistic fit
(the VQEG convention), and percentile-bootstrap confidence intervals."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats


def srocc(pred: np.ndarray, mos: np.ndarray) -> float:
    return float(stats.spearmanr(pred, mos).statistic)


def krocc(pred: np.ndarray, mos: np.ndarray) -> float:
    return float(stats.kendalltau(pred, mos).statistic)


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``: monotone, bounded by b2 and b1."""
    return (b1 - b2) * special.expit((x - b3) / (abs(b4) + 1e-12)) + b2


def fit_logistic4(pred: np.ndarray, mos: np.ndarray) -> tuple[float, float, float, float] | None:
    """Least-squares fit of :func:`logistic4` mapping predictions onto MOS; None when it does not converge."""
    pred = np.asarray(pred, dtype=np.float64)
    mos = np.asarray(mos, dtype=np.float64)
    if np.ptp(pred) == 0:
        return None
    rising = stats.spearmanr(pred, mos).statistic >= 0
    hi, lo = (mos.max(), mos.min()) if rising else (mos.min(), mos.max())
    p0 = [hi, lo, float(np.median(pred)), float(np.std(pred)) or 1.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = optimize.curve_fit(logistic4, pred, mos, p0=p0, maxfev=20000, method="trf")
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return None
    if not np.all(np.isfinite(params)):
        return None
    return (float(params[0]), float(params[1]), float(params[2]), float(params[3]))


def plcc(pred: np.ndarray, mos: np.ndarray, *, fit: bool = True) -> float:
    """Pearson correlation of MOS with the logistic-mapped prediction (plain Pearson if the fit fails)."""
    pred = np.asarray(pred, dtype=np.float64)
    mapped = pred
    if fit:
        params = fit_logistic4(pred, mos)
        if params is not None:
            mapped = logistic4(pred, *params)
    if np.ptp(mapped) == 0:
        return float("nan")
    return float(stats.pearsonr(mapped, mos).statistic)


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float | None]:
        def clean(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 4)

        return {"value": clean(self.value), "ci_low": clean(self.low), "ci_high": clean(self.high)}


def bootstrap(
    stat: Callable[[np.ndarray, np.ndarray], float],
    pred: np.ndarray,
    mos: np.ndarray,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """Point estimate and a percentile-bootstrap interval (pairs resampled with replacement, fixed seed)."""
    pred = np.asarray(pred, dtype=np.float64)
    mos = np.asarray(mos, dtype=np.float64)
    value = stat(pred, mos)
    if resamples <= 0 or len(pred) < 3:
        return Estimate(value, float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    values = []
    n = len(pred)
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = stat(pred[idx], mos[idx])
        if math.isfinite(v):
            values.append(v)
    if not values:
        return Estimate(value, float("nan"), float("nan"))
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return Estimate(value, float(low), float(high))
