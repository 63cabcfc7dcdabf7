"""LocalStore: put / get / list / URLs, atomic writes, errors, settings and the factory."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from storage import local as local_module
from storage.errors import InvalidKeyError, InvalidObjectURLError, ObjectNotFoundError, ObjectTooLargeError
from storage.factory import open_store
from storage.local import LocalStore, atomic_write
from storage.metadata import GenerationMetadata
from storage.settings import StorageSettings
from storage.store import Store
from tests.storage.factories import make_image, make_metadata


async def test_put_generation_writes_images_and_sidecar(local: LocalStore) -> None:
    md = make_metadata(attempts=[5.0, 7.5, 6.0])
    best, first, third = make_image(2), make_image(1), make_image(3, fmt="JPEG")
    stored = await local.put_generation(best, md, attempt_images={1: first, 3: third})

    prefix = "generations/2026/11/24/" + md.generation_id
    assert stored.status == "stored" and not stored.spooled
    assert stored.key == f"{prefix}/best.png" and stored.metadata_key == f"{prefix}/metadata.json"
    assert (local.root / stored.key).read_bytes() == best
    assert (local.root / prefix / "attempt-1.png").read_bytes() == first
    assert (local.root / prefix / "attempt-3.jpg").read_bytes() == third
    assert md.storage is None, "the caller's document is not modified"

    s = stored.metadata.storage
    assert s is not None
    assert (s.backend, s.status, s.bucket, s.format, s.content_type) == (
        "local",
        "stored",
        None,
        "png",
        "image/png",
    )
    assert (s.width, s.height, s.size_bytes) == (48, 32, len(best))
    assert s.sha256 == hashlib.sha256(best).hexdigest()
    assert s.url == (local.root / stored.key).as_uri() == stored.url
    attempts = stored.metadata.refinement.attempts
    assert [a.image_key for a in attempts] == [f"{prefix}/attempt-1.png", None, f"{prefix}/attempt-3.jpg"]
    assert attempts[0].image_url == (local.root / prefix / "attempt-1.png").as_uri()

    sidecar = json.loads((local.root / stored.metadata_key).read_bytes())
    assert sidecar == json.loads(stored.metadata.to_json())
    pointer = json.loads((local.root / "ids" / f"{md.generation_id}.json").read_bytes())
    assert pointer["metadata_key"] == stored.metadata_key


async def test_get_and_list(local: LocalStore) -> None:
    docs = [make_metadata(prompt=f"prompt {i}") for i in range(3)]
    stored = [await local.put_generation(make_image(i), md) for i, md in enumerate(docs)]
    failed = await local.put_generation(None, make_metadata(attempts=[None]))

    assert await local.get_image(stored[1].key or "") == make_image(1)
    by_id = await local.get_metadata(docs[2].generation_id)
    by_key = await local.get_metadata(stored[2].metadata_key)
    assert by_id == by_key == stored[2].metadata
    assert failed.key is None and failed.metadata.storage is not None and failed.metadata.storage.key is None
    assert (await local.get_metadata(failed.generation_id)).refinement.status == "failed"

    listed = [md async for md in local.list_metadata()]
    assert sorted(m.generation_id for m in listed) == sorted(
        [d.generation_id for d in docs] + [failed.generation_id]
    )
    assert [k async for k in local.list_metadata_keys("generations/2025/")] == []


async def test_lookup_by_id_without_pointer_searches_the_date_folders(local: LocalStore) -> None:
    stored = await local.put_generation(make_image(0), make_metadata())
    (local.root / "ids" / f"{stored.generation_id}.json").unlink()
    assert (await local.get_metadata(stored.generation_id)).generation_id == stored.generation_id


async def test_put_attempt_image_lands_in_the_generation_folder(local: LocalStore) -> None:
    md = make_metadata(attempts=[4.0, 8.0])
    early = await local.put_attempt_image(md.generation_id, md.timestamp, 1, make_image(9))
    stored = await local.put_generation(make_image(10), md)
    assert early.status == "stored" and early.key.rsplit("/", 1)[0] == stored.key.rsplit("/", 1)[0]  # type: ignore[union-attr]
    assert await local.get_image(early.key) == make_image(9)


async def test_urls_and_read_url(tmp_path: Path) -> None:
    plain = LocalStore(tmp_path / "s")
    stored = await plain.put_generation(make_image(1), make_metadata())
    key = stored.key or ""
    assert await plain.read_url(plain.url_for(key)) == make_image(1)

    public = LocalStore(tmp_path / "s", public_base_url="https://img.example.com/cq/")
    assert public.url_for(key) == f"https://img.example.com/cq/{key}"
    assert public.url_for("a b/c.png") == "https://img.example.com/cq/a%20b/c.png"
    assert await public.read_url(f"https://img.example.com/cq/{key}") == make_image(1)
    stored2 = await public.put_generation(make_image(2), make_metadata())
    assert stored2.url == f"https://img.example.com/cq/{stored2.key}"

    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    with pytest.raises(InvalidObjectURLError, match="outside the store folder"):
        await plain.read_url(outside.as_uri())
    with pytest.raises(InvalidObjectURLError, match="configure the s3 backend"):
        await plain.read_url("s3://bucket/key.png")
    with pytest.raises(ObjectTooLargeError, match="over the limit"):
        await plain.read_url(plain.url_for(key), max_bytes=10)


async def test_missing_and_unsafe_keys(local: LocalStore) -> None:
    with pytest.raises(ObjectNotFoundError):
        await local.get_image("generations/2026/01/01/nope/best.png")
    with pytest.raises(ObjectNotFoundError, match="no generation 'nope'"):
        await local.get_metadata("nope")
    with pytest.raises(InvalidKeyError):
        await local.get_image("../outside.png")
    with pytest.raises(InvalidKeyError):
        await local.get_metadata("../../etc")
    with pytest.raises(ValueError, match="empty"):
        await local.put_generation(b"", make_metadata())


async def test_symlink_escape_is_refused(local: LocalStore, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.png").write_bytes(b"x")
    local.root.mkdir(parents=True)
    (local.root / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidKeyError, match="outside the store folder"):
        await local.get_image("link/x.png")


async def test_unreadable_metadata_is_skipped_when_listing(local: LocalStore) -> None:
    good = await local.put_generation(make_image(0), make_metadata())
    bad = local.root / "generations/2026/11/24/broken/metadata.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{oops")
    assert [m.generation_id async for m in local.list_metadata()] == [good.generation_id]


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.bin"
    atomic_write(target, b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(local_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"], "no temp file is left behind"


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    versions = [bytes([i]) * 2_000_000 for i in range(2)]
    atomic_write(target, versions[0])
    done = threading.Event()

    def writer() -> None:
        for i in range(30):
            atomic_write(target, versions[i % 2])
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not done.is_set() or reads < 5:
        data = target.read_bytes()
        assert data in versions, f"torn read of {len(data)} bytes"
        reads += 1
    thread.join(timeout=30)
    assert len([p for p in tmp_path.iterdir()]) == 1


async def test_health(tmp_path: Path) -> None:
    healthy = await LocalStore(tmp_path / "ok").health()
    assert healthy.ok and healthy.backend == "local"
    (tmp_path / "file").write_text("x")
    broken = await LocalStore(tmp_path / "file" / "store").health()
    assert not broken.ok and "COMFY_QUALITY_STORAGE_LOCAL_ROOT" in broken.detail
    assert (await LocalStore(tmp_path / "ok").flush_spool()).ok


async def test_open_store_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_LOCAL_ROOT", str(tmp_path / "from-env"))
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_PUBLIC_BASE_URL", "http://127.0.0.1:8000/files")
    async with open_store() as store:
        assert isinstance(store, Store) and isinstance(store, LocalStore)
        stored = await store.put_generation(make_image(0), make_metadata())
    assert (tmp_path / "from-env" / (stored.key or "")).is_file()
    assert stored.url == f"http://127.0.0.1:8000/files/{stored.key}"
    assert isinstance(stored.metadata, GenerationMetadata)
    assert StorageSettings().backend == "local"


async def test_cli_health_flush_and_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from storage.__main__ import main
    from storage.index import Index

    monkeypatch.setenv("COMFY_QUALITY_STORAGE_LOCAL_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_INDEX_PATH", str(tmp_path / "index.sqlite3"))
    stored = await LocalStore(tmp_path / "store").put_generation(make_image(0), make_metadata())
    assert await asyncio.to_thread(main, ["health"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert await asyncio.to_thread(main, ["flush-spool"]) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["rebuild-index"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 1
    with Index(tmp_path / "index.sqlite3") as index:
        assert index.get(stored.generation_id) is not None
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_BACKEND", "s3")
    assert await asyncio.to_thread(main, ["health"]) == 2
    assert "COMFY_QUALITY_STORAGE_S3_ENDPOINT" in capsys.readouterr().err
