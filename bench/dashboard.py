"""Dashboard benchmark: HTTP latency of its pages and JSON endpoints over N generations (default 100,000).

    python bench/dashboard.py [--rows 100000] [--path INDEX_FILE] [--repeat 7]

Requests go through the whole app in-process (httpx ASGI transport: routing, the guard middleware, index
queries in worker threads, JSON / Jinja rendering, gzip off), so the numbers are what a browser waits for minus
the network. "cold" clears the aggregate cache before every request (charts, grade chips and facets are
recomputed, as after the index changed); "cached" repeats the request with the index unchanged. Rows are
bench/index.py's synthetic documents (a year, 4 workflows, 5 strategies). Compared:
a deep page by keyset cursor vs the same page by offset, and a thumbnail made (cold) vs served from the disk
cache (warm) vs revalidated (304). Targets: 100 ms for a page or an endpoint, 300 ms for the charts page (four
aggregates over every row), 250 ms for a cold 1024² thumbnail.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.index import synthetic
from dashboard import DashboardSettings, build_app
from storage.index import Index
from storage.index_query import GenerationQuery
from storage.local import LocalStore
from storage.settings import StorageSettings

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "agiqa" / "midjourney_normal_000.jpg"


def fill(index: Index, rows: int) -> None:
    have = index.count()
    if have >= rows:
        return
    rng = random.Random(1)
    t0 = time.perf_counter()
    for start in range(have, rows, 2000):
        index.add_many([synthetic(i, rng) for i in range(start, min(start + 2000, rows))])
    print(f"filled {rows:,} generations in {time.perf_counter() - t0:.0f} s")


async def timed(fn: Callable[[], Awaitable[object]], repeat: int) -> tuple[float, float]:
    await fn()  # warm-up
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), max(samples)


def png_1024() -> bytes:
    with Image.open(SAMPLE) as img:
        big = img.convert("RGB").resize((1024, 1024), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    big.save(out, format="PNG")
    return out.getvalue()


async def run(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    path = args.path or tmp / "index.sqlite3"
    index = Index(path)
    fill(index, args.rows)
    store = LocalStore(tmp / "store")
    settings = DashboardSettings(
        timezone="UTC",
        thumbnail_cache_dir=tmp / "thumbs",
        storage=StorageSettings(local_root=tmp / "store", index_path=path),
    )
    app = build_app(settings, store=store, index=index)
    row = index.query(GenerationQuery(statuses=["success"], limit=1)).items[0]  # one with attempts and an image
    assert row.image_key is not None
    (tmp / "store" / row.image_key).parent.mkdir(parents=True, exist_ok=True)
    (tmp / "store" / row.image_key).write_bytes(png_1024())
    gid = row.generation_id

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:

        async def get(url: str, **headers: str) -> httpx.Response:
            response = await client.get(url, headers=headers)
            if response.status_code >= 400:
                raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
            return response

        deep = max(2, min(1000, args.rows // 50))  # the page measured by cursor and by offset
        cursor_url = "/api/generations?limit=50&total=false"
        for _ in range(deep - 1):  # walk there once, by cursor
            cursor_url = (await get(cursor_url)).json()["next"]
        month = "since=2026-11-01&until=2026-11-30"
        cases: list[tuple[str, str, float]] = [
            ("gallery page (HTML: page, total, grade chips, facets)", "/", 100),
            ("gallery: grade A, last month, sdxl", f"/?grade=A&{month}&workflow=sdxl", 100),
            ("gallery: prompt text 'castle night'", "/?q=castle+night", 100),
            ("gallery: composite 7–9, sorted by gain", "/?min_composite=7&max_composite=9&sort=gain", 100),
            ("api: page 1 (+ total)", "/api/generations", 100),
            (f"api: page {deep} by cursor", cursor_url, 100),
            (
                f"api: page {deep} by offset (comparison)",
                f"/api/generations?limit=50&total=false&offset={(deep - 1) * 50}",
                100,
            ),
            ("api: one generation, attempts compared", f"/api/generations/{gid}", 100),
            ("generation page (HTML)", f"/generations/{gid}", 100),
            ("charts page (HTML: 4 aggregates + facets)", "/charts", 300),
            ("charts page, last month", f"/charts?{month}", 300),
            ("api: grade distribution", "/api/stats/grades", 100),
            ("api: trend per day per workflow", "/api/stats/trend", 100),
            ("api: averages per dimension", "/api/stats/dimensions", 100),
            ("api: gain per strategy", "/api/stats/strategies", 100),
        ]
        aggregates = app.state.dashboard.aggregates

        async def cold(url: str) -> httpx.Response:
            aggregates.clear()  # charts, grade chips and facets recomputed, as after the index changed
            return await get(url)

        print(
            f"\n{'request (median of cold = aggregates recomputed)':<56} {'cold ms':>8} {'max ms':>7} "
            f"{'cached ms':>9} {'target':>7}  verdict"
        )
        failures = 0
        for name, url, target in cases:
            median, worst = await timed(lambda url=url: cold(url), args.repeat)
            warm, _ = await timed(lambda url=url: get(url), args.repeat)
            ok = median <= target
            failures += not ok
            print(f"{name:<56} {median:>8.1f} {worst:>7.1f} {warm:>9.1f} {target:>5.0f}ms  {'ok' if ok else 'SLOW'}")

        thumbs = app.state.dashboard.thumbnails
        thumb_url = f"/thumbnails/{gid}/best.jpg"

        async def uncached() -> httpx.Response:
            for file in thumbs.root.glob("??/*.jpg"):
                file.unlink()
            return await get(thumb_url)

        etag = (await get(thumb_url)).headers["etag"]
        for name, fn, target in (
            ("thumbnail 1024² PNG → 320 JPEG, cold (made + cached)", uncached, 250.0),
            ("thumbnail, warm (disk cache)", lambda: get(thumb_url), 100.0),
            ("thumbnail, revalidated (304, no store read)", lambda: get(thumb_url, **{"if-none-match": etag}), 100.0),
            ("full image (1024² PNG from the store)", lambda: get(f"/images/{gid}/best"), 100.0),
        ):
            median, worst = await timed(fn, args.repeat)
            ok = median <= target
            failures += not ok
            print(f"{name:<56} {median:>8.1f} {worst:>7.1f} {'':>9} {target:>5.0f}ms  {'ok' if ok else 'SLOW'}")
        size = len((await get(thumb_url)).content)
        print(f"\nthumbnail size: {size / 1024:.0f} KiB (source PNG {len(png_1024()) / 1024:.0f} KiB)")
        total = len(cases) + 4
        print(f"{total - failures}/{total} requests within target at {args.rows:,} generations")
    await app.state.dashboard.aclose()
    index.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--path", type=Path, help="index file to reuse (default: a temporary one)")
    parser.add_argument("--repeat", type=int, default=7)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
