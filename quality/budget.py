"""Bounded cost per image: a pixel budget for scoring and a memory estimate checked before decoding.

Two limits, both set in :class:`quality.settings.QualitySettings`:

* **Scoring pixel budget** (``COMFY_QUALITY_SCORING_MAX_PIXELS``, default 8,388,608 = 8 MiP, e.g. 4096×2048 or
  a 4K UHD frame): an image with more pixels is downscaled right after decoding, before any metric runs, to the
  largest size whose pixel count fits the budget, aspect ratio kept (each side ``round(side × sqrt(budget /
  pixels))``, at least 1). The resampling is the one used everywhere else in :mod:`quality.image_io`: Pillow's
  antialiased bicubic with ``reducing_gap`` off, on the 8-bit RGB image after alpha compositing and EXIF
  rotation, so the same file always gives the same scored pixels. Every metric sees that reduced image. For
  BRISQUE and NIQE (which otherwise score exactly the pixels they are given, at full resolution) this *defines*
  their value for a large input: it is the value of the image reduced to the budget. Images within the budget
  are scored exactly as before. The report says when it happened (``image.scored_width/scored_height`` and a
  note). ``0`` turns the budget off (full resolution, unbounded cost). An extremely elongated image can end up
  with a short side under a metric's minimum (NIQE needs 96 px): that metric then reports its own reason.

* **Memory estimate** (``COMFY_QUALITY_MAX_IMAGE_MEMORY``, default 1536 MiB): from the header only (width,
  height and mode, before a single pixel is decoded) the peak memory of one call is estimated as
  ``width × height × DECODE_BYTES_PER_PIXEL[mode] + scored pixels × SCORING_BYTES_PER_PIXEL``, and the image is
  refused (:class:`~quality.errors.ImageTooLargeError`, stating the estimate, the limit and the setting) when
  that exceeds the limit. The per-mode factors cover Pillow's decoded image (4 bytes per pixel for RGB, 1 for L
  or P, 2 for 16-bit gray), the conversion to 8-bit RGB (alpha compositing makes three more full-size images)
  and an EXIF rotation copy; they were measured (peak RSS while decoding PNGs) and rounded up. The scoring
  factor covers the metrics' working arrays (BRISQUE/NIQE float32 planes, edges, the calibration copy),
  measured at about 30–40 bytes per scored pixel. With the defaults every 8-bit image within the 50 MP pixel
  limit passes; 32-bit integer and float images that large do not.
"""

from __future__ import annotations

import math

from PIL import Image

from quality.errors import ImageTooLargeError

DEFAULT_SCORING_MAX_PIXELS = 8 * 1024 * 1024
DEFAULT_MAX_IMAGE_MEMORY = 1536 * 1024 * 1024

#: peak bytes per source pixel while decoding and converting to 8-bit RGB, by Pillow mode
DECODE_BYTES_PER_PIXEL: dict[str, int] = {
    "1": 12, "L": 12, "P": 20, "RGB": 12, "RGBX": 12, "CMYK": 12, "YCbCr": 12, "LAB": 12, "HSV": 12,
    "LA": 20, "La": 20, "PA": 20, "RGBA": 20, "RGBa": 20,
    "I;16": 24, "I;16B": 24, "I;16L": 24, "I;16N": 24, "I": 40, "F": 32,
}  # fmt: skip
#: for a mode not in the table (rare, exotic): assume the most expensive
UNKNOWN_MODE_BYTES_PER_PIXEL = 40
#: peak bytes per *scored* pixel of the metrics' working arrays
SCORING_BYTES_PER_PIXEL = 48


def scored_size(width: int, height: int, budget: int | None) -> tuple[int, int]:
    """The size an image of ``width × height`` is scored at: itself within the budget (or with no budget),
    else the largest size with the same aspect ratio whose pixel count is at most ``budget``."""
    if not budget or width * height <= budget:
        return width, height
    scale = math.sqrt(budget / (width * height))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    while w * h > budget:  # rounding up can overshoot by a row or column
        if w >= h:
            w -= 1
        else:
            h -= 1
    return max(1, w), max(1, h)


def estimate_memory(width: int, height: int, mode: str, budget: int | None) -> int:
    """Estimated peak bytes to decode an image of this size and mode and score it (see the module doc)."""
    per_pixel = DECODE_BYTES_PER_PIXEL.get(mode, UNKNOWN_MODE_BYTES_PER_PIXEL)
    sw, sh = scored_size(width, height, budget)
    return width * height * per_pixel + sw * sh * SCORING_BYTES_PER_PIXEL


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def check_memory(name: str, width: int, height: int, mode: str, *, limit: int | None, budget: int | None) -> int:
    """Raise :class:`ImageTooLargeError` when the estimate for this image exceeds ``limit``; return the estimate."""
    estimate = estimate_memory(width, height, mode, budget)
    if limit and estimate > limit:
        raise ImageTooLargeError(
            f"{name} is {width}x{height} ({width * height / 1e6:.1f} MP, mode {mode}): decoding and scoring it "
            f"would need about {_mb(estimate)} of memory, over the {_mb(limit)} per-image limit "
            "(COMFY_QUALITY_MAX_IMAGE_MEMORY, bytes); send a smaller image or raise the limit"
        )
    return estimate


def fit_budget(img: Image.Image, budget: int | None) -> Image.Image:
    """``img`` (8-bit RGB) downscaled to the pixel budget with antialiased bicubic; itself when within it."""
    size = scored_size(img.width, img.height, budget)
    if size == img.size:
        return img
    return img.resize(size, Image.Resampling.BICUBIC, reducing_gap=None)
