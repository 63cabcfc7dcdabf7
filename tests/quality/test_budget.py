"""Bounded cost per image: the scoring pixel budget, the memory estimate before decoding, and per-metric reasons
of the NSS backend (issue 11, item 7)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import quality.image_io as image_io
from quality.backends.base import LoadContext
from quality.backends.nss import NSSBackend, nss_features
from quality.budget import estimate_memory, scored_size
from quality.errors import ImageTooLargeError, PartialMetricError
from quality.scorer import Scorer
from quality.settings import QualitySettings
from quality.weights import WeightsStore
from tests.quality.conftest import textured


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _large(width: int, height: int, seed: int = 0) -> Image.Image:
    """A textured image of the given size (a small texture scaled up: cheap to make, compresses well)."""
    return textured(seed, 256).resize((width, height), Image.Resampling.BILINEAR)


def _settings(tmp_path, **kw) -> QualitySettings:
    return QualitySettings(offline=True, weights_dir=tmp_path / "no-weights", device="cpu", metrics=["brisque", "niqe",
                           "edge_density"], calibration=False, **kw)  # fmt: skip


def test_scored_size_fits_the_budget_and_keeps_the_aspect_ratio():
    for w, h, budget in [(7000, 7000, 8 * 2**20), (100000, 1, 5000), (3001, 1999, 1_000_000)]:
        sw, sh = scored_size(w, h, budget)
        assert sw * sh <= budget
        assert sw * sh > budget * 0.98 or min(sw, sh) == 1  # the largest size that fits, not much smaller
        assert abs(sw / sh - w / h) / (w / h) < 0.01 or min(sw, sh) == 1
    assert scored_size(640, 480, 10**6) == (640, 480)
    assert scored_size(640, 480, None) == (640, 480)


def test_an_image_over_the_pixel_budget_is_downscaled_once_before_every_metric(tmp_path):
    big = _large(1600, 1000)
    data = _png(big)
    settings = _settings(tmp_path, scoring_max_pixels=400_000)
    report = Scorer(settings).score(data)

    assert (report.image.width, report.image.height) == (1600, 1000)
    sw, sh = report.image.scored_width, report.image.scored_height
    assert sw is not None and sh is not None
    assert sw * sh <= 400_000 and (sw, sh) == scored_size(1600, 1000, 400_000)
    assert any("pixel budget" in n and "COMFY_QUALITY_SCORING_MAX_PIXELS" in n for n in report.notes)
    # BRISQUE/NIQE of a large image are defined as those of the image reduced with antialiased bicubic
    reduced = np.asarray(big.resize((sw, sh), Image.Resampling.BICUBIC, reducing_gap=None))
    expected = nss_features(np.ascontiguousarray(reduced))
    assert report.technical.brisque == pytest.approx(expected["brisque"], abs=1e-5)
    assert report.technical.niqe == pytest.approx(expected["niqe"], abs=1e-5)
    # deterministic: the same file gives the same values
    again = Scorer(settings).score(data)
    assert again.technical.brisque == report.technical.brisque


def test_an_image_within_the_budget_is_scored_at_full_resolution(tmp_path):
    img = _large(640, 480)
    report = Scorer(_settings(tmp_path, scoring_max_pixels=640 * 480)).score(_png(img))
    assert report.image.scored_width is None and report.image.scored_height is None
    assert not any("pixel budget" in n for n in report.notes)
    assert report.technical.brisque == pytest.approx(nss_features(np.asarray(img))["brisque"], abs=1e-5)


def test_budget_zero_turns_it_off(tmp_path):
    report = Scorer(_settings(tmp_path, scoring_max_pixels=0)).score(_png(_large(900, 700)))
    assert report.image.scored_width is None


def test_the_default_budget_reduces_a_12_mp_image(tmp_path):
    settings = _settings(tmp_path)
    assert settings.scoring_max_pixels == 8 * 2**20
    prepared = Scorer(settings).prepare(_png(_large(4000, 3000)))  # what every metric is given
    assert (prepared.info.width, prepared.info.height) == (4000, 3000)
    assert (prepared.width, prepared.height) == scored_size(4000, 3000, settings.scoring_max_pixels)
    assert (prepared.info.scored_width, prepared.info.scored_height) == (prepared.width, prepared.height)
    assert prepared.width * prepared.height <= settings.scoring_max_pixels


def test_the_memory_estimate_refuses_before_decoding_and_states_limit_and_size(tmp_path, monkeypatch):
    data = _png(_large(2000, 1500))
    settings = _settings(tmp_path, max_image_memory=16 * 2**20)

    def no_decode(img):
        raise AssertionError("the image was decoded although its memory estimate is over the limit")

    monkeypatch.setattr(image_io, "_to_rgb", no_decode)
    with pytest.raises(ImageTooLargeError) as info:
        Scorer(settings).score(data)
    msg = str(info.value)
    assert "2000x1500" in msg and "3.0 MP" in msg
    assert "16 MiB" in msg and "COMFY_QUALITY_MAX_IMAGE_MEMORY" in msg
    estimate = estimate_memory(2000, 1500, "RGB", settings.scoring_max_pixels)
    assert f"{estimate / 2**20:,.0f} MiB" in msg
    assert len(msg) < 400


def test_the_memory_estimate_counts_alpha_and_high_bit_depth_as_heavier():
    rgb = estimate_memory(4000, 4000, "RGB", None)
    assert estimate_memory(4000, 4000, "RGBA", None) > rgb
    assert estimate_memory(4000, 4000, "I;16", None) > rgb
    assert estimate_memory(4000, 4000, "RGB", 10**6) < rgb  # the budget bounds the scoring part


def test_defaults_accept_every_8_bit_image_within_the_pixel_limit():
    s = QualitySettings(offline=True)
    for mode in ("L", "P", "RGB", "RGBA", "LA"):
        assert estimate_memory(7071, 7071, mode, s.scoring_max_pixels) <= s.max_image_memory
    assert estimate_memory(7071, 7071, "I", s.scoring_max_pixels) > s.max_image_memory


@pytest.fixture(scope="module")
def nss_backend():
    backend = NSSBackend()
    backend.load(LoadContext(weights=WeightsStore(offline=True)))
    return backend


def _prepared(arr: np.ndarray) -> image_io.PreparedImage:
    return image_io.load_image(Image.fromarray(arr, "RGB"))


def test_a_100000_by_1_image_gives_each_metric_its_own_reason(nss_backend):
    arr = np.random.default_rng(0).integers(0, 255, (1, 100000, 3), dtype=np.uint8)
    with pytest.raises(PartialMetricError) as info:
        nss_backend.compute_detailed(_prepared(arr), None)
    reasons = info.value.reasons
    assert set(reasons) == {"brisque", "niqe"}
    assert "BRISQUE" in reasons["brisque"] and "NIQE" not in reasons["brisque"]
    assert "NIQE" in reasons["niqe"] and "BRISQUE" not in reasons["niqe"]
    assert "100000×1" in reasons["brisque"]


def test_niqe_undefined_does_not_cost_brisque_its_value(nss_backend):
    arr = np.full((300, 400, 3), 100, np.uint8)
    arr[:, :200] = 150  # one step edge: NIQE has no defined block, BRISQUE is defined
    with pytest.raises(PartialMetricError) as info:
        nss_backend.compute_detailed(_prepared(arr), None)
    assert set(info.value.reasons) == {"niqe"} and "NIQE" in info.value.reasons["niqe"]
    assert np.isfinite(info.value.values["brisque"])


def test_the_scorer_reports_each_nss_metric_with_its_own_reason(tmp_path):
    arr = np.full((300, 400, 3), 100, np.uint8)
    arr[:, :200] = 150  # one step edge: NIQE has no defined block, BRISQUE is defined
    report = Scorer(_settings(tmp_path)).score(Image.fromarray(arr, "RGB"))
    assert report.metrics["brisque"].status == "ok" and report.technical.brisque is not None
    niqe = report.metrics["niqe"]
    assert niqe.status == "error" and niqe.reason and "NIQE" in niqe.reason and "BRISQUE" not in niqe.reason
