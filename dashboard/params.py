"""Query parameters of the pages and the JSON API → :class:`storage.GenerationQuery` (with clear errors).

One vocabulary for both (a gallery URL's query string works on ``/api/generations`` as is):

=====================  =================================================================================
``grade``              A–F, repeatable (``grade=A&grade=B``)
``since`` / ``until``  ``YYYY-MM-DD`` (a day in the dashboard's zone; ``until`` includes that day) or an
                       ISO-8601 time (no offset: the dashboard's zone)
``period``             ``today``, ``yesterday``, ``7d``, ``30d``, ``90d`` (calendar days in the dashboard's
                       zone, today included; combined with since/until, the narrower bound wins)
``workflow``           repeatable;  ``strategy`` repeatable;  ``status`` success/best_effort/failed, repeatable
``q``                  words that must all occur in the prompt (the last one as a prefix)
``min_<f>``/``max_<f>``  inclusive bounds, ``f`` one of composite, technical, aesthetic, prompt_adherence,
                       detail, gain (``min_composite=8``); a composite bound matches graded runs only
``partial``            ``true`` / ``false``: only partial or only complete grades
``graded``             ``true`` / ``false``: only runs with a letter grade, or only scored runs without one
                       (too little could be scored; a null grade never matches ``grade``)
``sort`` / ``order``   timestamp (default), composite, a dimension, gain, attempts_used / desc (default), asc
``limit``              page size (1–200);  ``cursor``: ``next_cursor`` of the previous page;  ``offset``
``total``              ``false`` skips counting every match
=====================  =================================================================================

Empty values (what an HTML form sends for an untouched field) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, get_args
from urllib.parse import urlencode

from pydantic import ValidationError
from starlette.datastructures import QueryParams

from dashboard.errors import BadRequestError
from storage.index_query import GenerationFilter, GenerationQuery, ScoreField, SortField

GRADES = ("A", "B", "C", "D", "F")
STATUSES = ("success", "best_effort", "failed")
SCORE_FIELDS: tuple[str, ...] = get_args(ScoreField)
SORT_FIELDS: tuple[str, ...] = get_args(SortField)
PERIODS = {"today": 1, "yesterday": 1, "7d": 7, "30d": 30, "90d": 90}
FILTER_KEYS = frozenset(
    {"grade", "since", "until", "period", "workflow", "strategy", "status", "q", "partial", "graded"}
    | {f"{b}_{f}" for b in ("min", "max") for f in SCORE_FIELDS}
)
PAGE_KEYS = frozenset({"sort", "order", "limit", "cursor", "offset", "total"})
MAX_LIST = 50


def _values(params: QueryParams, key: str) -> list[str]:
    values = [v.strip() for v in params.getlist(key) if v.strip()]
    if len(values) > MAX_LIST:
        raise BadRequestError(f"too many {key!r} values ({len(values)}); at most {MAX_LIST}", parameter=key)
    return values


def _one(params: QueryParams, key: str) -> str | None:
    values = _values(params, key)
    if len(values) > 1:
        raise BadRequestError(f"{key!r} was given {len(values)} times; give it once", parameter=key)
    return values[0] if values else None


def _choices(params: QueryParams, key: str, allowed: Iterable[str]) -> list[str]:
    allowed = tuple(allowed)
    values = _values(params, key)
    for value in values:
        if value not in allowed:
            raise BadRequestError(f"{key}={value!r} is not one of {', '.join(allowed)}", parameter=key)
    return list(dict.fromkeys(values))


def _number(params: QueryParams, key: str) -> float | None:
    value = _one(params, key)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadRequestError(f"{key}={value!r} is not a number", parameter=key) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise BadRequestError(f"{key}={value!r} is not a finite number", parameter=key)
    return number


def _integer(params: QueryParams, key: str, low: int, high: int) -> int | None:
    value = _one(params, key)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise BadRequestError(f"{key}={value!r} is not a whole number", parameter=key) from None
    if not low <= number <= high:
        raise BadRequestError(f"{key}={number} is out of range {low}–{high}", parameter=key)
    return number


def _boolean(params: QueryParams, key: str) -> bool | None:
    value = _one(params, key)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise BadRequestError(f"{key}={value!r} is not true or false", parameter=key)


def _time(params: QueryParams, key: str, zone: tzinfo, *, end: bool) -> datetime | None:
    value = _one(params, key)
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(), zone)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestError(
            f"{key}={value!r} is not a date (YYYY-MM-DD) or an ISO-8601 time", parameter=key
        ) from None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def period_bounds(period: str, zone: tzinfo, now: datetime | None = None) -> tuple[datetime, datetime | None]:
    """Start (and end, for ``yesterday``) of a named period in ``zone``."""
    today = (now or datetime.now(zone)).astimezone(zone).date()
    midnight = datetime.combine(today, time(), zone)
    if period == "yesterday":
        return midnight - timedelta(days=1), midnight
    return midnight - timedelta(days=PERIODS[period] - 1), None


def parse_filter(params: QueryParams, zone: tzinfo, *, now: datetime | None = None) -> GenerationFilter:
    """The filter the parameters describe (see the module docstring)."""
    since = _time(params, "since", zone, end=False)
    until = _time(params, "until", zone, end=True)
    period = _one(params, "period")
    if period is not None:
        if period not in PERIODS:
            raise BadRequestError(f"period={period!r} is not one of {', '.join(PERIODS)}", parameter="period")
        start, end = period_bounds(period, zone, now)
        since = max(since, start) if since else start
        until = min(until, end) if until and end else (until or end)
    if since is not None and until is not None and since >= until:
        raise BadRequestError("the date range is empty: 'since' must be before 'until'", parameter="since")
    ranges: dict[str, dict[str, float]] = {}
    for field in SCORE_FIELDS:
        for bound in ("min", "max"):
            number = _number(params, f"{bound}_{field}")
            if number is not None:
                ranges.setdefault(field, {})[bound] = number
    text = _one(params, "q")
    if text is not None and len(text) > 500:
        raise BadRequestError("q is longer than 500 characters", parameter="q")
    try:
        return GenerationFilter.model_validate(
            {
                "grades": _choices(params, "grade", GRADES),
                "since": since,
                "until": until,
                "workflows": list(dict.fromkeys(_values(params, "workflow"))),
                "strategies": list(dict.fromkeys(_values(params, "strategy"))),
                "statuses": _choices(params, "status", STATUSES),
                "ranges": ranges,
                "text": text,
                "partial": _boolean(params, "partial"),
                "graded": _boolean(params, "graded"),
            }
        )
    except ValidationError as exc:
        raise BadRequestError(_describe(exc)) from exc


def parse_query(params: QueryParams, zone: tzinfo, *, page_size: int, now: datetime | None = None) -> GenerationQuery:
    """Filter plus sort, order and page."""
    base = parse_filter(params, zone, now=now)
    sort = _choices(params, "sort", SORT_FIELDS)
    order = _choices(params, "order", ("desc", "asc"))
    for key, values in (("sort", sort), ("order", order)):
        if len(values) > 1:
            raise BadRequestError(f"{key!r} was given {len(values)} times; give it once", parameter=key)
    limit = _integer(params, "limit", 1, 200) or page_size
    offset = _integer(params, "offset", 0, 10_000_000) or 0
    cursor = _one(params, "cursor")
    if cursor is not None and len(cursor) > 512:
        raise BadRequestError("cursor is not valid: start again from the first page", parameter="cursor")
    total = _boolean(params, "total")
    try:
        return GenerationQuery.model_validate(
            {
                **base.model_dump(),
                "sort": sort[0] if sort else "timestamp",
                "order": order[0] if order else "desc",
                "limit": limit,
                "offset": offset,
                "cursor": cursor,
                "with_total": True if total is None else total,
            }
        )
    except ValidationError as exc:
        raise BadRequestError(_describe(exc)) from exc


def without_grade(f: GenerationFilter) -> GenerationFilter:
    return f.model_copy(update={"grades": [], "graded": None})


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    return "invalid parameters: " + "; ".join(parts)


def query_string(params: QueryParams | Mapping[str, Any], **changes: Any) -> str:
    """``params`` with ``changes`` applied (``None`` removes a key, a list sets a repeatable one), as
    ``'?a=1&b=2'`` (or ``''``). Empty values are dropped."""
    items: list[tuple[str, str]] = []
    source = params.multi_items() if isinstance(params, QueryParams) else list(params.items())
    for key, value in source:
        if key not in changes and str(value).strip():
            items.append((key, str(value)))
    for key, value in changes.items():
        if value is None:
            continue
        for v in value if isinstance(value, list | tuple) else [value]:
            if str(v).strip():
                items.append((key, str(v)))
    return ("?" + urlencode(items)) if items else ""
