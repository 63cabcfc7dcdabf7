"""Fixtures of the storage tests: a session-wide SeaweedFS S3 server, unique buckets, stores."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from storage.local import LocalStore
from storage.s3 import S3Store
from tests.storage.seaweed import SeaweedServer, serve


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    yield from serve(tmp_path_factory, "seaweed")


@pytest.fixture
def bucket() -> str:
    return f"cq-{uuid.uuid4().hex[:12]}"


def s3_store(server: SeaweedServer, bucket: str, spool: Path, **options: object) -> S3Store:
    settings: dict[str, object] = {
        "endpoint": server.endpoint,
        "bucket": bucket,
        "spool_dir": spool,
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "retries": 1,
        "backoff": 0.05,
        "timeout": 5.0,
        "flush_interval": 3600.0,
        "presign_expiry": timedelta(hours=1),
    }
    settings.update(options)
    return S3Store(**settings)  # type: ignore[arg-type]


@pytest.fixture
async def s3(seaweed: SeaweedServer, bucket: str, tmp_path: Path) -> AsyncIterator[S3Store]:
    store = s3_store(seaweed, bucket, tmp_path / "spool")
    async with store:
        yield store


@pytest.fixture
def local(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")
