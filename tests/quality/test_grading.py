"""No grade from a sliver: the ungraded path through the Scorer, the smallest scored image, NIQE's upscaled copy."""

import numpy as np
import pytest
from PIL import Image

from quality.backends.base import Backend, LoadContext
from quality.errors import ImageTooSmallError, MetricError
from quality.grading import MIN_SIDE, niqe_upscaled_size
from quality.image_io import PreparedImage
from quality.report import QualityBlock
from quality.scorer import Scorer
from quality.settings import QualitySettings
from tests.quality.conftest import textured


def noise(size: int, seed: int = 0) -> Image.Image:
    """Pure coloured noise: what a broken small checkpoint produced."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")


class RefusingNSS(Backend):
    """The technical metrics as they behaved in the incident: they refuse the size."""

    name = "nss"

    def load(self, ctx: LoadContext) -> None:
        pass

    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        raise MetricError(f"NIQE needs 96-px blocks; this one is {image.width}×{image.height}", metric="niqe")


class PerfectEdges(Backend):
    """Edge density at the top of its scale (the incident's 10.00)."""

    name = "edges"

    def load(self, ctx: LoadContext) -> None:
        pass

    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        return {"edge_density": 0.12}


def test_the_incident_edge_density_alone_is_not_graded(offline_settings, fresh_models):
    scorer = Scorer(offline_settings, backends={"nss": RefusingNSS, "edges": PerfectEdges})
    report = scorer.score(noise(64), "a cat")
    assert report.detail.score is not None and report.technical.score is None
    assert report.coverage.coverage == pytest.approx(0.2)
    assert report.grade is None and report.grade_status == "insufficient"
    assert report.grade_reasons[0].startswith("technical not scored (brisque, niqe: NIQE needs 96-px blocks")
    assert report.grade_reasons[1] == "coverage 20% < 50% of the applicable weight"
    assert any(n.startswith("not graded: technical not scored") and "is not a grade" in n for n in report.notes)
    assert "not graded" in report.grade_text() and "is not a grade" in report.grade_text()


def test_64px_noise_gets_technical_scores_and_is_not_graded_A(offline_settings):
    report = Scorer(offline_settings).score(noise(64), "a cat")
    assert report.metrics["brisque"].status == "ok" and report.metrics["niqe"].status == "ok"
    assert report.technical.score is not None
    assert report.grade != "A"
    if report.grade is None:  # graded or not, a pure-noise image never gets a good letter
        assert report.grade_reasons
    else:
        assert report.grade in ("D", "F")
    assert any("upscaled to 96×96 px" in n for n in report.notes)


def test_only_edge_density_enabled_is_not_graded(offline_settings):
    settings = offline_settings.model_copy(update={"metrics": ["edge_density"]})
    report = Scorer(settings).score(noise(64))
    assert report.grade is None and report.grade_status == "insufficient"
    assert report.grade_reasons[0].startswith("technical not scored (brisque, niqe: disabled by settings")


@pytest.mark.parametrize(("w", "h"), [(20, 20), (31, 200), (300, 16)])
def test_an_image_under_the_minimum_is_refused_with_its_size(offline_settings, w, h):
    with pytest.raises(ImageTooSmallError) as info:
        Scorer(offline_settings).score(Image.new("RGB", (w, h), (10, 200, 30)))
    message = str(info.value)
    assert f"{w}×{h} px" in message and f"{MIN_SIDE} px minimum" in message


def test_the_minimum_itself_is_scored(offline_settings):
    report = Scorer(offline_settings).score(textured(1, size=MIN_SIDE))
    assert report.metrics["brisque"].status == "ok" and report.metrics["niqe"].status == "ok"


def test_48px_image_gets_niqe_from_the_upscaled_copy(offline_settings):
    from quality.backends import nss_math as nm
    from quality.backends.nss import niqe_block_features, niqe_score, packaged_params

    image = textured(3, size=48)
    scorer = Scorer(offline_settings)
    report = scorer.score(image)
    assert report.metrics["niqe"].status == "ok"
    big = np.asarray(image.resize((96, 96), Image.Resampling.BICUBIC, reducing_gap=None))
    expected, _ = niqe_score(niqe_block_features(nm.luma(np.ascontiguousarray(big))), packaged_params())
    assert report.technical.niqe == pytest.approx(expected, abs=1e-6)
    assert scorer.score(image).technical.niqe == report.technical.niqe  # always the same resampling
    assert any("NIQE was computed on a bicubic copy upscaled to 96×96 px" in n for n in report.notes)


@pytest.mark.parametrize(
    ("w", "h", "size"),
    [(48, 48, (96, 96)), (32, 100, (96, 300)), (100, 33, (291, 96)), (96, 50, (185, 96)), (96, 96, None),
     (500, 97, None)],
)  # fmt: skip
def test_niqe_copy_size(w, h, size):
    assert niqe_upscaled_size(w, h) == size


def test_coverage_minimum_comes_from_the_environment(monkeypatch, offline_settings):
    monkeypatch.setenv("COMFY_QUALITY_MIN_GRADED_COVERAGE", "0.8")
    settings = QualitySettings(offline=True, weights_dir=offline_settings.weights_dir, device="cpu")
    assert settings.composite.min_graded_coverage == 0.8
    strict = Scorer(settings).score(textured(2), "a landscape")  # technical + detail: 50 % of the weight
    assert strict.technical.score is not None and strict.coverage.coverage == pytest.approx(0.5)
    assert strict.grade is None and strict.grade_reasons == ["coverage 50% < 80% of the applicable weight"]
    monkeypatch.delenv("COMFY_QUALITY_MIN_GRADED_COVERAGE")
    default = Scorer(offline_settings).score(textured(2), "a landscape")
    assert default.grade is not None and default.grade_status == "graded"


def test_coverage_minimum_out_of_range_is_refused(monkeypatch):
    monkeypatch.setenv("COMFY_QUALITY_MIN_GRADED_COVERAGE", "2")
    with pytest.raises(ValueError, match="min_graded_coverage"):
        QualitySettings()


def test_a_quality_block_without_grade_is_insufficient_and_a_grade_is_graded():
    block = QualityBlock(composite_score=9.0, grade=None)
    assert block.grade_status == "insufficient" and not block.graded
    with pytest.raises(ValueError, match="a grade is 'graded'"):
        QualityBlock(composite_score=9.0, grade="A", grade_status="insufficient")
    old = QualityBlock.model_validate({"composite_score": 7.0, "grade": "B"})  # documents written before
    assert old.grade_status == "graded" and old.grade_text() == "B (7.00)"
