"""score_image through the in-memory SDK client: every input form, the output schema, progress and errors."""

from __future__ import annotations

import json

import pytest

from mcp_server.models import ScoreResult
from tests.mcp_server.conftest import ProgressLog, b64, components_for, connect, make_settings, png_bytes, text
from tests.mcp_server.fakes import AGIQA, DirStore

PROMPT = "statue of a man"


async def test_tools_are_listed_with_descriptions_and_output_schemas(offline_scorer, settings):
    async with connect(settings, components_for(offline_scorer)) as (client, _):
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {
        "score_image",
        "generate_quality",
        "generation_status",
        "cancel_generation",
        "list_generations",
    }
    score = tools["score_image"]
    assert "grade" in (score.description or "") and "A ≥ 8" in (score.description or "")
    assert score.input_schema["required"] == ["image"] and score.output_schema is not None
    assert "base64" in score.input_schema["properties"]["image"]["description"]
    assert set(score.output_schema["properties"]) >= {"composite_score", "grade", "quality", "coverage", "timing"}
    gen = tools["generate_quality"]
    assert "seed_search" in (gen.description or "") and "job_id" in (gen.description or "")
    props = gen.input_schema["properties"]
    assert props["quality_threshold"]["default"] == 7.0 and props["max_attempts"]["maximum"] == 10
    assert gen.output_schema is not None and set(gen.output_schema["properties"]) >= {
        "status",
        "job_id",
        "image_url",
        "attempts",
    }
    for t in tools.values():
        assert "ctx" not in t.input_schema["properties"]


async def test_scores_a_real_image_by_path_with_structured_result_and_progress(offline_scorer, settings):
    log = ProgressLog()
    async with connect(settings, components_for(offline_scorer)) as (client, _):
        result = await client.call_tool(
            "score_image", {"image": "sd1.5_normal_000.jpg", "prompt": PROMPT}, progress_callback=log
        )
    assert not result.is_error, result.content
    out = ScoreResult.model_validate(result.structured_content)
    expected = offline_scorer.score(AGIQA / "sd1.5_normal_000.jpg", PROMPT)
    assert out.composite_score == expected.composite_score and out.grade == expected.grade
    assert out.metrics["edge_density"].status == "ok" and out.metrics["edge_density"].raw is not None
    assert out.metrics["clip_score"].status == "unavailable" and out.metrics["clip_score"].reason
    assert "clip_score" in out.coverage.metrics_unavailable
    assert out.image.width > 0 and str(out.image.source).endswith("sd1.5_normal_000.jpg")
    assert out.prompt == PROMPT and out.timing.total_seconds >= out.timing.score_seconds > 0
    assert out.summary.startswith(f"grade {out.grade}")
    assert out.calibration is not None and out.calibration.used  # the agent sees how technical/detail were made
    assert out.calibration.dimensions == {"technical": "calibrated", "detail": "calibrated"}
    assert out.calibration.model_sha256 == expected.calibration_info.model_sha256
    assert json.loads(text(result))["grade"] == out.grade  # text mirrors the structured content
    values = [p for p, _, _ in log.events]
    assert values == sorted(values) and len(set(values)) == len(values)  # strictly increasing
    assert "scoring" in log.messages and log.messages[-1].startswith("scored: grade")


async def test_base64_and_data_url_give_the_same_scores_as_the_file(offline_scorer, settings):
    data = (AGIQA / "DALLE2_normal_001.jpg").read_bytes()
    async with connect(settings, components_for(offline_scorer)) as (client, _):
        by_path = await client.call_tool("score_image", {"image": str(AGIQA / "DALLE2_normal_001.jpg")})
        by_b64 = await client.call_tool("score_image", {"image": b64(data)})
        by_data_url = await client.call_tool("score_image", {"image": "data:image/jpeg;base64," + b64(data)})
    scores = [r.structured_content["composite_score"] for r in (by_path, by_b64, by_data_url)]
    assert not any(r.is_error for r in (by_path, by_b64, by_data_url))
    assert scores[0] == scores[1] == scores[2]
    assert by_b64.structured_content["image"]["sha256"] == by_path.structured_content["image"]["sha256"]
    assert by_b64.structured_content["prompt"] is None  # no prompt: adherence not applicable, not zero
    assert by_b64.structured_content["coverage"]["dimensions"]["prompt_adherence"] == "not_applicable"


