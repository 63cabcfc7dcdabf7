"""Index benchmark: fill N synthetic generations (default 100,000), time the dashboard's typical queries.

    python bench/index.py [--rows 100000] [--path FILE] [--repeat 7]

Prints, per query, the median and max latency over ``--repeat`` runs (after one warm-up) and compares it with
the interactive target (a dashboard request should spend well under 100 ms in the index; we aim at 50 ms for a
page and 250 ms for a chart aggregate over every row). Synthetic rows are realistic documents (1–4 attempts
with full parameters and scores), spread over a year, 4 workflows, 5 strategies, with a few hundred prompt
templates.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.index import Index
from storage.index_query import GenerationFilter, GenerationQuery, ScoreRange
from storage.metadata import (
    AttemptRecord,
    AttemptTimings,
    GenerationMetadata,
    GenerationParameters,
    InputInfo,
    QualityRecord,
    RefinementInfo,
    StorageInfo,
    WorkflowInfo,
    describe_rejection,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
WORKFLOWS = ("flux-dev", "sdxl", "sd15", "custom")
STRATEGIES = ("progressive", "seed_search", "prompt_enhance", "adaptive", "best_of_n")
SUBJECTS = ("a castle", "a red car", "a portrait of a woman", "a cat", "a mountain lake", "a robot", "a city")
STYLES = ("at night", "in the rain", "oil painting", "studio lighting", "watercolor", "cinematic", "macro")
EXTRAS = ("highly detailed", "8k", "soft light", "wide angle", "bokeh", "pastel colours", "dramatic sky")


def grade(c: float) -> str:
    return "A" if c >= 8 else "B" if c >= 6.5 else "C" if c >= 5 else "D" if c >= 3 else "F"


def quality(rng: random.Random, composite: float) -> QualityRecord:
    dims = {d: round(min(10, max(0, composite + rng.uniform(-1.5, 1.5))), 2) for d in ("t", "a", "p", "d")}
    return QualityRecord.model_validate(
        {
            "composite_score": composite,
            "grade": grade(composite),
            "technical": {"score": dims["t"], "brisque": rng.uniform(10, 60), "niqe": rng.uniform(2, 12)},
            "aesthetic": {
                "score": dims["a"],
                "laion_aesthetic": rng.uniform(3, 8),
                "nima_mean": rng.uniform(3, 7),
            },
            "prompt_adherence": {"score": dims["p"], "clip_score": rng.uniform(0.15, 0.4)},
            "detail": {
                "score": dims["d"],
                "topiq": rng.uniform(0.2, 0.9),
                "edge_density": rng.uniform(0.02, 0.3),
            },
            "partial": rng.random() < 0.05,
            "device": "cuda:0",
            "versions": {"brisque": "1", "niqe": "1", "clip_score": "ViT-L-14", "topiq": "nr-koniq"},
            "seconds": rng.uniform(0.5, 3),
        }
    )


def synthetic(i: int, rng: random.Random) -> GenerationMetadata:
    prompt = f"{rng.choice(SUBJECTS)} {rng.choice(STYLES)}, {rng.choice(EXTRAS)} #{i % 997}"
    threshold = 7.0
    attempts = []
    base = rng.uniform(2.0, 8.5)
    for n in range(1, rng.randint(1, 4) + 1):
        failed = rng.random() < 0.03
        q = None if failed else quality(rng, round(min(10, base + rng.uniform(-0.5, 1.2) * (n - 1)), 2))
        params = GenerationParameters(
            seed=rng.getrandbits(32),
            steps=20 + 10 * n,
            cfg=7.0 + 0.5 * n,
            sampler="euler",
            scheduler="normal",
            width=1024,
            height=1024,
            batch_size=1,
            denoise=1.0,
            prompt=prompt,
        )
        attempts.append(
            AttemptRecord(
                attempt=n,
                parameters=params,
                quality=q,
                prompt_id=f"p{i}-{n}",
                timings=AttemptTimings(
                    generate_seconds=rng.uniform(5, 40), score_seconds=1.2, store_seconds=0.01
                ),
                error="execution error" if failed else None,
            )
        )
        if q is not None and q.composite_score >= threshold:
            break
    refinement = RefinementInfo.from_attempts(
        attempts, strategy=rng.choice(STRATEGIES), threshold=threshold, max_attempts=4
    )
    for a in attempts:
        if a.quality is not None and a.attempt != refinement.best_attempt:
            a.rejected_reason = describe_rejection(a.quality, threshold)
    best = next((a for a in attempts if a.attempt == refinement.best_attempt), None)
    gid = f"g{i:07d}"
    key = f"generations/2026/01/01/{gid}/best.png"
    return GenerationMetadata(
        generation_id=gid,
        timestamp=START + timedelta(seconds=i * 315),  # 100k rows ≈ one year
        input=InputInfo(prompt=prompt, negative_prompt="blurry", source="mcp", quality_threshold=threshold),
        workflow=WorkflowInfo(name=rng.choice(WORKFLOWS)),
        parameters=best.parameters if best else GenerationParameters(),
        quality=best.quality if best else None,
        refinement=refinement,
        storage=StorageInfo(
            backend="s3", bucket="images", key=key if best else None, metadata_key=key[:-8] + "metadata.json"
        ),
    )


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), max(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--path", type=Path, help="index file (default: a temporary one)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = args.path or Path(tmp.name) / "bench.sqlite3"
    index = Index(path)
    rng = random.Random(1)

    if index.count() < args.rows:
        t0 = time.perf_counter()
        build = 0.0
        for start in range(index.count(), args.rows, 2000):
            b0 = time.perf_counter()
            docs = [synthetic(i, rng) for i in range(start, min(start + 2000, args.rows))]
            build += time.perf_counter() - b0
            index.add_many(docs)
        total = time.perf_counter() - t0
        insert = total - build
        print(
            f"filled {args.rows:,} generations in {total:.1f} s ({build:.1f} s building documents, "
            f"{insert:.1f} s indexing = {insert / args.rows * 1e6:.0f} µs per generation)"
        )
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    print(
        f"index size: {size / 2**20:.0f} MiB ({size / args.rows:.0f} bytes per generation), "
        f"fts={index.fts_enabled}"
    )

    last_month = GenerationFilter(since=START + timedelta(days=330))
    p500 = GenerationQuery(limit=50, offset=499 * 50)
    page499 = index.query(GenerationQuery(limit=50, offset=498 * 50, with_total=False))
    keyset500 = GenerationQuery(limit=50, cursor=page499.next_cursor)

    cases: list[tuple[str, Callable[[], object], float]] = [
        ("page 1, newest first (+ total)", lambda: index.query(GenerationQuery(limit=50)), 50),
        ("page 1, grade A", lambda: index.query(GenerationQuery(grades=["A"])), 50),
        (
            "page 1, grade A/B + sdxl + last 30 days",
            lambda: index.query(
                GenerationQuery(grades=["A", "B"], workflows=["sdxl"], since=START + timedelta(days=330))
            ),
            50,
        ),
        (
            "page 1, strategy adaptive, sort gain",
            lambda: index.query(GenerationQuery(strategies=["adaptive"], sort="gain")),
            50,
        ),
        (
            "page 1, composite 7–9, sort composite",
            lambda: index.query(
                GenerationQuery(ranges={"composite": ScoreRange(min=7, max=9)}, sort="composite")
            ),
            50,
        ),
        (
            "page 1, detail ≥ 6 and technical ≤ 5",
            lambda: index.query(
                GenerationQuery(ranges={"detail": ScoreRange(min=6), "technical": ScoreRange(max=5)})
            ),
            50,
        ),
        ("page 1, text 'castle night' (FTS)", lambda: index.query(GenerationQuery(text="castle night")), 50),
        ("page 1, text '#123' rare (FTS)", lambda: index.query(GenerationQuery(text="#123")), 50),
        (
            "page 1, text + grade A, sort composite",
            lambda: index.query(GenerationQuery(text="red car", grades=["A"], sort="composite")),
            50,
        ),
        ("page 500 by offset, newest first", lambda: index.query(p500), 50),
        (
            "page 500 by offset, sort composite",
            lambda: index.query(GenerationQuery(limit=50, offset=499 * 50, sort="composite")),
            50,
        ),
        ("page 500 by keyset cursor", lambda: index.query(keyset500), 50),
        (
            "generation page: row + attempts + document",
            lambda: (index.get("g0054321"), index.attempts("g0054321"), index.get_metadata("g0054321")),
            50,
        ),
        ("chart: grade distribution (all)", lambda: index.grade_distribution(), 250),
        ("chart: trend per day (all)", lambda: index.trend(), 250),
        ("chart: trend per day per workflow (all)", lambda: index.trend(by_workflow=True), 250),
        ("chart: averages per dimension (all)", lambda: index.dimension_averages(), 250),
        ("chart: gain per strategy (all)", lambda: index.strategy_gains(), 250),
        ("chart: trend per day, last 30 days", lambda: index.trend(last_month, by_workflow=True), 250),
        ("filter facets", lambda: index.facets(), 250),
    ]
    print(f"\n{'query':<48} {'median ms':>10} {'max ms':>9} {'target':>8}  verdict")
    failures = 0
    for name, fn, target in cases:
        median, worst = timed(fn, args.repeat)
        ok = median <= target
        failures += not ok
        print(f"{name:<48} {median:>10.2f} {worst:>9.2f} {target:>6.0f}ms  {'ok' if ok else 'SLOW'}")

    index.fts_enabled = False
    median, worst = timed(lambda: index.query(GenerationQuery(text="castle night")), args.repeat)
    print(
        f"{'(no FTS5) page 1, text LIKE fallback':<48} {median:>10.2f} {worst:>9.2f} {'—':>8}  for comparison"
    )
    index.close()
    print(f"\n{len(cases) - failures}/{len(cases)} queries within target at {args.rows:,} generations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
