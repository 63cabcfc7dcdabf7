"""Agreement statistics used in image-quality research: SROCC, KROCC, PLCC after a 4-parameter logistic fit
(the VQEG convention), and percentile-bootstrap confidence intervals."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Sequence
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


# -- agreement inside groups (the choice refinement makes between retries of one prompt and workflow) ---------------
def _group_indices(groups: Sequence[Hashable]) -> list[np.ndarray]:
    by: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        by.setdefault(g, []).append(i)
    return [np.asarray(v, dtype=np.intp) for v in by.values()]


def pair_accuracy(pred: np.ndarray, mos: np.ndarray, groups: Sequence[Hashable], *,
                  min_delta: float = 0.5) -> tuple[float, int]:  # fmt: skip
    """Share of the within-group pairs whose human scores differ by at least ``min_delta`` that ``pred`` orders
    as people did (a tie in ``pred`` counts one half), and the number of such pairs (``nan``, 0 when none).
    Non-finite predictions or scores are left out."""
    pred = np.asarray(pred, dtype=np.float64)
    mos = np.asarray(mos, dtype=np.float64)
    right = 0.0
    pairs = 0
    for idx in _group_indices(groups):
        idx = idx[np.isfinite(pred[idx]) & np.isfinite(mos[idx])]
        if len(idx) < 2:
            continue
        dm = mos[idx][:, None] - mos[idx][None, :]
        dp = pred[idx][:, None] - pred[idx][None, :]
        use = dm >= min_delta  # each unordered pair once (the better one first)
        pairs += int(use.sum())
        right += float((dp[use] > 0).sum()) + 0.5 * float((dp[use] == 0).sum())
    return (right / pairs if pairs else float("nan")), pairs


def selection_gain(pred: np.ndarray, mos: np.ndarray, groups: Sequence[Hashable]) -> tuple[float, int]:
    """How much of the best possible gain picking the top-scored image of each group achieves.

    Per group of at least two images with unequal human scores: the MOS of the image ``pred`` ranks first (the
    mean over tied first places) minus the group's mean MOS; summed over groups and divided by the same sum for
    the image people rated best (the oracle). 1.0: always the best image; 0.0: no better than a random pick;
    negative: worse. Returns the share and the number of groups (``nan``, 0 when none)."""
    pred = np.asarray(pred, dtype=np.float64)
    mos = np.asarray(mos, dtype=np.float64)
    gain = oracle = 0.0
    used = 0
    for idx in _group_indices(groups):
        idx = idx[np.isfinite(pred[idx]) & np.isfinite(mos[idx])]
        if len(idx) < 2 or np.ptp(mos[idx]) == 0:
            continue
        m, p = mos[idx], pred[idx]
        top = p == p.max()
        gain += float(m[top].mean() - m.mean())
        oracle += float(m.max() - m.mean())
        used += 1
    return (gain / oracle if oracle > 0 else float("nan")), used
