"""open_orchestrator: the one assembly of orchestrator, ComfyUI pool, store, index and scorer used by the CLI,
the MCP server and the workers."""

from __future__ import annotations

import io

import pytest

import quality.scorer
from refinement.api import GenerationRequest
from refinement.cli import EXIT_CONFIG, main
from refinement.factory import open_orchestrator
from refinement.settings import RefinementSettings
from storage import LocalStore, StorageConfigError, StorageSettings
from tests.fakes.comfyui_server import FakeComfyUI


class _CountingScorer:
    """Scores with the real offline scorer; counts how often it is closed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.closed = 0

    def score(self, image, prompt=None, *, source_name=None):
        return self.inner.score(image, prompt, source_name=source_name)

    def close(self) -> None:
        self.closed += 1


def _storage(tmp_path) -> StorageSettings:
    return StorageSettings(backend="local", local_root=tmp_path / "store", spool_dir=tmp_path / "spool",
                           index_path=tmp_path / "index.sqlite3")  # fmt: skip


async def test_the_parts_are_wired_together_and_closed_on_exit(tmp_path, offline_scorer) -> None:
    scorer = _CountingScorer(offline_scorer)
    async with FakeComfyUI() as comfy:
        settings = RefinementSettings(comfyui_urls=[comfy.url], attempt_timeout_seconds=30)
        async with open_orchestrator(settings, storage_settings=_storage(tmp_path), scorer=scorer,
                                     max_in_flight=2) as parts:  # fmt: skip
            assert isinstance(parts.store, LocalStore) and parts.pool.max_in_flight == 2
            assert [c.base_url for c in parts.pool.clients] == [comfy.url]
            orch = parts.orchestrator
            assert (orch.scorer, orch.comfy, orch.store, orch.index, orch.settings) == (
                scorer, parts.pool, parts.store, parts.index, settings)  # fmt: skip
            result = await orch.generate(GenerationRequest(prompt="a red fox", width=256, height=256, steps=4,
                                                           seed=3, quality_threshold=0.0, max_attempts=1))  # fmt: skip
            assert result.status == "success" and len(comfy.prompts_posted()) == 1
            assert parts.index.get(result.generation_id) is not None  # the index follows the store's flushes
            clients = parts.pool.clients
        assert all(c._http.client.is_closed for c in clients)
    assert scorer.closed == 0  # a scorer handed in belongs to the caller


async def test_a_scorer_it_loads_itself_is_closed_on_exit(tmp_path, monkeypatch) -> None:
    made: list[_CountingScorer] = []

    def load(*_args: object) -> _CountingScorer:
        made.append(_CountingScorer(None))
        return made[-1]

    monkeypatch.setattr(quality.scorer, "Scorer", load)
    settings = RefinementSettings(comfyui_urls=["http://127.0.0.1:1"])
    async with open_orchestrator(settings, storage_settings=_storage(tmp_path)) as parts:
        assert parts.scorer is made[0] and parts.orchestrator.scorer is made[0] and made[0].closed == 0
    assert len(made) == 1 and made[0].closed == 1


async def test_a_configuration_error_is_raised_before_any_model_is_loaded(tmp_path, monkeypatch) -> None:
    loaded: list[object] = []
    monkeypatch.setattr(quality.scorer, "Scorer", lambda *_a, **_k: loaded.append(1))
    with pytest.raises(StorageConfigError, match="needs an endpoint"):
        async with open_orchestrator(RefinementSettings(), storage_settings=StorageSettings(backend="s3")):
            pass
    assert not loaded


def test_the_cli_reports_a_store_configuration_error_with_its_exit_code(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_BACKEND", "s3")
    monkeypatch.delenv("COMFY_QUALITY_STORAGE_S3_ENDPOINT", raising=False)
    monkeypatch.setattr(quality.scorer, "Scorer", lambda: pytest.fail("the scorer was loaded"))
    out = io.StringIO()
    assert main(["generate", "--prompt", "a fox", "--comfyui", "http://127.0.0.1:1"], out=out) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "error: configuration:" in err and "needs an endpoint" in err and not out.getvalue()
