"""Calibration features: cheap, weight-free image statistics that the calibration model maps to scores.

All features are computed on the *working image*: the image downscaled so that its long side is at most
:data:`WORKING_SIDE` (512 px, the size people rated in AGIQA-3K; see :meth:`PreparedImage.fit`), so a 2048-px
image and its 512-px version give comparable numbers. Groups:

* ``nss``: the BRISQUE and NIQE scores and their 36 + 36 features (reused from the NSS backend when it scored
  the same pixels), BRISQUE features at a third (quarter) scale, and the spread over 96-px blocks of the
  local NIQE statistics (local quality, local contrast);
* ``sharp``: Laplacian energy, gradient percentiles, the spread of local sharpness over 32-px blocks, detail
  lost by 2×/4× down-up sampling, the radial power spectrum's slope, high-frequency shares and band levels,
  overshoot (halos) across strong edges;
* ``noise``: Immerkær noise estimate (luma, chroma), noise in flat areas, 8×8 blockiness;
* ``tone``/``colour``: contrast, clipping, histogram entropy, Lab statistics, colourfulness, saturation,
  hue entropy, colour count; the 8-bit levels left empty (digital gain) and the histogram's comb;
* ``texture``: Canny densities at three thresholds, local-binary-pattern histogram, gradient-orientation
  entropy;
* ``encode``: what re-encoding the image costs: the bits per pixel of a JPEG encode at three qualities (RGB) and
  at one (luma), and the luma error of that encode. Fine detail costs bits, so blur, resolution loss and
  lossy compression lower the sizes step by step (noise and halos raise them).

Every function here is deterministic numpy/OpenCV; :func:`extract` returns a name → value mapping in a fixed
order (:func:`feature_names`).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from quality.analysis import ImagePlanes
from quality.analysis import sobel as sobel  # re-exported: the gradients every group shares
from quality.backends import nss_math as nm
from quality.backends.nss import NSSParams, nss_features, packaged_params

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
Features = dict[str, float]

WORKING_SIDE = 512
BLOCK = 32
#: /2: block_h and block_v are measured on the image as decoded when the features are of a reduced copy (the same
#: values as /1 for images at or under the working size, every AGIQA-3K image among them); /3: adds the spectrum's
#: band levels (``spec_band*``), the edge halo measure (``halo``) and the 8-bit level gaps and comb
#: (``level_gaps``, ``level_comb``, on the image as decoded); /4: adds the re-encoding group (:func:`encode_group`)
FEATURES_VERSION = "calib-features/4"
_LOG_EPS = 1e-6


def _pct(values: NDArray[Any], qs: tuple[float, ...]) -> list[float]:
    if values.size == 0:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.percentile(values, qs)]


def _linear_percentiles(n: int, qs: tuple[float, ...], order_stat: Callable[[list[int]], NDArray[Any]]) -> list[float]:
    """``np.percentile(values, qs)`` (method "linear") of ``n`` values from their order statistics: the same
    virtual indices, bounds and interpolation arithmetic as numpy's, so the results are identical (a test
    compares them). ``order_stat(ks)`` returns the ``k``-th smallest values (0-based) in the values' dtype."""
    virtual = (n - 1) * np.true_divide(qs, 100)
    prev = np.floor(virtual)
    nxt = prev + 1
    prev[virtual >= n - 1] = n - 1
    nxt[virtual >= n - 1] = n - 1
    gamma = virtual - np.floor(virtual)
    gamma[virtual >= n - 1] = virtual[virtual >= n - 1] - (n - 1)
    ks = sorted({int(k) for k in prev} | {int(k) for k in nxt})
    stats = dict(zip(ks, order_stat(ks), strict=True))
    a = np.array([stats[int(k)] for k in prev])
    b = np.array([stats[int(k)] for k in nxt])
    diff = b - a
    out = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5, casting="unsafe", dtype=out.dtype)
    return [float(v) for v in out]


