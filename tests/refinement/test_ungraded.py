"""No grade from a sliver in the retry loop: an ungraded attempt never reaches the threshold, a graded attempt is
preferred over an ungraded one, and the result says why. Fake ComfyUI over HTTP + websocket, the real scorer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quality.backends.base import Backend, LoadContext
from quality.errors import MetricError
from quality.image_io import PreparedImage
from quality.report import QualityReport
from quality.scorer import BACKENDS, Scorer
from quality.settings import QualitySettings
from refinement.api import GenerationRequest
from refinement.comfyui import ComfyUIPool
from refinement.orchestrator import Orchestrator
from refinement.settings import RefinementSettings
from refinement.strategies import reaches_threshold
from storage import Index, LocalStore
from storage.metadata import describe_rejection
from tests.fakes.comfyui_server import FakeComfyUI
from tests.storage.factories import make_quality

WORKFLOWS = Path(__file__).resolve().parents[2] / "refinement" / "workflows"


class RefusingNSS(Backend):
    """BRISQUE and NIQE refusing every image, as they refused the 64×64 image of the incident.
    Registered as the ``nss`` backend: its metrics come from the metric table, as a real backend's."""

    name = "nss"

    def load(self, ctx: LoadContext) -> None:
        pass

    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        raise MetricError(f"refused {image.width}×{image.height}", metric="niqe")


