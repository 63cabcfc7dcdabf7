"""The features that see damage the older statistics saw in the wrong direction (features version 3): the 8-bit
levels a digital gain leaves empty, overshoot across edges (halos), and the spectrum's band levels; and what
re-encoding an image costs (version 4)."""

import io
import itertools

import cv2
import numpy as np
import pytest
from PIL import Image

from quality import distortions
from quality.backends import nss_math as nm
from quality.calibration.damage import working
from quality.calibration.features import (
    ENCODE_QUALITIES,
    SPECTRUM_BANDS,
    encode_group,
    extract,
    halo,
    levels_group,
    sobel,
)
from tests.quality.conftest import textured


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(textured(seed=5, size=384).convert("RGB"))


def strictly_rising(values: list[float]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


def halo_of(rgb: np.ndarray) -> float:
    y = nm.luma(rgb)
    gx, gy = sobel(y)
    return halo(y, gx, gy, np.hypot(gx, gy).astype(np.float32))


def test_a_made_image_uses_every_level_and_a_gain_leaves_more_empty_the_stronger_it_is(photo):
    ladder = distortions.ladder("overexposure", photo)
    gaps = [levels_group(im)["level_gaps"] for im in ladder]
    assert gaps[0] < 0.02
    assert strictly_rising(gaps) and gaps[-1] > 0.3
    # PIL's own brightening (a plain multiplication), not the ladder's code, leaves gaps too
    brighter = np.asarray(Image.fromarray(photo).point(lambda v: min(255, round(v * 1.6))))
    assert levels_group(brighter)["level_gaps"] > 0.2


def test_darkening_and_contrast_loss_merge_levels_instead_of_leaving_gaps(photo):
    for kind in ("underexposure", "contrast_loss"):
        assert levels_group(distortions.apply(kind, photo, 0.5))["level_gaps"] < 0.05, kind


def test_posterisation_leaves_most_levels_empty(photo):
    gaps = [levels_group(im)["level_gaps"] for im in distortions.ladder("posterise", photo)]
    assert gaps[0] < 0.02 < 0.5 < gaps[1] and strictly_rising(gaps[1:])


def test_jpeg_combs_the_histogram(photo):
    def coded(q: int) -> np.ndarray:
        buf = io.BytesIO()
        Image.fromarray(photo).save(buf, "JPEG", quality=q)
        return np.asarray(Image.open(buf).convert("RGB"))

    combs = [levels_group(im)["level_comb"] for im in (photo, coded(50), coded(10))]
    assert strictly_rising(combs)


def test_the_levels_are_read_from_the_decoded_image_where_a_reduction_would_fill_the_gaps(photo):
    big = np.asarray(Image.fromarray(photo).resize((900, 900), Image.BICUBIC))
    brightened = distortions.apply("overexposure", big, 0.5)
    reduced = working(brightened, 512)
    assert levels_group(reduced)["level_gaps"] < 0.05  # the reduction's averaging fills the empty levels
    assert extract(reduced, source=brightened)["level_gaps"] == levels_group(brightened)["level_gaps"] > 0.2


def test_the_level_counts_are_numpys_and_a_strided_view_is_read_as_its_pixels(photo):
    counts = [cv2.calcHist([photo], [c], None, [256], [0, 256]).ravel() for c in range(3)]
    assert all((counts[c] == np.bincount(photo[..., c].ravel(), minlength=256)).all() for c in range(3))
    view = photo[::2, ::2]  # not contiguous
    assert levels_group(view) == levels_group(np.ascontiguousarray(view))


def test_one_level_images_count_as_all_gaps():
    flat = np.full((64, 64, 3), 128, np.uint8)
    assert levels_group(flat) == {"level_gaps": 1.0, "level_comb": 0.0}


def test_a_natural_edge_has_no_halo_and_unsharp_masking_adds_one_growing_with_the_amount_until_it_clips():
    # a soft step edge: a blurred disc
    yy, xx = np.mgrid[0:256, 0:256]
    disc = np.where((yy - 128) ** 2 + (xx - 128) ** 2 < 70**2, 200.0, 50.0).astype(np.float32)
    soft = cv2.GaussianBlur(disc, (0, 0), 2.0)
    rgb = np.repeat(np.clip(soft, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    values = [halo_of(im) for im in distortions.ladder("oversharpen", rgb)]
    assert values[0] < 0.01
    # amounts 0.8 → 4.4 rise; at 8 the overshoot is clipped at 0 and 255 and stops growing, still far above 0
    assert strictly_rising(values[:4]) and values[1] > 0.02 and values[4] > 0.05


def test_blur_removes_halos(photo):
    sharpened = distortions.apply("oversharpen", photo, 0.5)
    assert halo_of(distortions.apply("gaussian_blur", sharpened, 0.75)) < halo_of(sharpened)


def test_tiny_or_edgeless_images_have_no_halo():
    assert halo_of(np.full((10, 10, 3), 9, np.uint8)) == 0.0
    assert halo_of(np.full((64, 64, 3), 9, np.uint8)) == 0.0


@pytest.mark.parametrize("kind", ["gaussian_blur", "resolution_loss"])
def test_blur_and_resolution_loss_empty_the_upper_bands_step_by_step(photo, kind):
    names = [f"spec_band{a}" for a in SPECTRUM_BANDS[:-1]]
    ladder = [extract(im) for im in distortions.ladder(kind, photo)]
    # the band between a quarter and a third of Nyquist (bins 16–24) falls at every step, 3x → 4x included
    for name in ("spec_band16", "spec_band20"):
        assert strictly_rising([-f[name] for f in ladder]), name
    assert all(np.isfinite(f[n]) for f in ladder for n in names)


def encode_of(rgb: np.ndarray) -> dict[str, float]:
    return encode_group(rgb, nm.luma(rgb))


ENCODE_NAMES = [f"enc_jpeg{q}" for q in ENCODE_QUALITIES] + ["enc_luma", "enc_err"]


@pytest.mark.parametrize("kind", ["gaussian_blur", "defocus_blur", "resolution_loss", "webp", "contrast_loss"])
def test_damage_that_removes_detail_makes_the_image_cheaper_to_encode_at_every_step(photo, kind):
    sizes = [encode_of(im) for im in distortions.ladder(kind, photo)]
    for name in ("enc_jpeg30", "enc_luma"):
        assert strictly_rising([-f[name] for f in sizes]), (kind, name, [round(f[name], 3) for f in sizes])


@pytest.mark.parametrize("kind", ["gaussian_noise", "oversharpen"])
def test_noise_and_halos_make_it_dearer(photo, kind):
    sizes = [encode_of(im)["enc_jpeg30"] for im in distortions.ladder(kind, photo)]
    assert strictly_rising(sizes), sizes


def test_the_encode_group_is_in_every_extract_deterministic_and_scales_with_the_pixels(photo):
    a, b = extract(photo), extract(photo.copy())
    assert all(n in a and np.isfinite(a[n]) and a[n] == b[n] for n in ENCODE_NAMES)
    # bits per pixel, not bytes: the image tiled 2x2 costs about the same per pixel
    tiled = encode_of(np.tile(photo, (2, 2, 1)))
    assert all(abs(tiled[n] - a[n]) < 0.15 for n in ENCODE_NAMES[:-1])
    # a flat image costs almost nothing and is encoded to within one level (JPEG's DC step rounds it)
    flat = encode_of(np.full(photo.shape, 120, np.uint8))
    assert flat["enc_jpeg30"] < a["enc_jpeg30"] - 0.5
    assert flat["enc_err"] <= np.log1p(1.0) + 1e-6 < a["enc_err"]
