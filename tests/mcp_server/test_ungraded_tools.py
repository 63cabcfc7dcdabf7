"""score_image and generate_quality say "not graded" with the reason, never a grade from a sliver; images under the
minimum are refused by name. In-memory SDK client; generate_quality drives the real orchestrator against the fake
ComfyUI server (in-process, over HTTP + websocket)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_server.models import GenerationOutput, ScoreResult
from quality.backends.base import Backend, LoadContext
from quality.errors import MetricError
from quality.image_io import PreparedImage
from quality.scorer import BACKENDS, Scorer
from quality.settings import QualitySettings
from refinement.comfyui import ComfyUIPool
from refinement.orchestrator import Orchestrator
from refinement.settings import RefinementSettings
from storage import Index, LocalStore
from tests.fakes.comfyui_server import FakeComfyUI
from tests.mcp_server.conftest import b64, components_for, connect, png_bytes, text
from tests.mcp_server.polling import until_final

WORKFLOWS = Path(__file__).resolve().parents[2] / "refinement" / "workflows"


class RefusingNSS(Backend):
    """BRISQUE and NIQE refusing the image, as in the incident (composite from edge density alone).
    Registered as the ``nss`` backend: its metrics come from the metric table, as a real backend's."""

    name = "nss"

    def load(self, ctx: LoadContext) -> None:
        pass

    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        raise MetricError(f"refused {image.width}×{image.height}", metric="niqe")


@pytest.fixture(scope="module")
def incident_scorer(tmp_path_factory):
    scorer = Scorer(QualitySettings(offline=True, device="cpu", weights_dir=tmp_path_factory.mktemp("none")),
                    backends=dict(BACKENDS, nss=RefusingNSS))  # fmt: skip
    assert RefusingNSS().metrics == ("brisque", "niqe")  # what the incident needs refused, from the registry
    yield scorer
    scorer.close()


async def test_score_image_of_the_incident_says_not_graded_with_the_reasons(incident_scorer, settings):
    async with connect(settings, components_for(incident_scorer)) as (client, _):
        result = await client.call_tool("score_image", {"image": b64(png_bytes((64, 64))), "prompt": "a cat"})
    assert not result.is_error, text(result)
    out = ScoreResult.model_validate(result.structured_content)
    assert out.grade is None and out.grade_status == "insufficient" and out.composite_score is None
    assert out.ungraded_composite is not None and out.quality.composite_score == out.ungraded_composite
    assert out.grade_reasons == [
        "technical not scored (brisque, niqe: refused 64×64)",
        "coverage 20% < 50% of the applicable weight",
    ]
    assert out.summary.startswith("NOT GRADED (technical not scored") and "is not a grade" in out.summary
    assert out.quality.grade is None and out.quality.grade_status == "insufficient"


async def test_score_image_of_64px_noise_is_scored_technically_and_not_graded_A(offline_scorer, settings):
    async with connect(settings, components_for(offline_scorer)) as (client, _):
        result = await client.call_tool("score_image", {"image": b64(png_bytes((64, 64))), "prompt": "a cat"})
    out = ScoreResult.model_validate(result.structured_content)
    assert out.metrics["niqe"].status == "ok" and out.metrics["brisque"].status == "ok"
    assert out.grade != "A" and out.quality.technical.score is not None
    assert any("upscaled to 96×96 px" in n for n in out.notes)


async def test_score_image_refuses_an_image_under_the_minimum_by_size(offline_scorer, settings):
    async with connect(settings, components_for(offline_scorer)) as (client, _):
        tiny = await client.call_tool("score_image", {"image": b64(png_bytes((20, 24)))})
        still_up = await client.call_tool("score_image", {"image": b64(png_bytes((48, 48)))})
    assert tiny.is_error and "20×24 px, smaller than the 32 px minimum" in text(tiny)
    assert not still_up.is_error
    out = ScoreResult.model_validate(still_up.structured_content)
    assert out.metrics["niqe"].status == "ok" and any("upscaled to 96×96 px" in n for n in out.notes)


def tiny_workflow(tmp_path: Path, side: int) -> str:
    """The sd15 template with an ImageScale to ``side``×``side`` before SaveImage, as a file."""
    wf = json.loads((WORKFLOWS / "sd15.json").read_text())
    save = next(n for n in wf.values() if n["class_type"] == "SaveImage")
    wf["99"] = {"class_type": "ImageScale", "inputs": {"image": save["inputs"]["images"], "upscale_method":
                "bicubic", "width": side, "height": side, "crop": "disabled"}}  # fmt: skip
    save["inputs"]["images"] = ["99", 0]
    path = tmp_path / f"tiny-{side}.json"
    path.write_text(json.dumps(wf))
    return str(path)


async def generate(tmp_path: Path, scorer, settings, arguments: dict, *, workflow: str = "sd15") -> GenerationOutput:
    async with FakeComfyUI() as comfy:
        pool = ComfyUIPool([comfy.url])
        refinement = RefinementSettings(comfyui_urls=[comfy.url], attempt_timeout_seconds=30,
                                        default_workflow=workflow)  # fmt: skip
        orch = Orchestrator(scorer, pool, LocalStore(tmp_path / "store"), Index(tmp_path / "i.sqlite3"), refinement)
        try:
            async with connect(settings, components_for(scorer, generator=orch)) as (client, _):
                result = await until_final(client, await client.call_tool("generate_quality", arguments))
        finally:
            await pool.close()
    assert not result.is_error, text(result)
    return GenerationOutput.model_validate(result.structured_content)


async def test_generate_quality_with_ungraded_attempts_is_best_effort_not_graded(tmp_path, incident_scorer, settings):
    out = await generate(tmp_path, incident_scorer, settings, {
        "prompt": "a red fox", "width": 64, "height": 64, "steps": 4, "seed": 1, "max_attempts": 2,
        "quality_threshold": 0.0, "retry_strategy": "seed_search",
    })  # fmt: skip
    assert out.status == "best_effort" and out.attempts_used == 2  # a zero threshold, yet never reached
    assert out.grade is None and out.grade_status == "insufficient" and out.composite_score is None
    assert out.ungraded_composite is not None and out.grade_reasons[0].startswith("technical not scored")
    assert out.message.startswith("best effort, NOT GRADED: no attempt of 2 could be graded (technical not scored")
    assert out.selection and "no attempt could be graded" in out.selection
    assert all(a.grade is None and a.grade_status == "insufficient" for a in out.attempts)
    assert out.quality is not None and out.quality.grade is None


async def test_generate_quality_with_a_tiny_image_fails_naming_the_size(tmp_path, offline_scorer, settings):
    out = await generate(tmp_path, offline_scorer, settings,
                         {"prompt": "a red fox", "steps": 4, "seed": 1, "max_attempts": 1},
                         workflow=tiny_workflow(tmp_path, 24))  # fmt: skip
    assert out.status == "failed" and out.grade is None and out.composite_score is None
    assert "24×24 px, smaller than the 32 px minimum" in (out.error or "")
    assert "24×24 px" in (out.attempts[0].error or "")
