"""The spool on its own, and an S3Store whose server is unreachable (no S3 server needed)."""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import pytest

from storage import spool as spool_module
from storage.errors import StorageUnavailableError
from storage.s3 import S3Store
from storage.s3_errors import is_transient
from storage.spool import Spool
from storage.store import ObjectWrite
from tests.storage.factories import make_image, make_metadata


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unreachable_store(spool: Path, **options: object) -> S3Store:
    settings: dict[str, object] = {
        "endpoint": f"127.0.0.1:{closed_port()}",
        "bucket": "images",
        "spool_dir": spool,
        "access_key": "k",
        "secret_key": "s",
        "retries": 2,
        "backoff": 0.01,
        "timeout": 2.0,
        "flush_interval": 3600.0,
    }
    settings.update(options)
    return S3Store(**settings)  # type: ignore[arg-type]


def test_commit_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path / "spool")
    objects = [
        ObjectWrite("a/1.png", b"one", "image/png", "image"),
        ObjectWrite("a/2.png", b"two", "image/png", "image"),
    ]
    calls = 0
    real = spool_module._write_synced

    def failing(path: Path, data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("No space left on device")
        real(path, data)

    monkeypatch.setattr(spool_module, "_write_synced", failing)
    with pytest.raises(StorageUnavailableError, match="COMFY_QUALITY_STORAGE_SPOOL_DIR"):
        spool.commit(spool.new_name("g"), "images", "g", objects)
    assert spool.entries() == [] and list(spool.root.iterdir()) == []

    monkeypatch.setattr(spool_module, "_write_synced", real)
    entry = spool.commit(spool.new_name("g"), "images", "g", objects)
    (loaded,) = spool.entries()
    assert loaded == entry and [o.key for o in loaded.objects] == ["a/1.png", "a/2.png"]
    found = spool.find("a/2.png")
    assert found is not None and spool.read(*found) == b"two"
    assert spool.spooled_keys() == {"a/1.png", "a/2.png"}


def test_entries_are_oldest_first_and_newest_copy_wins(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    first = spool.commit(spool.new_name("g"), "b", "g", [ObjectWrite("k.png", b"v1", "image/png", "image")])
    second = spool.commit(spool.new_name("g"), "b", "g", [ObjectWrite("k.png", b"v2", "image/png", "image")])
    assert [e.name for e in spool.entries()] == [first.name, second.name]
    found = spool.find("k.png")
    assert found is not None and spool.read(*found) == b"v2"
    spool.remove(second)
    found = spool.find("k.png")
    assert found is not None and spool.read(*found) == b"v1" and spool.count() == 1


def test_the_flush_lock_is_exclusive(tmp_path: Path) -> None:
    a, b = Spool(tmp_path), Spool(tmp_path)
    with a.lock() as held_a, b.lock() as held_b:
        assert held_a and not held_b
    with b.lock() as again:
        assert again


def test_stale_leftovers_are_cleaned(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (tmp_path / ".done-x").mkdir()
    fresh, stale = tmp_path / ".tmp-fresh", tmp_path / ".tmp-stale"
    fresh.mkdir()
    stale.mkdir()
    old = time.time() - 2 * spool_module.STALE_TMP_SECONDS
    os.utime(stale, (old, old))
    spool.clean_stale()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-fresh"]


async def test_unreachable_s3_spools_and_later_writes_skip_the_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = unreachable_store(tmp_path / "spool")
    async with store:
        with caplog.at_level(logging.INFO, logger="storage.s3"):
            first = await store.put_generation(make_image(1), make_metadata())
        retries = [r for r in caplog.records if "retrying" in r.getMessage()]
        assert len(retries) == 2, "two retries with backoff before spooling"
        assert first.spooled and first.metadata.storage is not None
        assert (
            first.metadata.storage.status == "spooled"
            and first.metadata.storage.uri == f"s3://images/{first.key}"
        )
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="storage.s3"):
            for i in range(3):
                assert (await store.put_generation(make_image(i), make_metadata())).spooled
        assert not [r for r in caplog.records if "retrying" in r.getMessage()], (
            "known down: straight to the spool"
        )
        assert store.spool.count() == 4
        health = await store.health()
        assert not health.ok and "cannot reach" in health.detail and health.spooled == 4
        report = await store.flush_spool()
        assert not report.ok and report.remaining == 4 and len(report.failed) == 1  # stops at the first
    assert Spool(tmp_path / "spool").count() == 4, "the spool outlives the store"


def test_transient_errors() -> None:
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(ValueError("bug"))
