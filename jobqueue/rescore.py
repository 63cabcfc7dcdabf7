"""Distributed re-scoring of a gallery: ``python -m quality score DIR|s3://bucket/prefix`` with
``COMFY_QUALITY_JOBS_URL`` set.

The client lists the images (a local folder, or the objects under an S3 prefix of the configured MinIO / S3
endpoint), splits them into chunks of ``COMFY_QUALITY_JOBS_SCORE_CHUNK`` and queues one docket task per chunk.
Workers (``comfy-quality-worker``, models loaded once per worker) read and score a chunk's images and store the
chunk's results in Redis; the client shows a progress bar as chunks finish and, when all are done, writes the
results (CSV or JSONL, in listing order) exactly as the local batch scorer does.

Resume: a run is identified by its source, its image list and the output path. Run the same command again
after a crash (of the client or of workers) and the chunks whose results are stored are not scored again;
the others are queued again (a chunk still queued or running is not queued twice: docket de-duplicates by key).
A worker that dies mid-chunk has the chunk redelivered. Chunk results are kept for a week.

A local folder must be readable at the same path by the workers (one machine, or a shared mount); S3 sources
are read by the workers with their own ``COMFY_QUALITY_STORAGE_S3_*`` settings.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel

from comfy_quality.boundary import recorded_reason
from jobqueue.errors import RescoreSourceError
from jobqueue.records import JobStore
from jobqueue.settings import JobsSettings

if TYPE_CHECKING:
    from comfy_quality.settings import Settings
    from storage.settings import StorageSettings

log = logging.getLogger(__name__)

RESULT_TTL_SECONDS = 7 * 24 * 3600
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class ChunkSpec(BaseModel):
    source: str
    """``s3://bucket/prefix`` or an absolute folder path."""
    items: list[tuple[str, str | None]]
    """(name relative to the source, prompt)."""


class ChunkResult(BaseModel):
    worker: str
    seconds: float
    rows: list[dict[str, Any]]
    """``{"file": name, "report": {...}}`` or ``{"file": name, "error": "..."}``, in chunk order."""


# -- sources -------------------------------------------------------------------------------------------------
def split_s3(url: str) -> tuple[str, str]:
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise RescoreSourceError(f"{url!r} names no bucket (s3://bucket/prefix)")
    return bucket, prefix


def s3_client(settings: StorageSettings | None = None) -> Any:
    """A MinIO client on the storage section's endpoint and keys (default: read from the environment)."""
    from minio import Minio

    from storage.layout import normalize_endpoint
    from storage.settings import StorageSettings

    settings = settings if settings is not None else StorageSettings()
    if not settings.s3_endpoint:
        raise RescoreSourceError("s3:// sources need COMFY_QUALITY_STORAGE_S3_ENDPOINT (and the S3 access keys)")
    netloc, secure = normalize_endpoint(settings.s3_endpoint, secure=settings.s3_secure)
    access = settings.s3_access_key.get_secret_value() if settings.s3_access_key else None
    secret = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None
    return Minio(netloc, access_key=access, secret_key=secret, secure=secure, region=settings.s3_region)


def list_source(source: str, storage: StorageSettings | None = None) -> list[str]:
    """Image names (relative to the source), sorted. ``storage``: the S3 settings of an ``s3://`` source."""
    if source.startswith("s3://"):
        bucket, prefix = split_s3(source)
        objects = s3_client(storage).list_objects(bucket, prefix=prefix, recursive=True)
        names = [o.object_name[len(prefix):].lstrip("/") for o in objects if not o.is_dir]
        return sorted(n for n in names if n.lower().endswith(IMAGE_SUFFIXES))
    root = Path(source)
    if not root.is_dir():
        raise RescoreSourceError(f"no such folder: {source}")
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)  # fmt: skip


def read_item(source: str, name: str, client: Any = None) -> bytes:
    if source.startswith("s3://"):
        bucket, prefix = split_s3(source)
        key = f"{prefix.rstrip('/')}/{name}" if prefix else name
        response = (client or s3_client()).get_object(bucket, key)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()
    root = Path(source).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise RescoreSourceError(f"{name!r} is outside {source}")
    return path.read_bytes()


