"""Fixtures of the dashboard tests: a local store filled with real images and full metadata, its index, the
app over them and an HTTP client (httpx over ASGI, Host 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from dashboard import DashboardSettings, build_app
from storage.index import Index
from storage.local import LocalStore
from storage.settings import StorageSettings
from tests.dashboard.dataset import Dataset, fill
from tests.storage.seaweed import SeaweedServer, serve


def make_settings(tmp_path: Path, **overrides: object) -> DashboardSettings:
    storage = StorageSettings(local_root=tmp_path / "store", index_path=tmp_path / "index.sqlite3")
    values: dict[str, object] = {
        "timezone": "UTC",
        "thumbnail_cache_dir": tmp_path / "thumbs",
        "storage": storage,
    }
    values.update(overrides)
    return DashboardSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> DashboardSettings:
    return make_settings(tmp_path)


@pytest.fixture
def store(settings: DashboardSettings) -> LocalStore:
    return LocalStore(settings.storage.local_root)


@pytest.fixture
def index(settings: DashboardSettings) -> Iterator[Index]:
    with Index(settings.storage.index_path) as opened:
        yield opened


@pytest.fixture
async def dataset(store: LocalStore, index: Index) -> Dataset:
    return await fill(store, index)


@pytest.fixture
def app(settings: DashboardSettings, store: LocalStore, index: Index, dataset: Dataset) -> Starlette:
    return build_app(settings, store=store, index=index)


def client_for(app: Starlette, base_url: str = "http://127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    yield from serve(tmp_path_factory, "seaweed-dashboard")
