"""``python -m dashboard rebuild-index`` from a local folder and from a real S3 server (SeaweedFS), and the
dashboard serving generations whose images live in S3."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from dashboard import DashboardSettings, build_app
from dashboard.__main__ import main
from storage.index import Index
from storage.local import LocalStore
from storage.s3 import S3Store
from tests.dashboard.conftest import client_for
from tests.dashboard.dataset import SPECS, Dataset, fill, image
from tests.storage.seaweed import SeaweedServer


async def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = await asyncio.to_thread(main, list(args))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


async def test_rebuild_from_the_local_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(tmp_path / "store")
    data = await fill(store, None)  # stored earlier, never indexed
    (tmp_path / "store" / "generations" / "junk").mkdir()
    (tmp_path / "store" / "generations" / "junk" / "metadata.json").write_text("{not json")
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_LOCAL_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_INDEX_PATH", str(tmp_path / "index.sqlite3"))
    code, report = await run_cli(capsys, "rebuild-index")
    assert code == 1  # one unreadable document: reported, the others indexed
    assert report["added"] == len(SPECS) and list(report["failed"]) == ["generations/junk/metadata.json"]
    with Index(tmp_path / "index.sqlite3") as index:
        assert index.count() == len(SPECS)
        assert index.get_metadata(data.ids["statue"]) == data.doc("statue")


def s3_store(server: SeaweedServer, bucket: str, spool: Path) -> S3Store:
    return S3Store(
        endpoint=server.endpoint,
        bucket=bucket,
        spool_dir=spool,
        access_key=server.access_key,
        secret_key=server.secret_key,
        retries=1,
        backoff=0.05,
        timeout=5.0,
        flush_interval=3600.0,
        presign_expiry=timedelta(hours=1),
    )


@pytest.fixture
async def s3_dataset(seaweed: SeaweedServer, tmp_path: Path) -> AsyncIterator[tuple[str, Dataset]]:
    bucket = f"cq-dash-{uuid.uuid4().hex[:10]}"
    async with s3_store(seaweed, bucket, tmp_path / "spool") as store:
        data = await fill(store, None)
    yield bucket, data


def use_s3(monkeypatch: pytest.MonkeyPatch, server: SeaweedServer, bucket: str, tmp_path: Path) -> None:
    for name, value in {
        "BACKEND": "s3",
        "S3_ENDPOINT": server.url,
        "S3_ACCESS_KEY": server.access_key,
        "S3_SECRET_KEY": server.secret_key,
        "S3_BUCKET": bucket,
        "S3_RETRIES": "1",
        "SPOOL_DIR": str(tmp_path / "spool"),
        "INDEX_PATH": str(tmp_path / "index.sqlite3"),
    }.items():
        monkeypatch.setenv(f"COMFY_QUALITY_STORAGE_{name}", value)


@pytest.mark.s3
async def test_rebuild_from_s3_then_serve_from_s3(
    seaweed: SeaweedServer,
    s3_dataset: tuple[str, Dataset],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket, data = s3_dataset
    use_s3(monkeypatch, seaweed, bucket, tmp_path)
    code, report = await run_cli(capsys, "rebuild-index")
    assert code == 0 and report["added"] == len(SPECS) and report["failed"] == {}

    settings = DashboardSettings(timezone="UTC", thumbnail_cache_dir=tmp_path / "thumbs")
    app = build_app(settings)  # opens the S3 store and the index from the environment
    assert isinstance(app.state.dashboard.store, S3Store)
    async with client_for(app) as client:
        today_a = (await client.get("/api/generations", params={"grade": "A", "period": "today"})).json()
        assert {i["generation_id"] for i in today_a["items"]} == {data.ids["statue"], data.ids["sushi"]}
        gid = data.ids["statue"]
        detail = (await client.get(f"/api/generations/{gid}")).json()
        assert [a["helped"] for a in detail["attempts"]] == [None, True, True]
        full = await client.get(f"/images/{gid}/attempt-1")
        assert full.status_code == 200 and full.content == image("sd1.5_normal_000.jpg")
        thumb = await client.get(f"/thumbnails/{gid}/attempt-2.jpg")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    await app.state.dashboard.aclose()

    # a generation deleted from the bucket disappears from the index on the next rebuild
    info = data.doc("cat").storage
    assert info is not None and info.metadata_key is not None
    removed = info.metadata_key
    await asyncio.to_thread(seaweed.client().remove_object, bucket, removed)
    code, report = await run_cli(capsys, "rebuild-index")
    assert code == 0 and report["added"] == len(SPECS) - 1 and report["removed"] == 1
    with Index(tmp_path / "index.sqlite3") as index:
        assert index.get(data.ids["cat"]) is None and index.count() == len(SPECS) - 1
