"""Decode images safely and consistently.

Accepts a path, bytes or a PIL image; PNG, JPEG, WebP, BMP, TIFF (and GIF, first frame). Everything becomes
8-bit RGB:

* EXIF orientation is applied (a phone photo is scored the way it is shown);
* animated images use their first frame;
* alpha (RGBA, LA, palette with transparency) is composited on a neutral mid-grey (128, 128, 128), so
  transparent areas neither look black nor white to the metrics;
* 16-bit and 32-bit grayscale are scaled to 8 bits by their full bit depth (I;16 / 257, I by its max range);
* grayscale becomes three equal channels, CMYK / YCbCr / LAB are converted by PIL.

Limits: the encoded size (``max_bytes``) is checked before decoding, the pixel count (``max_pixels``) after
reading only the header, so a decompression bomb is refused before any pixel is allocated. Corrupt or
truncated files raise :class:`ImageDecodeError` naming the problem. The scorer also passes a per-image memory
limit (``max_memory``, estimated from the header before decoding) and a scoring pixel budget (``work_pixels``:
larger images are downscaled right after conversion to RGB); both are described in :mod:`quality.budget`.

Resizing for metrics (:meth:`PreparedImage.fit`): a metric that declares a working size gets the image
downscaled so that its *long side* is at most that size, with Pillow's antialiased bicubic (``reducing_gap``
off, so results are deterministic), aspect ratio kept, never upscaled. The same image always gives the same
working image, and results are cached per size inside one :class:`PreparedImage`.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from quality.budget import check_memory, fit_budget
from quality.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError
from quality.report import ImageInfo

ImageFile.LOAD_TRUNCATED_IMAGES = False

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_PIXELS = 50_000_000
NEUTRAL_BACKGROUND = (128, 128, 128)
SUPPORTED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "MPO"})

ImageInput = str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image


@dataclass
class PreparedImage:
    """One decoded image, 8-bit RGB, with cached derived views for the metrics."""

    rgb: np.ndarray
    """uint8 array, shape (H, W, 3), C-contiguous."""
    info: ImageInfo
    _fit_cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _pil: Image.Image | None = field(default=None, repr=False)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    def pil(self) -> Image.Image:
        if self._pil is None:
            self._pil = Image.fromarray(self.rgb, mode="RGB")
        return self._pil

    def fit(self, max_side: int | None) -> np.ndarray:
        """The image downscaled so that max(H, W) <= max_side (uint8 RGB); the original if already small."""
        if max_side is None or max(self.height, self.width) <= max_side:
            return self.rgb
        cached = self._fit_cache.get(max_side)
        if cached is None:
            scale = max_side / max(self.height, self.width)
            size = (max(1, round(self.width * scale)), max(1, round(self.height * scale)))
            small = self.pil().resize(size, Image.Resampling.BICUBIC, reducing_gap=None)
            cached = np.ascontiguousarray(np.asarray(small, dtype=np.uint8))
            self._fit_cache[max_side] = cached
        return cached

    def luma_std(self) -> float:
        """Standard deviation of BT.601 luma, in 8-bit units (0 for a flat image)."""
        small = self.fit(512).astype(np.float32)
        y = small @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return float(y.std())


def _check_size(nbytes: int, max_bytes: int, what: str) -> None:
    if nbytes == 0:
        raise ImageDecodeError(f"{what} is empty (0 bytes): nothing to score")
    if nbytes > max_bytes:
        raise ImageTooLargeError(
            f"{what} is {nbytes / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit "
            "(raise COMFY_QUALITY_MAX_IMAGE_BYTES to allow it)"
        )


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*NEUTRAL_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.uint16).astype(np.float32) / 257.0
        return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), mode="L").convert("RGB")
    if mode == "I":
        arr = np.asarray(img, dtype=np.int64).astype(np.float64)
        top = 65535.0 if arr.max(initial=0) <= 65535 else float(arr.max())
        arr = np.clip(arr, 0, None) / top * 255.0
        return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), mode="L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        hi = float(arr.max(initial=0.0))
        scale = 255.0 if hi <= 1.0 else (255.0 / hi if hi > 0 else 1.0)
        return Image.fromarray(np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8), mode="L").convert("RGB")
    if mode == "1":
        return img.convert("L").convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise UnsupportedImageError(f"cannot convert an image in mode {mode!r} to RGB: {exc}") from exc


def load_image(
    source: ImageInput,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    source_name: str | None = None,
    max_memory: int | None = None,
    work_pixels: int | None = None,
) -> PreparedImage:
    """Decode ``source`` into a :class:`PreparedImage` (8-bit RGB), enforcing the limits.

    ``max_memory`` (bytes) refuses an image whose estimated decoding and scoring memory exceeds it, before
    decoding; ``work_pixels`` downscales an image with more pixels to that budget (see :mod:`quality.budget`).
    """
    data: bytes | None = None
    name = source_name
    if isinstance(source, Image.Image):
        img = source
        name = name or "PIL image"
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            name = name or "image bytes"
        else:
            path = Path(os.fspath(source))
            name = name or str(path)
            if not path.exists():
                raise ImageDecodeError(f"image file not found: {path}")
            if not path.is_file():
                raise ImageDecodeError(f"not a regular file: {path}")
            _check_size(path.stat().st_size, max_bytes, f"image file {path}")
            data = path.read_bytes()
        _check_size(len(data), max_bytes, name)
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            raise ImageDecodeError(
                f"{name} is not a readable image (supported: PNG, JPEG, WebP, BMP, TIFF, GIF)"
            ) from exc
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(f"{name}: {exc}") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:  # a valid signature followed by garbage
            raise ImageDecodeError(f"{name} is corrupt or truncated and cannot be decoded: {exc}") from exc
        if img.format and img.format not in SUPPORTED_FORMATS:
            raise UnsupportedImageError(f"{name} is a {img.format} image; supported: PNG, JPEG, WebP, BMP, TIFF, GIF")
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{name} has an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name} is {width}x{height} = {width * height / 1e6:.1f} MP, over the "
            f"{max_pixels / 1e6:.0f} MP limit (raise COMFY_QUALITY_MAX_IMAGE_PIXELS to allow it)"
        )
    fmt, mode = img.format, img.mode
    check_memory(name, width, height, mode, limit=max_memory, budget=work_pixels)
    frames = int(getattr(img, "n_frames", 1) or 1)
    try:
        if frames > 1:
            img.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about odd EXIF; the image is still fine
            img.load()
            img = ImageOps.exif_transpose(img) or img
            rgb_img = fit_budget(_to_rgb(img), work_pixels)
            rgb = np.ascontiguousarray(np.asarray(rgb_img, dtype=np.uint8))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, Image.DecompressionBombError):
            raise ImageTooLargeError(f"{name}: {exc}") from exc
        raise ImageDecodeError(f"{name} is corrupt or truncated and cannot be decoded: {exc}") from exc
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise UnsupportedImageError(f"{name}: decoded to an unexpected shape {rgb.shape}")
    full_width, full_height = img.size  # after EXIF rotation, before the budget
    info: dict[str, Any] = {
        "width": int(full_width),
        "height": int(full_height),
        "format": fmt,
        "mode": mode,
        "frames": frames,
        "source": name,
    }
    if (rgb.shape[1], rgb.shape[0]) != (full_width, full_height):
        info["scored_width"], info["scored_height"] = int(rgb.shape[1]), int(rgb.shape[0])
    if data is not None:
        info["bytes"] = len(data)
        info["sha256"] = hashlib.sha256(data).hexdigest()
    return PreparedImage(rgb=rgb, info=ImageInfo(**info))