def _fast_pct(values: NDArray[np.floating], qs: tuple[float, ...]) -> list[float]:
    """:func:`_pct` of a large float array without NaN, by in-place partitions of one copy (numpy's percentile
    partitions for all its indices at once, several times slower); NaN input goes to :func:`_pct`."""
    flat = np.array(values, copy=True).ravel()
    if flat.size == 0 or np.isnan(flat).any():
        return _pct(values, qs)

    def order_stat(ks: list[int]) -> NDArray[Any]:
        out = np.empty(len(ks), flat.dtype)
        hi = flat.size
        for i in range(len(ks) - 1, -1, -1):  # largest first; each partition leaves the smaller ones to its left
            k = ks[i]
            flat[:hi].partition(k)
            out[i] = flat[k]
            hi = k if k > 0 else 1
        return out

    return _linear_percentiles(flat.size, qs, order_stat)


def _hist_pct(hist: NDArray[np.integer], qs: tuple[float, ...], dtype: type[np.floating]) -> list[float]:
    """:func:`_pct` of integer-valued data 0..255 given by its 256-bin ``hist``, the values being of ``dtype``."""
    cum = np.cumsum(hist)
    n = int(cum[-1])
    if n == 0:
        return [float("nan")] * len(qs)
    return _linear_percentiles(n, qs, lambda ks: np.searchsorted(cum, ks, side="right").astype(dtype))


def _entropy(hist: NDArray[Any]) -> float:
    total = float(hist.sum())
    if total <= 0:
        return 0.0
    p = hist[hist > 0] / total
    return float(-(p * np.log2(p)).sum() / np.log2(hist.size))


