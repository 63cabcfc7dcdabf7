"""Parsing of the shared query vocabulary, time zones, and the settings' host rules."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from starlette.datastructures import QueryParams

from dashboard.errors import BadRequestError
from dashboard.params import parse_filter, parse_query, query_string
from dashboard.security import host_name
from dashboard.views import parameter_changes, prompt_change
from tests.dashboard.conftest import make_settings

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 7, 14, 1, 30, tzinfo=UTC)  # 03:30 in Paris, the same calendar day


def test_today_is_the_dashboard_zones_day() -> None:
    f = parse_filter(QueryParams("period=today"), PARIS, now=NOW)
    assert f.since == datetime(2026, 7, 14, tzinfo=PARIS) and f.until is None
    assert f.since.astimezone(UTC) == datetime(2026, 7, 13, 22, 0, tzinfo=UTC)
    y = parse_filter(QueryParams("period=yesterday"), PARIS, now=NOW)
    assert (y.since, y.until) == (datetime(2026, 7, 13, tzinfo=PARIS), datetime(2026, 7, 14, tzinfo=PARIS))
    week = parse_filter(QueryParams("period=7d"), PARIS, now=NOW)
    assert week.since == datetime(2026, 7, 8, tzinfo=PARIS)


def test_dates_times_and_the_narrower_bound() -> None:
    f = parse_filter(QueryParams("since=2026-07-01&until=2026-07-10"), PARIS)
    assert f.since == datetime(2026, 7, 1, tzinfo=PARIS) and f.until == datetime(2026, 7, 11, tzinfo=PARIS)
    t = parse_filter(QueryParams("since=2026-07-01T12:00:00Z"), PARIS)
    assert t.since == datetime(2026, 7, 1, 12, tzinfo=UTC)
    both = parse_filter(QueryParams("period=30d&since=2026-07-10"), PARIS, now=NOW)
    assert both.since == datetime(2026, 7, 10, tzinfo=PARIS)


def test_form_values_and_query_defaults() -> None:
    q = parse_query(QueryParams("grade=A&grade=&q=&min_detail=&workflow=sdxl&sort=gain&order=asc"), UTC, page_size=48)
    assert q.grades == ["A"] and q.text is None and q.ranges == {} and q.workflows == ["sdxl"]
    assert (q.sort, q.order, q.limit, q.with_total) == ("gain", "asc", 48, True)
    r = parse_query(QueryParams("min_composite=7&max_composite=9.5&partial=false&limit=10&total=0"), UTC, page_size=48)
    assert r.ranges["composite"].min == 7 and r.ranges["composite"].max == 9.5
    assert r.partial is False and r.limit == 10 and r.with_total is False


@pytest.mark.parametrize(
    ("query", "parameter"),
    [("grade=G", "grade"), ("order=up", "order"), ("sort=a&sort=b", "sort"), ("min_gain=inf", "min_gain")],
)
def test_errors_name_the_parameter(query: str, parameter: str) -> None:
    with pytest.raises(BadRequestError) as err:
        parse_query(QueryParams(query), UTC, page_size=10)
    assert err.value.parameter == parameter and parameter in str(err.value)


def test_query_string_replaces_and_drops() -> None:
    params = QueryParams("grade=A&grade=B&q=red car&cursor=abc&min_detail=")
    assert query_string(params, grade="C", cursor=None) == "?q=red+car&grade=C"
    assert query_string(params, grade=["A", "F"]) == "?q=red+car&cursor=abc&grade=A&grade=F"
    assert query_string(QueryParams(""), cursor=None) == ""


def test_host_rules(tmp_path: Path) -> None:
    assert host_name("Example.com:8080") == "example.com" and host_name("[::1]:80") == "::1"
    assert make_settings(tmp_path).host_patterns() == ["127.0.0.1", "localhost", "::1"]
    named = make_settings(tmp_path, host="10.0.0.5", token="t", allowed_hosts="dash.example,other")
    assert named.host_patterns() == ["127.0.0.1", "localhost", "::1", "dash.example", "other", "10.0.0.5"]
    assert make_settings(tmp_path, host="0.0.0.0", token="t").host_patterns() is None
    assert make_settings(tmp_path, host="0.0.0.0").host_patterns() == ["127.0.0.1", "localhost", "::1"]
    assert make_settings(tmp_path, allowed_hosts="*").host_patterns() is None


def test_what_changed_wording() -> None:
    assert prompt_change("a red car", "a blue car at night") == "prompt: “red” → “blue”; added “at night”"
    assert prompt_change("a car, blurry", "a car") == "prompt: removed “blurry”"
    changes = parameter_changes(
        {"seed": 1, "cfg": 7.0, "loras": [], "sampler": "euler"},
        {"seed": 2, "cfg": 7.5, "loras": [{"name": "detail", "strength_model": 0.6}], "sampler": "euler"},
    )
    assert [c.text for c in changes] == ["seed 1 → 2", "cfg 7 → 7.5", "loras none → detail @ 0.6"]
