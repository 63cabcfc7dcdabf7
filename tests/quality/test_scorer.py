import json
import subprocess
import sys

import pytest
from PIL import Image

from quality.backends.base import Backend, LoadContext
from quality.errors import ImageDecodeError, WeightsUnavailableError
from quality.image_io import PreparedImage
from quality.models import LOAD_COUNTS
from quality.report import QualityBlock, QualityReport
from quality.scorer import Scorer
from quality.settings import QualitySettings
from tests.quality.conftest import AGIQA, REPO, textured


def test_flat_image_scores_F_with_the_reason_not_a_crash(offline_settings):
    report = Scorer(offline_settings).score(Image.new("RGB", (128, 128), (0, 0, 0)), "a cat")
    assert report.grade == "F" and report.composite_score == 0.0 and report.flat
    assert any("flat colour" in n for n in report.notes)
    assert all(r.status != "ok" for r in report.metrics.values())


def test_without_weights_deep_metrics_are_unavailable_and_composite_says_coverage(offline_settings):
    report = Scorer(offline_settings).score(AGIQA / "midjourney_normal_000.jpg", "statue of a man")
    for name in ("laion_aesthetic", "nima_mean", "clip_score", "topiq"):
        assert report.metrics[name].status == "unavailable"
        assert "not in" in report.coverage.metrics_unavailable[name]
        assert report.metrics[name].raw is None  # never a made-up value
    assert report.aesthetic.score is None and report.prompt_adherence.score is None
    assert report.partial and report.coverage.partial
    assert report.coverage.dimensions["aesthetic"] == "unavailable"
    assert 0 < report.coverage.coverage < 1
    assert sum(report.coverage.effective_weights.values()) == pytest.approx(1.0)
    assert report.metrics["edge_density"].status == "ok"


def test_no_prompt_means_prompt_adherence_not_applicable(tiny_weights, tiny_options, fresh_models):
    scorer = Scorer(QualitySettings(device="cpu"), weights=tiny_weights, options=tiny_options)
    report = scorer.score(textured(1))
    assert report.metrics["clip_score"].status == "not_applicable"
    assert report.coverage.dimensions["prompt_adherence"] == "not_applicable"
    assert report.prompt_adherence.score is None
    assert "prompt_adherence" not in report.coverage.effective_weights
    with_prompt = scorer.score(textured(1), "red circles")
    assert with_prompt.metrics["clip_score"].status == "ok"
    assert with_prompt.coverage.dimensions["prompt_adherence"] == "scored"


def test_all_deep_metrics_run_from_weight_files(tiny_weights, tiny_options, fresh_models):
    scorer = Scorer(QualitySettings(device="cpu"), weights=tiny_weights, options=tiny_options)
    report = scorer.score(textured(2), "a landscape")
    for name in ("laion_aesthetic", "nima_mean", "clip_score", "topiq", "edge_density"):
        r = report.metrics[name]
        assert r.status == "ok", (name, r.reason)
        assert r.raw is not None and 0 <= r.score <= 10 and r.version
    assert 1.0 <= report.aesthetic.nima_mean <= 10.0  # a mean over 10 softmax bins
    assert -1.0 <= report.prompt_adherence.clip_score <= 1.0
    assert set(report.timings) >= {"clip", "nima", "topiq", "edges"}
    assert "sha256:" in report.versions["metric:nima_mean"]


def test_models_load_once_per_process(tiny_weights, tiny_options, fresh_models):
    settings = QualitySettings(device="cpu")
    first = Scorer(settings, weights=tiny_weights, options=tiny_options)
    for seed in range(3):
        first.score(textured(seed), "a prompt")
    second = Scorer(settings, weights=tiny_weights, options=tiny_options)
    second.score(textured(5), "another prompt")
    assert LOAD_COUNTS["clip"] == 1 and LOAD_COUNTS["nima"] == 1 and LOAD_COUNTS["topiq"] == 1
    assert LOAD_COUNTS["edges"] == 1


class Exploding(Backend):
    name = "edges"

    def load(self, ctx: LoadContext) -> None:
        pass

    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        raise RuntimeError("boom")