def _block_means(x: NDArray[Any], block: int) -> F64:
    """Mean of ``x`` over each whole ``block × block`` tile (remainder rows/columns ignored)."""
    h, w = (x.shape[0] // block) * block, (x.shape[1] // block) * block
    if h == 0 or w == 0:
        return np.array([float(np.mean(x))])
    tiles = x[:h, :w].reshape(h // block, block, w // block, block)
    return np.asarray(tiles.mean(axis=(1, 3), dtype=np.float64)).ravel()


# ----------------------------------------------------------------------------------------------------
# natural-scene statistics (BRISQUE / NIQE)
# ----------------------------------------------------------------------------------------------------
def nss_group(y: F32, nss: dict[str, Any], params: NSSParams, quarter_y: F32 | None = None) -> Features:
    """``quarter_y``: ``nm.half(nm.half(y))``, if the caller has it."""
    out: Features = {"brisque": float(nss["brisque"]), "niqe": float(nss["niqe"])}
    for i, v in enumerate(np.asarray(nss["brisque_features"], np.float64)):
        out[f"bq{i:02d}"] = float(v)
    quarter_y = nm.half(nm.half(y)) if quarter_y is None else quarter_y
    quarter = nm.brisque_scale_features(nm.mscn_brisque(quarter_y))
    for i, v in enumerate(np.asarray(quarter, np.float64)):
        out[f"bq{36 + i:02d}"] = float(v)
    for i, v in enumerate(np.asarray(nss["niqe_features"], np.float64)):
        out[f"nq{i:02d}"] = float(v)
    blocks = np.asarray(nss["niqe_block_features"], np.float64)
    rows = blocks[np.isfinite(blocks).all(axis=1)]
    if len(rows):
        diff = rows - params.mu_pris
        local = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", diff, _pristine_precision(params), diff), 0.0))
        contrast = np.log(rows[:, 1] + _LOG_EPS)
        shape = rows[:, 0]
    else:
        local = contrast = shape = np.empty(0)
    for name, values in (("local_niqe", local), ("block_contrast", contrast), ("block_shape", shape)):
        p10, p50, p90 = _pct(values, (10, 50, 90))
        out[f"{name}_p10"], out[f"{name}_p50"], out[f"{name}_p90"] = p10, p50, p90
        out[f"{name}_std"] = float(values.std()) if values.size else float("nan")
    return out


_PRECISION: dict[int, tuple[NSSParams, F64]] = {}


def _pristine_precision(params: NSSParams) -> F64:
    """Pseudo-inverse of the pristine covariance (36×36), computed once per parameter object (the cache holds the
    object itself, so its id cannot be reused by another while cached)."""
    cached = _PRECISION.get(id(params))
    if cached is not None and cached[0] is params:
        return cached[1]
    precision = np.asarray(np.linalg.pinv(params.cov_pris), dtype=np.float64)
    precision.flags.writeable = False
    if len(_PRECISION) >= 4:
        _PRECISION.clear()
    _PRECISION[id(params)] = (params, precision)
    return precision


# ----------------------------------------------------------------------------------------------------
# sharpness and detail
# ----------------------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _spectrum_layout(h: int, w: int) -> tuple[F32, NDArray[np.int64], F64]:
    """The Hann window, the radial bin of every ``rfft2`` coefficient and the bins' sizes for an ``h × w`` image
    (the same for every image of that size: computed once)."""
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    r = np.sqrt(fy**2 + fx**2)
    bins = np.minimum((r / 0.5 * 64).astype(np.int64), 64).ravel()
    counts = np.maximum(np.bincount(bins, minlength=65)[:64], 1)
    for a in (win, bins, counts):
        a.flags.writeable = False
    return win, bins, counts


def _radial_spectrum(y: F32) -> Features:
    h, w = y.shape
    win, bins, counts = _spectrum_layout(h, w)
    power = np.abs(np.fft.rfft2((y - y.mean()) * win)) ** 2
    prof = np.bincount(bins, power.ravel(), minlength=65)[:64] / counts
    k = np.arange(2, 64)
    logp = np.log(prof[k] + 1e-3)
    slope = float(np.polyfit(np.log(k), logp, 1)[0])
    total = float(prof[1:].sum()) + 1e-9
    out = {
        "spec_slope": slope,
        "spec_hf25": float(prof[16:].sum()) / total,
        "spec_hf50": float(prof[32:].sum()) / total,
        "spec_hf75": float(prof[48:].sum()) / total,
    }
    # the level of each band above an eighth of the Nyquist frequency, against the lowest frequencies', in
    # decades: blur and resolution loss empty the upper bands (a 3x and a 4x down-up copy differ in the band
    # between a quarter and a third of Nyquist, where the shares above are all near 0), sharpening fills them
    base = float(prof[1:4].mean()) + 1e-9
    for a, b in itertools.pairwise(SPECTRUM_BANDS):
        out[f"spec_band{a}"] = float(np.log10(prof[a:b].mean() / base + 1e-12))
    return out


#: radial bins (64 from 0 to the Nyquist frequency) that bound the spectrum's bands (:func:`_radial_spectrum`)
SPECTRUM_BANDS = (8, 12, 16, 20, 24, 32, 48, 64)


def halo(y: F32, gx: F32, gy: F32, mag: F32) -> float:
    """Overshoot across strong edges, as a share of the edge's contrast: at the 5 % of pixels with the strongest
    gradient, the luma is read at 1–5 px on either side along the gradient; a natural edge runs into its plateau
    (0), an unsharp-masked one overshoots it (bright side brighter near the edge than 4–5 px away, dark side
    darker), more the stronger the sharpening. Edges with under 8 grey levels of contrast are skipped."""
    h, w = y.shape
    margin = 6
    if h <= 2 * margin or w <= 2 * margin:
        return 0.0
    inner = mag[margin:-margin, margin:-margin]
    threshold = max(_fast_pct(inner, (95,))[0], 1e-3)
    rows, cols = np.nonzero(inner > threshold)
    if rows.size == 0:
        return 0.0
    rows += margin
    cols += margin
    m = mag[rows, cols]
    ny, nx = gy[rows, cols] / m, gx[rows, cols] / m

    def at(k: int) -> F32:
        r = np.clip(np.rint(rows + k * ny).astype(np.intp), 0, h - 1)
        c = np.clip(np.rint(cols + k * nx).astype(np.intp), 0, w - 1)
        return y[r, c]

    bright5, dark5 = at(5), at(-5)
    near_b, far_b = np.maximum(at(1), at(2)), np.maximum(at(4), bright5)
    near_d, far_d = np.minimum(at(-1), at(-2)), np.minimum(at(-4), dark5)
    contrast = bright5 - dark5
    ok = contrast >= 8.0
    if not ok.any():
        return 0.0
    over = np.maximum(near_b - far_b, 0.0) + np.maximum(far_d - near_d, 0.0)
    return float(np.mean(over[ok] / contrast[ok]))


def levels_group(rgb: NDArray[np.uint8]) -> Features:
    """The 8-bit levels each channel uses, between its 1st and 99th percentile, from the pixels as decoded:
    ``level_gaps``, the share of levels no pixel has (a digital gain above 1, brightening or a contrast stretch,
    leaves every few levels empty, more the stronger the gain: 0.18 at 1.25x exposure, 0.39 at 3x; camera
    pictures and generated images use every level), and ``level_comb``, the histogram's deviation from its own
    smoothed version (gaps, the spikes of merged levels, and JPEG's quantised block means), both averaged over
    the channels."""
    gaps = comb = 0.0
    rgb = np.ascontiguousarray(rgb)
    for c in range(3):
        # cv2.calcHist: the same counts as np.bincount of the channel, without copying it out first (6x faster)
        hist = cv2.calcHist([rgb], [c], None, [256], [0, 256]).ravel().astype(np.float64)
        cum = np.cumsum(hist) / hist.sum()
        lo, hi = int(np.searchsorted(cum, 0.01)), int(np.searchsorted(cum, 0.99))
        seg = hist[lo : hi + 1]
        if seg.size < 3:  # one or two levels: every level between is empty
            gaps += 1.0
            continue
        gaps += float((seg == 0).mean())
        smooth = cv2.GaussianBlur(seg.reshape(1, -1), (0, 0), 2.0, borderType=cv2.BORDER_REFLECT).ravel()
        comb += float(np.abs(seg - smooth).sum() / seg.sum())
    return {"level_gaps": gaps / 3.0, "level_comb": comb / 3.0}


def sharpness_group(y: F32, gx: F32, gy: F32, mag: F32 | None = None) -> Features:
    """``gx``, ``gy``: :func:`sobel` of ``y``; ``mag``: their magnitude by ``cv2.cartToPolar``, if the caller has
    it (:meth:`quality.analysis.ImagePlanes.polar`)."""
    h, w = y.shape
    lap = cv2.Laplacian(y, cv2.CV_32F)
    out: Features = {"lap_var": float(np.log1p(lap.var()))}
    small = cv2.resize(y, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    out["lap_var_half"] = float(np.log1p(cv2.Laplacian(small, cv2.CV_32F).var()))
    # cv2.cartToPolar's magnitude: exact and the same on every run (cv2.magnitude differs by one float32 ulp
    # between runs, depending on the arrays' alignment, which made features and refits not reproducible)
    mag = np.asarray(cv2.cartToPolar(gx, gy)[0], np.float32) if mag is None else mag
    g50, g90, g99 = _fast_pct(mag, (50, 90, 99))
    out |= {"grad_p50": np.log1p(g50), "grad_p90": np.log1p(g90), "grad_p99": np.log1p(g99),
            "grad_mean": float(np.log1p(mag.mean()))}  # fmt: skip
    flat = mag.ravel()
    k = int(0.9 * flat.size)
    out["grad_sparsity"] = float(np.partition(flat, k)[k:].sum(dtype=np.float64) / (flat.sum(dtype=np.float64) + 1e-9))
    energy = np.log10(1.0 + _block_means(lap * lap, BLOCK))
    p10, p50, p90 = _pct(energy, (10, 50, 90))
    out |= {"local_sharp_p10": p10, "local_sharp_p50": p50, "local_sharp_p90": p90,
            "local_sharp_max": float(energy.max()), "local_sharp_spread": p90 - p10,
            "flat_blocks": float((energy < 1.0).mean())}  # fmt: skip
    for factor in (2, 4):
        down = cv2.resize(y, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
        up = cv2.resize(down, (w, h), interpolation=cv2.INTER_CUBIC)
        out[f"down_loss{factor}"] = float(np.log1p(np.abs(y - up).mean()))
    out |= _radial_spectrum(y)
    out["halo"] = halo(y, gx, gy, mag)
    return out


# ----------------------------------------------------------------------------------------------------
# noise and compression
# ----------------------------------------------------------------------------------------------------
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def _noise_map(x: F32) -> F32:
    return np.abs(cv2.filter2D(x, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT))


def _noise_sigma(resp: F32) -> float:
    inner = resp[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2.0) / 6.0 * inner.mean()) if inner.size else 0.0


def noise_group(y: F32, lab: F32, block_y: F32 | None = None) -> Features:
    """``block_y``: the luma the JPEG block measures are taken on (:func:`blockiness`; default ``y``)."""
    resp = _noise_map(y)
    out: Features = {"noise": float(np.log1p(_noise_sigma(resp)))}
    out["noise_a"] = float(np.log1p(_noise_sigma(_noise_map(np.ascontiguousarray(lab[..., 1])))))
    out["noise_b"] = float(np.log1p(_noise_sigma(_noise_map(np.ascontiguousarray(lab[..., 2])))))
    local = _block_means(resp, 16)
    k = max(1, local.size // 10)
    out["noise_flat"] = float(np.log1p(np.sort(local)[:k].mean()))
    out["block_h"], out["block_v"] = blockiness(y if block_y is None else block_y)
    return out


def blockiness(y: F32) -> tuple[float, float]:
    """Mean absolute luma step across the columns (rows) ``7::8``, the boundaries of JPEG's 8×8 blocks, over the
    mean step anywhere: about 1 without block coding, higher the coarser it was quantised. Measured on the pixels
    as decoded (:func:`extract`'s ``source``): in a reduced copy the block grid no longer falls on every 8th
    pixel and the measure sees nothing."""
    dh = np.abs(np.diff(y, axis=1))
    dv = np.abs(np.diff(y, axis=0))
    h = float(dh[:, 7::8].mean() / (dh.mean() + 1e-6)) if dh.shape[1] > 8 else 1.0
    v = float(dv[7::8, :].mean() / (dv.mean() + 1e-6)) if dv.shape[0] > 8 else 1.0
    return h, v


#: JPEG qualities of :func:`encode_group`'s RGB encodes, and the one its luma encode and error use
ENCODE_QUALITIES = (10, 30, 75)
ENCODE_LUMA_QUALITY = 30


def _jpeg(img: NDArray[np.uint8], quality: int) -> NDArray[np.uint8]:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes every non-empty uint8 image
        raise ValueError("JPEG encode failed")
    return np.asarray(buf, np.uint8)


def encode_group(rgb: NDArray[np.uint8], y: F32) -> Features:
    """Re-encoding cost: ``enc_jpeg{q}``, the log bits per pixel of a JPEG encode of ``rgb`` at quality ``q``
    (:data:`ENCODE_QUALITIES`); ``enc_luma``, the same for the luma alone at :data:`ENCODE_LUMA_QUALITY`;
    ``enc_err``, ``log1p`` of the mean absolute luma error of that encode. Detail costs bits: every kind of
    damage that removes fine structure (blur, resolution loss, JPEG, WebP, banding) lowers the sizes, noise and
    halos raise them; OpenCV's encoder is deterministic, so the same pixels give the same values."""
    pixels = float(rgb.shape[0] * rgb.shape[1])
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    out: Features = {f"enc_jpeg{q}": float(np.log(8.0 * _jpeg(bgr, q).size / pixels)) for q in ENCODE_QUALITIES}
    y8 = y.astype(np.uint8)  # the rounded 0..255 luma (nss_math.luma)
    buf = _jpeg(y8, ENCODE_LUMA_QUALITY)
    out["enc_luma"] = float(np.log(8.0 * buf.size / pixels))
    decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    if decoded is None:  # pragma: no cover - OpenCV decodes what it has just encoded
        raise ValueError("JPEG decode failed")
    out["enc_err"] = float(np.log1p(np.abs(decoded.astype(np.float32) - y8.astype(np.float32)).mean()))
    return out


# ----------------------------------------------------------------------------------------------------
# tone and colour
# ----------------------------------------------------------------------------------------------------
def tone_colour_group(rgb: NDArray[np.uint8], y: F32, lab: F32) -> Features:
    counts = np.bincount(y.astype(np.uint8).ravel(), minlength=256)
    hist = counts.astype(np.float64)
    p1, p99 = _hist_pct(counts, (1, 99), np.float32)  # y: luma, integer values 0..255
    out: Features = {
        "luma_mean": float(y.mean()) / 255.0, "luma_std": float(y.std()) / 255.0,
        "luma_range": (p99 - p1) / 255.0, "clip_low": float((y <= 3).mean()), "clip_high": float((y >= 252).mean()),
        "luma_entropy": _entropy(hist),
    }  # fmt: skip
    big_l, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    chroma = np.sqrt(a * a + b * b)
    c90 = _fast_pct(chroma, (90,))[0]
    out |= {"lab_l_std": float(big_l.std()), "lab_a_mean": float(a.mean()), "lab_b_mean": float(b.mean()),
            "lab_a_std": float(a.std()), "lab_b_std": float(b.std()), "chroma_mean": float(chroma.mean()),
            "chroma_std": float(chroma.std()), "chroma_p90": c90}  # fmt: skip
    f = rgb.astype(np.float32)
    rg = f[..., 0] - f[..., 1]
    yb = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
    out["colourfulness"] = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
    sat = hsv[..., 1].astype(np.float32) / 255.0
    out["sat_mean"], out["sat_std"] = float(sat.mean()), float(sat.std())
    hue_hist = np.bincount((hsv[..., 0] // 15).ravel().astype(np.int64), weights=chroma.ravel(), minlength=18)[:18]
    out["hue_entropy"] = _entropy(hue_hist)
    q = (rgb >> 4).astype(np.int32)
    codes = (q[..., 0] << 8) | (q[..., 1] << 4) | q[..., 2]
    counts = np.bincount(codes.ravel(), minlength=4096)
    out["colour_count"] = float(np.count_nonzero(counts)) / 4096.0
    out["colour_top16"] = float(np.sort(counts)[-16:].sum()) / float(codes.size)
    return out


# ----------------------------------------------------------------------------------------------------
# texture
# ----------------------------------------------------------------------------------------------------
_CANNY = ((20, 60), (40, 120), (80, 200))
#: 8 neighbours, in circular order
_RING = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


@lru_cache(maxsize=1)
def _lbp_labels() -> NDArray[np.uint8]:
    """8-bit neighbour pattern (bit i: neighbour i of :data:`_RING` >= centre) → rotation-invariant uniform label:
    the number of set bits when the circular pattern has at most 2 transitions, else 9."""
    labels = np.empty(256, np.uint8)
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]
        transitions = sum(bits[i] != bits[(i + 1) % 8] for i in range(8))
        labels[code] = sum(bits) if transitions <= 2 else 9
    return labels


def _lbp_histogram(y: F32) -> F64:
    """Rotation-invariant uniform LBP (8 neighbours, radius 1): 10-bin normalised histogram."""
    c = y[1:-1, 1:-1]
    h, w = c.shape
    code = np.zeros((h, w), np.uint8)
    bit = np.empty((h, w), np.bool_)
    for i, (dy, dx) in enumerate(_RING):
        np.greater_equal(y[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w], c, out=bit)
        code |= bit.view(np.uint8) << np.uint8(i)
    hist = np.bincount(_lbp_labels()[code].ravel(), minlength=10).astype(np.float64)
    return hist / max(1.0, hist.sum())


def _half_turns(ang: F32) -> F32:
    """``np.mod(ang, np.pi)`` for angles in [0, 2π] (``cv2.cartToPolar``'s), exactly: π rounds to float32 π
    (as numpy rounds it for a float32 array), and ``x - π`` is exact for x in [π, 2π] (Sterbenz), which is
    what ``fmod`` returns there. Several times faster than numpy's float32 ``fmod``."""
    pi = np.float32(np.pi)
    out = np.subtract(ang, pi, where=ang >= pi, out=ang.copy())
    if np.any(out >= pi):  # 2π rounded up: subtract again (still exact), as fmod would
        np.subtract(out, pi, where=out >= pi, out=out)
    return out


def texture_group(y: F32, gx: F32, gy: F32, polar: tuple[F32, F32] | None = None) -> Features:
    """``gx``, ``gy``: :func:`sobel` of ``y``; ``polar``: their ``cv2.cartToPolar`` (magnitude, angle), if the
    caller has it (:meth:`quality.analysis.ImagePlanes.polar`)."""
    u8 = np.clip(y, 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(u8, (5, 5), 1.0)
    out: Features = {}
    for lo, hi in _CANNY:
        out[f"canny{lo}"] = float(np.count_nonzero(cv2.Canny(blurred, lo, hi, L2gradient=True))) / u8.size
    for i, v in enumerate(_lbp_histogram(y)):
        out[f"lbp{i}"] = float(v)
    if polar is None:
        raw_mag, raw_ang = cv2.cartToPolar(gx, gy)
        polar = np.asarray(raw_mag, np.float32), np.asarray(raw_ang, np.float32)
    mag, ang = polar
    orient = (_half_turns(ang) / np.pi * 12).astype(np.int64).clip(0, 11)
    out["orient_entropy"] = _entropy(np.bincount(orient.ravel(), weights=mag.ravel(), minlength=12))
    return out


# ----------------------------------------------------------------------------------------------------
# all together
# ----------------------------------------------------------------------------------------------------
def shared_planes(rgb: NDArray[np.uint8], nss: dict[str, Any] | None = None, y: F32 | None = None) -> ImagePlanes:
    """The :class:`~quality.analysis.ImagePlanes` of ``rgb``: the one that computed ``nss`` (``nss["planes"]``) when
    it belongs to these very pixels, else a new one (seeded with the luma ``y`` if given)."""
    shared = nss.get("planes") if nss is not None else None
    if isinstance(shared, ImagePlanes) and shared.rgb is rgb:
        return shared
    return ImagePlanes(rgb, y)


def extract(rgb: NDArray[np.uint8], nss: dict[str, Any] | None = None, params: NSSParams | None = None,
            y: F32 | None = None, planes: ImagePlanes | None = None,
            source: NDArray[np.uint8] | None = None) -> Features:  # fmt: skip
    """All calibration features of a working-size ``(H, W, 3)`` uint8 image (:meth:`PreparedImage.fit` to
    :data:`WORKING_SIDE`).

    ``nss`` is :func:`quality.backends.nss.nss_features` of exactly these pixels when the caller already has it
    (it is computed here otherwise). Raises :class:`quality.errors.MetricError` where BRISQUE/NIQE are undefined
    (flat or tiny images). ``y``: :func:`quality.backends.nss_math.luma` of ``rgb``, if the caller has it;
    ``planes``: the shared planes of ``rgb`` (:func:`shared_planes`), if the caller has them. Every plane several
    groups use (luma, its halvings, Sobel gradients and their polar form, Lab) is computed once. ``source``: the
    image ``rgb`` was reduced from, if it was: the JPEG block measures (:func:`blockiness`) are taken on it, where
    the block grid is, and the level measures (:func:`levels_group`), whose gaps a reduction fills in; every
    other feature on ``rgb``.
    """
    params = params or packaged_params()
    if planes is None or planes.rgb is not rgb:
        planes = shared_planes(rgb, nss, y)
    # BRISQUE/NIQE of these pixels, when not given, run in a worker thread while this one computes the other
    # groups (numpy and OpenCV release the GIL); the values do not depend on where they are computed
    pending = _worker().submit(nss_features, rgb, params, planes=planes) if nss is None else None
    try:
        y = planes.luma()
        gx, gy = planes.sobel()
        lab = planes.lab()
        polar = planes.polar()
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rest = sharpness_group(y, gx, gy, polar[0])
            block_y = nm.luma(source) if source is not None and source.shape != rgb.shape else None
            rest |= noise_group(y, lab, block_y)
            rest |= tone_colour_group(rgb, y, lab)
            rest |= levels_group(source if source is not None else rgb)
            rest |= texture_group(y, gx, gy, polar)
            rest |= encode_group(rgb, y)
            quarter = planes.quarter_luma()
            if pending is not None:
                nss = pending.result()
            assert nss is not None
            out = nss_group(y, nss, params, quarter) | rest
    finally:
        if pending is not None:
            pending.cancel()
    return {k: float(v) for k, v in out.items()}


_WORKER: tuple[int, ThreadPoolExecutor] | None = None
_WORKER_LOCK = threading.Lock()


def _worker() -> ThreadPoolExecutor:
    """The threads that compute :func:`extract`'s BRISQUE/NIQE part (created on first use, and again in a forked
    child, where the parent's threads do not exist)."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None or _WORKER[0] != os.getpid():
            _WORKER = (os.getpid(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="calib-nss"))
        return _WORKER[1]