async def test_s3_and_endpoint_urls_are_read_through_the_store(offline_scorer, settings, store: DirStore):
    store.put("in/x.png", png_bytes())
    async with connect(settings, components_for(offline_scorer, store=store)) as (client, _):
        a = await client.call_tool("score_image", {"image": "s3://test-bucket/in/x.png"})
        b = await client.call_tool("score_image", {"image": "http://store.test:9000/test-bucket/in/x.png?X-Sig=s"})
        missing = await client.call_tool("score_image", {"image": "s3://test-bucket/in/nope.png"})
    assert not a.is_error and not b.is_error
    assert a.structured_content["composite_score"] == b.structured_content["composite_score"]
    assert store.reads[:2] == ["s3://test-bucket/in/x.png", "http://store.test:9000/test-bucket/in/x.png?X-Sig=s"]
    assert missing.is_error and "s3://test-bucket/in/nope.png: not allowed or not found" in text(missing)
    assert "X-Sig" not in b.structured_content["image"]["source"]  # query strings (signatures) are not echoed


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("   ", "image is empty"),
        ("data:image/png,abc", "must be base64"),
        ("data:text/plain;base64,aGVsbG8=", "image/* type is expected"),
        ("data:image/png;base64,!!!notbase64!!!", "invalid base64"),
        ("s3://bucket/key.png", "has none configured"),
        ("ftp://example.com/a.png", "scheme 'ftp' is not supported"),
        ("https://example.com/cat.png", "not in the server's URL allowlist"),
        ("../../../quality/composite.py", "outside the allowed folders"),
        ("/etc/passwd", "outside the allowed folders"),
        ("no-such-file.png", "image file not found"),
    ],
)
async def test_bad_images_are_tool_errors_naming_the_problem(offline_scorer, settings, image, expected):
    async with connect(settings, components_for(offline_scorer)) as (client, _):
        result = await client.call_tool("score_image", {"image": image})
        assert result.is_error and expected in text(result), text(result)
        still_up = await client.call_tool("score_image", {"image": "sd1.5_normal_000.jpg"})
        assert not still_up.is_error


async def test_undecodable_and_oversized_images_are_tool_errors(offline_scorer):
    settings = make_settings(base64_max_bytes=10_000)
    fake_png = b64(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    big = b64(png_bytes((200, 200)))
    async with connect(settings, components_for(offline_scorer)) as (client, _):
        corrupt = await client.call_tool("score_image", {"image": fake_png})
        too_big = await client.call_tool("score_image", {"image": big})
        long_prompt = await client.call_tool("score_image", {"image": "x.png", "prompt": "p" * 5000})
    assert corrupt.is_error and "base64 image" in text(corrupt)
    assert any(w in text(corrupt) for w in ("not a readable image", "corrupt", "could not be scored"))
    assert too_big.is_error and "COMFY_QUALITY_MCP_BASE64_MAX_BYTES" in text(too_big)
    assert long_prompt.is_error and "prompt" in text(long_prompt)


async def test_a_scorer_that_fails_to_load_gives_a_tool_error_and_the_server_stays_up(settings):
    def broken() -> None:
        raise OSError("CUDA out of memory while loading CLIP")

    from mcp_server.lifespan import Components

    async with connect(settings, Components(scorer_factory=broken)) as (client, _):  # type: ignore[arg-type]
        first = await client.call_tool("score_image", {"image": "sd1.5_normal_000.jpg"})
        tools = await client.list_tools()
    assert first.is_error and "scorer could not be loaded" in text(first)
    assert "CUDA out of memory" in text(first)
    assert len(tools.tools) == 5