class Missing(Backend):
    name = "topiq"

    def load(self, ctx: LoadContext) -> None:
        raise WeightsUnavailableError("weights file x.pth is not in /nowhere", file="x.pth")

    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        raise AssertionError("never called")


class Constant(Backend):
    name = "nss"

    def load(self, ctx: LoadContext) -> None:
        pass

    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        return {"brisque": 5.0, "niqe": float("nan")}


def test_a_failing_metric_is_isolated_and_reported(offline_settings, fresh_models):
    scorer = Scorer(offline_settings, backends={"edges": Exploding, "topiq": Missing, "nss": Constant})
    report = scorer.score(textured(3))
    assert report.metrics["edge_density"].status == "error" and "boom" in report.metrics["edge_density"].reason
    assert report.metrics["topiq"].status == "unavailable" and "x.pth" in report.metrics["topiq"].reason
    assert report.metrics["brisque"].status == "ok" and report.metrics["brisque"].score == 10.0
    assert report.metrics["niqe"].status == "error" and "non-finite" in report.metrics["niqe"].reason
    assert report.technical.score == 10.0  # from brisque alone
    assert report.coverage.dimensions["detail"] == "unavailable"
    assert report.composite_score == 10.0 and report.partial


def test_metric_subset_from_settings(offline_settings):
    settings = offline_settings.model_copy(update={"metrics": ["edge_density"]})
    report = Scorer(settings).score(textured(4))
    assert report.coverage.metrics_ran == ["edge_density"]
    assert "disabled" in report.metrics["brisque"].reason


def test_bad_input_raises_a_quality_error(offline_settings):
    with pytest.raises(ImageDecodeError):
        Scorer(offline_settings).score(b"not an image")


def test_report_round_trips_and_exposes_the_metadata_quality_block(offline_settings):
    report = Scorer(offline_settings).score(AGIQA / "DALLE2_normal_001.jpg", "a tray of sushi")
    again = QualityReport.model_validate_json(report.model_dump_json())
    assert again == report
    block = report.quality_block()
    assert isinstance(block, QualityBlock)
    assert set(block.model_dump()) == {
        "composite_score", "grade", "grade_status", "grade_reasons", "technical", "aesthetic", "prompt_adherence",
        "detail",
    }  # fmt: skip
    assert set(block.model_dump()["technical"]) == {"score", "brisque", "niqe"}
    assert set(block.model_dump()["aesthetic"]) == {"score", "laion_aesthetic", "nima_mean"}
    assert set(block.model_dump()["prompt_adherence"]) == {"score", "clip_score"}
    assert set(block.model_dump()["detail"]) == {"score", "topiq", "edge_density"}
    assert report.device == "cpu" and report.versions["torch"] and report.image.width == 512


def test_loading_and_scoring_print_nothing_on_stdout(tmp_path, tiny_weights):
    """pyiqa and friends print while loading; a stdio MCP server cannot afford a single stray byte."""
    code = f"""
import json
from quality.scorer import Scorer
from quality.settings import QualitySettings
from tests.quality.tiny_models import TINY_OPTIONS, tiny_weights_store
ws = tiny_weights_store(__import__("pathlib").Path({str(tiny_weights.dir)!r}))
s = Scorer(QualitySettings(device="cpu"), weights=ws, options=TINY_OPTIONS)
r = s.score({str(AGIQA / "xl2.2_normal_004.jpg")!r}, "armor")
import sys; sys.stderr.write(json.dumps(r.coverage.metrics_ran))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == ""
    assert "topiq" in json.loads(proc.stderr.strip().splitlines()[-1])


class Chatty(Backend):
    name = "edges"

    def load(self, ctx: LoadContext) -> None:
        print("Loading pretrained model Chatty from /somewhere")  # what pyiqa does

    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        return {"edge_density": 0.1}


def test_prints_during_loading_are_diverted_to_stderr(offline_settings, fresh_models, capsys):
    Scorer(offline_settings, backends={"edges": Chatty}).score(textured(0))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Loading pretrained model Chatty" in captured.err
