"""The JSON endpoints, over a real local store with real images and full metadata documents."""

from __future__ import annotations

import statistics

import httpx
import pytest
from starlette.applications import Starlette

from storage.index import Index
from storage.metadata import GenerationMetadata
from tests.dashboard.dataset import SPECS, XSS_PROMPT, Dataset
from tests.storage.factories import make_metadata


def ids_of(body: dict) -> set[str]:
    return {item["generation_id"] for item in body["items"]}


async def test_list_is_newest_first_with_links_and_no_store_urls(client: httpx.AsyncClient, dataset: Dataset) -> None:
    r = await client.get("/api/generations")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["total"] == len(SPECS)
    times = [item["timestamp"] for item in body["items"]]
    assert times == sorted(times, reverse=True)
    first = body["items"][0]
    assert first["links"]["page"] == f"/generations/{first['generation_id']}"
    assert first["links"]["thumbnail"] == f"/thumbnails/{first['generation_id']}/best.jpg"
    assert "image_url" not in first  # store-time URLs may be presigned: never handed out
    failed = next(i for i in body["items"] if i["generation_id"] == dataset.ids["cat"])
    assert failed["links"]["image"] is None and failed["grade"] is None


async def test_todays_grade_a(client: httpx.AsyncClient, dataset: Dataset) -> None:
    r = await client.get("/api/generations", params={"grade": "A", "period": "today"})
    assert r.status_code == 200
    assert ids_of(r.json()) == {dataset.ids["statue"], dataset.ids["sushi"]}
    every_a = await client.get("/api/generations", params={"grade": "A"})
    assert ids_of(every_a.json()) == {dataset.ids[k] for k in ("statue", "sushi", "bronze", "statue-old")}


@pytest.mark.parametrize(
    ("params", "keys"),
    [
        ({"workflow": "sdxl"}, {"sushi", "armor", "castle"}),
        ({"strategy": "adaptive"}, {"armor"}),
        ({"strategy": ["adaptive", "seed_search"]}, {"armor", "sushi"}),
        ({"status": "failed"}, {"cat"}),
        ({"status": "best_effort"}, {"armor", "castle"}),
        ({"q": "statue"}, {"statue", "bronze", "statue-old", "xss"}),
        ({"q": "statue of a man"}, {"statue", "bronze", "statue-old"}),
        ({"q": "patin"}, {"bronze"}),  # last word is a prefix
        ({"min_composite": "8.2"}, {"statue", "sushi", "bronze"}),
        ({"min_composite": "6", "max_composite": "7.5"}, {"armor", "xss"}),
        ({"max_detail": "5"}, {"castle"}),  # make_quality: detail = composite − 0.5
        ({"min_gain": "2"}, {"statue"}),
        ({"period": "yesterday"}, {"bronze"}),
        ({"period": "7d", "grade": ["C", "D"]}, {"armor", "castle"}),
        ({"grade": "B", "workflow": "flux-dev", "period": "today"}, {"xss"}),
    ],
)
async def test_filters(client: httpx.AsyncClient, dataset: Dataset, params: dict, keys: set[str]) -> None:
    r = await client.get("/api/generations", params=params)
    assert r.status_code == 200, r.text
    assert ids_of(r.json()) == {dataset.ids[k] for k in keys}
    assert r.json()["total"] == len(keys)


async def test_date_range_is_inclusive_of_the_until_day(client: httpx.AsyncClient, dataset: Dataset) -> None:
    day = dataset.doc("bronze").timestamp.date().isoformat()
    r = await client.get("/api/generations", params={"since": day, "until": day})
    assert ids_of(r.json()) == {dataset.ids["bronze"]}
    later = dataset.doc("castle").timestamp.date().isoformat()
    r = await client.get("/api/generations", params={"since": later, "until": day})
    assert ids_of(r.json()) == {dataset.ids[k] for k in ("castle", "cat", "bronze")}


async def test_sort_by_score(client: httpx.AsyncClient, dataset: Dataset) -> None:
    r = await client.get("/api/generations", params={"sort": "composite", "order": "asc", "status": ["success"]})
    scores = [i["composite"] for i in r.json()["items"]]
    assert scores == sorted(scores) and len(scores) == 5


