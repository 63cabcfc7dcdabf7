from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent
from PIL import Image

from mcp_server.lifespan import AppState, Components, open_app_state
from mcp_server.protocols import ImageScorer
from mcp_server.server import build_server
from mcp_server.settings import McpSettings
from quality.scorer import Scorer
from quality.settings import QualitySettings
from tests.mcp_server.fakes import AGIQA, DirStore


@pytest.fixture(scope="session")
def offline_scorer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The real scorer, offline and without weights: edge density runs, deep metrics report unavailable."""
    settings = QualitySettings(offline=True, weights_dir=tmp_path_factory.mktemp("no-weights"), device="cpu")
    scorer = Scorer(settings)
    yield scorer
    scorer.close()


@pytest.fixture
def store(tmp_path: Path) -> DirStore:
    return DirStore(tmp_path / "store")


def make_settings(**overrides: Any) -> McpSettings:
    values: dict[str, Any] = {"roots": [AGIQA], "default_wait_seconds": 10.0, "max_wait_seconds": 10.0}
    values.update(overrides)
    return McpSettings(_env_file=None, **values)


@pytest.fixture
def settings() -> McpSettings:
    return make_settings()


class Shared:
    """The session's scorer lent to one server: the server closes what its factory built; this has no close."""

    def __init__(self, scorer: ImageScorer) -> None:
        self.score = scorer.score


def components_for(scorer: ImageScorer, **kwargs: Any) -> Components:
    return Components(scorer_factory=lambda: Shared(scorer), **kwargs)


@asynccontextmanager
async def connect(
    settings: McpSettings, components: Components, *, mode: str = "auto"
) -> AsyncIterator[tuple[Client, AppState]]:
    """An in-memory SDK client connected to a server over an open AppState."""
    async with open_app_state(settings, components) as state:
        server = build_server(settings, state=state)
        async with Client(server, raise_exceptions=(mode != "legacy"), mode=mode) as client:
            yield client, state


def png_bytes(size: tuple[int, int] = (96, 64), seed: int = 0) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def text(result: CallToolResult) -> str:
    """The first content block's text (a tool error's message, or the JSON of a result)."""
    block = result.content[0]
    assert isinstance(block, TextContent), block
    return block.text


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


Collector = Callable[[float, float | None, str | None], Any]


class ProgressLog:
    def __init__(self) -> None:
        self.events: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.events.append((progress, total, message))

    @property
    def messages(self) -> list[str]:
        return [m or "" for _, _, m in self.events]
