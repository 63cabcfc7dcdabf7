"""Thumbnails: made from the stored image, cached on disk (bounded), served with ETag / Cache-Control."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

from dashboard import DashboardSettings, build_app
from dashboard.errors import ImageError
from dashboard.thumbs import Thumbnail, ThumbnailCache, make_thumbnail
from storage.index import Index
from storage.local import LocalStore
from tests.dashboard.conftest import client_for
from tests.dashboard.dataset import Dataset, image
from tests.storage.factories import make_image


def counting(app: Starlette, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every image read from the store."""
    state = app.state.dashboard
    reads: list[str] = []
    original = state.store.get_image

    async def get_image(key: str) -> bytes:
        reads.append(key)
        return await original(key)

    monkeypatch.setattr(state.store, "get_image", get_image)
    return reads


async def test_thumbnail_is_made_once_then_served_from_the_cache(
    app: Starlette, client: httpx.AsyncClient, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = counting(app, monkeypatch)
    cache: ThumbnailCache = app.state.dashboard.thumbnails
    url = f"/thumbnails/{dataset.ids['statue']}/best.jpg"
    first = await client.get(url, params={"size": 160})
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(first.content)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == 160
    assert first.headers["cache-control"] == "private, max-age=86400"
    etag = first.headers["etag"]
    assert len(reads) == 1 and cache.misses == 1
    assert len(list(cache.root.glob("??/*.jpg"))) == 1

    second = await client.get(url, params={"size": 160})
    assert second.content == first.content and second.headers["etag"] == etag
    assert len(reads) == 1 and cache.hits == 1  # no store read, no decoding

    revalidated = await client.get(url, params={"size": 160}, headers={"if-none-match": etag})
    assert revalidated.status_code == 304 and revalidated.content == b"" and len(reads) == 1

    bigger = await client.get(url)  # the configured size (320), a different entry
    assert bigger.headers["etag"] != etag and len(reads) == 2
    with Image.open(io.BytesIO(bigger.content)) as thumb:
        assert max(thumb.size) == 320


async def test_attempt_thumbnails_and_full_images(client: httpx.AsyncClient, dataset: Dataset) -> None:
    gid = dataset.ids["statue"]
    attempt = await client.get(f"/thumbnails/{gid}/attempt-1.jpg")
    assert attempt.status_code == 200
    best = await client.get(f"/thumbnails/{gid}/best.jpg")
    assert attempt.content != best.content
    full = await client.get(f"/images/{gid}/attempt-2")
    assert full.headers["content-type"] == "image/jpeg" and full.content == image("sd1.5_lowcorr_000.jpg")
    kept = await client.get(f"/images/{gid}/attempt-3")  # the kept attempt is the best image
    assert kept.content == image("midjourney_normal_000.jpg")
    assert (await client.get(f"/images/{gid}/best", headers={"if-none-match": kept.headers["etag"]})).status_code == (
        304
    )
    missing = await client.get(f"/thumbnails/{dataset.ids['castle']}/attempt-1.jpg")
    assert missing.status_code == 404 and "was not stored" in missing.json()["error"]
    assert (await client.get(f"/thumbnails/{gid}/best.jpg", params={"size": 999})).status_code == 400


async def test_unreadable_image_is_a_clear_error(
    app: Starlette, client: httpx.AsyncClient, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def not_an_image(key: str) -> bytes:
        return b"this is not an image"

    monkeypatch.setattr(app.state.dashboard.store, "get_image", not_an_image)
    r = await client.get(f"/thumbnails/{dataset.ids['sushi']}/best.jpg")
    assert r.status_code == 422 and "not a readable image" in r.json()["error"]
    full = await client.get(f"/images/{dataset.ids['sushi']}/best")
    assert full.headers["content-type"] == "application/octet-stream"
    assert full.headers["content-disposition"] == "attachment"


async def test_image_missing_from_the_store(
    app: Starlette, client: httpx.AsyncClient, dataset: Dataset, tmp_path: Path
) -> None:
    info = dataset.doc("sushi").storage
    assert info is not None and info.key is not None
    key = info.key
    (app.state.dashboard.settings.storage.local_root / key).unlink()
    r = await client.get(f"/images/{dataset.ids['sushi']}/best")
    assert r.status_code == 404 and "rebuild-index" in r.json()["error"]


async def test_cache_stays_under_its_bound(tmp_path: Path) -> None:
    images = [make_image(seed, size=(300, 200)) for seed in range(12)]
    one = len(make_thumbnail(images[0], 128))
    cache = ThumbnailCache(tmp_path / "thumbs", max_bytes=one * 5)

    def loader(i: int) -> Callable[[], Awaitable[bytes]]:
        async def load() -> bytes:
            return images[i]

        return load

    for i in range(12):
        await cache.get(f"key-{i}", 128, loader(i))
        assert cache.size_bytes() <= one * 5 * 1.1
    assert cache.evicted >= 6
    newest = await cache.get("key-11", 128, loader(0))  # still cached: not made from the other image
    assert newest.data == make_thumbnail(images[11], 128)
    assert cache.hits == 1


async def test_concurrent_requests_make_one_thumbnail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs", max_bytes=10**7)
    loads = 0
    gate = asyncio.Event()
    all_missed = threading.Event()
    misses = 0
    lock = threading.Lock()
    original_read = cache.read

    def read(name: str) -> Thumbnail | None:
        nonlocal misses
        found = original_read(name)
        with lock:
            misses += found is None
            if misses == 5:
                all_missed.set()
        return found

    monkeypatch.setattr(cache, "read", read)

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        await gate.wait()
        return make_image(3, size=(400, 300))

    tasks = [asyncio.create_task(cache.get("same", 128, load)) for _ in range(5)]
    assert await asyncio.to_thread(all_missed.wait, 30)  # every request missed the cache...
    gate.set()  # ...before the first thumbnail was made
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    assert loads == 1 and len({r.data for r in results}) == 1


def test_thumbnail_of_transparent_and_huge_images() -> None:
    rgba = Image.new("RGBA", (64, 32), (255, 0, 0, 0))
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    with Image.open(io.BytesIO(make_thumbnail(buf.getvalue(), 320))) as thumb:
        assert thumb.size == (64, 32)  # never enlarged
        assert thumb.getpixel((10, 10)) == pytest.approx((255, 255, 255), abs=3)  # transparent → white
    with pytest.raises(ImageError, match="pixel limit"):
        make_thumbnail(make_image(1, size=(400, 300)), 128, max_pixels=1000)


async def test_unwritable_cache_still_serves(
    settings: DashboardSettings, store: LocalStore, index: Index, dataset: Dataset, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    app = build_app(settings.model_copy(update={"thumbnail_cache_dir": blocker / "thumbs"}), store=store, index=index)
    async with client_for(app) as client:
        r = await client.get(f"/thumbnails/{dataset.ids['statue']}/best.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
