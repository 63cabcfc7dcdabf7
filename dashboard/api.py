"""JSON endpoints: everything the pages show, as data (``application/json``, UTF-8, text verbatim).

=====================================  ================================================================
``GET /api/generations``               a page of generations (filters, sort, cursor: see dashboard.params)
``GET /api/generations/{id}``          one generation, every attempt compared (dashboard.views)
``GET /api/generations/{id}/metadata`` the full metadata document as indexed
``GET /api/stats/grades``              grade distribution (filters)
``GET /api/stats/trend``               averages per day or month (``bucket``), per workflow (``by_workflow``)
``GET /api/stats/dimensions``          average composite and dimension scores (filters)
``GET /api/stats/strategies``          refinement gain per strategy (filters)
``GET /api/facets``                    workflows, strategies, first and last time (for filter controls)
``GET /api/health``                    whether the index answers, and how many generations it holds
=====================================  ================================================================
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

from dashboard.errors import BadRequestError
from dashboard.links import attempt_links, generation_links, path_for
from dashboard.params import parse_filter, parse_query, query_string
from dashboard.state import DashboardState, attempt_key
from dashboard.views import GenerationView, generation_view, row_json
from storage.index_query import GenerationFilter


def state_of(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


def json_response(content: Any, status_code: int = 200) -> JSONResponse:
    if isinstance(content, BaseModel):
        content = content.model_dump(mode="json")
    return JSONResponse(content, status_code=status_code, headers={"cache-control": "no-cache"})


def _filter(request: Request) -> GenerationFilter:
    state = state_of(request)
    return parse_filter(request.query_params, state.settings.zone())


async def generations_page(request: Request) -> dict[str, Any]:
    """The data of one gallery page (shared with the HTML gallery)."""
    state = state_of(request)
    query = parse_query(request.query_params, state.settings.zone(), page_size=state.settings.page_size)
    page = await state.call(state.index.query, query)
    items = []
    for row in page.items:
        item = row_json(row)
        item["links"] = generation_links(request, row.generation_id, has_image=bool(row.image_key)).model_dump()
        items.append(item)
    next_link = None
    if page.next_cursor:
        next_link = path_for(request, "api_generations") + query_string(
            request.query_params, cursor=page.next_cursor, offset=None
        )
    return {
        "items": items,
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
        "sort": query.sort,
        "order": query.order,
        "next_cursor": page.next_cursor,
        "next": next_link,
    }


async def generation_detail(request: Request) -> GenerationView:
    state = state_of(request)
    generation_id = request.path_params["generation_id"]
    row = await state.generation(generation_id)
    attempts = await state.call(state.index.attempts, generation_id)
    metadata = await state.call(state.index.get_metadata, generation_id)
    links = generation_links(request, generation_id, has_image=bool(row.image_key))
    per_attempt = {a.attempt: attempt_links(request, generation_id, a.attempt) for a in attempts if attempt_key(a, row)}
    return generation_view(row, attempts, metadata, links, per_attempt)


async def list_generations(request: Request) -> JSONResponse:
    return json_response(await generations_page(request))


async def get_generation(request: Request) -> JSONResponse:
    return json_response(await generation_detail(request))


async def get_metadata(request: Request) -> JSONResponse:
    state = state_of(request)
    generation_id = request.path_params["generation_id"]
    await state.generation(generation_id)
    metadata = await state.call(state.index.get_metadata, generation_id)
    if metadata is None:  # pragma: no cover - rows and documents are written in one transaction
        return json_response({"error": "the metadata document is missing from the index"}, 404)
    return json_response(metadata)


async def grade_stats(request: Request) -> JSONResponse:
    state = state_of(request)
    return json_response(await state.aggregate(state.index.grade_distribution, _filter(request)))


def _bucket(request: Request) -> Literal["day", "month"]:
    bucket = request.query_params.get("bucket", "day") or "day"
    if bucket == "month":
        return "month"
    if bucket == "day":
        return "day"
    raise BadRequestError(f"bucket={bucket!r} is not 'day' or 'month'", parameter="bucket")


def _flag(request: Request, key: str, default: bool) -> bool:
    value = (request.query_params.get(key) or "").lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value in ("1", "true", "yes", "on")
    raise BadRequestError(f"{key}={value!r} is not true or false", parameter=key)


async def trend_stats(request: Request) -> JSONResponse:
    state = state_of(request)
    f = _filter(request)
    points = await state.aggregate(
        state.index.trend, f, by_workflow=_flag(request, "by_workflow", True), bucket=_bucket(request)
    )
    return json_response({"bucket": _bucket(request), "points": [p.model_dump(mode="json") for p in points]})


async def dimension_stats(request: Request) -> JSONResponse:
    state = state_of(request)
    return json_response(await state.aggregate(state.index.dimension_averages, _filter(request)))


async def strategy_stats(request: Request) -> JSONResponse:
    state = state_of(request)
    gains = await state.aggregate(state.index.strategy_gains, _filter(request))
    return json_response({"strategies": [g.model_dump(mode="json") for g in gains]})


async def facets(request: Request) -> JSONResponse:
    state = state_of(request)
    return json_response(await state.aggregate(state.index.facets))


async def health(request: Request) -> JSONResponse:
    state = state_of(request)
    count = await state.call(state.index.count)
    return json_response(
        {"ok": True, "generations": count, "fts": state.index.fts_enabled, "store": state.store.backend}
    )
