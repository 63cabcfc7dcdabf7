"""The dashboard with ungraded generations (scored, but too little for a grade): pages say "not graded" with the
reason, the JSON carries grade_status/grade_reasons, grade filters and counts cope with null grades."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from starlette.applications import Starlette

from dashboard import DashboardSettings, build_app
from storage.index import Index
from storage.local import LocalStore
from storage.metadata import RefinementInfo
from tests.dashboard.conftest import client_for
from tests.dashboard.dataset import Dataset, Spec, metadata_for, store_generation, today_noonish

HTML = {"accept": "text/html"}
REASONS = ["technical not scored (niqe: refused 64×64)", "coverage 20% < 50% of the applicable weight"]
SLIVER = Spec("sliver", "a fox made of static", [9.9, 9.7], ["sd1.5_normal_000.jpg", "glide_normal_000.jpg"])


@pytest.fixture
async def sliver(store: LocalStore, index: Index, dataset: Dataset) -> str:
    """One more generation whose every attempt was scored but not graded (the incident's 64×64 noise)."""
    md = metadata_for(SLIVER, today_noonish(dataset.now), 99)
    for a in md.refinement.attempts:
        a.quality = a.quality.model_copy(update={"grade": None, "grade_status": "insufficient",
                                                 "grade_reasons": list(REASONS)})  # fmt: skip
    md.refinement = RefinementInfo.from_attempts(md.refinement.attempts, strategy="progressive", threshold=7.0,
                                                 max_attempts=3)  # fmt: skip
    md.quality = next(a.quality for a in md.refinement.attempts if a.attempt == md.refinement.best_attempt)
    stored = await store_generation(store, index, SLIVER, md)
    return stored.generation_id


@pytest.fixture
async def client(settings: DashboardSettings, store: LocalStore, index: Index, sliver: str):
    app: Starlette = build_app(settings, store=store, index=index)
    async with client_for(app) as c:
        yield c


async def test_api_rows_carry_the_grade_status_and_reasons(client: httpx.AsyncClient, sliver: str) -> None:
    items = (await client.get("/api/generations", params={"graded": "false"})).json()["items"]
    assert [i["generation_id"] for i in items] == [sliver]
    row = items[0]
    assert row["grade"] is None and row["grade_status"] == "insufficient" and row["status"] == "best_effort"
    assert row["grade_reasons"] == "; ".join(REASONS)
    graded = (await client.get("/api/generations", params={"graded": "true", "limit": 200})).json()["items"]
    assert sliver not in {i["generation_id"] for i in graded} and all(i["grade"] for i in graded)
    letters = (await client.get("/api/generations", params={"grade": ["A", "B", "C", "D", "F"]})).json()["items"]
    assert sliver not in {i["generation_id"] for i in letters}


async def test_api_detail_and_grade_stats(client: httpx.AsyncClient, sliver: str) -> None:
    body = (await client.get(f"/api/generations/{sliver}")).json()
    assert body["summary"].startswith("2 attempts with progressive: composite 9.90 is not a grade: not graded (")
    assert "never reaches the threshold 7" in body["summary"]
    assert all(a["grade"] is None and a["grade_status"] == "insufficient" for a in body["attempts"])
    assert body["quality"]["grade"] is None and body["quality"]["grade_reasons"] == REASONS
    stats = (await client.get("/api/stats/grades")).json()
    assert stats["not_graded"] == 1 and stats["total"] == sum(stats["counts"].values()) + 1 + stats["ungraded"]


async def test_bad_graded_value_is_a_clear_error(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/generations", params={"graded": "maybe"})
    assert r.status_code == 400 and "graded" in r.text


async def test_gallery_card_and_chip_say_not_graded(client: httpx.AsyncClient, sliver: str) -> None:
    page = (await client.get("/", headers=HTML)).text
    card = re.search(rf'data-id="{sliver}" data-grade="">(.*?)</a>', page, re.S)
    assert card is not None
    assert "not graded</span>" in card.group(1) and html.escape(REASONS[0]) in card.group(1)
    assert re.search(r'id="not-graded-chip" href="[^"]*graded=false[^"]*"[^>]*>not graded <b>1</b>', page)
    only = (await client.get("/", params={"graded": "false"}, headers=HTML)).text
    assert re.findall(r'data-id="([^"]+)"', only) == [sliver]


async def test_generation_page_says_not_graded_with_the_reasons(client: httpx.AsyncClient, sliver: str) -> None:
    page = (await client.get(f"/generations/{sliver}", headers=HTML)).text
    note = re.search(r'<p class="not-graded" id="not-graded">(.*?)</p>', page, re.S)
    assert note is not None and "<b>Not graded</b>" in note.group(1)
    assert html.escape(REASONS[0]) in note.group(1) and html.escape(REASONS[1]) in note.group(1)
    assert "not a grade" in page and page.count(">not graded</span>") >= 3  # header + both attempts


async def test_charts_count_not_graded_with_a_link(client: httpx.AsyncClient) -> None:
    page = (await client.get("/charts", headers=HTML)).text
    table = re.search(r'<table class="data" id="grades-table">(.*?)</table>', page, re.S).group(1)
    assert "<th>not graded</th>" in table and re.search(r'graded=false">1</a>', table)
