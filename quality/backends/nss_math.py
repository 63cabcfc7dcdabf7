"""Numerical building blocks of BRISQUE and NIQE (natural scene statistics), in numpy + OpenCV.

Everything here is written to give the values of the reference implementation the project calibrates against
(pyiqa 0.1.16 with the LIVE parameters), which fixes a few choices that are not the "textbook" ones:

* **luma** is the Y of YIQ (0.299, 0.587, 0.114) of the RGB values scaled to [0, 1] in float32, times 255,
  rounded half-to-even. The float32 products are summed R, then G, then B; this reproduces the reference's
  rounding of ties (about 0.1 % of colours sit on a .5 boundary) for all 2²⁴ colours where its matmul does
  not fuse multiply-adds (MKL with ``MKL_CBWR=COMPATIBLE``; the fused AVX2/AVX-512 paths round 1869 of the
  16782 ties the other way). Off the ties every colour gets the exactly rounded luma either way.
* **MSCN** (mean-subtracted, contrast-normalised coefficients): ``(y - mu) / (sigma + 1)`` with ``mu``
  and ``sigma`` from a 7×7 Gaussian window (sigma 7/6, MATLAB ``fspecial``, stored as float32),
  ``sigma = sqrt(|E[y²] - mu²| + eps)``. BRISQUE computes it in float32 with zero padding, NIQE in float64
  with edge replication. In float32, ``E[y²] - mu²`` of a smooth bright window is mostly rounding
  (y² ≈ 65000 has a float32 step of 0.004), which moves BRISQUE's features by about 1 % on smooth images, so
  the window sums must be rounded exactly like the reference's: OpenCV's direct ``filter2D`` accumulates the
  49 products in the same order with fused multiply-adds, so the local mean and ``E[y²]`` maps are
  bit-identical to the reference's (the tests check this); the final map agrees to 1 ulp (torch's float32
  ``sqrt`` is not correctly rounded, numpy's is).
* **downscaling** by 2 is MATLAB ``imresize(x, 0.5)`` (antialiased bicubic, a = -0.5): an 8-tap filter
  ``[-3, -9, 29, 111, 111, 29, -9, -3] / 256`` at stride 2 with symmetric (edge-repeating) padding, output
  size ``ceil(n / 2)``, computed in float32 with the taps summed in the reference's order (bit-identical).
* **GGD / AGGD fits** pick the shape parameter on the grid 0.2, 0.201, …, 10 (float32 values) whose moment
  ratio is nearest to the sample's (the first one on ties; index 0 when the ratio is NaN). BRISQUE compares in
  float32 against tables rounded exactly as the reference's (shipped data, see :mod:`.nss_tables`); NIQE in
  float64, where the ratio is monotone, so its hundreds of block fits are one vectorised ``searchsorted``.

The statistics of the four neighbour products (horizontal, vertical and the two diagonals) wrap around: over
the whole image for BRISQUE, inside each block for NIQE.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from quality.backends.nss_tables import load_shipped
from quality.special import lgamma as gammaln  # numpy only: scipy.special costs ~0.2 s to import

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
Floats = NDArray[np.floating] | np.floating

YIQ_Y = (0.299, 0.587, 0.114)
WINDOW_SIZE = 7
WINDOW_SIGMA = 7.0 / 6.0
#: antialiased bicubic taps for a factor-2 reduction (exact in binary floating point)
HALF_TAPS = np.array([-3, -9, 29, 111, 111, 29, -9, -3], dtype=np.float64) / 256.0
EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


# ----------------------------------------------------------------------------------------------------
# luma
# ----------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _luma_lut() -> F32:
    """Per channel and 8-bit value: float32(v / 255) * float32(weight), rounded to float32."""
    scaled = np.arange(256, dtype=np.float32) / np.float32(255.0)
    return np.stack([scaled * np.float32(w) for w in YIQ_Y], axis=-1).reshape(256, 1, 3)


def luma(rgb: NDArray[np.uint8]) -> F32:
    """Rounded YIQ luma in 0..255 (float32, integer values) of an ``(H, W, 3)`` uint8 image.

    Per-channel products come from a table; ``cv2.transform`` with unit weights then adds them in float32 as
    ``(r + g) + b`` (products by 1 are exact), the same rounding as the reference's float32 matrix product.
    """
    y = np.asarray(cv2.transform(cv2.LUT(rgb, _luma_lut()), np.ones((1, 3), np.float32)), dtype=np.float32)
    y *= np.float32(255.0)
    return np.round(y, out=y)


# ----------------------------------------------------------------------------------------------------
# Gaussian window and MSCN
# ----------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def window() -> F32:
    """The 7×7 Gaussian window (MATLAB ``fspecial('gaussian', 7, 7/6)``), float32 like the reference's."""
    half = (WINDOW_SIZE - 1) / 2
    x = np.arange(-half, half + 1)
    grid = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2.0 * WINDOW_SIGMA**2))
    return (grid / grid.sum()).astype(np.float32)


