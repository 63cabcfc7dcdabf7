"""URLs across an S3 outage, through the MCP tools (issue 11, item 6): real SeaweedFS S3 (stopped and restarted),
the real orchestrator on the fake ComfyUI, the SQLite index, an in-memory MCP client.

While S3 is down a generation is spooled on the server: its answers say ``storage: pending_upload`` with null
URLs (never the spool's ``file://`` path, never a presigned URL of an object not in S3 yet). After the flush the
same job answers with the store's URLs, which fetch the stored bytes. In memory, and over streamable HTTP with
the server's built-in wiring and its background flusher (slow)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from mcp_server.lifespan import Components
from mcp_server.models import GenerationList, GenerationOutput
from mcp_server.wiring import IndexReader, StoreReader
from refinement.comfyui import ComfyUIPool
from refinement.orchestrator import Orchestrator
from refinement.settings import RefinementSettings
from storage import Index, StorageSettings
from storage.s3 import S3Store
from tests.fakes.comfyui_server import FakeComfyUI
from tests.fakes.processes import fake_comfyui_process
from tests.mcp_server.conftest import components_for, connect, make_settings
from tests.mcp_server.fakes import REPO
from tests.mcp_server.polling import until_final
from tests.mcp_server.procs import http_server
from tests.storage.seaweed import SeaweedServer, serve, wait_until


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    yield from serve(tmp_path_factory, "seaweed-mcp")


@pytest.fixture
async def wired(
    seaweed: SeaweedServer, tmp_path: Path, offline_scorer: Any
) -> AsyncIterator[tuple[Components, S3Store]]:
    bucket = f"cq-{uuid.uuid4().hex[:12]}"
    spool = tmp_path / "spool"
    store = S3Store(
        endpoint=seaweed.endpoint, bucket=bucket, spool_dir=spool, access_key=seaweed.access_key,
        secret_key=seaweed.secret_key, retries=1, backoff=0.05, timeout=3.0, flush_interval=3600.0,
        presign_expiry=timedelta(hours=1),
    )  # fmt: skip
    storage_settings = StorageSettings(_env_file=None, backend="s3", s3_endpoint=seaweed.endpoint, s3_bucket=bucket)
    index = Index(tmp_path / "index.sqlite3")
    async with FakeComfyUI() as comfy, store:
        store.add_flush_listener(index.add)
        pool = ComfyUIPool([comfy.url])
        orchestrator = Orchestrator(
            offline_scorer, pool, store, index, RefinementSettings(comfyui_urls=[comfy.url], attempt_timeout_seconds=30)
        )
        components = components_for(
            offline_scorer, generator=orchestrator, store=StoreReader(store, storage_settings),
            index=IndexReader(index, store),
        )  # fmt: skip
        try:
            yield components, store
        finally:
            await pool.close()
            if seaweed.process is None:
                seaweed.start()


ARGS = {"prompt": "a lighthouse at dusk", "workflow": "sd15", "width": 128, "height": 128, "steps": 4, "seed": 3,
        "max_attempts": 1, "quality_threshold": 10.0, "include_preview": False}  # fmt: skip


def _fetch(url: str) -> bytes:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, (url, response.status_code)
    return response.content


def _no_server_paths(raw: str, spool: Path) -> None:
    assert "file://" not in raw
    assert str(spool) not in raw


async def test_urls_are_pending_during_an_outage_and_the_stored_ones_after_the_flush(
    wired: tuple[Components, S3Store], seaweed: SeaweedServer
) -> None:
    components, store = wired
    async with connect(make_settings(default_wait_seconds=60.0, max_wait_seconds=60.0), components) as (client, _):
        await _outage_then_flush(client, store, seaweed)


async def _outage_then_flush(client: Client, store: S3Store, seaweed: SeaweedServer) -> None:
    first = await until_final(client, await client.call_tool("generate_quality", ARGS))
    before = GenerationOutput.model_validate(first.structured_content)
    assert before.storage == "stored" and before.image_url and before.image_url.startswith("http://")

    seaweed.stop()
    assert wait_until(seaweed.is_down, 30)
    call = await until_final(client, await client.call_tool("generate_quality", ARGS | {"seed": 5}))
    assert not call.is_error, call.content
    during = GenerationOutput.model_validate(call.structured_content)
    assert during.done and during.status == "best_effort"
    assert during.storage == "pending_upload"
    assert during.image_url is None and during.metadata_url is None
    assert all(a.image_url is None for a in during.attempts)
    assert "pending upload" in during.message.replace("_", " ")
    _no_server_paths(json.dumps(call.structured_content) + str(call.content), store.spool.root)
    assert store.spool.count() > 0

    status = await client.call_tool("generation_status", {"job_id": during.job_id, "include_preview": False})
    polled = GenerationOutput.model_validate(status.structured_content)
    assert polled.storage == "pending_upload" and polled.image_url is None
    _no_server_paths(json.dumps(status.structured_content) + str(status.content), store.spool.root)

    listed = await client.call_tool("list_generations", {})
    rows = {g.generation_id: g for g in GenerationList.model_validate(listed.structured_content).recent}
    assert rows[during.generation_id].storage == "pending_upload"
    assert rows[during.generation_id].image_url is None  # not a presigned URL of an object not in S3 yet
    assert rows[before.generation_id].storage == "stored" and rows[before.generation_id].image_url
    _no_server_paths(json.dumps(listed.structured_content), store.spool.root)

    seaweed.start()
    report = await store.flush_spool()
    deadline = anyio.current_time() + 60
    while not report.ok and anyio.current_time() < deadline:  # the restarted server may refuse a first write
        await anyio.sleep(0.5)
        report = await store.flush_spool()
    assert report.ok and report.remaining == 0, report

    status = await client.call_tool("generation_status", {"job_id": during.job_id, "include_preview": False})
    after = GenerationOutput.model_validate(status.structured_content)
    assert after.storage == "stored"
    assert after.image_url and after.image_url.startswith(seaweed.url)
    assert _fetch(after.image_url)[:4] == b"\x89PNG"
    assert after.metadata_url and after.metadata_url.startswith(seaweed.url)
    document = json.loads(_fetch(after.metadata_url))
    assert document["generation_id"] == during.generation_id and document["storage"]["status"] == "stored"
    assert all(a.image_url and _fetch(a.image_url)[:4] == b"\x89PNG" for a in after.attempts)
    _no_server_paths(json.dumps(status.structured_content) + str(status.content), store.spool.root)

    listed = await client.call_tool("list_generations", {})
    rows = {g.generation_id: g for g in GenerationList.model_validate(listed.structured_content).recent}
    row = rows[during.generation_id]
    assert row.storage == "stored" and row.image_url and _fetch(row.image_url)[:4] == b"\x89PNG"


def _http_env(seaweed: SeaweedServer, comfy_url: str) -> dict[str, str]:
    return {
        "COMFY_QUALITY_MCP_COMPONENTS": "",  # the built-in wiring: orchestrator, S3 store with its spool, index
        "COMFY_QUALITY_COMFYUI_URLS": comfy_url,
        "COMFY_QUALITY_STORAGE_BACKEND": "s3",
        "COMFY_QUALITY_STORAGE_S3_ENDPOINT": seaweed.endpoint,
        "COMFY_QUALITY_STORAGE_S3_ACCESS_KEY": seaweed.access_key,
        "COMFY_QUALITY_STORAGE_S3_SECRET_KEY": seaweed.secret_key,
        "COMFY_QUALITY_STORAGE_S3_BUCKET": f"cq-{uuid.uuid4().hex[:12]}",
        "COMFY_QUALITY_STORAGE_S3_RETRIES": "1",
        "COMFY_QUALITY_STORAGE_S3_BACKOFF_SECONDS": "0.05",
        "COMFY_QUALITY_STORAGE_S3_TIMEOUT_SECONDS": "3",
        "COMFY_QUALITY_STORAGE_SPOOL_FLUSH_INTERVAL_SECONDS": "1",
        "COMFY_QUALITY_MCP_DEFAULT_WAIT_SECONDS": "60",
        "COMFY_QUALITY_MCP_MAX_WAIT_SECONDS": "60",
        "PYTHONPATH": str(REPO),
    }


@pytest.mark.slow
async def test_over_streamable_http_the_background_flush_turns_pending_into_stored_urls(
    seaweed: SeaweedServer, tmp_path: Path
) -> None:
    with fake_comfyui_process() as comfy_url, http_server(
        tmp_path, "--transport", "http", **_http_env(seaweed, comfy_url)
    ) as server:
        async with Client(server.url, read_timeout_seconds=120) as client:
            seaweed.stop()
            try:
                assert wait_until(seaweed.is_down, 30)
                call = await until_final(client, await client.call_tool("generate_quality", ARGS))
                assert not call.is_error, call.content
                during = GenerationOutput.model_validate(call.structured_content)
                assert during.done and during.storage == "pending_upload" and during.image_url is None
                _no_server_paths(json.dumps(call.structured_content) + str(call.content), tmp_path / "spool")
                listed = await client.call_tool("list_generations", {})
                rows = {g.generation_id: g for g in GenerationList.model_validate(listed.structured_content).recent}
                assert rows[during.generation_id].storage == "pending_upload"
                assert rows[during.generation_id].image_url is None
            finally:
                seaweed.start()
            after = during
            with anyio.fail_after(120):  # the server's own flusher uploads the spool once S3 is back
                while after.storage != "stored":
                    await anyio.sleep(0.5)
                    status = await client.call_tool(
                        "generation_status", {"job_id": during.job_id, "wait_seconds": 0, "include_preview": False}
                    )
                    after = GenerationOutput.model_validate(status.structured_content)
            assert after.image_url and after.image_url.startswith(seaweed.url)
            assert _fetch(after.image_url)[:4] == b"\x89PNG"
            assert after.metadata_url and json.loads(_fetch(after.metadata_url))["storage"]["status"] == "stored"
