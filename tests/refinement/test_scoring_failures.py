"""One policy for the scorer's errors in the orchestrator: a library error becomes the attempt's recorded reason;
anything else (a bug) is logged with its traceback AND recorded, briefly. The run goes on either way."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from quality.errors import ImageTooSmallError
from refinement.api import GenerationRequest
from refinement.comfyui import ComfyUIPool
from refinement.orchestrator import Orchestrator
from refinement.settings import RefinementSettings
from storage import LocalStore
from tests.fakes.comfyui_server import FakeComfyUI

SECRET = "s3cr3t-detail"


class Boom(RuntimeError):
    pass


class RaisingScorer:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.calls = 0

    def score(self, image: bytes, prompt: str | None = None, *, source_name: str | None = None) -> Any:
        self.calls += 1
        raise self.exc


async def _run(tmp_path: Any, scorer: RaisingScorer) -> Any:
    async with FakeComfyUI() as comfy:
        pool = ComfyUIPool([comfy.url])
        try:
            settings = RefinementSettings(comfyui_urls=[comfy.url], attempt_timeout_seconds=30)
            orch = Orchestrator(scorer, pool, LocalStore(tmp_path / "store"), None, settings)
            request = GenerationRequest(prompt="a fox", width=256, height=256, steps=4, seed=3, max_attempts=2)
            return await orch.generate(request)
        finally:
            await pool.close()


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info and r.exc_info[0] is Boom and r.levelno == logging.ERROR]


async def test_a_library_error_of_the_scorer_is_the_recorded_reason(tmp_path: Any, caplog: pytest.LogCaptureFixture):
    scorer = RaisingScorer(ImageTooSmallError("the image is 8×8 px: at least 32 px on the short side"))
    result = await _run(tmp_path, scorer)
    assert scorer.calls == 2 and result.attempts_used == 2  # the run went on after the first failure
    for attempt in result.attempts:
        assert attempt.error == "scoring failed: the image is 8×8 px: at least 32 px on the short side"
    assert not [r for r in caplog.records if r.exc_info]  # expected: no traceback in the log


async def test_an_unexpected_scorer_error_is_logged_with_traceback_and_recorded(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
):
    result = await _run(tmp_path, RaisingScorer(Boom(SECRET)))
    assert result.attempts_used == 2
    for attempt in result.attempts:
        assert attempt.error is not None and attempt.error.startswith("scoring failed: internal error (Boom)")
        assert SECRET not in attempt.error
    logged = _tracebacks(caplog)
    assert len(logged) == 2 and SECRET in str(logged[0].exc_info[1])  # type: ignore[index]
