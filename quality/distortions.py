"""Synthetic image damage with a known order: a distorted copy is worse than its original, a stronger distortion
worse than a weaker one.

Used twice: the calibration fit learns from these orderings (:mod:`quality.calibration.ladders`), and
``python -m quality eval --ladders DIR`` checks that every score falls at every step of every ladder. Each kind
maps a *severity* ``s`` in ``(0, 1]`` onto its parameter (``0`` is the original); :data:`LEVELS` are the four
severities the ladder check uses, and ``apply(kind, rgb, s)`` works on ``(H, W, 3)`` uint8 RGB. Spatial parameters
are given for a 512-px long side (the calibration's working size) and scale with larger images, so a 2048-px
image gets a 4× wider blur than its 512-px version (smaller images get the 512-px values). Everything is
deterministic (noise and motion directions come from ``seed``); OpenCV encodes JPEG and WebP.

At :data:`LEVELS`' heaviest severity each kind is "heavy damage": Gaussian blur σ 5, defocus radius 8, motion
length 25, Gaussian noise σ 60, colour noise σ 60, JPEG quality 4, WebP quality 1, 4× resolution loss,
3 levels per channel, unsharp amount 8, contrast 15 %, exposure 3× / 0.12×.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

U8 = NDArray[np.uint8]
REFERENCE_SIDE = 512
#: the severities of the ladder check (four steps after the original)
LEVELS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)


def _lerp_log(lo: float, hi: float, s: float) -> float:
    """Geometric interpolation between ``lo`` (s = 0) and ``hi`` (s = 1)."""
    return float(math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * s))


def _scale(rgb: U8) -> float:
    """Spatial parameters grow with images larger than the working size (the scorer reduces those to it) and stay
    as they are for smaller ones (which it scores as they are)."""
    return max(1.0, max(rgb.shape[:2]) / REFERENCE_SIDE)


def _u8(x: Any) -> U8:
    return np.asarray(np.clip(np.rint(x), 0, 255), dtype=np.uint8)


def _seeded(seed: int, kind: str) -> np.random.Generator:
    return np.random.default_rng([seed, sum(ord(c) * (i + 1) for i, c in enumerate(kind))])


# ----------------------------------------------------------------------------------------------------
# the kinds
# ----------------------------------------------------------------------------------------------------
def gaussian_blur(rgb: U8, s: float, seed: int = 0) -> U8:
    sigma = _lerp_log(0.6, 5.0, s) * _scale(rgb)
    return np.asarray(cv2.GaussianBlur(rgb, (0, 0), sigma, borderType=cv2.BORDER_REFLECT), np.uint8)


def _disk(radius: float) -> NDArray[np.float32]:
    r = math.ceil(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    # anti-aliased disk: coverage falls linearly over one pixel at the rim
    k = np.clip(radius + 0.5 - np.sqrt(xx * xx + yy * yy), 0.0, 1.0)
    return np.asarray(k / k.sum(), np.float32)


def defocus_blur(rgb: U8, s: float, seed: int = 0) -> U8:
    radius = _lerp_log(1.0, 8.0, s) * _scale(rgb)
    return _u8(cv2.filter2D(rgb.astype(np.float32), -1, _disk(radius), borderType=cv2.BORDER_REFLECT))


def motion_blur(rgb: U8, s: float, seed: int = 0) -> U8:
    length = _lerp_log(3.0, 25.0, s) * _scale(rgb)
    angle = float(_seeded(seed, "motion").uniform(0.0, math.pi))
    size = math.ceil(length) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = math.cos(angle) * (length - 1) / 2, math.sin(angle) * (length - 1) / 2
    a = (round((c - dx) * 16), round((c - dy) * 16))
    b = (round((c + dx) * 16), round((c + dy) * 16))
    cv2.line(kernel, a, b, 1.0, 1, cv2.LINE_AA, shift=4)  # sub-pixel end points (4 fractional bits)
    kernel /= max(float(kernel.sum()), 1e-6)
    return _u8(cv2.filter2D(rgb.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT))


def gaussian_noise(rgb: U8, s: float, seed: int = 0) -> U8:
    sigma = _lerp_log(4.0, 60.0, s)
    noise = _seeded(seed, "noise").normal(0.0, sigma, rgb.shape[:2])[..., None]
    return _u8(rgb.astype(np.float32) + noise.astype(np.float32))


def colour_noise(rgb: U8, s: float, seed: int = 0) -> U8:
    """Noise in the chroma channels only (YCrCb), as from a poorly denoised sensor or sampler."""
    sigma = _lerp_log(4.0, 60.0, s)
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    ycc[..., 1:] += _seeded(seed, "chroma").normal(0.0, sigma, (*rgb.shape[:2], 2)).astype(np.float32)
    return np.asarray(cv2.cvtColor(_u8(ycc), cv2.COLOR_YCrCb2RGB), np.uint8)


def _codec(rgb: U8, ext: str, flag: int, quality: int) -> U8:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [flag, quality])
    if not ok:  # pragma: no cover - OpenCV builds without the codec
        raise RuntimeError(f"OpenCV cannot encode {ext}")
    decoded = np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)
    return np.asarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), np.uint8)


def jpeg(rgb: U8, s: float, seed: int = 0) -> U8:
    quality = round(_lerp_log(90.0, 4.0, s))
    return _codec(rgb, ".jpg", cv2.IMWRITE_JPEG_QUALITY, quality)


def webp(rgb: U8, s: float, seed: int = 0) -> U8:
    quality = max(1, round(_lerp_log(85.0, 1.0, s)))
    return _codec(rgb, ".webp", cv2.IMWRITE_WEBP_QUALITY, quality)


RESOLUTION_FACTORS = (1.25, 4.0)
"""``resolution_loss``'s downscale factor at severities 0 and 1 (geometric in between)"""


