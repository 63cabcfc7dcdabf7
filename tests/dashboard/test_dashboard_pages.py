"""HTML pages, escaping, the Content-Security-Policy, read-only, Host check, token and a path prefix."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import httpx
import markupsafe
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from dashboard import DashboardSettings, build_app
from dashboard.security import COOKIE, CSP
from storage.index import Index
from storage.local import LocalStore
from tests.dashboard.conftest import client_for, make_settings
from tests.dashboard.dataset import XSS_PROMPT, Dataset

HTML = {"accept": "text/html"}


def assert_no_inline_code(page: str) -> None:
    """Every script is external or inert JSON; no inline handlers or styles (the CSP would block them)."""
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\son[a-z]+\s*=", page), "inline event handler"
    assert not re.search(r"\sstyle\s*=", page), "inline style attribute"


async def test_gallery_lists_cards_with_grade_badges(client: httpx.AsyncClient, dataset: Dataset) -> None:
    r = await client.get("/", params={"period": "today", "grade": "A"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    cards = re.findall(r'data-id="([^"]+)" data-grade="([A-F]?)"', r.text)
    assert sorted(cards) == sorted([(dataset.ids["statue"], "A"), (dataset.ids["sushi"], "A")])
    assert f'src="/thumbnails/{dataset.ids["statue"]}/best.jpg"' in r.text
    assert re.search(r'data-grade="A" href="[^"]*">A <b>2</b>', r.text)  # grade chips count today's generations
    assert_no_inline_code(r.text)


async def test_markup_in_prompts_is_escaped_everywhere(client: httpx.AsyncClient, dataset: Dataset) -> None:
    escaped = str(markupsafe.escape(XSS_PROMPT))  # &lt;script&gt;alert(&#34;xss&#34;)...
    for path in ("/", "/?q=bold", f"/generations/{dataset.ids['xss']}"):
        page = (await client.get(path)).text
        assert "<script>alert" not in page and "<b>bold</b>" not in page
        assert escaped in page and "&lt;script&gt;alert(" in page
        assert_no_inline_code(page)


async def test_user_text_in_query_and_errors_is_escaped(client: httpx.AsyncClient, dataset: Dataset) -> None:
    evil = '"><script>alert(1)</script>'
    page = (await client.get("/", params={"q": evil})).text
    assert "<script>alert(1)" not in page
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    charts = await client.get("/charts", params={"q": evil})
    assert "<script>alert(1)" not in charts.text
    embedded = re.search(r'<script type="application/json" id="charts-data">(.*?)</script>', charts.text, re.S)
    assert embedded is not None
    links = json.loads(embedded.group(1))["grade_links"]
    assert httpx.URL(links["A"]).params["q"] == evil  # the link still carries the text, encoded
    error = await client.get("/", params={"grade": "<img src=x onerror=alert(1)>"}, headers=HTML)
    assert error.status_code == 400 and error.headers["content-type"].startswith("text/html")
    assert "<img src=x" not in error.text and "&lt;img src=x onerror=alert(1)&gt;" in error.text


async def test_generation_page_shows_attempts_side_by_side(client: httpx.AsyncClient, dataset: Dataset) -> None:
    gid = dataset.ids["statue"]
    page = (await client.get(f"/generations/{gid}")).text
    assert page.count('class="attempt ') == 3
    assert re.search(r'class="attempt best helped scored" data-attempt="3"', page)
    assert "steps 30 → 40" in page and "prompt: added “highly detailed”" in page
    assert f'src="/thumbnails/{gid}/attempt-1.jpg"' in page and f'href="/images/{gid}/best"' in page
    assert "brisque <b>22.500</b>" in page
    data = re.search(r'<script type="application/json" id="dimension-data">(.*?)</script>', page, re.S)
    assert data is not None
    chart = json.loads(data.group(1))
    assert [a["attempt"] for a in chart["attempts"]] == [1, 2, 3]
    assert chart["attempts"][2]["values"][0] == pytest.approx(8.3)


async def test_charts_page_has_every_chart(client: httpx.AsyncClient, dataset: Dataset) -> None:
    page = (await client.get("/charts")).text
    for canvas in ("grades-chart", "trend-chart", "dimensions-chart", "strategies-chart"):
        assert f'id="{canvas}"' in page
    assert '<script src="/static/chart.umd.min.js?v=' in page
    assert_no_inline_code(page)


async def test_empty_index_says_how_to_fill_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with Index(settings.storage.index_path) as index:
        app = build_app(settings, store=LocalStore(settings.storage.local_root), index=index)
        async with client_for(app) as client:
            page = (await client.get("/")).text
    assert "The index is empty" in page and "python -m dashboard rebuild-index" in page


async def test_gallery_pagination_links(client: httpx.AsyncClient, dataset: Dataset) -> None:
    seen: list[str] = []
    url = "/?limit=3"
    for _ in range(5):
        page = (await client.get(url)).text
        seen += re.findall(r'data-id="([^"]+)"', page)
        found = re.search(r'rel="next" href="([^"]+)"', page)
        if found is None:
            break
        url = html.unescape(found.group(1))
        assert "cursor=" in url and "limit=3" in url
    assert len(seen) == len(dataset.ids) and set(seen) == set(dataset.ids.values())


@pytest.mark.parametrize("path", ["/", "/api/generations", "/charts", "/static/dashboard.css", "/nowhere"])
async def test_security_headers_everywhere(client: httpx.AsyncClient, dataset: Dataset, path: str) -> None:
    r = await client.get(path)
    assert r.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP and "frame-ancestors 'none'" in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


async def test_static_files_are_cacheable_and_vendored(client: httpx.AsyncClient, dataset: Dataset) -> None:
    page = (await client.get("/charts")).text
    src = re.search(r'src="(/static/chart\.umd\.min\.js\?v=[0-9a-f]+)"', page)
    assert src is not None
    r = await client.get(src.group(1))
    assert r.status_code == 200 and b"Chart.js v4" in r.content[:100]
    assert "immutable" in r.headers["cache-control"]
    assert (await client.get("/static/chart.js.LICENSE.md")).status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_read_only(client: httpx.AsyncClient, dataset: Dataset, method: str) -> None:
    r = await client.request(method, "/api/generations")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert "read-only" in r.json()["error"]


@pytest.mark.parametrize(("host", "status"), [("evil.example", 421), ("localhost:8766", 200), ("[::1]:80", 200)])
async def test_dns_rebinding_protection(client: httpx.AsyncClient, dataset: Dataset, host: str, status: int) -> None:
    r = await client.get("/api/health", headers={"host": host})
    assert r.status_code == status


async def test_unexpected_errors_are_contained(
    app: Starlette, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = app.state.dashboard

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(state.index, "facets", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        r = await client.get("/api/facets")
        assert r.status_code == 500 and "secret" not in r.text
        assert r.json() == {"error": "internal error: see the dashboard's log"}
        assert r.headers["content-security-policy"] == CSP
        assert (await client.get("/api/health")).status_code == 200  # still serving


async def test_token(tmp_path: Path, store: LocalStore, index: Index, dataset: Dataset) -> None:
    settings = make_settings(tmp_path, token="s3cret-token", host="0.0.0.0")
    app = build_app(settings, store=store, index=index)
    async with client_for(app, "http://dash.example:8766") as client:  # any host: the token protects it
        denied = await client.get("/api/generations")
        assert denied.status_code == 401 and "token" in denied.json()["error"]
        assert (await client.get("/", params={"token": "wrong"})).status_code == 401
        bearer = await client.get("/api/generations", headers={"authorization": "Bearer s3cret-token"})
        assert bearer.status_code == 200
        opened = await client.get("/", params={"token": "s3cret-token", "grade": "A"})
        assert opened.status_code == 303 and opened.headers["location"] == "/?grade=A"
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "s3cret-token" not in cookie
        assert (await client.get("/?grade=A")).status_code == 200  # the cookie is kept by the client
        client.cookies.set(COOKIE, "forged")
        assert (await client.get("/")).status_code == 401


def test_non_loopback_bind_needs_token_or_flag(tmp_path: Path) -> None:
    from dashboard.errors import DashboardConfigError

    with pytest.raises(DashboardConfigError, match="requires a token"):
        make_settings(tmp_path, host="0.0.0.0").check_serving()
    make_settings(tmp_path, host="0.0.0.0", token="t").check_serving()
    make_settings(tmp_path, host="0.0.0.0", allow_unauthenticated_remote=True).check_serving()
    make_settings(tmp_path, host="::1").check_serving()


async def test_mounted_under_a_prefix(
    settings: DashboardSettings, store: LocalStore, index: Index, dataset: Dataset
) -> None:
    outer = Starlette(routes=[Mount("/dashboard", app=build_app(settings, store=store, index=index))])
    async with client_for(outer) as client:
        page = (await client.get("/dashboard/?limit=2")).text
        hrefs = re.findall(r'(?:href|src|action)="([^"#]+)"', page)
        local = [h for h in hrefs if not h.startswith(("data:", "http"))]
        assert local and all(h.startswith("/dashboard/") for h in local), local
        for link in {html.unescape(h) for h in local}:
            assert (await client.get(link)).status_code == 200, link
        api = (await client.get("/dashboard/api/generations", params={"limit": 2})).json()
        assert api["next"].startswith("/dashboard/api/generations?") and "cursor=" in api["next"]
        assert api["items"][0]["links"]["page"].startswith("/dashboard/generations/")
        assert (await client.get(api["next"])).json()["items"]


async def test_token_cookie_is_scoped_to_the_prefix(tmp_path: Path, store: LocalStore, index: Index) -> None:
    app = build_app(make_settings(tmp_path, token="tok"), store=store, index=index)
    outer = Starlette(routes=[Mount("/dashboard", app=app)])
    async with client_for(outer) as client:
        r = await client.get("/dashboard/charts", params={"token": "tok"})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/charts"
        assert "Path=/dashboard;" in r.headers["set-cookie"]
        assert (await client.get("/dashboard/charts")).status_code == 200


async def test_trend_bucket_follows_the_range(client: httpx.AsyncClient, dataset: Dataset) -> None:
    def bucket(page: str) -> str:
        found = re.search(r"average composite per (\w+) \(UTC\)", page)
        assert found is not None
        return found.group(1)

    assert bucket((await client.get("/charts")).text) == "day"  # the data spans 9 days
    assert bucket((await client.get("/charts", params={"since": "2025-01-01"})).text) == "month"
    assert bucket((await client.get("/charts", params={"since": "2025-01-01", "bucket": "day"})).text) == "day"
    assert (await client.get("/charts", params={"bucket": "week"})).status_code == 400
