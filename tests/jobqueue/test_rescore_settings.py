"""Re-scoring reads its sections from the caller's settings tree: the command line's ``score`` handler builds one
tree, and the worker's chunk scorer reads ``s3://`` sources with the storage section its store was opened with."""

from __future__ import annotations

from typing import Any

import pytest

import jobqueue.rescore as rescore
from comfy_quality.settings import Settings
from jobqueue.settings import JobsSettings
from storage.settings import StorageSettings


def _storage(endpoint: str) -> StorageSettings:
    return StorageSettings(_env_file=None, backend="s3", s3_endpoint=endpoint, s3_access_key="k", s3_secret_key="s")


def test_the_s3_client_uses_the_storage_section_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_S3_ENDPOINT", "http://from-the-environment:9000")
    client = rescore.s3_client(_storage("http://given-host:9100"))
    assert client._base_url.host == "given-host:9100"


def test_the_chunk_scorer_reads_s3_sources_with_the_workers_storage_section(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(rescore, "s3_client", lambda settings=None: seen.append(settings) or object())
    monkeypatch.setattr(rescore, "read_item", lambda source, name, client: b"")
    storage = _storage("http://given-host:9100")
    scorer = rescore.ChunkScorer(jobs=None, scorer=None, worker="w", storage=storage)  # type: ignore[arg-type]
    rows = scorer._score(rescore.ChunkSpec(source="s3://bucket/prefix", items=[]))
    assert rows == [] and seen == [storage]


def test_the_score_handler_hands_the_trees_sections_down(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    given: dict[str, Any] = {}

    async def fake_rescore(source: str, **kwargs: Any) -> tuple[int, int]:
        given.update(kwargs, source=source)
        return 0, 0

    monkeypatch.setattr(rescore, "rescore", fake_rescore)
    jobs = JobsSettings(_env_file=None, url="redis://127.0.0.1:9/0")
    storage = _storage("http://given-host:9100")
    tree = Settings(env_file=None, jobs=jobs, storage=storage)
    args = type("Args", (), {"prompts": None, "format": None, "output": None, "quiet": True, "progress": False})()
    code = rescore.cli_score(args, ["s3://bucket/prefix"], None, None, settings=tree)  # type: ignore[arg-type]
    assert code == 0 and given["settings"] is jobs and given["storage"] is storage
