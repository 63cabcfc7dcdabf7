"""Small previews: an agent may look at a generated image without the full image entering its context.

The preview is a JPEG whose long side is at most ``max_side`` pixels and whose base64 text is at most
``max_bytes`` (100 KB by default); quality and then size step down until it fits. Full images are only ever
returned as URLs.
"""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageOps

from quality.image_io import NEUTRAL_BACKGROUND

QUALITIES = (80, 65, 50, 35)
DECODE_LIMIT_PIXELS = 50_000_000


def make_preview(data: bytes, *, max_side: int = 384, max_bytes: int = 100_000) -> str | None:
    """Base64 JPEG preview of an encoded image, or None when it cannot be made within ``max_bytes``."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > DECODE_LIMIT_PIXELS:
                return None
            opened.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced size directly
            img: Image.Image = ImageOps.exif_transpose(opened) or opened
            if img.mode in ("RGBA", "LA", "P"):
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (*NEUTRAL_BACKGROUND, 255))
                img = Image.alpha_composite(background, rgba)
            rgb = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    side = max_side
    while side >= 32:
        small = rgb.copy()
        small.thumbnail((side, side), Image.Resampling.LANCZOS)
        for quality in QUALITIES:
            buf = io.BytesIO()
            small.save(buf, format="JPEG", quality=quality, optimize=True)
            encoded = base64.b64encode(buf.getvalue()).decode("ascii")
            if len(encoded) <= max_bytes:
                return encoded
        side //= 2
    return None