# -- worker side ---------------------------------------------------------------------------------------------
class ChunkScorer:
    """Scores chunks in a worker (with the worker's scorer: models loaded once)."""

    def __init__(self, jobs: JobStore, scorer: Any, worker: str, storage: StorageSettings | None = None) -> None:
        self.jobs = jobs
        self.scorer = scorer
        self.worker = worker
        self.storage = storage
        """The worker's storage section (its tree's): the S3 endpoint and keys ``s3://`` sources are read with."""
        self._s3: Any = None

    async def run(self, run_id: str, chunk: int) -> None:
        keys = self.jobs.keys
        if await self.jobs.redis.exists(keys.score_chunk(run_id, chunk)):
            return  # a redelivery of a chunk that was finished
        raw = await self.jobs.redis.hget(keys.score_run(run_id), f"chunk:{chunk}")
        if raw is None:
            log.warning("re-scoring run %s has no chunk %d (expired?)", run_id, chunk)
            return
        spec = ChunkSpec.model_validate_json(raw)
        started = time.perf_counter()
        rows = await asyncio.to_thread(self._score, spec)
        result = ChunkResult(worker=self.worker, seconds=round(time.perf_counter() - started, 3), rows=rows)
        await self.jobs.redis.set(keys.score_chunk(run_id, chunk), result.model_dump_json(), ex=RESULT_TTL_SECONDS)
        await self.jobs.redis.publish(keys.score_run(run_id) + ":events", str(chunk))

    def _score(self, spec: ChunkSpec) -> list[dict[str, Any]]:
        if spec.source.startswith("s3://") and self._s3 is None:
            self._s3 = s3_client(self.storage)
        rows: list[dict[str, Any]] = []
        for name, prompt in spec.items:
            try:
                data = read_item(spec.source, name, self._s3)
                report = self.scorer.score(data, prompt, source_name=name)
            except OSError as exc:  # one unreadable image must not sink the chunk
                rows.append({"file": name, "error": f"{type(exc).__name__}: {exc}"[:500]})
                continue
            except Exception as exc:  # a library error is the reason; a bug is logged with its traceback
                rows.append({"file": name, "error": f"{type(exc).__name__}: {recorded_reason(name, exc, log)}"[:500]})
                continue
            rows.append({"file": name, "report": report.model_dump(mode="json")})
        return rows


# -- client side ---------------------------------------------------------------------------------------------
def run_id_for(source: str, names: Sequence[str], output: str | None, chunk_size: int) -> str:
    digest = hashlib.sha256()
    for part in (source, output or "-", str(chunk_size), *names):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


async def rescore(
    source: str,
    *,
    prompt: str | None,
    prompts: dict[str, str],
    output: str | None,
    fmt: str,
    out: IO[str],
    show_progress: bool,
    settings: JobsSettings | None = None,
    storage: StorageSettings | None = None,
    timeout: float | None = None,
) -> tuple[int, int]:
    """Score ``source`` on the workers; write the results; return (images, failures). ``settings`` / ``storage``:
    the jobs and storage sections of the caller's settings tree (default: read from the environment)."""
    from jobqueue.queue import open_docket, open_redis
    from jobqueue.tasks import score_chunk

    settings = settings or JobsSettings()
    if not source.startswith("s3://"):
        source = str(Path(source).resolve())
    names = list_source(source, storage)
    if not names:
        raise RescoreSourceError(f"no images in {source}")
    size = settings.score_chunk
    chunks = [names[i : i + size] for i in range(0, len(names), size)]
    run_id = run_id_for(source, names, output, size)
    redis = open_redis(settings)
    jobs = JobStore(redis, settings.name)
    keys = jobs.keys
    try:
        specs: dict[str | bytes, str | bytes | int | float] = {
            f"chunk:{i}": ChunkSpec(source=source, items=[(n, prompts.get(Path(n).name, prompt)) for n in c])
            .model_dump_json()
            for i, c in enumerate(chunks)
        }
        specs.update({"source": source, "chunks": str(len(chunks))})
        await redis.hset(keys.score_run(run_id), mapping=specs)  # type: ignore[arg-type]
        await redis.expire(keys.score_run(run_id), RESULT_TTL_SECONDS)
        done = await _finished(jobs, run_id, len(chunks))
        if done:
            log.info("re-scoring run %s: %d of %d chunks already scored", run_id, len(done), len(chunks))
        async with open_docket(settings, execution_ttl=RESULT_TTL_SECONDS) as docket:
            for i in range(len(chunks)):
                if i not in done:
                    await docket.add(score_chunk, key=f"score-{run_id}-{i}")(run_id, i)  # type: ignore[attr-defined]
        await _follow(jobs, run_id, chunks, done, show_progress, timeout)
        results = [
            ChunkResult.model_validate_json(await redis.get(keys.score_chunk(run_id, i)) or b"{}")
            for i in range(len(chunks))
        ]
    finally:
        await redis.aclose()
    failures = _write(results, source, output, fmt, out)
    return len(names), failures