def _mscn(y: NDArray[np.floating], border: int, eps: float) -> NDArray[np.floating]:
    kernel = window().astype(y.dtype)
    depth = cv2.CV_32F if y.dtype == np.float32 else cv2.CV_64F
    mu = cv2.filter2D(y, depth, kernel, borderType=border)
    ex2 = cv2.filter2D(y * y, depth, kernel, borderType=border)
    sigma = np.multiply(mu, mu)
    cv2.absdiff(ex2, sigma, dst=sigma)  # |E[y²] - mu²|, one rounding like the reference
    sigma += y.dtype.type(eps)
    np.sqrt(sigma, out=sigma)
    sigma += y.dtype.type(1.0)
    out = np.subtract(y, mu, out=mu)
    out /= sigma
    return out


def mscn_brisque(y: F32) -> F32:
    """Float32 MSCN with zero padding (BRISQUE)."""
    return np.asarray(_mscn(y, cv2.BORDER_CONSTANT, EPS32), dtype=np.float32)


def mscn_niqe(y: F64) -> F64:
    """Float64 MSCN with edge replication (NIQE)."""
    return np.asarray(_mscn(y, cv2.BORDER_REPLICATE, EPS64), dtype=np.float64)


# ----------------------------------------------------------------------------------------------------
# MATLAB imresize(x, 0.5), antialiased bicubic
# ----------------------------------------------------------------------------------------------------
#: the reference sums the taps of an output in order, except for the last ``size % 32`` outputs of each pass
#: (in its row-major layout), which torch's float32 reduction (AVX2 build) adds with four interleaved
#: accumulators: ((a0 + a1) + a2) + a3 with a_j = the taps j, j + 4, j + 8 of the 10-tap window
REDUCTION_CHUNK = 32
_TAIL_PAIRS = ((3, 7), (0, 4), (1, 5), (2, 6))  # our 8 taps are the reference's taps 1..8


def _half_axis0(x: F32) -> F32:
    """Halve axis 0 (the row pass; the reference's layout of its output is row-major ``(m, width)``)."""
    n, width = x.shape
    m = (n + 1) // 2
    padded = np.pad(x, ((4, 2 * m + 3 - n), (0, 0)), mode="symmetric")
    taps = HALF_TAPS.astype(np.float32)
    # padded row 2i + 1 + k carries tap k of output row i (k = 0..7)
    out = padded[1 : 1 + 2 * m : 2] * taps[0]
    term = np.empty_like(out)  # one buffer for every tap's products (same roundings as ``out += a * t``)
    for k in range(1, 8):
        out += np.multiply(padded[1 + k : 1 + k + 2 * m : 2], taps[k], out=term)
    tail = out.size % REDUCTION_CHUNK
    if tail:
        i, j = np.divmod(np.arange(out.size - tail, out.size), width)
        terms = padded[2 * i[:, None] + 1 + np.arange(8)[None, :], j[:, None]] * taps
        pairs = [terms[:, a] + terms[:, b] for a, b in _TAIL_PAIRS]
        out[i, j] = ((pairs[0] + pairs[1]) + pairs[2]) + pairs[3]
    return out


