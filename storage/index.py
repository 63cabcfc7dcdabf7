"""SQLite index of the generation metadata: what the dashboard lists, filters, sorts and charts.

One writer and many readers, across threads and processes: WAL journal, one connection per thread, writes
serialised by a lock and ``BEGIN IMMEDIATE``. Every method is synchronous and fast (milliseconds at 100,000
generations, see ``bench/index.py``); async callers may wrap writes in ``asyncio.to_thread``.

    index = Index(settings.index_path)
    index.add(stored.metadata)                                   # after Store.put_generation
    page = index.query(GenerationQuery(grades=["A"], text="red car", sort="composite"))
    more = index.query(GenerationQuery(grades=["A"], text="red car", cursor=page.next_cursor))
    await rebuild_index(store, index)                            # from every metadata.json in the store

Stored URLs may be presigned and expire: show images through ``store.url_for(row.image_key)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from quality.grading import GradeStatus
from quality.report import Grade
from storage import index_schema as schema
from storage.errors import StorageError, StorageIndexError
from storage.index_query import (
    GenerationFilter,
    GenerationQuery,
    encode_cursor,
    keyset_clause,
    order_by,
    where_clause,
)
from storage.metadata import GenerationMetadata, RefinementStatus
from storage.store import Store

GRADES: tuple[Grade, ...] = ("A", "B", "C", "D", "F")
_ROW_COLUMNS = ("id", *schema.GENERATION_COLUMNS)


class GenerationRow(BaseModel):
    """One generation as the index knows it."""

    generation_id: str
    timestamp: datetime
    day: str
    prompt: str
    negative_prompt: str | None
    workflow: str
    strategy: str | None
    status: RefinementStatus
    source: str | None
    grade: Grade | None = Field(description="null: failed run, or not graded (see grade_status)")
    grade_status: GradeStatus | None = Field(
        None, description="'graded', 'insufficient' (scored, but too little for a grade), null: failed run"
    )
    grade_reasons: str | None = Field(None, description="why there is no grade ('; '-separated)")
    composite: float | None
    technical: float | None
    aesthetic: float | None
    prompt_adherence: float | None
    detail: float | None
    partial: bool
    attempts_used: int
    first_composite: float | None = Field(description="composite of the first scored attempt")
    gain: float | None = Field(description="composite − first_composite (what refinement bought)")
    threshold: float | None
    seed: int | None
    steps: int | None
    cfg: float | None
    width: int | None
    height: int | None
    backend: str | None
    storage_status: str | None
    image_key: str | None
    image_url: str | None = Field(description="URL at store time (may have expired: prefer store.url_for)")
    metadata_key: str | None


class AttemptRow(BaseModel):
    generation_id: str
    attempt: int
    is_best: bool
    status: Literal["scored", "failed"]
    grade: Grade | None
    grade_status: GradeStatus | None = None
    grade_reasons: str | None = None
    composite: float | None
    technical: float | None
    aesthetic: float | None
    prompt_adherence: float | None
    detail: float | None
    partial: bool | None
    seed: int | None
    steps: int | None
    cfg: float | None
    guidance: float | None
    sampler: str | None
    scheduler: str | None
    width: int | None
    height: int | None
    prompt: str | None
    prompt_id: str | None
    generate_seconds: float | None
    score_seconds: float | None
    store_seconds: float | None
    image_key: str | None
    image_url: str | None
    rejected_reason: str | None
    error: str | None
    parameters: dict[str, Any]


class GenerationPage(BaseModel):
    items: list[GenerationRow]
    total: int | None = Field(description="matches in all pages (null when not asked for)")
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last page")
    offset: int
    limit: int


class GradeDistribution(BaseModel):
    counts: dict[Grade, int]
    ungraded: int = Field(description="failed runs (no image, no grade)")
    not_graded: int = Field(0, description="scored runs without a grade: too little could be scored")
    total: int


class TrendPoint(BaseModel):
    period: str = Field(description="'YYYY-MM-DD' (day) or 'YYYY-MM' (month), UTC")
    workflow: str | None = Field(description="set when grouped by workflow")
    count: int
    composite: float | None
    technical: float | None
    aesthetic: float | None
    prompt_adherence: float | None
    detail: float | None
    success_rate: float = Field(description="share of runs that reached their threshold")


class DimensionAverages(BaseModel):
    count: int
    composite: float | None
    technical: float | None
    aesthetic: float | None
    prompt_adherence: float | None
    detail: float | None


class StrategyGain(BaseModel):
    strategy: str | None
    count: int
    first_composite: float | None = Field(description="average composite of the first attempt")
    best_composite: float | None = Field(description="average composite of the kept attempt")
    gain: float | None = Field(description="average improvement from first to best")
    attempts: float | None = Field(description="average attempts used")
    success_rate: float


class Facets(BaseModel):
    """Values the dashboard offers in its filter controls."""

    total: int
    workflows: list[str]
    strategies: list[str]
    first: datetime | None
    last: datetime | None


class RebuildReport(BaseModel):
    added: int
    failed: dict[str, str] = Field(default_factory=dict, description="metadata key → why it was skipped")
    removed: int = Field(0, description="rows of generations no longer in the store")
    seconds: float


def _from_micros(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1_000_000, UTC)


LOCK_TIMEOUT_SECONDS = 30.0


def _enable_wal(conn: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode = WAL``, retried while another process holds the file: switching the journal mode
    can answer "database is locked" at once, without SQLite's busy handler (seen when two workers open a new
    index together), so the connection's lock timeout is applied here too."""
    deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # retry pacing while the other connection finishes


