"""Shared per-image computations: the planes several metrics and the calibration features derive from one image.

BRISQUE/NIQE (:mod:`quality.backends.nss`) and the calibration features (:mod:`quality.calibration.features`)
start from the same few planes of an image: its luma, the luma halved and quartered (MATLAB ``imresize(·, 0.5)``),
Sobel gradients and their polar form, CIE Lab. An :class:`ImagePlanes` computes each of them once, on first use,
and hands the same array to every later caller, so a caller that needs a plane asks the object instead of
recomputing it. The values are exactly those of the functions named on each method (nothing is approximated),
so features computed with or without a shared object are identical.

The arrays handed out are shared: callers must not modify them (they are marked read-only). Access is
thread-safe; a plane requested from two threads at once is computed once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from quality.backends import nss_math as nm

F32 = NDArray[np.float32]


def _frozen(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, tuple):
        for v in value:
            _frozen(v)
    return value


def sobel(y: F32) -> tuple[F32, F32]:
    """Horizontal and vertical 3×3 Sobel derivatives of ``y`` (float32, OpenCV's default border)."""
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1)
    return np.asarray(gx, np.float32), np.asarray(gy, np.float32)


class ImagePlanes:
    """Lazily computed, cached planes of one ``(H, W, 3)`` uint8 RGB image (see the module docstring)."""

    def __init__(self, rgb: NDArray[np.uint8], luma: F32 | None = None) -> None:
        self.rgb = rgb
        self._cache: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        if luma is not None:
            self._cache["luma"] = luma

    def _get(self, key: str, compute: Callable[[], Any]) -> Any:
        """One lock per plane: two threads asking for different planes compute them at the same time, two asking
        for the same one compute it once. (A plane's computation only asks for planes it derives from, so locks
        are always taken in the same order.)"""
        value = self._cache.get(key)
        if value is not None:
            return value
        with self._locks_lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                self._cache[key] = _frozen(compute())
            return self._cache[key]

    def luma(self) -> F32:
        """:func:`quality.backends.nss_math.luma` (rounded YIQ luma, 0..255 integer values, float32)."""
        value: F32 = self._get("luma", lambda: nm.luma(self.rgb))
        return value

    def half_luma(self) -> F32:
        """:func:`quality.backends.nss_math.half` of :meth:`luma` (BRISQUE's second scale)."""
        value: F32 = self._get("half_luma", lambda: nm.half(self.luma()))
        return value

    def quarter_luma(self) -> F32:
        """:func:`quality.backends.nss_math.half` of :meth:`half_luma`."""
        value: F32 = self._get("quarter_luma", lambda: nm.half(self.half_luma()))
        return value

    def sobel(self) -> tuple[F32, F32]:
        """:func:`sobel` of :meth:`luma`."""
        value: tuple[F32, F32] = self._get("sobel", lambda: sobel(self.luma()))
        return value

    def polar(self) -> tuple[F32, F32]:
        """Gradient magnitude and angle (radians, [0, 2π)) of :meth:`sobel` by ``cv2.cartToPolar``: exact and the
        same on every run (``cv2.magnitude`` varies by one float32 ulp with the arrays' alignment)."""

        def compute() -> tuple[F32, F32]:
            gx, gy = self.sobel()
            mag, ang = cv2.cartToPolar(gx, gy)
            return np.asarray(mag, np.float32), np.asarray(ang, np.float32)

        value: tuple[F32, F32] = self._get("polar", compute)
        return value

    def lab(self) -> F32:
        """CIE Lab of the image (OpenCV, float32 input scaled to [0, 1]: L 0..100)."""

        def compute() -> F32:
            scaled = self.rgb.astype(np.float32)
            scaled /= np.float32(255.0)
            return np.asarray(cv2.cvtColor(scaled, cv2.COLOR_RGB2Lab), dtype=np.float32)

        value: F32 = self._get("lab", compute)
        return value