def _half_axis1(x: F32) -> F32:
    """Halve axis 1 in place of transposing, halving axis 0 and transposing back: the same products and sums (the
    reference's layout of this pass is ``x``'s own row-major order, so its tail is the last outputs of ``out``)."""
    n = x.shape[1]
    m = (n + 1) // 2
    padded = np.pad(x, ((0, 0), (4, 2 * m + 3 - n)), mode="symmetric")
    taps = HALF_TAPS.astype(np.float32)
    out = padded[:, 1 : 1 + 2 * m : 2] * taps[0]
    term = np.empty_like(out)
    for k in range(1, 8):
        out += np.multiply(padded[:, 1 + k : 1 + k + 2 * m : 2], taps[k], out=term)
    tail = out.size % REDUCTION_CHUNK
    if tail:
        r, i = np.divmod(np.arange(out.size - tail, out.size), m)
        terms = padded[r[:, None], 2 * i[:, None] + 1 + np.arange(8)[None, :]] * taps
        pairs = [terms[:, a] + terms[:, b] for a, b in _TAIL_PAIRS]
        out[r, i] = ((pairs[0] + pairs[1]) + pairs[2]) + pairs[3]
    return out


def half(x: F32) -> F32:
    """MATLAB ``imresize(x, 0.5)`` (bicubic, antialiased), float32; rows first, then columns."""
    return _half_axis1(_half_axis0(x))


# ----------------------------------------------------------------------------------------------------
# moment-ratio tables and nearest-grid search
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tables:
    """Functions of the shape parameter on the grid 0.2, 0.201, …, 10 (see :mod:`.nss_tables`)."""

    grid32: F32
    grid64: F64
    ggd32: F32
    """GGD ratio Γ(1/a)Γ(3/a)/Γ(2/a)², decreasing in a (float32, as the reference rounds it)."""
    aggd32: F32
    """AGGD ratio Γ(2/a)²/(Γ(1/a)Γ(3/a)), increasing in a (float32, as the reference rounds it)."""
    eta32: F32
    """BRISQUE's AGGD mean factor Γ(2/a)/sqrt(Γ(1/a)Γ(3/a)) (float32)."""
    aggd64: F64
    """The AGGD ratio in float64 (NIQE)."""
    mean64: F64
    """NIQE's AGGD mean factor Γ(2/a)/Γ(1/a)."""
    beta64: F64
    """AGGD scale factor sqrt(Γ(1/a)/Γ(3/a))."""


@lru_cache(maxsize=1)
def tables() -> Tables:
    shipped = load_shipped()
    a = shipped["grid"].astype(np.float64)
    l1, l2, l3 = gammaln(1.0 / a), gammaln(2.0 / a), gammaln(3.0 / a)
    return Tables(
        grid32=shipped["grid"],
        grid64=a,
        ggd32=shipped["ggd"],
        aggd32=shipped["aggd"],
        eta32=shipped["eta"],
        aggd64=np.exp(2.0 * l2 - (l1 + l3)),
        mean64=np.exp(l2 - l1),
        beta64=np.sqrt(np.exp(l1 - l3)),
    )


def nearest_increasing(table: NDArray[np.floating], values: Floats) -> NDArray[np.intp]:
    """Index of the entry of an increasing ``table`` nearest to each value (lower index on ties; 0 for NaN
    and ±inf, where every distance is NaN or infinite).

    Same result as ``argmin(|values[:, None] - table|)`` computed in the table's dtype, without the
    ``len(values) × len(table)`` temporary.
    """
    vals = np.asarray(values, dtype=table.dtype)
    hi = np.clip(np.searchsorted(table, vals, side="left"), 1, len(table) - 1)
    lo = hi - 1
    d_lo = np.abs(vals - table[lo])
    d_hi = np.abs(vals - table[hi])
    idx = np.where(d_hi < d_lo, hi, lo)
    return np.where(np.isfinite(vals), idx, 0)


# ----------------------------------------------------------------------------------------------------
# GGD / AGGD statistics
# ----------------------------------------------------------------------------------------------------
#: neighbour offsets (dy, dx): horizontal, vertical, main diagonal, anti-diagonal (the feature order)
NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))


_SEGMENTS: dict[int, tuple[tuple[slice, slice], ...]] = {
    # offset d -> (target, source) slice pairs covering an axis with wrap-around: target[i] = source[i - d]
    0: ((slice(None), slice(None)),),
    1: ((slice(1, None), slice(None, -1)), (slice(0, 1), slice(-1, None))),
    -1: ((slice(None, -1), slice(1, None)), (slice(-1, None), slice(0, 1))),
}