async def test_prompt_with_markup_is_verbatim_in_json(client: httpx.AsyncClient, dataset: Dataset) -> None:
    gid = dataset.ids["xss"]
    listed = (await client.get("/api/generations", params={"q": "bold"})).json()["items"]
    assert [i["prompt"] for i in listed] == [XSS_PROMPT]
    detail = await client.get(f"/api/generations/{gid}")
    assert detail.headers["content-type"] == "application/json"
    assert detail.json()["generation"]["prompt"] == XSS_PROMPT
    meta = (await client.get(f"/api/generations/{gid}/metadata")).json()
    assert meta["input"]["prompt"] == XSS_PROMPT


async def test_generation_compares_every_attempt(client: httpx.AsyncClient, dataset: Dataset) -> None:
    gid = dataset.ids["statue"]
    body = (await client.get(f"/api/generations/{gid}")).json()
    attempts = body["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["is_best"] for a in attempts] == [False, False, True]
    assert [a["helped"] for a in attempts] == [None, True, True]
    assert attempts[1]["compared_to"] == 1
    assert attempts[1]["delta"]["composite"] == pytest.approx(6.9 - 4.8)
    assert attempts[2]["delta"]["detail"] == pytest.approx(8.3 - 6.9)
    changes = {c["field"]: c for c in attempts[1]["changes"]}
    assert changes["steps"]["before"] == 30 and changes["steps"]["after"] == 40
    assert changes["steps"]["text"] == "steps 30 → 40"
    assert changes["prompt"]["text"] == "prompt: added “highly detailed”"
    assert "prompt" not in {c["field"] for c in attempts[2]["changes"]}  # same prompt as attempt 2
    assert attempts[0]["rejected_reason"].startswith("composite 4.80 < threshold 7.00")
    assert attempts[0]["raw_metrics"]["technical"]["brisque"] == pytest.approx(22.5)
    assert attempts[0]["links"]["thumbnail"] == f"/thumbnails/{gid}/attempt-1.jpg"
    assert "4.80 → 8.30 (+3.50)" in body["summary"] and "reached the threshold 7" in body["summary"]
    assert body["raw_metrics"]["detail"]["edge_density"] == pytest.approx(0.12)


async def test_attempt_that_did_not_help(client: httpx.AsyncClient, dataset: Dataset) -> None:
    body = (await client.get(f"/api/generations/{dataset.ids['armor']}")).json()
    third = body["attempts"][2]
    assert third["helped"] is False
    assert third["delta"]["composite"] == pytest.approx(5.9 - 6.1)
    assert third["outcome"].startswith("did not help")
    assert "did not reach the threshold" in body["summary"]


async def test_failed_generation(client: httpx.AsyncClient, dataset: Dataset) -> None:
    body = (await client.get(f"/api/generations/{dataset.ids['cat']}")).json()
    assert body["generation"]["grade"] is None and body["links"]["image"] is None
    assert [a["status"] for a in body["attempts"]] == ["failed", "failed"]
    assert all(a["links"]["thumbnail"] is None for a in body["attempts"])
    assert body["attempts"][0]["outcome"].startswith("failed: ComfyUI execution error")


async def test_kept_attempt_without_own_image_shows_the_kept_image(client: httpx.AsyncClient, dataset: Dataset) -> None:
    body = (await client.get(f"/api/generations/{dataset.ids['castle']}")).json()  # attempt images not stored
    links = [a["links"]["thumbnail"] for a in body["attempts"]]
    assert links == [None, None, f"/thumbnails/{dataset.ids['castle']}/attempt-3.jpg", None]


async def test_metadata_document_round_trips(client: httpx.AsyncClient, dataset: Dataset) -> None:
    gid = dataset.ids["sushi"]
    r = await client.get(f"/api/generations/{gid}/metadata")
    assert GenerationMetadata.model_validate(r.json()) == dataset.documents[gid]


async def test_grade_distribution(client: httpx.AsyncClient, dataset: Dataset) -> None:
    body = (await client.get("/api/stats/grades")).json()
    expected = {g: 0 for g in "ABCDF"}
    for doc in dataset.documents.values():
        if doc.quality is not None:
            expected[doc.quality.grade] += 1
    assert body["counts"] == expected and body["ungraded"] == 1 and body["total"] == len(SPECS)
    today = (await client.get("/api/stats/grades", params={"period": "today"})).json()
    assert today["counts"] == {"A": 2, "B": 1, "C": 1, "D": 0, "F": 0}


async def test_dimension_averages(client: httpx.AsyncClient, dataset: Dataset) -> None:
    body = (await client.get("/api/stats/dimensions", params={"workflow": "sdxl"})).json()
    scored = [d.quality for d in dataset.documents.values() if d.workflow.name == "sdxl" and d.quality]
    assert body["count"] == 3
    assert body["composite"] == pytest.approx(statistics.mean(q.composite_score for q in scored))
    assert body["detail"] == pytest.approx(statistics.mean(q.detail.score or 0.0 for q in scored))


async def test_trend_per_day_per_workflow(client: httpx.AsyncClient, dataset: Dataset) -> None:
    body = (await client.get("/api/stats/trend")).json()
    assert body["bucket"] == "day"
    today = dataset.doc("statue").timestamp.date().isoformat()
    point = next(p for p in body["points"] if p["period"] == today and p["workflow"] == "flux-dev")
    assert point["count"] == 2 and point["composite"] == pytest.approx((8.3 + 7.4) / 2)
    monthly = (await client.get("/api/stats/trend", params={"bucket": "month", "by_workflow": "false"})).json()
    assert all(p["workflow"] is None for p in monthly["points"])
    assert sum(p["count"] for p in monthly["points"]) == len(SPECS)


async def test_strategy_gains(client: httpx.AsyncClient, dataset: Dataset) -> None:
    body = (await client.get("/api/stats/strategies")).json()
    by_name = {s["strategy"]: s for s in body["strategies"]}
    assert by_name["seed_search"]["gain"] == pytest.approx(8.6 - 7.1)
    assert by_name["seed_search"]["success_rate"] == 1.0
    assert by_name["adaptive"]["success_rate"] == 0.0
    assert by_name["progressive"]["count"] == 4


async def test_facets_and_health(client: httpx.AsyncClient, dataset: Dataset) -> None:
    facets = (await client.get("/api/facets")).json()
    assert facets["workflows"] == ["flux-dev", "sd15", "sdxl"]
    assert facets["total"] == len(SPECS)
    health = (await client.get("/api/health")).json()
    assert health == {"ok": True, "generations": len(SPECS), "fts": True, "store": "local"}


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/api/generations?grade=Z", 400, "grade='Z'"),
        ("/api/generations?min_composite=abc", 400, "min_composite='abc' is not a number"),
        ("/api/generations?min_composite=8&max_composite=2", 400, "above max"),
        ("/api/generations?since=2026-02-01&until=2026-01-01", 400, "since"),
        ("/api/generations?since=yesterday-ish", 400, "since="),
        ("/api/generations?period=decade", 400, "period="),
        ("/api/generations?sort=prompt", 400, "sort="),
        ("/api/generations?limit=5000", 400, "limit=5000"),
        ("/api/generations?cursor=bm90IGEgY3Vyc29y", 400, "cursor"),
        ("/api/generations?partial=maybe", 400, "partial="),
        ("/api/stats/trend?bucket=week", 400, "bucket="),
        ("/api/generations/does-not-exist", 404, "no generation 'does-not-exist'"),
        ("/api/generations/..%2F..%2Fetc", 404, "Not Found"),  # decoded to a path no route matches
        ("/api/generations/bad%20id!", 404, "not a generation id"),
        ("/images/gen-statue-000/attempt-9", 404, "no attempt 9"),
        ("/images/gen-statue-000/..%2Fmetadata.json", 404, "Not Found"),
        ("/images/gen-statue-000/metadata.json", 404, "names no image"),
        ("/thumbnails/gen-cat-005/best.jpg", 404, "no image"),
        ("/no/such/page", 404, "Not Found"),
    ],
)
async def test_bad_requests_get_clear_json_errors(
    client: httpx.AsyncClient, dataset: Dataset, path: str, status: int, words: str
) -> None:
    r = await client.get(path)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert words in r.json()["error"]


async def test_aggregates_are_cached_until_the_index_changes(
    app: Starlette, client: httpx.AsyncClient, index: Index, dataset: Dataset
) -> None:
    cache = app.state.dashboard.aggregates
    first = (await client.get("/api/stats/grades")).json()
    again = (await client.get("/api/stats/grades")).json()
    assert again == first and cache.hits == 1
    index.add(make_metadata(attempts=[9.1], generation_id="just-stored"))  # what the orchestrator does
    fresh = (await client.get("/api/stats/grades")).json()
    assert fresh["counts"]["A"] == first["counts"]["A"] + 1 and fresh["total"] == first["total"] + 1
    listed = (await client.get("/api/generations", params={"grade": "A"})).json()
    assert "just-stored" in ids_of(listed)
