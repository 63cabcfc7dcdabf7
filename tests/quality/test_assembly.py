"""quality.assembly: the steps from one image's metric results to its report, each a function of its inputs."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from quality.assembly import Calibrated, ImageScoring, assemble, dimension_scores, verdict
from quality.composite import CompositeConfig
from quality.image_io import load_image
from quality.report import CalibrationInfo, MetricResult
from quality.specs import METRICS


def ok(name: str, score: float, raw: float = 1.0) -> MetricResult:
    return MetricResult(name=name, dimension=METRICS[name].dimension, status="ok", raw=raw, score=score)


def missing(name: str, reason: str = "weights absent") -> MetricResult:
    return MetricResult(name=name, dimension=METRICS[name].dimension, status="unavailable", reason=reason)


def state(results: list[MetricResult], *, prompt: str | None = None, flat: bool = False) -> ImageScoring:
    rgb = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    s = ImageScoring(prepared=load_image(Image.fromarray(rgb)), prompt=prompt, started=time.perf_counter(), flat=flat)
    s.results = {r.name: r for r in results}
    return s


def test_a_calibrated_score_stands_in_for_the_metrics_it_covers_only():
    results = {r.name: r for r in (ok("edge_density", 2.0), ok("topiq", 8.0), ok("brisque", 6.0))}
    plain = dimension_scores(results, Calibrated())
    assert plain["detail"] == pytest.approx(5.0) and plain["technical"] == 6.0 and plain["aesthetic"] is None
    calibrated = dimension_scores(results, Calibrated(scores={"detail": 4.0}, covers={"detail": ["edge_density"]}))
    assert calibrated["detail"] == pytest.approx(6.0)  # (4.0 for edge density + 8.0 topiq) / 2
    # covers without a calibrated score of that dimension change nothing
    assert dimension_scores(results, Calibrated(covers={"detail": ["edge_density"]})) == plain


def test_without_a_prompt_prompt_adherence_does_not_apply():
    assert state([], prompt=None).not_applicable == frozenset({"prompt_adherence"})
    assert state([], prompt="a cat").not_applicable == frozenset()


def test_the_verdict_explains_a_missing_technical_dimension():
    s = state([missing("brisque", "no SVM"), missing("niqe", "no SVM"), ok("edge_density", 10.0)])
    found = verdict(s, dimension_scores(s.results, Calibrated()), CompositeConfig())
    assert found.grade is None and found.partial
    assert found.reasons[0] == "technical not scored (brisque, niqe: no SVM)"


def test_a_flat_image_is_a_definite_f_without_coverage():
    s = state([], flat=True)
    found = verdict(s, dict.fromkeys(("technical", "aesthetic", "prompt_adherence", "detail")), CompositeConfig())
    assert (found.grade, found.composite_score, found.coverage, found.partial) == ("F", 0.0, 0.0, False)
    assert found.effective_weights == {} and found.reasons == []


def test_assemble_builds_the_report_from_the_state():
    s = state([ok("brisque", 8.0, raw=20.0), ok("niqe", 6.0, raw=5.0), missing("clip_score")], prompt="a cat")
    s.timings["nss"] = 0.5
    info = CalibrationInfo(enabled=True, reason="off for this test")
    report = assemble(s, Calibrated(info=info), composite=CompositeConfig(), device="cpu", versions={"python": "3"})
    assert report.technical.score == pytest.approx(7.0) and report.technical.brisque == 20.0
    assert report.coverage.metrics_ran == ["brisque", "niqe"]
    assert report.coverage.metrics_unavailable == {"clip_score": "weights absent"}
    assert report.coverage.dimensions["prompt_adherence"] == "unavailable" and report.grade is None
    assert any(n.startswith("not graded") for n in report.notes)
    assert report.calibration is None and report.calibration_info == info
    assert report.timings == {"nss": 0.5} and report.versions == {"python": "3"} and report.prompt == "a cat"