def wrapped_product(m: NDArray[np.floating], dy: int, dx: int,
                    out: NDArray[np.floating] | None = None) -> NDArray[np.floating]:
    """``m * np.roll(m, (dy, dx), axis=(-2, -1))`` for offsets in {-1, 0, 1}, without the rolled copy (written
    into ``out`` when given: a buffer of ``m``'s shape and dtype, reused between calls)."""
    out = np.empty_like(m) if out is None else out
    for rows_t, rows_s in _SEGMENTS[dy]:
        for cols_t, cols_s in _SEGMENTS[dx]:
            np.multiply(m[..., rows_t, cols_t], m[..., rows_s, cols_s], out=out[..., rows_t, cols_t])
    return out


@dataclass(frozen=True)
class SidedSums:
    """The sums an AGGD fit needs, for one map (scalars) or for each tile of a stack (arrays)."""

    size: int
    n_left: NDArray[np.float64]
    """number of negative samples"""
    n_right: NDArray[np.float64]
    """number of positive samples"""
    sq_left: NDArray[np.float64]
    """sum of squares of the negative samples"""
    sq_right: NDArray[np.float64]
    abs_sum: NDArray[np.float64]

    @classmethod
    def of_map(cls, p: NDArray[np.floating], scratch: tuple[NDArray[np.floating], NDArray[np.floating]] | None = None
               ) -> SidedSums:  # fmt: skip
        """Sums over a whole 2-D map (OpenCV reductions, accumulated in float64). ``scratch``: two buffers of
        ``p``'s shape and dtype for the negative and positive parts, reused between calls."""
        neg_buf, pos_buf = scratch if scratch is not None else (np.empty_like(p), np.empty_like(p))
        # a scalar is fine for one channel; older OpenCV stubs do not say so, newer ones do (cast: both type-check)
        neg = cast(Any, cv2.min)(p, 0.0, dst=neg_buf)
        pos = cv2.threshold(p, 0, 0, cv2.THRESH_TOZERO, dst=pos_buf)[1]
        one = np.ones((), np.float64)
        return cls(
            size=int(p.size),
            n_left=one * cv2.countNonZero(neg),
            n_right=one * cv2.countNonZero(pos),
            sq_left=one * cv2.norm(neg, cv2.NORM_L2SQR),
            sq_right=one * cv2.norm(pos, cv2.NORM_L2SQR),
            abs_sum=one * cv2.norm(p, cv2.NORM_L1),
        )

    @classmethod
    def of_tiles(cls, p: NDArray[np.floating]) -> SidedSums:
        """Sums over each tile of a ``(tiles, h, w)`` stack."""
        return _TileSums(p.shape).sums(p)


class _TileSums:
    """:meth:`SidedSums.of_tiles` with scratch buffers kept between calls (one instance per thread and shape):
    fresh temporaries of this size cost more in page faults than the arithmetic itself.

    Counts come from byte masks summed in int32 (exact: a tile has far fewer than 2³¹ samples); the negative
    and positive parts are ``min(p, 0)`` and ``max(p, 0)`` (NaN stays NaN in both), the same values as
    ``p - min(p, 0)``, so the sums are those of the straightforward formulation."""

    def __init__(self, shape: tuple[int, ...], dtype: type[np.floating] = np.float64) -> None:
        flat = (shape[0], int(np.prod(shape[1:])))
        self.neg = np.empty(flat, dtype)
        self.pos = np.empty(flat, dtype)
        self.mask = np.empty(flat, np.bool_)

    def sums(self, p: NDArray[np.floating]) -> SidedSums:
        flat = p.reshape(p.shape[0], -1)
        neg = np.minimum(flat, 0, out=self.neg)
        pos = np.maximum(flat, 0, out=self.pos)
        mask = np.less(flat, 0, out=self.mask)
        n_left = mask.view(np.uint8).sum(axis=1, dtype=np.int32)
        np.greater(flat, 0, out=mask)
        n_right = mask.view(np.uint8).sum(axis=1, dtype=np.int32)
        return SidedSums(
            size=int(flat.shape[1]),
            n_left=n_left.astype(np.float64),
            n_right=n_right.astype(np.float64),
            sq_left=np.einsum("ij,ij->i", neg, neg),
            sq_right=np.einsum("ij,ij->i", pos, pos),
            abs_sum=pos.sum(axis=1) - neg.sum(axis=1),
        )


def _aggd_ratio(left_std: Floats, right_std: Floats, rhat: Floats) -> Floats:
    g = left_std / right_std
    return (rhat * (g**3 + 1) * (g + 1)) / (g**2 + 1) ** 2


