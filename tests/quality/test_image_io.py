import io
import zlib

import numpy as np
import pytest
from PIL import Image

from quality.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError
from quality.image_io import NEUTRAL_BACKGROUND, load_image


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def noise(w=64, h=48) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def gradient(w=64, h=48) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], -1).astype(np.uint8), "RGB")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF"])
def test_common_formats_decode_to_rgb(fmt):
    img = load_image(encode(gradient(), fmt))
    assert img.rgb.shape == (48, 64, 3) and img.rgb.dtype == np.uint8
    assert img.info.format == fmt and img.info.sha256 and img.info.bytes


def test_path_bytes_and_pil_inputs_agree(tmp_path):
    src = gradient()
    path = tmp_path / "g.png"
    src.save(path)
    a = load_image(path).rgb
    b = load_image(path.read_bytes()).rgb
    c = load_image(src).rgb
    assert np.array_equal(a, b) and np.array_equal(a, c)
    assert load_image(str(path)).info.source == str(path)


def test_rgba_is_composited_on_neutral_grey():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:, :4, 3] = 255  # left half opaque, right half transparent
    img = load_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert tuple(img.rgb[0, 0]) == (255, 0, 0)
    assert tuple(img.rgb[0, 7]) == NEUTRAL_BACKGROUND
    assert img.info.mode == "RGBA"


def test_palette_with_transparency_and_grayscale():
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    pal.info["transparency"] = 0
    img = load_image(encode(pal, "PNG"))
    assert tuple(img.rgb[0, 0]) == NEUTRAL_BACKGROUND
    gray = load_image(encode(Image.new("L", (5, 5), 77), "PNG"))
    assert (gray.rgb == 77).all()


def test_16_bit_grayscale_is_scaled_by_bit_depth():
    arr = np.full((4, 4), 65535, np.uint16)
    arr[0, 0] = 0
    arr[0, 1] = 32896  # ~ 128 * 257
    img = load_image(encode(Image.fromarray(arr), "PNG"))
    assert img.rgb[1, 1, 0] == 255 and img.rgb[0, 0, 0] == 0 and img.rgb[0, 1, 0] == 128


def test_exif_orientation_is_applied():
    src = Image.new("RGB", (40, 20), (255, 0, 0))
    src.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° CW when shown
    img = load_image(encode(src, "JPEG", exif=exif, quality=95))
    assert img.rgb.shape[:2] == (40, 20)  # portrait after applying orientation
    top, bottom = img.rgb[2, 10], img.rgb[37, 10]
    assert top[2] > 200 and bottom[0] > 200  # the blue half is now on top


def test_animated_image_uses_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    img = load_image(buf.getvalue())
    assert img.info.frames == 2
    assert img.rgb[0, 0, 0] > 200 and img.rgb[0, 0, 1] < 50


def test_limits_on_bytes_and_pixels():
    data = encode(gradient(), "PNG")
    with pytest.raises(ImageTooLargeError, match="limit"):
        load_image(data, max_bytes=100)
    with pytest.raises(ImageTooLargeError, match="MP"):
        load_image(data, max_pixels=100)


def test_decompression_bomb_is_refused_before_decoding():
    # a tiny PNG whose header claims 40000 x 40000 pixels (IHDR patched, CRC fixed)
    png = bytearray(encode(Image.new("L", (8, 8)), "PNG"))
    assert png[12:16] == b"IHDR"
    png[16:24] = (40000).to_bytes(4, "big") * 2
    png[29:33] = zlib.crc32(bytes(png[12:29])).to_bytes(4, "big")
    bomb = bytes(png)
    with pytest.raises(ImageTooLargeError):
        load_image(bomb, max_pixels=50_000_000)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b"hello, not an image", "not a readable image"),
        (encode(noise(), "PNG")[:2000], "corrupt or truncated"),
        (encode(noise(), "JPEG")[:1500], "corrupt or truncated"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20, "corrupt or truncated"),
    ],
)
def test_bad_bytes_give_clear_errors(data, match):
    with pytest.raises(ImageDecodeError, match=match):
        load_image(data)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageDecodeError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageDecodeError, match="not a regular file"):
        load_image(tmp_path)


def test_unsupported_format_is_named():
    data = encode(gradient(), "PPM")
    with pytest.raises(UnsupportedImageError, match="PPM"):
        load_image(data)


def test_fit_downscales_long_side_consistently():
    img = load_image(gradient(300, 100))
    small = img.fit(150)
    assert small.shape == (50, 150, 3)
    assert img.fit(150) is small  # cached
    assert img.fit(1000) is img.rgb  # never upscaled


def test_flat_image_has_zero_luma_std():
    assert load_image(Image.new("RGB", (64, 64), (10, 200, 30))).luma_std() < 1e-3
    assert load_image(gradient()).luma_std() > 10
