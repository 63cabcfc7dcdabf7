"""SQLite schema of the index and the mapping from a metadata document to its rows.

Tables: ``generations`` (one row per generation, the columns the dashboard filters and sorts on),
``attempts`` (one row per attempt), ``documents`` (the full metadata JSON, zlib-compressed, so a generation's
page needs no round trip to the store) and ``generations_fts`` (FTS5 over the prompt, when SQLite has FTS5).
The index is derived data: when its schema version changes it is recreated empty and must be rebuilt from the
store (``python -m storage rebuild-index``).
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.metadata import DIMENSION_NAMES, GenerationMetadata

INDEX_SCHEMA_VERSION = 2
"""2: ``grade_status`` and ``grade_reasons`` on generations and attempts (a version-1 index is migrated in place)."""
SCORE_COLUMNS = ("composite", *DIMENSION_NAMES)

GENERATION_COLUMNS = (
    "generation_id",
    "ts",
    "day",
    "timestamp",
    "prompt",
    "negative_prompt",
    "workflow",
    "strategy",
    "status",
    "source",
    "grade",
    "grade_status",
    "grade_reasons",
    *SCORE_COLUMNS,
    "partial",
    "attempts_used",
    "first_composite",
    "gain",
    "threshold",
    "seed",
    "steps",
    "cfg",
    "width",
    "height",
    "backend",
    "storage_status",
    "image_key",
    "image_url",
    "metadata_key",
    "indexed_at",
)

ATTEMPT_COLUMNS = (
    "generation_id",
    "attempt",
    "is_best",
    "status",
    "grade",
    "grade_status",
    "grade_reasons",
    *SCORE_COLUMNS,
    "partial",
    "seed",
    "steps",
    "cfg",
    "guidance",
    "sampler",
    "scheduler",
    "width",
    "height",
    "prompt",
    "prompt_id",
    "generate_seconds",
    "score_seconds",
    "store_seconds",
    "image_key",
    "image_url",
    "rejected_reason",
    "error",
    "parameters_json",
)

TABLES = """
CREATE TABLE IF NOT EXISTS index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS generations (
    id INTEGER PRIMARY KEY,
    generation_id TEXT NOT NULL UNIQUE,
    ts INTEGER NOT NULL,            -- UTC microseconds since the epoch (sort key)
    day TEXT NOT NULL,              -- UTC 'YYYY-MM-DD' (trend buckets)
    timestamp TEXT NOT NULL,        -- ISO-8601 as in the metadata
    prompt TEXT NOT NULL,
    negative_prompt TEXT,
    workflow TEXT NOT NULL,
    strategy TEXT,
    status TEXT NOT NULL,
    source TEXT,
    grade TEXT,
    grade_status TEXT,              -- 'graded', 'insufficient' (no grade: too little was scored), NULL: failed
    grade_reasons TEXT,             -- why there is no grade ('; '-separated), NULL when graded
    composite REAL, technical REAL, aesthetic REAL, prompt_adherence REAL, detail REAL,
    partial INTEGER NOT NULL DEFAULT 0,
    attempts_used INTEGER NOT NULL DEFAULT 0,
    first_composite REAL,
    gain REAL,
    threshold REAL,
    seed INTEGER, steps INTEGER, cfg REAL, width INTEGER, height INTEGER,
    backend TEXT, storage_status TEXT, image_key TEXT, image_url TEXT, metadata_key TEXT,
    indexed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS gen_ts ON generations (ts);
CREATE INDEX IF NOT EXISTS gen_grade_ts ON generations (grade, ts);
CREATE INDEX IF NOT EXISTS gen_workflow_ts ON generations (workflow, ts);
CREATE INDEX IF NOT EXISTS gen_strategy_ts ON generations (strategy, ts);
CREATE INDEX IF NOT EXISTS gen_status_ts ON generations (status, ts);
CREATE INDEX IF NOT EXISTS gen_composite ON generations (composite);
CREATE INDEX IF NOT EXISTS gen_technical ON generations (technical);
CREATE INDEX IF NOT EXISTS gen_aesthetic ON generations (aesthetic);
CREATE INDEX IF NOT EXISTS gen_prompt_adherence ON generations (prompt_adherence);
CREATE INDEX IF NOT EXISTS gen_detail ON generations (detail);
CREATE INDEX IF NOT EXISTS gen_gain ON generations (gain);
CREATE INDEX IF NOT EXISTS gen_indexed_at ON generations (indexed_at);
-- narrow covering indexes: the chart aggregates scan these instead of the wide rows
CREATE INDEX IF NOT EXISTS gen_stats ON generations (
    day, workflow, status, grade, grade_status, partial, composite, technical, aesthetic, prompt_adherence, detail,
    ts
);
CREATE INDEX IF NOT EXISTS gen_strategy_stats ON generations (
    strategy, status, first_composite, composite, gain, attempts_used, ts
);
CREATE TABLE IF NOT EXISTS attempts (
    generation_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    is_best INTEGER NOT NULL,
    status TEXT NOT NULL,           -- 'scored' or 'failed'
    grade TEXT,
    grade_status TEXT,
    grade_reasons TEXT,
    composite REAL, technical REAL, aesthetic REAL, prompt_adherence REAL, detail REAL,
    partial INTEGER,
    seed INTEGER, steps INTEGER, cfg REAL, guidance REAL, sampler TEXT, scheduler TEXT,
    width INTEGER, height INTEGER, prompt TEXT, prompt_id TEXT,
    generate_seconds REAL, score_seconds REAL, store_seconds REAL,
    image_key TEXT, image_url TEXT, rejected_reason TEXT, error TEXT,
    parameters_json TEXT NOT NULL,
    PRIMARY KEY (generation_id, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS documents (generation_id TEXT PRIMARY KEY, body BLOB NOT NULL);
"""

FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS generations_fts USING fts5(
    prompt, content='generations', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS gen_fts_insert AFTER INSERT ON generations BEGIN
    INSERT INTO generations_fts (rowid, prompt) VALUES (new.id, new.prompt);
END;
CREATE TRIGGER IF NOT EXISTS gen_fts_delete AFTER DELETE ON generations BEGIN
    INSERT INTO generations_fts (generations_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt);
END;
CREATE TRIGGER IF NOT EXISTS gen_fts_update AFTER UPDATE OF prompt ON generations BEGIN
    INSERT INTO generations_fts (generations_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt);
    INSERT INTO generations_fts (rowid, prompt) VALUES (new.id, new.prompt);
END;
"""

MIGRATE_1_TO_2 = """
ALTER TABLE generations ADD COLUMN grade_status TEXT;
ALTER TABLE generations ADD COLUMN grade_reasons TEXT;
ALTER TABLE attempts ADD COLUMN grade_status TEXT;
ALTER TABLE attempts ADD COLUMN grade_reasons TEXT;
UPDATE generations SET grade_status = 'graded' WHERE grade IS NOT NULL;
UPDATE attempts SET grade_status = 'graded' WHERE grade IS NOT NULL;
DROP INDEX IF EXISTS gen_stats;
"""
"""Version 1 knew only graded scores (every scored image had a letter), so its rows migrate exactly."""

DROP = """
DROP TABLE IF EXISTS generations_fts;
DROP TABLE IF EXISTS generations;
DROP TABLE IF EXISTS attempts;
DROP TABLE IF EXISTS documents;
DROP TABLE IF EXISTS index_meta;
"""


def analyze(conn: sqlite3.Connection) -> None:
    """Refresh the query planner's statistics (sampled: a few milliseconds at 100,000 rows)."""
    conn.execute("PRAGMA analysis_limit = 1000")
    conn.execute("ANALYZE")


def create(conn: sqlite3.Connection) -> tuple[bool, bool]:
    """Create (or recreate, on a schema version change) the tables; returns (fts_enabled, recreated)."""
    recreated = False
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'index_meta'").fetchone()
    if has_meta:
        row = conn.execute("SELECT value FROM index_meta WHERE key = 'schema_version'").fetchone()
        if row is not None and int(row[0]) == 1 and INDEX_SCHEMA_VERSION == 2:
            conn.executescript(f"BEGIN; {MIGRATE_1_TO_2} UPDATE index_meta SET value = '2' "
                               "WHERE key = 'schema_version'; COMMIT;")  # fmt: skip
        elif row is None or int(row[0]) != INDEX_SCHEMA_VERSION:
            conn.executescript(DROP)
            recreated = True
    conn.executescript(TABLES)
    try:
        conn.executescript(FTS)
        fts = True
    except sqlite3.OperationalError:  # SQLite built without FTS5: prompt search falls back to LIKE
        fts = False
    conn.execute(
        "INSERT OR REPLACE INTO index_meta VALUES ('schema_version', ?), ('fts', ?)",
        (str(INDEX_SCHEMA_VERSION), "1" if fts else "0"),
    )
    return fts, recreated


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(ts: datetime) -> int:
    """UTC microseconds since the epoch (naive datetimes are taken as UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - EPOCH) // timedelta(microseconds=1)


def generation_row(md: GenerationMetadata, indexed_at: int) -> tuple[Any, ...]:
    q, r, p, s = md.quality, md.refinement, md.parameters, md.storage
    scores = q.dimension_scores() if q else {}
    composite = q.composite_score if q else None
    first = r.first_composite()
    values: dict[str, Any] = {
        "generation_id": md.generation_id,
        "ts": micros(md.timestamp),
        "day": md.timestamp.strftime("%Y-%m-%d"),
        "timestamp": md.timestamp.isoformat().replace("+00:00", "Z"),
        "prompt": md.input.prompt,
        "negative_prompt": md.input.negative_prompt,
        "workflow": md.workflow.name,
        "strategy": r.strategy,
        "status": r.status,
        "source": md.input.source,
        "grade": q.grade if q else None,
        "grade_status": q.grade_status if q else None,
        "grade_reasons": "; ".join(q.grade_reasons) or None if q else None,
        "composite": composite,
        **{d: scores.get(d) for d in DIMENSION_NAMES},
        "partial": int(bool(q and q.partial)),
        "attempts_used": r.attempts_used,
        "first_composite": first,
        "gain": composite - first if composite is not None and first is not None else None,
        "threshold": r.threshold,
        "seed": p.seed,
        "steps": p.steps,
        "cfg": p.cfg,
        "width": (s.width if s and s.width else p.width),
        "height": (s.height if s and s.height else p.height),
        "backend": s.backend if s else None,
        "storage_status": s.status if s else None,
        "image_key": s.key if s else None,
        "image_url": s.url if s else None,
        "metadata_key": s.metadata_key if s else None,
        "indexed_at": indexed_at,
    }
    return tuple(values[c] for c in GENERATION_COLUMNS)


def attempt_rows(md: GenerationMetadata) -> list[tuple[Any, ...]]:
    rows = []
    for a in md.refinement.attempts:
        q, p = a.quality, a.parameters
        scores = q.dimension_scores() if q else {}
        values: dict[str, Any] = {
            "generation_id": md.generation_id,
            "attempt": a.attempt,
            "is_best": int(a.attempt == md.refinement.best_attempt),
            "status": "scored" if q else "failed",
            "grade": q.grade if q else None,
            "grade_status": q.grade_status if q else None,
            "grade_reasons": "; ".join(q.grade_reasons) or None if q else None,
            "composite": q.composite_score if q else None,
            **{d: scores.get(d) for d in DIMENSION_NAMES},
            "partial": int(q.partial) if q else None,
            "seed": p.seed,
            "steps": p.steps,
            "cfg": p.cfg,
            "guidance": p.guidance,
            "sampler": p.sampler,
            "scheduler": p.scheduler,
            "width": p.width,
            "height": p.height,
            "prompt": p.prompt,
            "prompt_id": a.prompt_id,
            "generate_seconds": a.timings.generate_seconds,
            "score_seconds": a.timings.score_seconds,
            "store_seconds": a.timings.store_seconds,
            "image_key": a.image_key,
            "image_url": a.image_url,
            "rejected_reason": a.rejected_reason,
            "error": a.error,
            "parameters_json": p.model_dump_json(),
        }
        rows.append(tuple(values[c] for c in ATTEMPT_COLUMNS))
    return rows


def compress(md: GenerationMetadata) -> bytes:
    return zlib.compress(md.to_json(indent=None), 6)


def decompress(body: bytes) -> GenerationMetadata:
    return GenerationMetadata.from_json(zlib.decompress(body), source="index document")


def parameters_from_json(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}