class Index:
    """The SQLite index at ``path`` (created if missing; ``read_only`` opens an existing one for reading)."""

    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.path = Path(path).expanduser()
        self.read_only = read_only
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.recreated = False
        try:
            if read_only:
                row = self._conn().execute("SELECT value FROM index_meta WHERE key = 'fts'").fetchone()
                self.fts_enabled = bool(row and row[0] == "1")
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self._write_lock:  # executescript commits itself: no surrounding transaction
                    self.fts_enabled, self.recreated = schema.create(self._conn())
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise StorageIndexError(
                f"cannot open the index {self.path} ({exc}); check COMFY_QUALITY_STORAGE_INDEX_PATH, "
                "or delete the file and run `python -m storage rebuild-index`"
            ) from exc

    def __repr__(self) -> str:
        return f"Index({str(self.path)!r}, fts={self.fts_enabled})"

    # -- connections -----------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self.read_only:
            conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
        else:
            conn = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None,
                                   check_same_thread=False)  # fmt: skip
            _enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA cache_size = -32000")
        conn.execute("PRAGMA temp_store = MEMORY")
        self._local.conn = conn
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise StorageIndexError(f"the index {self.path} was opened read-only")
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn().execute(sql, list(args)).fetchall()
        except sqlite3.Error as exc:
            raise StorageIndexError(
                f"index query failed ({exc}); if this persists, rebuild the index"
            ) from exc

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------------
    def add(self, metadata: GenerationMetadata) -> None:
        """Insert or replace one generation (call after ``Store.put_generation``)."""
        self.add_many([metadata])

    def add_many(self, documents: Iterable[GenerationMetadata]) -> int:
        """Insert or replace many generations in one transaction; returns how many."""
        gen_cols = ", ".join(schema.GENERATION_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in schema.GENERATION_COLUMNS[1:])
        marks = ", ".join("?" * len(schema.GENERATION_COLUMNS))
        upsert = (
            f"INSERT INTO generations ({gen_cols}) VALUES ({marks}) "
            f"ON CONFLICT (generation_id) DO UPDATE SET {updates}"
        )
        att_cols = ", ".join(schema.ATTEMPT_COLUMNS)
        insert_attempt = (
            f"INSERT INTO attempts ({att_cols}) VALUES ({', '.join('?' * len(schema.ATTEMPT_COLUMNS))})"
        )
        count = 0
        now = time.time_ns()
        analyze = False
        try:
            with self._writing() as conn:
                for md in documents:
                    conn.execute(upsert, schema.generation_row(md, now))
                    conn.execute("DELETE FROM attempts WHERE generation_id = ?", (md.generation_id,))
                    conn.executemany(insert_attempt, schema.attempt_rows(md))
                    conn.execute(
                        "INSERT OR REPLACE INTO documents VALUES (?, ?)",
                        (md.generation_id, schema.compress(md)),
                    )
                    count += 1
                analyze = self._stats_are_stale(conn)
            if analyze:
                with self._write_lock:
                    schema.analyze(self._conn())
        except sqlite3.Error as exc:
            raise StorageIndexError(f"cannot write to the index {self.path} ({exc})") from exc
        return count

    @staticmethod
    def _stats_are_stale(conn: sqlite3.Connection) -> bool:
        """True when the table grew by 25 % (and ≥ 50 rows) since the planner's statistics were taken."""
        rows = conn.execute("SELECT MAX(id) FROM generations").fetchone()[0] or 0
        seen = conn.execute("SELECT value FROM index_meta WHERE key = 'analyzed_rows'").fetchone()
        if rows < 50 or (seen is not None and rows < int(seen[0]) * 1.25):
            return False
        conn.execute("INSERT OR REPLACE INTO index_meta VALUES ('analyzed_rows', ?)", (str(rows),))
        return True

    def remove(self, generation_id: str) -> bool:
        with self._writing() as conn:
            return self._delete(conn, "generation_id = ?", [generation_id]) > 0

    def prune(self, indexed_before: int) -> int:
        """Delete generations last indexed before ``indexed_before`` (a ``time.time_ns()``); returns count."""
        with self._writing() as conn:
            return self._delete(conn, "indexed_at < ?", [indexed_before])

    @staticmethod
    def _delete(conn: sqlite3.Connection, condition: str, args: list[Any]) -> int:
        ids = f"SELECT generation_id FROM generations WHERE {condition}"
        conn.execute(f"DELETE FROM attempts WHERE generation_id IN ({ids})", args)
        conn.execute(f"DELETE FROM documents WHERE generation_id IN ({ids})", args)
        return conn.execute(f"DELETE FROM generations WHERE {condition}", args).rowcount

    # -- reading ---------------------------------------------------------------------------------------
    def _row(self, values: tuple[Any, ...]) -> GenerationRow:
        return GenerationRow.model_validate(dict(zip(_ROW_COLUMNS, values, strict=True)))

    def get(self, generation_id: str) -> GenerationRow | None:
        rows = self._read(
            f"SELECT {', '.join(_ROW_COLUMNS)} FROM generations WHERE generation_id = ?", [generation_id]
        )
        return self._row(rows[0]) if rows else None

    def attempts(self, generation_id: str) -> list[AttemptRow]:
        rows = self._read(
            f"SELECT {', '.join(schema.ATTEMPT_COLUMNS)} FROM attempts "
            "WHERE generation_id = ? ORDER BY attempt",
            [generation_id],
        )
        result = []
        for values in rows:
            data = dict(zip(schema.ATTEMPT_COLUMNS, values, strict=True))
            data["parameters"] = schema.parameters_from_json(data.pop("parameters_json"))
            result.append(AttemptRow.model_validate(data))
        return result

    def get_metadata(self, generation_id: str) -> GenerationMetadata | None:
        """The full metadata document as it was indexed."""
        rows = self._read("SELECT body FROM documents WHERE generation_id = ?", [generation_id])
        return schema.decompress(rows[0][0]) if rows else None

    def count(self, f: GenerationFilter | None = None) -> int:
        where, args = where_clause(f or GenerationFilter(), fts=self.fts_enabled)
        return int(self._read(f"SELECT COUNT(*) FROM generations g {where}", args)[0][0])

    def query(self, q: GenerationQuery | None = None) -> GenerationPage:
        """One page of generations matching the query."""
        q = q or GenerationQuery()
        where, args = where_clause(q, fts=self.fts_enabled)
        keyset, keyset_args = keyset_clause(q)
        full_where = " AND ".join(p for p in (where.removeprefix("WHERE "), keyset) if p)
        offset = 0 if q.cursor else q.offset
        sql = (
            f"SELECT {', '.join('g.' + c for c in _ROW_COLUMNS)} FROM generations g "
            f"{'WHERE ' + full_where if full_where else ''} {order_by(q)} LIMIT ? OFFSET ?"
        )
        rows = self._read(sql, [*args, *keyset_args, q.limit + 1, offset])
        items = [self._row(r) for r in rows[: q.limit]]
        next_cursor = None
        if len(rows) > q.limit:
            last = dict(zip(_ROW_COLUMNS, rows[q.limit - 1], strict=True))
            sort_key = "ts" if q.sort == "timestamp" else q.sort
            next_cursor = encode_cursor(q, last[sort_key], last["id"])
        total = self.count(q) if q.with_total else None
        return GenerationPage(items=items, total=total, next_cursor=next_cursor, offset=offset, limit=q.limit)

    # -- aggregates --------------------------------------------------------------------------------------
    def grade_distribution(self, f: GenerationFilter | None = None) -> GradeDistribution:
        where, args = where_clause(f or GenerationFilter(), fts=self.fts_enabled)
        rows = self._read(
            f"SELECT g.grade, g.grade_status = 'insufficient', COUNT(*) FROM generations g {where} "
            "GROUP BY g.grade, g.grade_status = 'insufficient'",
            args,
        )
        found: dict[str | None, int] = {}
        not_graded = 0
        for grade, insufficient, n in rows:
            if grade is None and insufficient:
                not_graded += int(n)
            else:
                found[grade] = found.get(grade, 0) + int(n)
        counts: dict[Grade, int] = {g: int(found.get(g, 0)) for g in GRADES}
        ungraded = int(found.get(None, 0))
        return GradeDistribution(
            counts=counts, ungraded=ungraded, not_graded=not_graded,
            total=sum(counts.values()) + ungraded + not_graded,
        )  # fmt: skip

    def trend(
        self,
        f: GenerationFilter | None = None,
        *,
        by_workflow: bool = False,
        bucket: Literal["day", "month"] = "day",
    ) -> list[TrendPoint]:
        """Average scores per day (or month), optionally per workflow, oldest first."""
        where, args = where_clause(f or GenerationFilter(), fts=self.fts_enabled)
        period = "g.day" if bucket == "day" else "substr(g.day, 1, 7)"
        groups = "period, wf" if by_workflow else "period"
        sql = (
            f"SELECT {period} AS period, {'g.workflow' if by_workflow else 'NULL'} AS wf, COUNT(*), "
            "AVG(g.composite), AVG(g.technical), AVG(g.aesthetic), AVG(g.prompt_adherence), AVG(g.detail), "
            f"AVG(g.status = 'success') FROM generations g {where} GROUP BY {groups} ORDER BY {groups}"
        )
        keys = ("period", "workflow", "count", *schema.SCORE_COLUMNS, "success_rate")
        return [TrendPoint.model_validate(dict(zip(keys, r, strict=True))) for r in self._read(sql, args)]

    def dimension_averages(self, f: GenerationFilter | None = None) -> DimensionAverages:
        where, args = where_clause(f or GenerationFilter(), fts=self.fts_enabled)
        sql = (
            "SELECT COUNT(*), AVG(g.composite), AVG(g.technical), AVG(g.aesthetic), AVG(g.prompt_adherence), "
            f"AVG(g.detail) FROM generations g {where}"
        )
        keys = ("count", *schema.SCORE_COLUMNS)
        return DimensionAverages.model_validate(dict(zip(keys, self._read(sql, args)[0], strict=True)))

    def strategy_gains(self, f: GenerationFilter | None = None) -> list[StrategyGain]:
        """Refinement gain per strategy: first attempt vs kept attempt, attempts used, success rate."""
        where, args = where_clause(f or GenerationFilter(), fts=self.fts_enabled)
        sql = (
            "SELECT g.strategy, COUNT(*), AVG(g.first_composite), AVG(g.composite), AVG(g.gain), "
            f"AVG(g.attempts_used), AVG(g.status = 'success') FROM generations g {where} "
            "GROUP BY g.strategy ORDER BY g.strategy"
        )
        keys = ("strategy", "count", "first_composite", "best_composite", "gain", "attempts", "success_rate")
        return [StrategyGain.model_validate(dict(zip(keys, r, strict=True))) for r in self._read(sql, args)]

    def facets(self) -> Facets:
        workflows = [r[0] for r in self._read("SELECT DISTINCT workflow FROM generations ORDER BY workflow")]
        strategies = [
            r[0]
            for r in self._read(
                "SELECT DISTINCT strategy FROM generations WHERE strategy IS NOT NULL ORDER BY strategy"
            )
        ]
        total, first, last = self._read("SELECT COUNT(*), MIN(ts), MAX(ts) FROM generations")[0]
        return Facets(
            total=total,
            workflows=workflows,
            strategies=strategies,
            first=_from_micros(first),
            last=_from_micros(last),
        )


async def rebuild_index(store: Store, index: Index, *, prune: bool = True, batch: int = 500) -> RebuildReport:
    """Re-index every metadata document of ``store`` (local folder or S3, spooled ones included).

    Rows are upserted batch by batch, so readers keep seeing the index during the rebuild; with ``prune``,
    rows of generations no longer in the store are removed at the end (only if every document was read).
    """
    started, t0 = time.time_ns(), time.perf_counter()
    report = RebuildReport(added=0, seconds=0.0)
    pending: list[GenerationMetadata] = []
    keys = [key async for key in store.list_metadata_keys()]

    async def load(key: str) -> None:
        try:
            pending.append(await store.get_metadata(key))
        except StorageError as exc:
            report.failed[key] = str(exc)

    semaphore = asyncio.Semaphore(8)

    async def bounded(key: str) -> None:
        async with semaphore:
            await load(key)

    for start in range(0, len(keys), batch):
        await asyncio.gather(*(bounded(k) for k in keys[start : start + batch]))
        report.added += await asyncio.to_thread(index.add_many, pending)
        pending.clear()
    if prune and not report.failed:
        report.removed = await asyncio.to_thread(index.prune, started)
    report.seconds = time.perf_counter() - t0
    return report
