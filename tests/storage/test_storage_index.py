"""The SQLite index: filters, search, sort, pagination, aggregates, concurrency and rebuilds."""

from __future__ import annotations

import random
import sqlite3
import statistics
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.errors import StorageIndexError, StorageUnavailableError
from storage.index import GenerationRow, Index, rebuild_index
from storage.index_query import GenerationFilter, GenerationQuery, ScoreRange, fts_query
from storage.local import LocalStore
from storage.metadata import GenerationMetadata
from tests.storage.conftest import s3_store
from tests.storage.factories import make_image, make_metadata
from tests.storage.seaweed import SeaweedServer

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
WORKFLOWS = ("flux-dev", "sdxl", "sd15")
STRATEGIES = ("progressive", "seed_search", "adaptive", None)
WORDS = ("red car", "blue ocean", "castle at night", "portrait of a woman", "café in Paris", "forest")


def corpus(n: int = 120, seed: int = 7) -> list[GenerationMetadata]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        attempts: list[float | None] = [round(rng.uniform(1.0, 9.5), 2) for _ in range(rng.randint(1, 4))]
        if i % 17 == 0:
            attempts = [None]  # a failed run
        elif i % 11 == 0:
            attempts.insert(0, None)
        docs.append(
            make_metadata(
                prompt=f"{WORDS[i % len(WORDS)]} number{i}",
                attempts=attempts,
                workflow=WORKFLOWS[i % 3],
                strategy=STRATEGIES[i % 4],
                threshold=7.0,
                timestamp=T0 + timedelta(hours=7 * i),
                partial=i % 5 == 0,
                generation_id=f"gen-{i:04d}",
            )
        )
    return docs


@pytest.fixture(scope="module")
def docs() -> list[GenerationMetadata]:
    return corpus()


@pytest.fixture
def index(tmp_path: Path, docs: list[GenerationMetadata]) -> Iterator[Index]:
    idx = Index(tmp_path / "index.sqlite3")
    assert idx.add_many(docs) == len(docs)
    yield idx
    idx.close()


def ids(page_items: list[GenerationRow]) -> list[str]:
    return [row.generation_id for row in page_items]


def matching(docs: list[GenerationMetadata], predicate: Callable[[GenerationMetadata], bool]) -> set[str]:
    return {d.generation_id for d in docs if predicate(d)}


def all_pages(index: Index, **query: object) -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        page = index.query(GenerationQuery(cursor=cursor, limit=7, **query))
        out += ids(page.items)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def score(d: GenerationMetadata, field: str) -> float | None:
    if d.quality is None:
        return None
    return d.quality.composite_score if field == "composite" else getattr(d.quality, field).score


def test_row_contents(index: Index, docs: list[GenerationMetadata]) -> None:
    d = docs[13]
    row = index.get(d.generation_id)
    assert row is not None and d.quality is not None
    assert (row.prompt, row.workflow, row.strategy, row.status) == (
        d.input.prompt,
        d.workflow.name,
        d.refinement.strategy,
        d.refinement.status,
    )
    assert (row.grade, row.composite, row.detail) == (
        d.quality.grade,
        d.quality.composite_score,
        d.quality.detail.score,
    )
    assert row.first_composite == d.refinement.first_composite()
    assert row.gain == pytest.approx(d.quality.composite_score - (d.refinement.first_composite() or 0))
    assert row.timestamp == d.timestamp and row.day == d.timestamp.strftime("%Y-%m-%d")
    attempts = index.attempts(d.generation_id)
    assert [a.attempt for a in attempts] == [a.attempt for a in d.refinement.attempts]
    assert [a.is_best for a in attempts].count(True) == 1
    assert attempts[0].parameters["seed"] == d.refinement.attempts[0].parameters.seed
    assert index.get_metadata(d.generation_id) == d
    assert index.get("missing") is None and index.get_metadata("missing") is None