def resolution_loss_severity(factor: float) -> float:
    """The ``resolution_loss`` severity whose downscale factor is ``factor``."""
    lo, hi = RESOLUTION_FACTORS
    return math.log(factor / lo) / math.log(hi / lo)


def resolution_loss(rgb: U8, s: float, seed: int = 0) -> U8:
    """Area downscale by a factor 1.25–4, then bilinear upscale back to the original size."""
    factor = _lerp_log(*RESOLUTION_FACTORS, s)
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)


def posterise(rgb: U8, s: float, seed: int = 0) -> U8:
    """Uniform quantisation to 40 → 3 levels per channel: banding in smooth gradients."""
    levels = _lerp_log(40.0, 3.0, s)
    step = 255.0 / (levels - 1.0)
    return _u8(np.rint(rgb.astype(np.float32) / step) * step)


def oversharpen(rgb: U8, s: float, seed: int = 0) -> U8:
    """Unsharp masking with amount 0.8 → 8 (radius σ 2 at 512 px): halos and clipped edges."""
    amount = _lerp_log(0.8, 8.0, s)
    f = rgb.astype(np.float32)
    blurred = cv2.GaussianBlur(f, (0, 0), 2.0 * _scale(rgb), borderType=cv2.BORDER_REFLECT)
    return _u8(f + amount * (f - blurred))


def contrast_loss(rgb: U8, s: float, seed: int = 0) -> U8:
    """Pull every pixel towards the mean grey: contrast 80 % → 15 %."""
    keep = _lerp_log(0.8, 0.15, s)
    f = rgb.astype(np.float32)
    return _u8(f.mean() + keep * (f - f.mean()))


def overexposure(rgb: U8, s: float, seed: int = 0) -> U8:
    """Linear gain 1.25× → 3× on (approximately) linear light, clipped: blown highlights."""
    gain = _lerp_log(1.25, 3.0, s)
    lin = (rgb.astype(np.float32) / 255.0) ** 2.2
    return _u8(255.0 * np.clip(lin * gain, 0.0, 1.0) ** (1 / 2.2))


def underexposure(rgb: U8, s: float, seed: int = 0) -> U8:
    """Linear gain 0.7× → 0.12× on (approximately) linear light: dark, with crushed shadows and fewer levels."""
    gain = _lerp_log(0.7, 0.12, s)
    lin = (rgb.astype(np.float32) / 255.0) ** 2.2
    return _u8(255.0 * (lin * gain) ** (1 / 2.2))


@dataclass(frozen=True)
class Kind:
    name: str
    fn: Callable[[U8, float, int], U8]
    parameter: str
    """what the severity controls, for reports"""
    values: Callable[[float], float]
    """severity → parameter value at 512 px"""

    def __call__(self, rgb: U8, s: float, seed: int = 0) -> U8:
        if not 0.0 < s <= 1.0:
            raise ValueError(f"severity must lie in (0, 1], got {s}")
        return self.fn(rgb, s, seed)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("gaussian_blur", gaussian_blur, "sigma px", lambda s: _lerp_log(0.6, 5.0, s)),
        Kind("defocus_blur", defocus_blur, "disk radius px", lambda s: _lerp_log(1.0, 8.0, s)),
        Kind("motion_blur", motion_blur, "length px", lambda s: _lerp_log(3.0, 25.0, s)),
        Kind("gaussian_noise", gaussian_noise, "sigma", lambda s: _lerp_log(4.0, 60.0, s)),
        Kind("colour_noise", colour_noise, "chroma sigma", lambda s: _lerp_log(4.0, 60.0, s)),
        Kind("jpeg", jpeg, "quality", lambda s: round(_lerp_log(90.0, 4.0, s))),
        Kind("webp", webp, "quality", lambda s: max(1, round(_lerp_log(85.0, 1.0, s)))),
        Kind("resolution_loss", resolution_loss, "downscale factor", lambda s: _lerp_log(*RESOLUTION_FACTORS, s)),
        Kind("posterise", posterise, "levels per channel", lambda s: _lerp_log(40.0, 3.0, s)),
        Kind("oversharpen", oversharpen, "unsharp amount", lambda s: _lerp_log(0.8, 8.0, s)),
        Kind("contrast_loss", contrast_loss, "contrast kept", lambda s: _lerp_log(0.8, 0.15, s)),
        Kind("overexposure", overexposure, "gain", lambda s: _lerp_log(1.25, 3.0, s)),
        Kind("underexposure", underexposure, "gain", lambda s: _lerp_log(0.7, 0.12, s)),
    )
}


def apply(kind: str, rgb: U8, s: float, seed: int = 0) -> U8:
    """``rgb`` damaged by ``kind`` at severity ``s`` (``(0, 1]``)."""
    try:
        k = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown distortion {kind!r}; known: {', '.join(KINDS)}") from None
    return k(np.ascontiguousarray(rgb, dtype=np.uint8), s, seed)


def ladder(kind: str, rgb: U8, levels: tuple[float, ...] = LEVELS, seed: int = 0) -> list[U8]:
    """The original followed by ``kind`` at each severity of ``levels`` (increasing)."""
    if any(b <= a for a, b in itertools.pairwise(levels)):
        raise ValueError("ladder severities must increase")
    return [np.asarray(rgb, np.uint8)] + [apply(kind, rgb, s, seed) for s in levels]
