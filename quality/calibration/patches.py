"""Patch codebooks: what small image patches look like, pooled over the image (a CORNIA-style encoding).

Ye, Kumar, Kang, Doermann, "Unsupervised feature learning framework for no-reference image quality assessment",
CVPR 2012, describe the idea; this is our own implementation. For a *family* of patches (below), every patch on a
stride-4 grid of the working image is normalised, whitened and compared with ``K`` codewords (dot products); the
image's encoding is, per codeword, the max and the mean of the positive and of the negative parts of the
responses (``4·K`` numbers). The codewords and the whitening are learned without labels (k-means on whitened
patches of the fit images, :mod:`.fit`); at run time a codebook is one ``(d, K)`` matrix and a ``(K,)`` offset,
with the whitening folded in: ``response = patch @ M - b``.

Families (all on the working image, long side <= 512):

* ``luma``: 7×7 luma patches, mean removed, divided by (RMS + 10): local structure independent of contrast;
* ``colour``: 5×5×3 RGB patches, per-channel mean removed, divided by (RMS + 10): colour texture and fringes;
* ``mscn``: 7×7 patches of the MSCN map (BRISQUE's normalised luma) as they are: local natural-scene statistics.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quality.backends import nss_math as nm

F32 = NDArray[np.float32]
STRIDE = 4
CONTRAST_OFFSET = 10.0


@dataclass(frozen=True)
class Family:
    name: str
    size: int
    channels: int

    @property
    def dim(self) -> int:
        return self.size * self.size * self.channels


FAMILIES: dict[str, Family] = {f.name: f for f in (Family("luma", 7, 1), Family("colour", 5, 3), Family("mscn", 7, 1))}


def _windows(x: F32, size: int) -> F32:
    shape = (size, size) if x.ndim == 2 else (size, size, x.shape[2])
    view = np.lib.stride_tricks.sliding_window_view(x, shape)[::STRIDE, ::STRIDE]
    n = view.shape[0] * view.shape[1]
    return np.ascontiguousarray(view.reshape(n, -1), dtype=np.float32)


def _contrast_normalise(p: F32) -> F32:
    p /= np.sqrt((p * p).mean(axis=1, keepdims=True)) + np.float32(CONTRAST_OFFSET)
    return p


def family_patches(family: str, rgb: NDArray[np.uint8], y: F32 | None = None) -> F32:
    """All normalised patches of one family from a working-size uint8 RGB image, shape ``(n, d)`` float32."""
    spec = FAMILIES[family]
    if family == "colour":
        p = _windows(rgb.astype(np.float32), spec.size).reshape(-1, spec.size * spec.size, 3)
        p -= p.mean(axis=1, keepdims=True)
        return _contrast_normalise(p.reshape(len(p), -1))
    y = nm.luma(rgb) if y is None else y
    if family == "luma":
        p = _windows(y, spec.size)
        p -= p.mean(axis=1, keepdims=True)
        return _contrast_normalise(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _windows(nm.mscn_brisque(y), spec.size)


def sample_patches(patches: F32, count: int, seed: int, key: str) -> F32:
    """``count`` patches drawn without replacement, reproducibly per (seed, image key)."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
    if len(patches) <= count:
        return patches.copy()
    return patches[np.sort(rng.choice(len(patches), count, replace=False))]


@dataclass(frozen=True)
class Codebook:
    family: str
    matrix: F32
    """(d, K): whitening followed by the unit-norm codewords"""
    offset: F32
    """(K,): the whitened mean patch projected on the codewords"""

    @property
    def size(self) -> int:
        return int(self.matrix.shape[1])

    def encode(self, patches: F32) -> NDArray[np.float64]:
        """``4·K`` numbers: max of positive parts, max of negative parts, mean of each (per codeword)."""
        r = patches @ self.matrix
        r -= self.offset
        n = np.float64(max(1, len(r)))
        high, low = r.max(axis=0), r.min(axis=0)
        total = r.sum(axis=0, dtype=np.float64)
        magnitude = np.abs(r, out=r).sum(axis=0, dtype=np.float64)
        # positive part: sum (|r| + r) / 2; negative part: sum (|r| - r) / 2
        return np.concatenate([
            np.maximum(high, 0.0), np.maximum(-low, 0.0),
            (magnitude + total) / (2.0 * n), (magnitude - total) / (2.0 * n),
        ]).astype(np.float64)  # fmt: skip

    def feature_names(self) -> list[str]:
        return [f"{self.family}_{kind}{i:03d}" for kind in ("maxp", "maxn", "meanp", "meann") for i in range(self.size)]
