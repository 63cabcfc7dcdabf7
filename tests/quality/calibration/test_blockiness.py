"""JPEG block measures are taken where the block grid is: on the image as decoded, not on its reduced copy."""

import io

import numpy as np
import pytest
from PIL import Image

from quality.calibration import load_default
from quality.calibration.damage import working
from quality.calibration.features import blockiness, extract
from quality.scorer import Scorer
from quality.settings import QualitySettings
from tests.quality.conftest import textured


def jpeg(img: Image.Image, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.fixture(scope="module")
def large_jpeg() -> tuple[np.ndarray, np.ndarray]:
    """A 900-px image coded as JPEG quality 15, and the same image without coding."""
    clean = textured(seed=3, size=900)
    return np.asarray(clean.convert("RGB")), jpeg(clean, 15)


def test_blockiness_is_about_one_without_block_coding_and_higher_with_it(large_jpeg):
    from quality.backends import nss_math as nm

    clean, coded = large_jpeg
    h0, v0 = blockiness(nm.luma(clean))
    h1, v1 = blockiness(nm.luma(coded))
    assert abs(h0 - 1.0) < 0.1 and abs(v0 - 1.0) < 0.1
    assert h1 > h0 + 0.3 and v1 > v0 + 0.3


def test_a_reduced_copy_loses_the_grid_and_the_source_gives_it_back(large_jpeg):
    _, coded = large_jpeg
    reduced = working(coded, 512)
    alone = extract(reduced)
    with_source = extract(reduced, source=coded)
    assert alone["block_h"] < 1.1 < 1.3 < with_source["block_h"]  # 900 → 512 px: the 8-px grid is gone
    assert with_source["block_v"] > alone["block_v"] + 0.2
    # every other feature but the level measures (also taken on the decoded pixels) is of the reduced copy
    others = set(alone) - {"block_h", "block_v", "level_gaps", "level_comb"}
    assert all(alone[k] == with_source[k] for k in others)


def test_a_source_of_the_working_size_changes_nothing(large_jpeg):
    small = working(large_jpeg[1], 400)
    assert extract(small) == extract(small, source=small.copy())


def test_the_scorer_measures_blocks_on_the_decoded_image(tmp_path, large_jpeg):
    _, coded = large_jpeg
    settings = QualitySettings(offline=True, weights_dir=tmp_path / "no-weights", device="cpu")
    report = Scorer(settings).score(Image.fromarray(coded))
    model = load_default()
    reduced = working(coded, model.working_side)
    with_source, mos_with = model.score(reduced, source=coded)
    without, mos_without = model.score(reduced)
    assert report.technical.score == pytest.approx(with_source["technical"], abs=1e-4)
    # the block measures of the decoded pixels change what the model reads (the scores themselves may both lie
    # deep in the soft floor, a few thousandths apart)
    assert with_source["technical"] != without["technical"]
    assert abs(mos_with["technical"] - mos_without["technical"]) > 1e-3
