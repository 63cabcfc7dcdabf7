"""Bounded cost per score_image call (issue 11, item 7), through the MCP tools: the memory estimate refuses a huge
image before decoding with a message that states the limit, the pixel budget downscales a large one, and the
server answers a good call right after; in memory and over streamable HTTP."""

from __future__ import annotations

import io
from pathlib import Path

import anyio
import numpy as np
import pytest
from mcp import Client
from PIL import Image

from mcp_server.models import ScoreResult
from quality.scorer import Scorer
from quality.settings import QualitySettings
from tests.mcp_server.conftest import b64, components_for, connect, make_settings, png_bytes, text
from tests.mcp_server.procs import http_server


def large_png(width: int, height: int) -> bytes:
    """A smooth large image: a few hundred KB encoded, width × height pixels decoded."""
    rng = np.random.default_rng(7)
    small = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    small.resize((width, height), Image.Resampling.BILINEAR).save(buf, "PNG")
    return buf.getvalue()


def scorer(tmp_path: Path, **kw: int) -> Scorer:
    return Scorer(QualitySettings(offline=True, weights_dir=tmp_path / "no-weights", device="cpu",
                                  metrics=["brisque", "niqe", "edge_density"], **kw))  # fmt: skip


async def test_an_image_over_the_memory_estimate_is_refused_with_the_limit_and_the_server_goes_on(tmp_path: Path):
    limited = scorer(tmp_path, max_image_memory=24 * 2**20)
    async with connect(make_settings(), components_for(limited)) as (client, _):
        refused = await client.call_tool("score_image", {"image": b64(large_png(2400, 1800))})
        assert refused.is_error
        message = text(refused)
        assert "2400x1800" in message and "4.3 MP" in message
        assert "24 MiB" in message and "COMFY_QUALITY_MAX_IMAGE_MEMORY" in message
        assert len(message) < 1000
        good = await client.call_tool("score_image", {"image": b64(png_bytes((128, 128)))})
        assert not good.is_error, text(good)
    limited.close()


async def test_a_large_image_is_scored_within_the_pixel_budget(tmp_path: Path):
    budgeted = scorer(tmp_path, scoring_max_pixels=300_000)
    async with connect(make_settings(), components_for(budgeted)) as (client, _):
        result = await client.call_tool("score_image", {"image": b64(large_png(1200, 900))})
        assert not result.is_error, text(result)
        out = ScoreResult.model_validate(result.structured_content)
        assert (out.image.width, out.image.height) == (1200, 900)
        assert out.image.scored_width is not None and out.image.scored_height is not None
        assert out.image.scored_width * out.image.scored_height <= 300_000
        assert any("COMFY_QUALITY_SCORING_MAX_PIXELS" in note for note in out.notes)
        assert out.metrics["brisque"].status == "ok" and out.metrics["niqe"].status == "ok"
    budgeted.close()


@pytest.mark.slow  # a server subprocess that loads the scorer: about 25 s on a loaded machine
async def test_the_memory_limit_is_visible_over_streamable_http(tmp_path: Path):
    with http_server(tmp_path, "--transport", "http", COMFY_QUALITY_MAX_IMAGE_MEMORY=str(24 * 2**20)) as server:
        with anyio.fail_after(180):
            async with Client(server.url, read_timeout_seconds=120) as client:
                refused = await client.call_tool("score_image", {"image": b64(large_png(2400, 1800))})
                assert refused.is_error
                message = text(refused)
                assert "24 MiB" in message and "COMFY_QUALITY_MAX_IMAGE_MEMORY" in message and "2400x1800" in message
                good = await client.call_tool("score_image", {"image": b64(png_bytes((128, 128)))})
                assert not good.is_error, text(good)