def test_filters(index: Index, docs: list[GenerationMetadata]) -> None:
    def check(expected: set[str], **f: object) -> None:
        flt = GenerationFilter(**f)
        assert set(all_pages(index, **f)) == expected, f
        assert index.count(flt) == len(expected)

    check(
        matching(docs, lambda d: d.quality is not None and d.quality.grade in ("A", "B")), grades=["A", "B"]
    )
    since, until = T0 + timedelta(days=5), T0 + timedelta(days=12)
    check(matching(docs, lambda d: since <= d.timestamp < until), since=since, until=until)
    check(matching(docs, lambda d: d.workflow.name == "sdxl"), workflows=["sdxl"])
    check(matching(docs, lambda d: d.refinement.strategy == "adaptive"), strategies=["adaptive"])
    check(matching(docs, lambda d: d.refinement.status == "failed"), statuses=["failed"])
    check(matching(docs, lambda d: bool(d.quality and d.quality.partial)), partial=True)
    in_range = matching(
        docs,
        lambda d: (
            d.quality is not None
            and 4.0 <= (d.quality.detail.score or -1) <= 6.0
            and d.quality.composite_score >= 5.0
        ),
    )
    check(in_range, ranges={"detail": ScoreRange(min=4.0, max=6.0), "composite": ScoreRange(min=5.0)})
    combined = matching(
        docs,
        lambda d: (
            d.workflow.name == "flux-dev"
            and d.refinement.strategy == "progressive"
            and "car" in d.input.prompt
        ),
    )
    check(combined, workflows=["flux-dev"], strategies=["progressive"], text="car")
    with pytest.raises(ValueError, match=r"min 6\.0 is above max 4\.0"):
        ScoreRange(min=6, max=4)


@pytest.mark.parametrize("fts", [True, False])
def test_prompt_search_with_tricky_text(tmp_path: Path, fts: bool) -> None:
    prompts = {
        "xss": 'a cat <script>alert("pwned")</script> on a mat',
        "quotes": 'the "best" dog\'s toy, 50% off_sale',
        "ops": "NOT a dog OR a cat AND NEAR(x) *",
        "accent": "un café à Paris",
        "plain": "a cat on a sofa",
        "emoji": "sunset 🌅 over the sea",
    }
    idx = Index(tmp_path / "i.sqlite3")
    if not fts:
        idx.fts_enabled = False  # what a SQLite without FTS5 does: LIKE
    idx.add_many(make_metadata(prompt=p, generation_id=k) for k, p in prompts.items())

    def search(text: str) -> set[str]:
        return set(ids(idx.query(GenerationQuery(text=text)).items))

    assert search("<script>") == {"xss"}
    assert search('alert("pwned")') == {"xss"}
    assert search("cat") == {"xss", "plain", "ops"}
    assert search('"best"') == {"quotes"}
    assert search("dog's") == {"quotes"}
    assert search("50%") == {"quotes"}
    assert search("off_sale") == {"quotes"}
    assert search("NOT a dog") == {"ops"}
    assert search("NEAR(x)") == {"ops"}
    assert search("🌅") == {"emoji"}
    assert search("'; DROP TABLE generations; --") == set()
    assert idx.count() == len(prompts), "nothing was dropped"
    assert idx.get("xss").prompt == prompts["xss"]  # type: ignore[union-attr]  # stored verbatim
    if fts:  # word semantics: accent-insensitive, last word as prefix
        assert search("cafe") == {"accent"}
        assert search("sof") == {"plain"}
        assert search("cat sofa") == {"plain"}
    else:
        assert search("café") == {"accent"}
    idx.close()


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('NOT "x" OR y*') == '"NOT" "x" "OR" "y"*'
    assert fts_query("<>!") is None


@pytest.mark.parametrize("sort", ["timestamp", "composite", "detail", "gain", "attempts_used"])
@pytest.mark.parametrize("order", ["desc", "asc"])
def test_sort_and_keyset_pagination(
    index: Index, docs: list[GenerationMetadata], sort: str, order: str
) -> None:
    key_of = {
        "timestamp": lambda d: d.timestamp.timestamp(),
        "composite": lambda d: score(d, "composite"),
        "detail": lambda d: score(d, "detail"),
        "attempts_used": lambda d: d.refinement.attempts_used,
        "gain": lambda d: (
            d.quality.composite_score - (d.refinement.first_composite() or 0.0)
            if d.quality and d.refinement.first_composite() is not None
            else None
        ),
    }[sort]
    got = all_pages(index, sort=sort, order=order)
    assert sorted(got) == sorted(d.generation_id for d in docs), "every row exactly once"
    values = [key_of(next(d for d in docs if d.generation_id == g)) for g in got]
    # NULL sorts as the lowest value
    ranked = [(-1e9 if v is None else v) for v in values]
    assert ranked == sorted(ranked, reverse=order == "desc")
    offset_pages = [
        g
        for p in range(0, len(docs), 25)
        for g in ids(index.query(GenerationQuery(sort=sort, order=order, limit=25, offset=p)).items)
    ]
    assert offset_pages == got


