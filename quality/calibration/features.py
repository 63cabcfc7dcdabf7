"""Calibration features: cheap, weight-free image statistics that the calibration model maps to scores.

All features are computed on the *working image*: the image downscaled so that its long side is at most
:data:`WORKING_SIDE` (512 px, the size people rated in AGIQA-3K; see :meth:`PreparedImage.fit`), so a 2048-px
image and its 512-px version give comparable numbers. Groups:

* ``nss``: the BRISQUE and NIQE scores and their 36 + 36 features (reused from the NSS backend when it scored
  the same pixels), BRISQUE features at a third (quarter) scale, and the spread over 96-px blocks of the
  local NIQE statistics (local quality, local contrast);
* ``sharp``: Laplacian energy, gradient percentiles, the spread of local sharpness over 32-px blocks, detail
  lost by 2×/4× down-up sampling, the radial power spectrum's slope and high-frequency shares;
* ``noise``: Immerkær noise estimate (luma, chroma), noise in flat areas, 8×8 blockiness;
* ``tone``/``colour``: contrast, clipping, histogram entropy, Lab statistics, colourfulness, saturation,
  hue entropy, colour count;
* ``texture``: Canny densities at three thresholds, local-binary-pattern histogram, gradient-orientation
  entropy.

Every function here is deterministic numpy/OpenCV; :func:`extract` returns a name → value mapping in a fixed
order (:func:`feature_names`).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from quality.backends import nss_math as nm
from quality.backends.nss import NSSParams, nss_features, packaged_params

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
Features = dict[str, float]

WORKING_SIDE = 512
BLOCK = 32
FEATURES_VERSION = "calib-features/1"
_LOG_EPS = 1e-6


def _pct(values: NDArray[Any], qs: tuple[float, ...]) -> list[float]:
    if values.size == 0:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.percentile(values, qs)]


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
def nss_group(y: F32, nss: dict[str, Any], params: NSSParams) -> Features:
    out: Features = {"brisque": float(nss["brisque"]), "niqe": float(nss["niqe"])}
    for i, v in enumerate(np.asarray(nss["brisque_features"], np.float64)):
        out[f"bq{i:02d}"] = float(v)
    quarter = nm.brisque_scale_features(nm.mscn_brisque(nm.half(nm.half(y))))
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


def _pristine_precision(params: NSSParams) -> F64:
    """Pseudo-inverse of the pristine covariance (36×36: cheaper to recompute than to cache safely)."""
    return np.asarray(np.linalg.pinv(params.cov_pris), dtype=np.float64)


# ----------------------------------------------------------------------------------------------------
# sharpness and detail
# ----------------------------------------------------------------------------------------------------
def _radial_spectrum(y: F32) -> Features:
    h, w = y.shape
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    power = np.abs(np.fft.rfft2((y - y.mean()) * win)) ** 2
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    r = np.sqrt(fy**2 + fx**2)
    bins = np.minimum((r / 0.5 * 64).astype(np.int64), 64).ravel()
    prof = np.bincount(bins, power.ravel(), minlength=65)[:64] / np.maximum(np.bincount(bins, minlength=65)[:64], 1)
    k = np.arange(2, 64)
    logp = np.log(prof[k] + 1e-3)
    slope = float(np.polyfit(np.log(k), logp, 1)[0])
    total = float(prof[1:].sum()) + 1e-9
    return {
        "spec_slope": slope,
        "spec_hf25": float(prof[16:].sum()) / total,
        "spec_hf50": float(prof[32:].sum()) / total,
        "spec_hf75": float(prof[48:].sum()) / total,
    }


def sobel(y: F32) -> tuple[F32, F32]:
    """Horizontal and vertical Sobel derivatives of ``y`` (shared by the sharpness and texture groups)."""
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1)
    return np.asarray(gx, np.float32), np.asarray(gy, np.float32)


def sharpness_group(y: F32, gx: F32, gy: F32) -> Features:
    """``gx``, ``gy``: :func:`sobel` of ``y``."""
    h, w = y.shape
    lap = cv2.Laplacian(y, cv2.CV_32F)
    out: Features = {"lap_var": float(np.log1p(lap.var()))}
    small = cv2.resize(y, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    out["lap_var_half"] = float(np.log1p(cv2.Laplacian(small, cv2.CV_32F).var()))
    # cv2.cartToPolar's magnitude: exact and the same on every run (cv2.magnitude differs by one float32 ulp
    # between runs, depending on the arrays' alignment, which made features and refits not reproducible)
    mag, _ = cv2.cartToPolar(gx, gy)
    g50, g90, g99 = _pct(mag, (50, 90, 99))
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


def noise_group(y: F32, lab: F32) -> Features:
    resp = _noise_map(y)
    out: Features = {"noise": float(np.log1p(_noise_sigma(resp)))}
    out["noise_a"] = float(np.log1p(_noise_sigma(_noise_map(np.ascontiguousarray(lab[..., 1])))))
    out["noise_b"] = float(np.log1p(_noise_sigma(_noise_map(np.ascontiguousarray(lab[..., 2])))))
    local = _block_means(resp, 16)
    k = max(1, local.size // 10)
    out["noise_flat"] = float(np.log1p(np.sort(local)[:k].mean()))
    dh = np.abs(np.diff(y, axis=1))
    dv = np.abs(np.diff(y, axis=0))
    out["block_h"] = float(dh[:, 7::8].mean() / (dh.mean() + 1e-6)) if dh.shape[1] > 8 else 1.0
    out["block_v"] = float(dv[7::8, :].mean() / (dv.mean() + 1e-6)) if dv.shape[0] > 8 else 1.0
    return out


# ----------------------------------------------------------------------------------------------------
# tone and colour
# ----------------------------------------------------------------------------------------------------
def tone_colour_group(rgb: NDArray[np.uint8], y: F32, lab: F32) -> Features:
    hist = np.bincount(y.astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    p1, p99 = _pct(y, (1, 99))
    out: Features = {
        "luma_mean": float(y.mean()) / 255.0, "luma_std": float(y.std()) / 255.0,
        "luma_range": (p99 - p1) / 255.0, "clip_low": float((y <= 3).mean()), "clip_high": float((y >= 252).mean()),
        "luma_entropy": _entropy(hist),
    }  # fmt: skip
    big_l, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    chroma = np.sqrt(a * a + b * b)
    c90 = _pct(chroma, (90,))[0]
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


def _lbp_histogram(y: F32) -> F64:
    """Rotation-invariant uniform LBP (8 neighbours, radius 1): 10-bin normalised histogram."""
    c = y[1:-1, 1:-1]
    h, w = c.shape
    bits = [(y[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] >= c) for dy, dx in _RING]
    ones = np.zeros((h, w), np.int32)
    transitions = np.zeros((h, w), np.int32)
    for i in range(8):
        ones += bits[i]
        transitions += bits[i] != bits[(i + 1) % 8]
    code = np.where(transitions <= 2, ones, 9)
    hist = np.bincount(code.ravel(), minlength=10).astype(np.float64)
    return hist / max(1.0, hist.sum())


def texture_group(y: F32, gx: F32, gy: F32) -> Features:
    """``gx``, ``gy``: :func:`sobel` of ``y``."""
    u8 = np.clip(y, 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(u8, (5, 5), 1.0)
    out: Features = {}
    for lo, hi in _CANNY:
        out[f"canny{lo}"] = float(np.count_nonzero(cv2.Canny(blurred, lo, hi, L2gradient=True))) / u8.size
    for i, v in enumerate(_lbp_histogram(y)):
        out[f"lbp{i}"] = float(v)
    mag, ang = cv2.cartToPolar(gx, gy)
    orient = (np.mod(ang, np.pi) / np.pi * 12).astype(np.int64).clip(0, 11)
    out["orient_entropy"] = _entropy(np.bincount(orient.ravel(), weights=mag.ravel(), minlength=12))
    return out


# ----------------------------------------------------------------------------------------------------
# all together
# ----------------------------------------------------------------------------------------------------
def extract(rgb: NDArray[np.uint8], nss: dict[str, Any] | None = None, params: NSSParams | None = None,
            y: F32 | None = None) -> Features:  # fmt: skip
    """All calibration features of a working-size ``(H, W, 3)`` uint8 image (:meth:`PreparedImage.fit` to
    :data:`WORKING_SIDE`).

    ``nss`` is :func:`quality.backends.nss.nss_features` of exactly these pixels when the caller already has it
    (it is computed here otherwise). Raises :class:`quality.errors.MetricError` where BRISQUE/NIQE are undefined
    (flat or tiny images). ``y``: :func:`quality.backends.nss_math.luma` of ``rgb``, if the caller has it.
    """
    params = params or packaged_params()
    if nss is None:
        nss = nss_features(rgb, params)
    y = nm.luma(rgb) if y is None else y
    gx, gy = sobel(y)
    lab = np.asarray(cv2.cvtColor(rgb.astype(np.float32) / np.float32(255.0), cv2.COLOR_RGB2Lab), dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = nss_group(y, nss, params)
        out |= sharpness_group(y, gx, gy)
        out |= noise_group(y, lab)
        out |= tone_colour_group(rgb, y, lab)
        out |= texture_group(y, gx, gy)
    return {k: float(v) for k, v in out.items()}
