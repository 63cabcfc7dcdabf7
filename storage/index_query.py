"""Query models of the index and their translation to SQL (parameters only; no user text in SQL strings).

Prompt search: with FTS5, the words of ``text`` must all occur in the prompt (case- and accent-insensitive),
the last one as a prefix (``"red ca"`` finds "a red car"). Quotes, operators (AND/OR/NOT/NEAR), ``*`` and
markup in the text are just characters: only the words count. Without FTS5, or when the text has no word
characters, it is a case-insensitive (ASCII) substring match with ``LIKE``.

Sorting: by ``timestamp`` or a score; a missing score (a failed run) sorts as the lowest value. Pagination:
``offset`` (page numbers) or ``cursor`` (keyset: the ``next_cursor`` of the previous page, stable while rows
are added).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from quality.report import Grade
from storage.errors import StorageIndexError
from storage.index_schema import micros
from storage.metadata import RefinementStatus

ScoreField = Literal["composite", "technical", "aesthetic", "prompt_adherence", "detail", "gain"]
SortField = Literal[
    "timestamp", "composite", "technical", "aesthetic", "prompt_adherence", "detail", "gain", "attempts_used"
]
SORT_COLUMN: dict[str, str] = {"timestamp": "ts"}
NOT_NULL_SORTS = frozenset({"timestamp", "attempts_used"})


class ScoreRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: float | None = Field(None, description="inclusive lower bound")
    max: float | None = Field(None, description="inclusive upper bound")

    @model_validator(mode="after")
    def _ordered(self) -> ScoreRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"score range min {self.min} is above max {self.max}")
        return self


class GenerationFilter(BaseModel):
    """Which generations (every field optional; lists mean 'any of')."""

    model_config = ConfigDict(extra="forbid")

    grades: list[Grade] = Field(default_factory=list)
    since: datetime | None = Field(None, description="timestamp ≥ since (naive = UTC)")
    until: datetime | None = Field(None, description="timestamp < until (naive = UTC)")
    workflows: list[str] = Field(default_factory=list)
    strategies: list[str] = Field(default_factory=list)
    statuses: list[RefinementStatus] = Field(default_factory=list)
    ranges: dict[ScoreField, ScoreRange] = Field(default_factory=dict, description="score bounds per field")
    text: str | None = Field(None, max_length=500, description="words that must occur in the prompt")
    partial: bool | None = Field(None, description="only partial (true) or only complete (false) grades")
    graded: bool | None = Field(
        None, description="only runs with a letter grade (true) or only scored runs without one (false)"
    )


class GenerationQuery(GenerationFilter):
    """A filter plus order and page."""

    sort: SortField = "timestamp"
    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10_000_000)
    cursor: str | None = Field(None, description="next_cursor of the previous page (offset is then ignored)")
    with_total: bool = Field(True, description="also count every match (one more query)")


_WORD = re.compile(r"\w+", re.UNICODE)


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression with every word quoted (no operator can be injected), last word as prefix."""
    words = _WORD.findall(text)[:32]
    if not words:
        return None
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def where_clause(f: GenerationFilter, *, fts: bool) -> tuple[str, list[Any]]:
    """``WHERE ...`` (or ``''``) for table alias ``g``, and its parameters."""
    parts: list[str] = []
    args: list[Any] = []

    def any_of(column: str, values: list[str]) -> None:
        if values:
            parts.append(f"g.{column} IN ({', '.join('?' * len(values))})")
            args.extend(values)

    any_of("grade", list(f.grades))
    any_of("workflow", f.workflows)
    any_of("strategy", f.strategies)
    any_of("status", list(f.statuses))
    if f.since is not None:
        parts.append("g.ts >= ?")
        args.append(micros(f.since))
    if f.until is not None:
        parts.append("g.ts < ?")
        args.append(micros(f.until))
    if "composite" in f.ranges and (f.ranges["composite"].min is not None or f.ranges["composite"].max is not None):
        parts.append("g.grade_status = 'graded'")  # an ungraded composite is not a grade: no bound applies to it
    for field, bounds in f.ranges.items():
        if bounds.min is not None:
            parts.append(f"g.{field} >= ?")
            args.append(bounds.min)
        if bounds.max is not None:
            parts.append(f"g.{field} <= ?")
            args.append(bounds.max)
    if f.partial is not None:
        parts.append("g.partial = ?")
        args.append(int(f.partial))
    if f.graded is not None:
        parts.append("g.grade_status = ?")
        args.append("graded" if f.graded else "insufficient")
    if f.text and f.text.strip():
        match = fts_query(f.text) if fts else None
        if match is not None:
            parts.append("g.id IN (SELECT rowid FROM generations_fts WHERE generations_fts MATCH ?)")
            args.append(match)
        else:
            parts.append("g.prompt LIKE ? ESCAPE '\\'")
            args.append(_like(f.text.strip()))
    return ("WHERE " + " AND ".join(parts)) if parts else "", args


def sort_column(q: GenerationQuery) -> str:
    return "g." + SORT_COLUMN.get(q.sort, q.sort)


def order_by(q: GenerationQuery) -> str:
    direction = "DESC" if q.order == "desc" else "ASC"
    return f"ORDER BY {sort_column(q)} {direction}, g.id {direction}"


def encode_cursor(q: GenerationQuery, value: Any, row_id: int) -> str:
    raw = json.dumps([q.sort, q.order, value, row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def keyset_clause(q: GenerationQuery) -> tuple[str, list[Any]]:
    """The condition that continues after the cursor's row (NULL sorts lowest, as in SQLite)."""
    if q.cursor is None:
        return "", []
    try:
        padded = q.cursor + "=" * (-len(q.cursor) % 4)
        sort, order, value, row_id = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(row_id, int) or (value is not None and not isinstance(value, int | float)):
            raise ValueError("bad cursor values")
    except (ValueError, TypeError, binascii.Error) as exc:
        raise StorageIndexError("the page cursor is not valid: start again from the first page") from exc
    if (sort, order) != (q.sort, q.order):
        raise StorageIndexError(
            "the page cursor belongs to another sort order: start again from the first page"
        )
    col = sort_column(q)
    op = "<" if q.order == "desc" else ">"
    if value is None:  # only nullable columns: the cursor row is among the NULLs
        if q.order == "desc":
            return f"({col} IS NULL AND g.id < ?)", [row_id]
        return f"(({col} IS NULL AND g.id > ?) OR {col} IS NOT NULL)", [row_id]
    after = f"({col}, g.id) {op} (?, ?)"
    if q.order == "desc" and q.sort not in NOT_NULL_SORTS:
        after = f"({after} OR {col} IS NULL)"
    return after, [value, row_id]