def test_cursor_is_stable_while_rows_are_added(index: Index) -> None:
    first = index.query(GenerationQuery(limit=10))
    index.add(make_metadata(generation_id="newest", timestamp=T0 + timedelta(days=400)))
    second = index.query(GenerationQuery(limit=10, cursor=first.next_cursor))
    assert not set(ids(first.items)) & set(ids(second.items))
    assert second.items[0].timestamp < first.items[-1].timestamp
    assert first.total is not None and second.total == first.total + 1


def test_bad_cursors(index: Index) -> None:
    page = index.query(GenerationQuery(limit=5))
    with pytest.raises(StorageIndexError, match="another sort order"):
        index.query(GenerationQuery(limit=5, sort="composite", cursor=page.next_cursor))
    for garbage in ("!!!", "bm90IGpzb24", "WzEsMiwzXQ"):
        with pytest.raises(StorageIndexError, match="not valid"):
            index.query(GenerationQuery(cursor=garbage))


def test_aggregates(index: Index, docs: list[GenerationMetadata]) -> None:
    dist = index.grade_distribution()
    expected: Counter[str] = Counter(d.quality.grade for d in docs if d.quality)
    assert dist.counts == {g: expected.get(g, 0) for g in "ABCDF"}
    assert dist.ungraded == sum(1 for d in docs if d.quality is None) and dist.total == len(docs)

    sdxl = GenerationFilter(workflows=["sdxl"])
    avg = index.dimension_averages(sdxl)
    scored = [d for d in docs if d.workflow.name == "sdxl" and d.quality]
    assert avg.count == sum(1 for d in docs if d.workflow.name == "sdxl")
    assert avg.technical == pytest.approx(statistics.mean(score(d, "technical") for d in scored))  # type: ignore[type-var]

    trend = index.trend(by_workflow=True)
    per_key = Counter((d.timestamp.strftime("%Y-%m-%d"), d.workflow.name) for d in docs)
    assert {(p.period, p.workflow): p.count for p in trend} == dict(per_key)
    assert [p.period for p in trend] == sorted(p.period for p in trend)
    months = index.trend(bucket="month")
    assert sum(p.count for p in months) == len(docs) and all(len(p.period) == 7 for p in months)

    gains = {g.strategy: g for g in index.strategy_gains()}
    for strategy in STRATEGIES:
        group = [d for d in docs if d.refinement.strategy == strategy]
        with_gain = [
            d.quality.composite_score - d.refinement.first_composite()  # type: ignore[operator]
            for d in group
            if d.quality and d.refinement.first_composite() is not None
        ]
        g = gains[strategy]
        assert g.count == len(group)
        assert g.gain == pytest.approx(statistics.mean(with_gain))
        assert g.success_rate == pytest.approx(
            sum(d.refinement.status == "success" for d in group) / len(group)
        )

    facets = index.facets()
    assert facets.workflows == sorted(WORKFLOWS) and facets.strategies == sorted(s for s in STRATEGIES if s)
    assert (facets.total, facets.first, facets.last) == (len(docs), docs[0].timestamp, docs[-1].timestamp)


def test_upsert_replaces_row_attempts_and_search(index: Index, docs: list[GenerationMetadata]) -> None:
    before = index.count()
    changed = make_metadata(prompt="a green submarine", attempts=[9.1], generation_id=docs[3].generation_id)
    index.add(changed)
    assert index.count() == before
    row = index.get(changed.generation_id)
    assert row is not None and row.grade == "A" and row.prompt == "a green submarine"
    assert len(index.attempts(changed.generation_id)) == 1
    assert ids(index.query(GenerationQuery(text="submarine")).items) == [changed.generation_id]
    assert changed.generation_id not in ids(
        index.query(GenerationQuery(text=docs[3].input.prompt, limit=500)).items
    )
    assert index.remove(changed.generation_id) and not index.remove(changed.generation_id)
    assert index.count() == before - 1 and index.attempts(changed.generation_id) == []


