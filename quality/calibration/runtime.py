"""The calibration model at run time: plain numpy arrays, no scikit-learn.

A model is an ensemble of *members* per dimension. Each member reads the handcrafted features
(:mod:`.features`) plus the encoding of one patch codebook (:mod:`.patches`) and predicts the human mean opinion
score (MOS) of perceptual quality; a dimension's prediction is the mean of its members, mapped onto 0–10 by the
model's :class:`Scale`. Two member kinds:

* :class:`TreeEnsemble`: gradient-boosted regression trees (trained with scikit-learn's
  ``HistGradientBoostingRegressor``, exported as flat node arrays): ``x[feature] <= threshold`` goes left,
  NaN follows ``missing_left``; the prediction is ``baseline + Σ leaf values``.
* :class:`KernelSVR`: an RBF support-vector regressor on :class:`QuantileNormal`-transformed inputs.

Every array is stored in one ``.npz`` (no pickles) next to a JSON metadata string, so a model file reads the same
with any numpy version. :mod:`.model` reads and writes the file; :mod:`.fit` builds the members.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from quality.special import ndtri  # numpy only: scipy.special costs ~0.2 s to import

F64 = NDArray[np.float64]
Arrays = dict[str, NDArray[np.generic]]

#: inputs are clipped to these probabilities before the normal quantile function (so outliers stay finite)
QN_BOUND = 1e-7
#: rows transformed at once (bounds the (rows, levels, features) comparison temporaries)
QN_CHUNK = 64
#: up to this many rows, kernel products use numpy's loops instead of BLAS (see :meth:`KernelSVR.predict`)
SMALL_BATCH = 8


@dataclass(frozen=True)
class QuantileNormal:
    """Per-feature map onto a standard normal through the training quantiles (rank-Gauss).

    ``u = interp(x, quantiles, levels)`` (the mean of the left and right interpolations, so tied quantiles map to
    the middle of their levels), clipped to ``[QN_BOUND, 1 - QN_BOUND]``, then ``z = Φ⁻¹(u)``.
    """

    quantiles: F64
    """(levels, features), each column non-decreasing."""
    levels: F64
    """(levels,) from 0 to 1."""

    @classmethod
    def fit(cls, x: F64, levels: int = 200) -> QuantileNormal:
        refs = np.linspace(0.0, 1.0, min(levels, len(x)))
        q = np.percentile(x, refs * 100.0, axis=0)
        return cls(np.maximum.accumulate(q, axis=0), refs)

    def __call__(self, x: F64) -> F64:
        x = np.asarray(x, np.float64)
        out = np.empty(x.shape, dtype=np.float64)
        for start in range(0, len(x), QN_CHUNK):
            out[start : start + QN_CHUNK] = self._levels_of(x[start : start + QN_CHUNK])
        return np.asarray(ndtri(np.clip(out, QN_BOUND, 1.0 - QN_BOUND)), dtype=np.float64)

    def _levels_of(self, x: F64) -> F64:
        """Linear interpolation of the levels at ``x`` (all features at once), averaged over the last quantile
        <= x and the first quantile >= x so that a run of tied quantiles maps to the middle of its levels."""
        q, lv = self.quantiles, self.levels
        last = len(lv) - 1
        below_or_equal = (q[None, :, :] <= x[:, None, :]).sum(axis=1)  # quantiles <= x
        below = (q[None, :, :] < x[:, None, :]).sum(axis=1)  # quantiles < x
        cols = np.arange(q.shape[1])[None, :]

        def interp(lo: NDArray[np.intp]) -> F64:
            lo = np.clip(lo, 0, last - 1)
            q0, q1 = q[lo, cols], q[lo + 1, cols]
            width = q1 - q0
            frac = np.divide(x - q0, width, out=np.zeros_like(x), where=width > 0)
            return np.asarray(np.clip(lv[lo] + np.clip(frac, 0.0, 1.0) * (lv[lo + 1] - lv[lo]), 0.0, 1.0))

        u = 0.5 * (interp(below_or_equal - 1) + interp(below - 1))
        u = np.where(x >= q[last][None, :], 1.0, u)  # the extremes map to the ends, as in scikit-learn
        return np.where(x <= q[0][None, :], 0.0, u)


@dataclass(frozen=True)
class KernelSVR:
    transform: QuantileNormal
    support: F64
    """(support vectors, features) in the transformed space"""
    dual: F64
    intercept: float
    gamma: float

    @cached_property
    def _support_norms(self) -> F64:
        """Squared norms of the support vectors (the same for every prediction: computed once)."""
        return np.asarray((self.support * self.support).sum(axis=1), dtype=np.float64)

    def predict(self, x: F64) -> F64:
        """For a few rows (scoring images one at a time) the products are numpy's own loops rather than BLAS:
        a multi-threaded BLAS spends more CPU starting and spinning its threads than on these small products,
        CPU that a scorer running several images or metrics at once needs; many rows (fitting) go to BLAS. The
        two differ by float64 rounding only (about 1e-16 relative)."""
        z = self.transform(x)
        sv = self.support
        cross = np.einsum("ij,kj->ik", z, sv) if len(z) <= SMALL_BATCH else z @ sv.T
        d2 = (z * z).sum(axis=1)[:, None] + self._support_norms[None, :] - 2.0 * cross
        k = np.exp(-self.gamma * np.maximum(d2, 0.0))
        out = np.einsum("ik,k->i", k, self.dual) if len(z) <= SMALL_BATCH else k @ self.dual
        return np.asarray(out + self.intercept, dtype=np.float64)

    def arrays(self, prefix: str) -> Arrays:
        return {
            f"{prefix}.quantiles": self.transform.quantiles, f"{prefix}.levels": self.transform.levels,
            # float32 on file halves the model (the kernel's values change by < 1e-7 relative)
            f"{prefix}.support": self.support.astype(np.float32), f"{prefix}.dual": self.dual,
            f"{prefix}.scalars": np.array([self.intercept, self.gamma]),
        }  # fmt: skip

    @classmethod
    def from_arrays(cls, a: Arrays, prefix: str) -> KernelSVR:
        scalars = np.asarray(a[f"{prefix}.scalars"], np.float64)
        return cls(
            QuantileNormal(
                np.asarray(a[f"{prefix}.quantiles"], np.float64), np.asarray(a[f"{prefix}.levels"], np.float64)
            ),
            np.asarray(a[f"{prefix}.support"], np.float64),
            np.asarray(a[f"{prefix}.dual"], np.float64),
            float(scalars[0]),
            float(scalars[1]),
        )


@dataclass(frozen=True)
class TreeEnsemble:
    """Regression trees as flat arrays; node indices are global (every tree's nodes are concatenated)."""

    feature: NDArray[np.int32]
    threshold: F64
    left: NDArray[np.int32]
    right: NDArray[np.int32]
    is_leaf: NDArray[np.bool_]
    missing_left: NDArray[np.bool_]
    value: F64
    roots: NDArray[np.int32]
    baseline: float
    depth: int

    def predict(self, x: F64) -> F64:
        """Vectorised over samples and trees: every (sample, tree) walks one level per step."""
        x = np.asarray(x, np.float64)
        rows = np.arange(len(x))[:, None]
        nodes = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        for _ in range(self.depth):
            leaf = self.is_leaf[nodes]
            if leaf.all():
                break
            vals = x[rows, self.feature[nodes]]
            go_left = np.where(np.isnan(vals), self.missing_left[nodes], vals <= self.threshold[nodes])
            nodes = np.where(leaf, nodes, np.where(go_left, self.left[nodes], self.right[nodes]))
        return np.asarray(self.value[nodes].sum(axis=1) + self.baseline, dtype=np.float64)

    def arrays(self, prefix: str) -> Arrays:
        return {
            f"{prefix}.feature": self.feature, f"{prefix}.threshold": self.threshold, f"{prefix}.left": self.left,
            f"{prefix}.right": self.right, f"{prefix}.is_leaf": self.is_leaf,
            f"{prefix}.missing_left": self.missing_left, f"{prefix}.value": self.value,
            f"{prefix}.roots": self.roots, f"{prefix}.scalars": np.array([self.baseline, float(self.depth)]),
        }  # fmt: skip

    @classmethod
    def from_arrays(cls, a: Arrays, prefix: str) -> TreeEnsemble:
        scalars = np.asarray(a[f"{prefix}.scalars"], np.float64)
        return cls(
            np.asarray(a[f"{prefix}.feature"], np.int32),
            np.asarray(a[f"{prefix}.threshold"], np.float64),
            np.asarray(a[f"{prefix}.left"], np.int32),
            np.asarray(a[f"{prefix}.right"], np.int32),
            np.asarray(a[f"{prefix}.is_leaf"], np.bool_),
            np.asarray(a[f"{prefix}.missing_left"], np.bool_),
            np.asarray(a[f"{prefix}.value"], np.float64),
            np.asarray(a[f"{prefix}.roots"], np.int32),
            float(scalars[0]),
            int(scalars[1]),
        )


@dataclass(frozen=True)
class RobustScaler:
    """Per-feature ``asinh((x - centre) / spread)``: smooth and strictly increasing with no bound, so inputs beyond
    the training range (heavier damage than any seen) still move the prediction instead of saturating."""

    centre: F64
    spread: F64

    @classmethod
    def fit(cls, x: F64) -> RobustScaler:
        """Median and interquartile range / 1.349 per feature (the standard deviation where that range is 0, 1
        where both are)."""
        x = np.asarray(x, np.float64)
        centre = np.median(x, axis=0)
        q25, q75 = np.percentile(x, [25.0, 75.0], axis=0)
        spread = (q75 - q25) / 1.349
        sd = x.std(axis=0)
        spread = np.where(spread > 1e-9 * (1.0 + np.abs(centre)), spread, np.where(sd > 0, sd, 1.0))
        return cls(np.asarray(centre, np.float64), np.asarray(spread, np.float64))

    def __call__(self, x: F64) -> F64:
        return np.asarray(np.arcsinh((np.asarray(x, np.float64) - self.centre) / self.spread), np.float64)


@dataclass(frozen=True)
class PairwiseRanker:
    """A linear ranking function of the :class:`RobustScaler`-ed features and their squares, learned only from
    orderings (:func:`quality.calibration.fit.fit_ranker`: of two copies of one image, the less damaged ranks
    higher). ``predict`` gives ``(w · [z, z²] - offset) / unit``: 0 for the rated training images on average, one
    unit per standard deviation among them, and no bound in either direction, so heavier damage than any seen
    keeps lowering it where trees and kernels flatten out."""

    scaler: RobustScaler
    weights: F64
    """(2 · features,): the weights of ``z`` then of ``z²``"""
    offset: float
    unit: float

    def predict(self, x: F64) -> F64:
        z = self.scaler(np.atleast_2d(np.asarray(x, np.float64)))
        n = z.shape[1]
        return np.asarray((z @ self.weights[:n] + (z * z) @ self.weights[n:] - self.offset) / self.unit, np.float64)

    def arrays(self, prefix: str) -> Arrays:
        return {f"{prefix}.centre": self.scaler.centre, f"{prefix}.spread": self.scaler.spread,
                f"{prefix}.weights": self.weights, f"{prefix}.scalars": np.array([self.offset, self.unit])}  # fmt: skip

    @classmethod
    def from_arrays(cls, a: Arrays, prefix: str) -> PairwiseRanker:
        scalars = np.asarray(a[f"{prefix}.scalars"], np.float64)
        centre, spread = np.asarray(a[f"{prefix}.centre"], np.float64), np.asarray(a[f"{prefix}.spread"], np.float64)
        scaler = RobustScaler(centre, spread)
        return cls(scaler, np.asarray(a[f"{prefix}.weights"], np.float64), float(scalars[0]), float(scalars[1]))


Predictor = TreeEnsemble | KernelSVR | PairwiseRanker


@dataclass(frozen=True)
class Scale:
    """Predicted MOS → 0–10, piecewise linear through anchor points (clamped outside).

    The anchors come from the human scores of the images the model was fitted on: the grade boundaries of the
    composite contract (F < 3.0 ≤ D < 5.0 ≤ C < 6.5 ≤ B < 8.0 ≤ A) are placed at human-score percentiles, so a grade
    says where people would put the image: see :data:`quality.calibration.fit.SCALE_PERCENTILES`.
    """

    mos: tuple[float, ...]
    score: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mos) != len(self.score) or len(self.mos) < 2:
            raise ValueError("a scale needs as many MOS anchors as score anchors, at least two")
        if any(b <= a for a, b in zip(self.mos, self.mos[1:], strict=False)):
            raise ValueError(f"scale MOS anchors must increase strictly, got {self.mos}")

    def __call__(self, mos: F64 | float) -> F64:
        return np.asarray(np.interp(mos, self.mos, self.score), dtype=np.float64)
