"""S3Store against a real S3 server (SeaweedFS), through the minio SDK: objects, URLs, spool, outages."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from storage.errors import InvalidObjectURLError, ObjectNotFoundError
from storage.index import Index
from storage.metadata import GenerationMetadata
from storage.s3 import S3Store
from storage.store import ObjectWrite
from tests.storage.conftest import s3_store
from tests.storage.factories import make_image, make_metadata
from tests.storage.seaweed import SeaweedServer

pytestmark = pytest.mark.s3


def public_read_policy(bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": ["*"]},
                    "Action": ["s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
    )


def s3_bytes(server: SeaweedServer, bucket: str, key: str) -> bytes:
    response = server.client().get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def spool_entries(spool: Path) -> list[Path]:
    return [p for p in spool.iterdir() if p.is_dir() and not p.name.startswith(".")] if spool.exists() else []


async def test_put_generation_creates_bucket_with_types_and_object_metadata(
    s3: S3Store, seaweed: SeaweedServer, bucket: str
) -> None:
    client = seaweed.client()
    assert not client.bucket_exists(bucket)
    md = make_metadata(attempts=[5.5, 8.25])
    best, first = make_image(1), make_image(2, fmt="JPEG")
    stored = await s3.put_generation(best, md, attempt_images={1: first})
    assert stored.status == "stored" and client.bucket_exists(bucket)

    stat = client.stat_object(bucket, stored.key or "")
    assert stat.content_type == "image/png" and stat.size == len(best)
    meta = {k.lower(): v for k, v in (stat.metadata or {}).items()}
    assert meta["x-amz-meta-generation-id"] == md.generation_id
    assert (meta["x-amz-meta-grade"], meta["x-amz-meta-composite"], meta["x-amz-meta-kind"]) == (
        "A",
        "8.250",
        "best",
    )
    attempt = client.stat_object(bucket, stored.metadata.refinement.attempts[0].image_key or "")
    assert attempt.content_type == "image/jpeg"
    assert {k.lower(): v for k, v in (attempt.metadata or {}).items()}["x-amz-meta-attempt"] == "1"
    sidecar = client.stat_object(bucket, stored.metadata_key)
    assert sidecar.content_type == "application/json"
    assert s3_bytes(seaweed, bucket, stored.metadata_key) == stored.metadata.to_json()

    s = stored.metadata.storage
    assert s is not None and (s.backend, s.bucket, s.status) == ("s3", bucket, "stored")
    assert s.uri == f"s3://{bucket}/{stored.key}"
    assert s.url_expires_at is not None
    assert timedelta(minutes=59) < s.url_expires_at - datetime.now(UTC) <= timedelta(hours=1)
    async with httpx.AsyncClient() as http:
        fetched = await http.get(stored.url or "")
    assert fetched.status_code == 200 and fetched.content == best

    assert await s3.get_image(stored.key or "") == best
    assert await s3.get_metadata(md.generation_id) == stored.metadata
    assert await s3.get_metadata(stored.metadata_key) == stored.metadata
    assert [m.generation_id async for m in s3.list_metadata()] == [md.generation_id]
    with pytest.raises(ObjectNotFoundError):
        await s3.get_metadata("no-such-generation")
    health = await s3.health()
    assert health.ok and health.spooled == 0


async def test_presigned_public_and_endpoint_urls(
    s3: S3Store, seaweed: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    image = make_image(5)
    stored = await s3.put_generation(image, make_metadata())
    key = stored.key or ""
    endpoint_url = f"{seaweed.url}/{bucket}/{key}"
    async with httpx.AsyncClient() as http:
        assert (await http.get(endpoint_url)).status_code == 403, "the bucket is private by default"
        assert (await http.get(s3.url_for(key, expires=timedelta(minutes=5)))).content == image

        seaweed.client().set_bucket_policy(bucket, public_read_policy(bucket))
        public = s3_store(seaweed, bucket, tmp_path / "spool2", public_base_url=f"{seaweed.url}/{bucket}")
        assert public.url_for(key) == endpoint_url
        assert public.url_for(key, presigned=True) != endpoint_url
        stored_public = await public.put_generation(make_image(6), make_metadata())
        assert stored_public.url == f"{seaweed.url}/{bucket}/{stored_public.key}"
        assert (
            stored_public.metadata.storage is not None
            and stored_public.metadata.storage.url_expires_at is None
        )
        assert (await http.get(stored_public.url or "")).content == make_image(6)

        plain = s3_store(seaweed, bucket, tmp_path / "spool3", presign=False)
        assert plain.url_for(key) == endpoint_url
        assert (await http.get(plain.url_for(key))).content == image

    for url in (f"s3://{bucket}/{key}", endpoint_url, s3.url_for(key), public.url_for(key)):
        assert await public.read_url(url) == image
    assert await s3.read_url(f"s3://{bucket}/{key}", max_bytes=len(image)) == image
    with pytest.raises(InvalidObjectURLError, match="configured S3 endpoint"):
        await s3.read_url(f"http://example.com/{bucket}/{key}")
    with pytest.raises(ObjectNotFoundError):
        await s3.read_url(f"s3://{bucket}/generations/none.png")


async def test_wrong_credentials_spool_then_a_restarted_process_flushes(
    seaweed: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    wrong = s3_store(seaweed, bucket, spool, secret_key="not-the-secret")
    md = make_metadata(attempts=[6.0, 7.1])
    async with wrong:
        stored = await wrong.put_generation(make_image(1), md, attempt_images={1: make_image(2)})
        assert stored.spooled and (stored.url or "").startswith("file://")
        assert Path((stored.url or "")[len("file://") :]).read_bytes() == make_image(1)
        assert await wrong.get_image(stored.key or "") == make_image(1)  # served from the spool
        assert (await wrong.get_metadata(md.generation_id)).storage.status == "spooled"  # type: ignore[union-attr]
        health = await wrong.health()
        assert (
            not health.ok and "COMFY_QUALITY_STORAGE_S3_SECRET_KEY" in health.detail and health.spooled == 1
        )
    assert len(spool_entries(spool)) == 1

    index = Index(tmp_path / "index.sqlite3")
    right = s3_store(seaweed, bucket, spool)  # a new process, same spool folder
    right.add_flush_listener(index.add)
    async with right:
        report = await right.flush_spool()
    assert report.ok and len(report.uploaded) == 1 and report.remaining == 0
    assert spool_entries(spool) == []
    uploaded = GenerationMetadata.from_json(s3_bytes(seaweed, bucket, stored.metadata_key))
    assert uploaded.storage is not None and uploaded.storage.status == "stored"
    assert (uploaded.storage.url or "").startswith(seaweed.url)
    assert all(
        (a.image_url or "").startswith(seaweed.url) for a in uploaded.refinement.attempts if a.image_key
    )
    assert s3_bytes(seaweed, bucket, stored.key or "") == make_image(1)
    row = index.get(md.generation_id)
    assert row is not None and row.storage_status == "stored"
    index.close()


async def test_background_flusher_uploads_without_being_asked(
    seaweed: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    async with s3_store(seaweed, bucket, spool, access_key="nobody", secret_key="nothing") as wrong:
        stored = await wrong.put_generation(make_image(3), make_metadata())
    assert stored.spooled
    flushed = asyncio.Event()
    store = s3_store(seaweed, bucket, spool, flush_interval=0.05)
    store.add_flush_listener(lambda md: flushed.set())
    async with store:
        await asyncio.wait_for(flushed.wait(), timeout=30)
    assert s3_bytes(seaweed, bucket, stored.key or "") == make_image(3)
    assert spool_entries(spool) == []


async def test_flush_is_idempotent_and_replaces_a_partial_upload(
    seaweed: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    async with s3_store(seaweed, bucket, spool, secret_key="wrong-secret") as wrong:
        stored = await wrong.put_generation(make_image(4), make_metadata(), attempt_images={1: make_image(7)})
    store = s3_store(seaweed, bucket, spool)
    async with store:
        await store.health()
        # a previous flush died half-way: the attempt image is there, the best image is truncated garbage
        store.client.make_bucket(bucket)
        attempt_key = stored.metadata.refinement.attempts[0].image_key or ""
        await asyncio.to_thread(store._upload, bucket, [_obj(attempt_key, make_image(7))])
        await asyncio.to_thread(store._upload, bucket, [_obj(stored.key or "", b"truncated")])
        first = await store.flush_spool()
        second = await store.flush_spool()
    assert first.ok and len(first.uploaded) == 1
    assert second.ok and second.uploaded == [] and second.remaining == 0
    assert s3_bytes(seaweed, bucket, stored.key or "") == make_image(4)
    assert s3_bytes(seaweed, bucket, attempt_key) == make_image(7)


async def test_a_corrupt_spool_entry_is_quarantined_not_uploaded(
    seaweed: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    async with s3_store(seaweed, bucket, spool, secret_key="wrong-secret") as wrong:
        bad = await wrong.put_generation(make_image(8), make_metadata())
        good = await wrong.put_generation(make_image(9), make_metadata())
    (entry,) = [p for p in spool_entries(spool) if bad.generation_id in p.name]
    (entry / "objects" / (bad.key or "")).write_bytes(b"bit rot")
    async with s3_store(seaweed, bucket, spool) as store:
        report = await store.flush_spool()
        with pytest.raises(ObjectNotFoundError):
            await store.get_image(bad.key or "")
    assert list(report.failed) == [entry.name] and "checksum" in report.failed[entry.name]
    assert len(report.uploaded) == 1 and report.remaining == 0
    assert (spool / f".corrupt-{entry.name}").is_dir()
    assert s3_bytes(seaweed, bucket, good.key or "") == make_image(9)


async def test_s3_down_then_back_loses_nothing(seaweed: SeaweedServer, bucket: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    index = Index(tmp_path / "index.sqlite3")
    store = s3_store(seaweed, bucket, spool)
    async with store:
        before = await store.put_generation(make_image(100), make_metadata(prompt="before the outage"))
        assert before.status == "stored"
        seaweed.stop()
        try:
            assert seaweed.is_down()
            docs = [make_metadata(prompt=f"during the outage {i}", attempts=[5.0, 7.5]) for i in range(3)]
            spooled = [
                await store.put_generation(make_image(i), md, attempt_images={1: make_image(50 + i)})
                for i, md in enumerate(docs)
            ]
            late = docs[0]
            early = await store.put_attempt_image(late.generation_id, late.timestamp, 2, make_image(99))
            assert [s.status for s in spooled] == ["spooled"] * 3 and early.status == "spooled"
            for i, s in enumerate(spooled):
                index.add(s.metadata)
                assert await store.get_image(s.key or "") == make_image(i)
                assert (await store.get_metadata(s.generation_id)).input.prompt == docs[i].input.prompt
            health = await store.health()
            assert not health.ok and "cannot reach" in health.detail and health.spooled == 4
            while_down = await store.flush_spool()
            assert not while_down.ok and while_down.remaining == 4
        finally:
            seaweed.start()

    restarted = s3_store(
        seaweed, bucket, spool
    )  # as after a process restart: only the spool folder is shared
    restarted.add_flush_listener(index.add)
    async with restarted:
        assert len([k async for k in restarted.list_metadata_keys()]) == 4  # 1 uploaded + 3 spooled
        # A restarted SeaweedFS can answer listings a moment before it takes writes (seen on a loaded machine):
        # flush as the background flusher would, until nothing remains, within an overall timeout.
        uploaded: list[str] = []
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            report = await restarted.flush_spool()
            uploaded += report.uploaded
            if report.remaining == 0 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)  # retry pacing, not synchronisation: the loop ends on the flushed state
        assert report.ok and len(uploaded) == 4 and report.remaining == 0, report
        assert spool_entries(spool) == []
        async with httpx.AsyncClient() as http:
            for i, s in enumerate(spooled):
                assert s3_bytes(seaweed, bucket, s.key or "") == make_image(i)
                attempt_key = s.metadata.refinement.attempts[0].image_key or ""
                assert s3_bytes(seaweed, bucket, attempt_key) == make_image(50 + i)
                md = await restarted.get_metadata(s.generation_id)
                assert md.storage is not None and md.storage.status == "stored"
                assert md.storage.sha256 == hashlib.sha256(make_image(i)).hexdigest()
                assert (await http.get(md.storage.url or "")).content == make_image(i)
                assert index.get(s.generation_id).storage_status == "stored"  # type: ignore[union-attr]
        assert s3_bytes(seaweed, bucket, early.key) == make_image(99)
        assert s3_bytes(seaweed, bucket, before.key or "") == make_image(100)
        after = await restarted.put_generation(make_image(101), make_metadata(prompt="after"))
        assert after.status == "stored"
    index.close()


def _obj(key: str, data: bytes) -> ObjectWrite:
    return ObjectWrite(key, data, "image/png", "image")
