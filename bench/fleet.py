"""A ComfyUI fleet behind the Redis job queue: does throughput grow with the servers, and what does the queue cost?

    ./run bench fleet [--jobs 24] [--servers 1,2,4] [--render-seconds 1.0] [--sequential 8]

For K = 1, 2, 4 fake ComfyUI servers (real HTTP + websocket; a fixed render time per job: 8 sampler steps at
``render-seconds / 8`` each), ``--jobs`` generations (one attempt each, 256×256, the real offline scorer) go
through

* the **distributed** backend: redis-server, two ``comfy-quality-worker`` subprocesses that both drive all K
  servers (one job per server per worker at most), jobs submitted and awaited through
  :class:`mcp_server.jobs_redis.RedisJobBackend` as an MCP replica does;
* the **in-process** backend (the embedded default, the baseline): one process, :class:`mcp_server.jobs.JobManager`
  with as many generation slots as the two workers have, on one ComfyUI pool of the same K servers.

Printed: throughput (jobs/s) per K and its ratio to K = 1 (target ≥ 0.9·K), and, from ``--sequential`` jobs run
one at a time on an idle fleet, the time per job beyond ComfyUI generation and scoring (submit → result seen by
the caller, minus the attempt's generate + score seconds) for both backends; the queue's overhead is the
difference of their medians (target ≤ 20 ms p50).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jobqueue.settings import JobsSettings  # noqa: E402
from refinement.api import GenerationRequest  # noqa: E402
from tests.jobqueue.services import RedisServer, fake_comfyui, workers  # noqa: E402

STEPS = 8


def request(i: int) -> GenerationRequest:
    return GenerationRequest(prompt=f"a lighthouse at dusk, study {i}", workflow="sd15", width=256, height=256,
                             steps=STEPS, seed=1000 + i, max_attempts=1, quality_threshold=0.0)  # fmt: skip


def beyond_work(latency: float, job: object) -> float:
    result = getattr(job, "result", None)
    attempt = result.attempts[0] if result and result.attempts else None
    work = (attempt.seconds.get("generate", 0.0) + attempt.seconds.get("score", 0.0)) if attempt else 0.0
    return latency - work


async def drive(backend: object, jobs: int, sequential: int) -> tuple[float, list[float], int]:
    """Warm up, then ``jobs`` at once (wall time), then ``sequential`` one at a time (time beyond work)."""
    b = backend
    for i in range(2):  # first-use costs (object_info preflight, connections) out of the measurement
        job = await b.submit_job(request(900 + i))  # type: ignore[attr-defined]
        await b.wait_job(job.id, 600)  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    submitted = [await b.submit_job(request(i)) for i in range(jobs)]  # type: ignore[attr-defined]
    await asyncio.gather(*(b.wait_job(j.id, 600) for j in submitted))  # type: ignore[attr-defined]
    wall = time.perf_counter() - t0
    finished = [await b.job(j.id) for j in submitted]  # type: ignore[attr-defined]
    ok = sum(j.state in ("success", "best_effort") for j in finished)
    extra = []
    for i in range(sequential):
        t = time.perf_counter()
        submitted_at = time.time()
        job = await b.submit_job(request(500 + i))  # type: ignore[attr-defined]
        await b.wait_job(job.id, 600)  # type: ignore[attr-defined]
        seen_at = time.time()
        latency = time.perf_counter() - t
        done = await b.job(job.id)  # type: ignore[attr-defined]
        extra.append(beyond_work(latency, done))
        started, finished = getattr(done, "started", None), getattr(done, "finished", None)
        if isinstance(started, float) and isinstance(finished, float) and started > 1e9:  # Redis records: epoch
            STAGES.append((started - submitted_at, seen_at - finished))
    return wall, extra, ok


#: (submit → claimed by a worker, finished by the worker → seen by the caller) of the sequential Redis jobs
STAGES: list[tuple[float, float]] = []
#: Redis round trips (PING) from the bench process: how loaded the machine is
RTT: list[float] = []


async def distributed(k: int, jobs: int, render: float, sequential: int, tmp: Path) -> tuple[float, list[float], int]:
    from mcp_server.jobs_redis import RedisJobBackend

    redis = RedisServer(tmp / "redis")
    redis.start()
    try:
        with ExitStack() as stack:
            comfys = [stack.enter_context(fake_comfyui(step_delay=render / STEPS)) for _ in range(k)]
            urls = [c.url for c in comfys]
            stack.enter_context(workers(tmp, redis.url, urls, ["w1", "w2"]))
            settings = JobsSettings(url=redis.url, name="cqtest")  # type: ignore[arg-type]
            async with RedisJobBackend(settings, retention_seconds=3600) as backend:
                for _ in range(50):
                    t = time.perf_counter()
                    await backend.redis.ping()
                    RTT.append(time.perf_counter() - t)
                return await drive(backend, jobs, sequential)
    finally:
        redis.stop()


async def in_process(k: int, jobs: int, render: float, sequential: int, tmp: Path) -> tuple[float, list[float], int]:
    from mcp_server.jobs import JobManager
    from mcp_server.limits import Gate
    from quality.scorer import Scorer
    from quality.settings import QualitySettings
    from refinement.comfyui import ComfyUIPool
    from refinement.orchestrator import Orchestrator
    from refinement.settings import RefinementSettings
    from storage import Index, LocalStore

    scorer = Scorer(QualitySettings(offline=True, device="cpu", weights_dir=tmp / "no-weights"))
    try:
        with ExitStack() as stack:
            comfys = [stack.enter_context(fake_comfyui(step_delay=render / STEPS)) for _ in range(k)]
            urls = [c.url for c in comfys]
            pool = ComfyUIPool(urls, max_in_flight=2)  # like two workers with one job per server each
            orch = Orchestrator(scorer, pool, LocalStore(tmp / "store-inproc"), Index(tmp / "inproc.sqlite3"),
                                RefinementSettings(comfyui_urls=urls))  # fmt: skip
            try:
                async with JobManager(orch, Gate("generations", running=2 * k, queued=1000)) as manager:
                    return await drive(manager, jobs, sequential)
            finally:
                await pool.close()
    finally:
        scorer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--servers", default="1,2,4", help="fleet sizes K, comma-separated")
    parser.add_argument("--render-seconds", type=float, default=1.0, help="fixed render time per job")
    parser.add_argument("--sequential", type=int, default=8, help="jobs run one at a time for the overhead")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    sizes = [int(x) for x in args.servers.split(",")]
    rows = []
    for k in sizes:
        for name, run in (("redis + 2 workers", distributed), ("in-process", in_process)):
            with tempfile.TemporaryDirectory() as tmp:
                wall, extra, ok = asyncio.run(run(k, args.jobs, args.render_seconds, args.sequential, Path(tmp)))
            rows.append((k, name, args.jobs / wall, extra, ok))
            print(f"  K={k} {name}: {wall:.1f} s for {args.jobs} jobs ({ok} ok)", file=sys.stderr, flush=True)

    print(f"\n{args.jobs} generations (1 attempt, 256×256, render {args.render_seconds:g} s per job, offline "
          "scorer) per fleet size K\n")  # fmt: skip
    print(f"{'K':>2s}  {'backend':18s} {'jobs/s':>7s} {'ratio':>7s} {'target':>7s} {'beyond gen+score p50':>21s}")
    base = {name: tput for k, name, tput, _, _ in rows if k == sizes[0]}
    for k, name, tput, extra, _ok in rows:
        ratio = tput / base[name]
        p50 = statistics.median(extra) * 1000 if extra else float("nan")
        print(f"{k:>2d}  {name:18s} {tput:7.2f} {ratio:6.2f}× {0.9 * k / sizes[0]:6.1f}× {p50:18.1f} ms")
    dist = [statistics.median(e) for k, n, _, e, _ in rows if n.startswith("redis") and e]
    local = [statistics.median(e) for k, n, _, e, _ in rows if n == "in-process" and e]
    if dist and local:
        overhead = (statistics.median(dist) - statistics.median(local)) * 1000
        if STAGES:
            claim = statistics.median(x for x, _ in STAGES) * 1000
            notify = statistics.median(y for _, y in STAGES) * 1000
            print(f"\nredis p50: submit → claimed by a worker {claim:.1f} ms; finished → seen by the caller "
                  f"{notify:.1f} ms; one Redis round trip (PING) {statistics.median(RTT) * 1000:.2f} ms")  # fmt: skip
        print(f"\nqueue overhead per job (redis p50 − in-process p50 of the time beyond generation and scoring): "
              f"{overhead:.1f} ms (target ≤ 20 ms)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