class FirstUngraded:
    """The real scorer, except that the first image it scores comes back ungraded with a high composite."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.calls = 0

    def score(self, image: bytes, prompt: str | None = None, *, source_name: str | None = None) -> QualityReport:
        report = self.scorer.score(image, prompt, source_name=source_name)
        self.calls += 1
        if self.calls > 1:
            return report
        return report.model_copy(update={
            "composite_score": 9.9, "grade": None, "grade_status": "insufficient",
            "grade_reasons": ["technical not scored (niqe: refused)", "coverage 20% < 50% of the applicable weight"],
        })  # fmt: skip


def request(**kw) -> GenerationRequest:
    defaults = {"prompt": "a red fox in the snow", "width": 128, "height": 128, "steps": 6, "seed": 3,
                "quality_threshold": 0.0, "max_attempts": 3, "retry_strategy": "seed_search"}  # fmt: skip
    return GenerationRequest(**(defaults | kw))


@pytest.fixture(scope="module")
def incident_scorer(tmp_path_factory):
    weights = tmp_path_factory.mktemp("no-weights")
    scorer = Scorer(QualitySettings(offline=True, device="cpu", weights_dir=weights),
                    backends=dict(BACKENDS, nss=RefusingNSS))  # fmt: skip
    assert RefusingNSS().metrics == ("brisque", "niqe")  # what the incident needs refused, from the registry
    yield scorer
    scorer.close()


@pytest.fixture
async def run(tmp_path):
    async with FakeComfyUI() as comfy:
        pool = ComfyUIPool([comfy.url])
        index = Index(tmp_path / "index.sqlite3")

        async def go(scorer, req: GenerationRequest):
            store = LocalStore(tmp_path / "store")
            settings = RefinementSettings(comfyui_urls=[comfy.url], attempt_timeout_seconds=30)
            result = await Orchestrator(scorer, pool, store, index, settings).generate(req)
            return result, await store.get_metadata(result.generation_id), index

        try:
            yield go
        finally:
            await pool.close()


async def test_ungraded_attempts_never_reach_even_a_zero_threshold(run, incident_scorer):
    result, md, index = await run(incident_scorer, request())
    assert result.attempts_used == 3  # without the rule, attempt 1 (composite from edge density) would stop it
    assert result.status == "best_effort" and result.grade is None and result.grade_status == "insufficient"
    assert result.grade_reasons and result.grade_reasons[0].startswith("technical not scored (brisque, niqe: refused")
    assert result.selection and "no attempt could be graded" in result.selection
    assert all(a.grade is None and a.grade_status == "insufficient" for a in result.attempts)
    assert all(a.rejected_reason.startswith("not graded (technical not scored")
               for a in result.attempts if a.attempt != result.best_attempt)  # fmt: skip
    assert md.refinement.status == "best_effort" and md.quality.grade is None
    assert md.quality.grade_status == "insufficient" and md.refinement.selection == result.selection
    row = index.get(result.generation_id)
    assert row.grade is None and row.status == "best_effort" and row.grade_status == "insufficient"


async def test_a_graded_attempt_beats_a_higher_ungraded_one(run, offline_scorer):
    scorer = FirstUngraded(offline_scorer)
    result, md, _ = await run(scorer, request(quality_threshold=10.0, max_attempts=2))
    first, second = result.attempts
    assert first.composite_score == 9.9 and first.grade is None and second.grade is not None
    assert second.composite_score < 9.9
    assert result.best_attempt == 2 and result.grade == second.grade and result.status == "best_effort"
    assert "attempt 2 (graded) was kept over higher but ungraded" in result.selection
    assert first.rejected_reason.startswith("not graded (technical not scored (niqe: refused)")
    assert md.refinement.best_attempt == 2


async def test_an_ungraded_attempt_does_not_stop_the_loop_a_graded_one_does(run, offline_scorer):
    scorer = FirstUngraded(offline_scorer)
    result, _, _ = await run(scorer, request(quality_threshold=0.0, max_attempts=3))
    assert result.attempts_used == 2 and result.status == "success" and result.best_attempt == 2
    assert result.attempts[1].accepted and not result.attempts[0].accepted


def tiny_workflow(side: int) -> str:
    """The sd15 template with an ImageScale to ``side``×``side`` before SaveImage."""
    wf = json.loads((WORKFLOWS / "sd15.json").read_text())
    save = next(n for n in wf.values() if n["class_type"] == "SaveImage")
    wf["99"] = {"class_type": "ImageScale", "inputs": {"image": save["inputs"]["images"], "upscale_method":
                "bicubic", "width": side, "height": side, "crop": "disabled"}}  # fmt: skip
    save["inputs"]["images"] = ["99", 0]
    return json.dumps(wf)


async def test_an_image_under_the_minimum_fails_the_attempt_with_the_size(run, offline_scorer):
    result, md, _ = await run(offline_scorer, request(workflow=tiny_workflow(24), max_attempts=1))
    assert result.status == "failed" and result.grade is None
    assert "24×24 px, smaller than the 32 px minimum" in result.attempts[0].error
    assert "24×24 px" in result.error and md.quality is None


async def test_a_48px_image_is_scored_with_niqe_and_can_be_graded(run, offline_scorer):
    result, md, _ = await run(offline_scorer, request(workflow=tiny_workflow(48), max_attempts=1))
    assert md.quality.technical.niqe is not None and md.quality.technical.brisque is not None
    assert result.grade is not None and result.status == "success"


def test_threshold_rule_and_rejection_text():
    assert reaches_threshold(7.5, True, 7.0) and not reaches_threshold(9.9, False, 7.0)
    assert not reaches_threshold(None, True, 0.0) and not reaches_threshold(6.9, True, 7.0)
    ungraded = make_quality(9.9).model_copy(
        update={"grade": None, "grade_status": "insufficient", "grade_reasons": ["technical not scored"]}
    )
    text = describe_rejection(ungraded, 7.0)
    assert text == ("not graded (technical not scored): composite 9.90 is not a grade and cannot reach the "
                    "threshold 7.00")
    assert describe_rejection(make_quality(6.0), 7.0).startswith("composite 6.00 < threshold 7.00")


def test_generate_cli_render_says_not_graded():
    from refinement.api import AttemptSummary, GenerationResult
    from refinement.cli import render

    result = GenerationResult(
        generation_id="g1", status="best_effort", composite_score=9.9, grade=None, grade_status="insufficient",
        grade_reasons=["technical not scored", "coverage 20% < 50% of the applicable weight"], best_attempt=1,
        selection="no attempt could be graded; attempt 1 has the highest ungraded composite (9.90)",
        attempts=[AttemptSummary(attempt=1, parameters={"seed": 1, "steps": 8, "cfg": 7.0}, composite_score=9.9,
                                 grade=None, grade_status="insufficient")],
    )  # fmt: skip
    text = render(result)
    assert ("best: attempt 1, NOT GRADED (technical not scored; coverage 20% < 50% of the applicable weight); "
            "composite 9.90 is not a grade") in text
    assert "selection: no attempt could be graded" in text and "→ 9.90 not graded" in text