def test_one_writer_many_readers_across_threads(tmp_path: Path) -> None:
    idx = Index(tmp_path / "i.sqlite3")
    docs = corpus(200, seed=3)
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for start in range(0, len(docs), 10):
                idx.add_many(docs[start : start + 10])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    def reader() -> None:
        try:
            last = 0
            while not done.is_set():
                n = idx.count()
                assert n >= last and n % 10 == 0, "readers see whole transactions only"
                last = n
                idx.query(GenerationQuery(grades=["A", "B"], text="car"))
                idx.grade_distribution()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert idx.count() == 200
    assert sqlite3.connect(idx.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    idx.close()


def test_read_only_and_schema_change(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite3"
    with Index(path) as idx:
        idx.add(make_metadata(generation_id="one"))
    with Index(path, read_only=True) as ro:
        assert ro.count() == 1 and ro.fts_enabled
        with pytest.raises(StorageIndexError, match="read-only"):
            ro.add(make_metadata())
    conn = sqlite3.connect(path)
    conn.execute("UPDATE index_meta SET value = '0' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with Index(path) as idx:
        assert idx.recreated and idx.count() == 0
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(StorageIndexError, match="rebuild-index"):
        Index(tmp_path / "dir.sqlite3")


async def test_rebuild_from_local_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    docs = corpus(12, seed=5)
    for i, md in enumerate(docs):
        await store.put_generation(make_image(i) if md.quality else None, md)
    with Index(tmp_path / "i.sqlite3") as idx:
        idx.add(make_metadata(generation_id="deleted-from-store"))
        report = await rebuild_index(store, idx, batch=5)
        assert (report.added, report.failed, report.removed) == (12, {}, 1)
        assert idx.count() == 12 and idx.get("deleted-from-store") is None
        row = idx.get(docs[1].generation_id)
        assert row is not None and row.image_key and row.storage_status == "stored"
        stored = idx.get_metadata(docs[1].generation_id)
        assert stored is not None and stored.storage is not None and stored.storage.backend == "local"

        broken = tmp_path / "store/generations/2026/12/01/broken/metadata.json"
        broken.parent.mkdir(parents=True)
        broken.write_text('{"schema_version": 1}')
        idx.add(make_metadata(generation_id="kept-because-a-document-failed"))
        report = await rebuild_index(store, idx)
        assert report.added == 12 and list(report.failed) == ["generations/2026/12/01/broken/metadata.json"]
        assert "input" in report.failed["generations/2026/12/01/broken/metadata.json"]
        assert report.removed == 0 and idx.get("kept-because-a-document-failed") is not None


@pytest.mark.s3
async def test_rebuild_from_s3_including_spooled(seaweed: SeaweedServer, bucket: str, tmp_path: Path) -> None:
    docs = corpus(6, seed=9)
    async with s3_store(seaweed, bucket, tmp_path / "spool") as store:
        for i, md in enumerate(docs[:5]):
            assert (await store.put_generation(make_image(i), md)).status == "stored"
    async with s3_store(seaweed, bucket, tmp_path / "spool", secret_key="wrong") as down:
        assert (await down.put_generation(make_image(5), docs[5])).spooled
        with Index(tmp_path / "i.sqlite3") as idx:
            idx.add(docs[0])
            with pytest.raises(StorageUnavailableError, match="cannot list"):
                await rebuild_index(down, idx)  # the listing is refused: the index is left as it was
            assert idx.count() == 1
    async with s3_store(seaweed, bucket, tmp_path / "spool") as store:
        with Index(tmp_path / "i.sqlite3") as idx:
            report = await rebuild_index(store, idx)
            assert report.added == 6 and not report.failed
            assert {r.generation_id for r in idx.query(GenerationQuery(limit=50)).items} == {
                d.generation_id for d in docs
            }
            assert idx.get(docs[5].generation_id).storage_status == "spooled"  # type: ignore[union-attr]


class _LockedThenFree:
    """A connection whose journal-mode switch answers "database is locked" ``times`` times (as SQLite can, at once
    and without its busy handler, while another process opens the same new index), then succeeds."""

    def __init__(self, times: int, message: str = "database is locked") -> None:
        self.left, self.message, self.calls = times, message, 0

    def execute(self, sql: str) -> None:
        self.calls += 1
        if self.left:
            self.left -= 1
            raise sqlite3.OperationalError(self.message)


def test_wal_switch_waits_for_a_lock_held_by_another_process():
    from storage.index import _enable_wal

    conn = _LockedThenFree(3)
    _enable_wal(conn)  # type: ignore[arg-type]
    assert conn.calls == 4


def test_wal_switch_does_not_retry_other_errors():
    from storage.index import _enable_wal

    conn = _LockedThenFree(1, "disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _enable_wal(conn)  # type: ignore[arg-type]
    assert conn.calls == 1
