"""The HTML pages (Jinja2, autoescaped): gallery, a generation with its attempts, and the charts.

Pages embed the data their charts draw as JSON in ``<script type="application/json">`` (escaped by Jinja's
``tojson``: ``<``, ``>``, ``&`` and ``'`` become ``\\u003c``...); ``static/dashboard.js`` reads it, so no inline
script is needed and the Content-Security-Policy can forbid them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from dashboard.api import generation_detail, generations_page, state_of
from dashboard.errors import BadRequestError
from dashboard.links import path_for, static_path
from dashboard.params import GRADES, SCORE_FIELDS, SORT_FIELDS, STATUSES, parse_filter, query_string, without_grade
from dashboard.views import SCORE_LABELS, SCORES
from storage.index import Facets
from storage.index_query import GenerationFilter

TEMPLATES = Path(__file__).parent / "templates"
AUTO_DAYS = 92
TREND_TABLE_LIMIT = 400
PERIOD_LABELS = {"today": "Today", "yesterday": "Yesterday", "7d": "Last 7 days", "30d": "Last 30 days"}
SORT_LABELS = {"timestamp": "Time", "attempts_used": "Attempts", **SCORE_LABELS}


def score(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}".replace("-", "−")


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name: user text is always escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(score=score, signed=signed, percent=percent)
    env.globals.update(
        GRADES=GRADES,
        STATUSES=STATUSES,
        SCORES=SCORES,
        RANGE_FIELDS=SCORE_FIELDS,
        SCORE_LABELS=SCORE_LABELS,
        SORT_FIELDS=SORT_FIELDS,
        SORT_LABELS=SORT_LABELS,
        PERIOD_LABELS=PERIOD_LABELS,
    )

    def helpers(request: Request) -> dict[str, Any]:
        zone = state_of(request).settings.zone()

        def when(value: datetime | str | None) -> str:
            if value is None:
                return "—"
            moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
            return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

        return {
            "path": lambda name, **params: path_for(request, name, **params),
            "static": lambda filename: static_path(request, filename),
            "qs": lambda **changes: query_string(request.query_params, **changes),
            "params": request.query_params,
            "has_ranges": any(k.startswith(("min_", "max_")) and v for k, v in request.query_params.multi_items()),
            "when": when,
            "zone_name": datetime.now(zone).strftime("%Z") or str(zone),
        }

    return Jinja2Templates(env=env, context_processors=[helpers])


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["cache-control"] = "no-cache"
    return response


async def gallery(request: Request) -> Response:
    state = state_of(request)
    data = await generations_page(request)
    f = parse_filter(request.query_params, state.settings.zone())
    grades = await state.aggregate(state.index.grade_distribution, without_grade(f))
    facets = await state.aggregate(state.index.facets)
    next_page = None
    if data["next_cursor"]:
        next_page = path_for(request, "gallery") + query_string(
            request.query_params, cursor=data["next_cursor"], offset=None
        )
    first_page = None
    if request.query_params.get("cursor") or request.query_params.get("offset"):
        first_page = path_for(request, "gallery") + query_string(request.query_params, cursor=None, offset=None)
    return render(
        request,
        "gallery.html",
        {
            "page": data,
            "grades": grades,
            "facets": facets,
            "next_page": next_page,
            "first_page": first_page,
        },
    )


async def generation(request: Request) -> Response:
    view = await generation_detail(request)
    chart = {
        "scores": list(SCORES),
        "labels": [SCORE_LABELS[s] for s in SCORES],
        "attempts": [
            {"attempt": a.attempt, "best": a.is_best, "values": [a.scores[s] for s in SCORES]}
            for a in view.attempts
            if a.status == "scored"
        ],
    }
    return render(request, "generation.html", {"view": view, "g": view.generation, "chart": chart})


async def charts(request: Request) -> Response:
    state = state_of(request)
    f = parse_filter(request.query_params, state.settings.zone())
    facets = await state.aggregate(state.index.facets)
    bucket = trend_bucket(request.query_params.get("bucket"), f, facets)
    grades = await state.aggregate(state.index.grade_distribution, f)
    trend = await state.aggregate(state.index.trend, f, by_workflow=True, bucket=bucket)
    dims = await state.aggregate(state.index.dimension_averages, f)
    gains = await state.aggregate(state.index.strategy_gains, f)
    gallery_base = path_for(request, "gallery")
    data = {
        "grades": grades.model_dump(mode="json"),
        "grade_links": {g: gallery_base + query_string(request.query_params, grade=g, bucket=None) for g in GRADES}
        | {"not graded": gallery_base + query_string(request.query_params, grade=None, graded="false", bucket=None)},
        "trend": [p.model_dump(mode="json") for p in trend],
        "dimensions": dims.model_dump(mode="json"),
        "dimension_order": list(SCORES),  # tojson sorts object keys: the order travels as a list
        "dimension_labels": {s: SCORE_LABELS[s] for s in SCORES},
        "strategies": [g.model_dump(mode="json") for g in gains],
    }
    return render(
        request,
        "charts.html",
        {
            "grades": grades,
            "trend": trend,
            "dims": dims,
            "gains": gains,
            "facets": facets,
            "data": data,
            "bucket": bucket,
            "bucket_choice": request.query_params.get("bucket") or "auto",
            "table_limit": TREND_TABLE_LIMIT,
        },
    )


def trend_bucket(choice: str | None, f: GenerationFilter, facets: Facets) -> Literal["day", "month"]:
    """``day`` or ``month`` as asked; ``auto`` (the default): days for up to :data:`AUTO_DAYS` days, else months
    (a year of days per workflow is a noisy chart and a large page)."""
    if choice == "day" or choice == "month":
        return "day" if choice == "day" else "month"
    if choice not in (None, "", "auto"):
        raise BadRequestError(f"bucket={choice!r} is not 'auto', 'day' or 'month'", parameter="bucket")
    start = f.since or facets.first
    end = f.until or facets.last
    if start is None or end is None:
        return "day"
    return "day" if (end - start).days <= AUTO_DAYS else "month"


def error_page(request: Request, status_code: int, message: str) -> Response:
    return render(request, "error.html", {"status": status_code, "message": message}, status_code)
