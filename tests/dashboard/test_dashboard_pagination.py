"""Cursor pagination through the API over a few hundred generations: complete, ordered, no duplicates."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from dashboard import build_app
from storage.index import Index
from storage.local import LocalStore
from tests.dashboard.conftest import client_for, make_settings
from tests.storage.factories import make_metadata

ROWS = 230
START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
async def big(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, dict]]]:
    rng = random.Random(7)
    settings = make_settings(tmp_path)
    docs = []
    for i in range(ROWS):
        attempts: list[float | None] = [round(rng.choice([4.0, 5.5, 6.5, 7.0, 8.5]), 1)]  # many ties
        if i % 3:
            attempts.append(round(rng.uniform(3, 9.5), 1))
        docs.append(
            make_metadata(
                prompt=f"{rng.choice(['a red car', 'a cat', 'a castle'])} number {i}",
                attempts=attempts,
                workflow=rng.choice(["flux-dev", "sdxl"]),
                strategy=rng.choice(["progressive", "seed_search"]),
                timestamp=START + timedelta(hours=i // 2),  # pairs share a timestamp
                generation_id=f"row-{i:04d}",
            )
        )
    with Index(settings.storage.index_path) as index:
        index.add_many(docs)
        app = build_app(settings, store=LocalStore(settings.storage.local_root), index=index)
        async with client_for(app) as client:
            yield client, {d.generation_id: d.model_dump(mode="json") for d in docs}


async def walk(client: httpx.AsyncClient, params: dict) -> tuple[list[dict], set[int | None]]:
    items: list[dict] = []
    totals: set[int | None] = set()
    body = (await client.get("/api/generations", params=params)).json()
    for _ in range(100):
        items += body["items"]
        totals.add(body["total"])
        if body["next"] is None:
            break
        assert len(body["items"]) == params["limit"]
        body = (await client.get(body["next"])).json()
    return items, totals


@pytest.mark.parametrize(
    ("sort", "order"), [("timestamp", "desc"), ("timestamp", "asc"), ("composite", "desc"), ("gain", "asc")]
)
async def test_cursor_pages_cover_everything_once(big: tuple, sort: str, order: str) -> None:
    client, docs = big
    items, totals = await walk(client, {"limit": 40, "sort": sort, "order": order})
    ids = [i["generation_id"] for i in items]
    assert len(ids) == ROWS and set(ids) == set(docs)
    assert totals == {ROWS}
    key = "timestamp" if sort == "timestamp" else sort
    values = [(i[key] is not None, i[key]) for i in items]  # missing values sort lowest
    assert values == sorted(values, reverse=order == "desc")


async def test_filtered_pages(big: tuple) -> None:
    client, docs = big
    items, totals = await walk(client, {"limit": 25, "grade": ["A", "B"], "workflow": "sdxl", "q": "car"})
    expected = {
        gid
        for gid, d in docs.items()
        if d["quality"]["grade"] in ("A", "B") and d["workflow"]["name"] == "sdxl" and "car" in d["input"]["prompt"]
    }
    assert expected and {i["generation_id"] for i in items} == expected and totals == {len(expected)}


async def test_offset_pages_and_total_off(big: tuple) -> None:
    client, _ = big
    first = (await client.get("/api/generations", params={"limit": 10, "total": "false"})).json()
    assert first["total"] is None
    second = (await client.get("/api/generations", params={"limit": 10, "offset": 10})).json()
    by_cursor = (await client.get(first["next"])).json()
    assert [i["generation_id"] for i in second["items"]] == [i["generation_id"] for i in by_cursor["items"]]


async def test_cursor_of_another_sort_is_refused(big: tuple) -> None:
    client, _ = big
    page = (await client.get("/api/generations", params={"limit": 5, "sort": "composite"})).json()
    r = await client.get("/api/generations", params={"limit": 5, "sort": "timestamp", "cursor": page["next_cursor"]})
    assert r.status_code == 400 and "another sort order" in r.json()["error"]