def brisque_scale_features(m: F32) -> F32:
    """The 18 BRISQUE features of one scale from its float32 MSCN map (arithmetic in float32, like the
    reference): GGD shape and variance, then per neighbour AGGD shape, mean, left and right variance."""
    t = tables()
    f32 = np.float32
    n = f32(m.size)
    sq_mean = f32(cv2.norm(m, cv2.NORM_L2SQR)) / n
    abs_mean = f32(cv2.norm(m, cv2.NORM_L1)) / n
    sigma = np.sqrt(sq_mean)
    rho = sq_mean / abs_mean**2
    alpha = t.grid32[int(np.argmin(np.abs(rho - t.ggd32)))]
    feats = [alpha, sigma * sigma]
    product, scratch = np.empty_like(m), (np.empty_like(m), np.empty_like(m))
    for dy, dx in NEIGHBOURS:
        s = SidedSums.of_map(wrapped_product(m, dy, dx, out=product), scratch)
        left = np.sqrt(f32(s.sq_left) / f32(s.n_left))
        right = np.sqrt(f32(s.sq_right) / f32(s.n_right))
        rhat = (f32(s.abs_sum) / n) ** 2 / ((f32(s.sq_left + s.sq_right)) / n)
        idx = int(np.argmin(np.abs(t.aggd32 - _aggd_ratio(left, right, rhat))))
        eta = (right - left) * t.eta32[idx]
        feats.extend((t.grid32[idx], eta, left * left, right * right))
    return np.array(feats, dtype=np.float32)


def _aggd_fit64(s: SidedSums) -> tuple[F64, F64, F64, NDArray[np.intp]]:
    """Vectorised AGGD fit (float64): shape, left scale, right scale, grid index."""
    t = tables()
    with np.errstate(divide="ignore", invalid="ignore"):  # a block with no negative (positive) values: NaN scale
        left = np.sqrt(s.sq_left / s.n_left)
        right = np.sqrt(s.sq_right / s.n_right)
        rhat = (s.abs_sum / s.size) ** 2 / ((s.sq_left + s.sq_right) / s.size)
    idx = nearest_increasing(t.aggd64, _aggd_ratio(left, right, rhat))
    return t.grid64[idx], left * t.beta64[idx], right * t.beta64[idx], idx


def _concat(parts: list[SidedSums]) -> SidedSums:
    return SidedSums(
        size=parts[0].size,
        n_left=np.concatenate([s.n_left for s in parts]),
        n_right=np.concatenate([s.n_right for s in parts]),
        sq_left=np.concatenate([s.sq_left for s in parts]),
        sq_right=np.concatenate([s.sq_right for s in parts]),
        abs_sum=np.concatenate([s.abs_sum for s in parts]),
    )


def niqe_block_features(m: F64, block: int) -> F64:
    """The 18 NIQE features of every ``block × block`` tile of a float64 MSCN map whose sides are multiples of
    ``block``, row by row; shape ``(tiles, 18)``, NaN where a fit is undefined (e.g. a tile with no negative
    values). The sums are taken one strip of tiles at a time in reused buffers (the temporaries stay in cache);
    the fits, elementwise, are done once for all tiles."""
    cols = m.shape[1] // block
    tiles = np.empty((cols, block, block), m.dtype)
    product = np.empty_like(tiles)
    work = _TileSums(tiles.shape, m.dtype.type)
    sums: list[list[SidedSums]] = [[] for _ in range(1 + len(NEIGHBOURS))]
    for r in range(0, m.shape[0], block):
        np.copyto(tiles, m[r : r + block].reshape(block, cols, block).transpose(1, 0, 2))
        sums[0].append(work.sums(tiles))
        for k, (dy, dx) in enumerate(NEIGHBOURS, start=1):
            sums[k].append(work.sums(wrapped_product(tiles, dy, dx, out=product)))
    t = tables()
    alpha, beta_l, beta_r, _ = _aggd_fit64(_concat(sums[0]))
    feats = [alpha, (beta_l + beta_r) / 2]
    for per_strip in sums[1:]:
        alpha, beta_l, beta_r, idx = _aggd_fit64(_concat(per_strip))
        feats.extend((alpha, (beta_r - beta_l) * t.mean64[idx], beta_l, beta_r))
    return np.stack(feats, axis=1)