async def _finished(jobs: JobStore, run_id: str, count: int) -> set[int]:
    async with jobs.redis.pipeline(transaction=False) as pipe:
        for i in range(count):
            pipe.exists(jobs.keys.score_chunk(run_id, i))
        flags = await pipe.execute()
    return {i for i, flag in enumerate(flags) if flag}


async def _follow(jobs: JobStore, run_id: str, chunks: list[list[str]], done: set[int], show: bool,
                  timeout: float | None) -> None:  # fmt: skip
    from tqdm import tqdm

    total = sum(len(c) for c in chunks)
    bar = tqdm(total=total, unit="img", file=sys.stderr, disable=not show, desc="scoring on workers")
    bar.update(sum(len(chunks[i]) for i in done))
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = set(done)
    try:
        while len(seen) < len(chunks):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"re-scoring run {run_id}: {len(chunks) - len(seen)} chunk(s) not done in time")
            now = await _finished(jobs, run_id, len(chunks))
            for i in sorted(now - seen):
                bar.update(len(chunks[i]))
            seen |= now
            if len(seen) < len(chunks):
                await asyncio.sleep(0.25)
    finally:
        bar.close()


def _write(results: list[ChunkResult], source: str, output: str | None, fmt: str, out: IO[str]) -> int:
    import csv

    from quality.cli import FLAT_COLUMNS, flat_row
    from quality.report import QualityReport

    sink: IO[str] = open(output, "w", newline="", encoding="utf-8") if output else out  # noqa: SIM115
    failures = 0
    try:
        writer = csv.DictWriter(sink, fieldnames=FLAT_COLUMNS) if fmt == "csv" else None
        if writer:
            writer.writeheader()
        for result in results:
            for row in result.rows:
                file = f"{source.rstrip('/')}/{row['file']}"
                if "report" not in row:
                    failures += 1
                    if writer:
                        writer.writerow(flat_row(file, None, row.get("error")))
                    else:
                        sink.write(json.dumps({"file": file, "error": row.get("error")}) + "\n")
                    continue
                if writer:
                    writer.writerow(flat_row(file, QualityReport.model_validate(row["report"])))
                else:
                    sink.write(json.dumps({"file": file, **row["report"]}) + "\n")
    finally:
        if sink is not out:
            sink.close()
    return failures


def _say(message: str) -> None:
    sys.stderr.write(message + "\n")


def cli_score(
    args: Any, items: Sequence[str], prompt: str | None, out: IO[str], *, settings: Settings | None = None
) -> int:
    """``python -m quality score SOURCE`` on the workers (exit codes as the local batch scorer); ``settings``:
    the process's settings tree (default: read from the environment)."""
    from comfy_quality.settings import Settings
    from quality.cli import EXIT_CONFIG, EXIT_IMAGE, EXIT_OK, EXIT_USAGE, read_prompts

    if len(items) != 1:
        _say("error: score one folder or one s3://bucket/prefix at a time on the workers")
        return EXIT_USAGE
    tree = settings if settings is not None else Settings()
    try:
        jobs = tree.jobs
        storage = tree.storage if items[0].startswith("s3://") else None
    except ValueError as exc:
        _say(f"error: {exc}")
        return EXIT_CONFIG
    if not jobs.enabled:
        _say("error: s3:// sources are scored by comfy-quality workers: set COMFY_QUALITY_JOBS_URL "
              "(redis://host:6379/0) and start `comfy-quality-worker`")  # fmt: skip
        return EXIT_CONFIG
    source = items[0]
    prompts = read_prompts(Path(args.prompts)) if args.prompts else {}
    labels = Path(source) / "labels.csv"
    if not args.prompts and not source.startswith("s3://") and labels.is_file():
        prompts = read_prompts(labels)
    fmt = args.format or ("csv" if args.output and str(args.output).endswith(".csv") else "jsonl")
    show = not args.quiet and (sys.stderr.isatty() or args.progress)
    try:
        total, failures = asyncio.run(rescore(source, prompt=prompt, prompts=prompts, output=args.output, fmt=fmt,
                                              out=out, show_progress=show, settings=jobs,
                                              storage=storage))  # fmt: skip
    except RescoreSourceError as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    except OSError as exc:  # Redis or S3 unreachable
        _say(f"error: job queue or store unavailable: {exc}")
        return EXIT_CONFIG
    _say(f"scored {total - failures} of {total} images ({failures} failed) on the workers")
    return EXIT_IMAGE if failures else EXIT_OK
