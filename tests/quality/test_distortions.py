import itertools

import numpy as np
import pytest

from quality import distortions as D
from tests.quality.conftest import textured


@pytest.fixture(scope="module")
def rgb():
    return np.asarray(textured(3, 128))


@pytest.mark.parametrize("kind", list(D.KINDS))
def test_every_kind_moves_further_from_the_original_as_severity_grows(rgb, kind):
    rungs = D.ladder(kind, rgb)
    assert len(rungs) == 1 + len(D.LEVELS)
    assert np.array_equal(rungs[0], rgb)
    for r in rungs:
        assert r.shape == rgb.shape and r.dtype == np.uint8
    dist = [float(np.abs(r.astype(np.float64) - rgb).mean()) for r in rungs]
    assert dist[1] > 0.0
    assert all(b > a for a, b in itertools.pairwise(dist)), dist
    again = D.ladder(kind, rgb)  # deterministic (noise and motion directions come from the seed)
    assert all(np.array_equal(a, b) for a, b in zip(rungs, again, strict=True))


def test_parameters_at_the_heaviest_level_are_heavy_damage():
    heavy = {k: D.KINDS[k].values(1.0) for k in D.KINDS}
    assert heavy["gaussian_blur"] >= 4 and heavy["gaussian_noise"] >= 50 and heavy["jpeg"] <= 5
    assert heavy["resolution_loss"] >= 4


def test_spatial_damage_scales_with_the_image_size(rgb):
    import cv2

    base = np.asarray(textured(3, 512))
    big = cv2.resize(base, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    # at twice the working size the blur is twice as wide: reduced to 512 px it matches the 512-px blur
    down = cv2.resize(D.apply("gaussian_blur", big, 1.0), (512, 512), interpolation=cv2.INTER_AREA)
    assert np.abs(down.astype(float) - D.apply("gaussian_blur", base, 1.0)).mean() < 1.5
    unscaled = cv2.resize(cv2.GaussianBlur(big, (0, 0), 5.0), (512, 512), interpolation=cv2.INTER_AREA)
    assert np.abs(unscaled.astype(float) - D.apply("gaussian_blur", base, 1.0)).mean() > 1.5


def test_noise_differs_between_seeds_and_colour_noise_keeps_luma(rgb):
    a, b = D.apply("gaussian_noise", rgb, 0.5, seed=1), D.apply("gaussian_noise", rgb, 0.5, seed=2)
    assert not np.array_equal(a, b)
    import cv2

    chroma = D.apply("colour_noise", rgb, 0.5)
    y0 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 0].astype(float)
    y1 = cv2.cvtColor(chroma, cv2.COLOR_RGB2YCrCb)[..., 0].astype(float)
    c0 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 1:].astype(float)
    c1 = cv2.cvtColor(chroma, cv2.COLOR_RGB2YCrCb)[..., 1:].astype(float)
    assert np.abs(y1 - y0).mean() < 0.3 * np.abs(c1 - c0).mean()


def test_bad_input_is_refused_clearly(rgb):
    with pytest.raises(ValueError, match="unknown distortion"):
        D.apply("sepia", rgb, 0.5)
    with pytest.raises(ValueError, match="severity"):
        D.apply("jpeg", rgb, 0.0)
    with pytest.raises(ValueError, match="increase"):
        D.ladder("jpeg", rgb, (0.5, 0.25))
