"""What does MCP add to score_image? Per-call latency and throughput, in-process vs through the server.

    python bench/mcp_overhead.py [--calls 100] [--concurrency 16] [--size 256]

* in-process: ``Scorer.score(bytes, prompt)`` on a small image (the floor);
* MCP over stdio and over streamable HTTP: ``score_image`` on the same image (by path, under the server's roots),
  the real server started as ``python -m mcp_server`` (offline, CPU), SDK client;
* throughput: ``--concurrency`` clients at once (HTTP: one session each; stdio: concurrent calls on one session;
  in-process: as many threads), total calls per second.

Target: ≤ 20 ms added per call (p50). The metric set is whatever runs offline on this machine (printed); the
overhead does not depend on it. Sequential calls are timed one at a time after a warm-up, round-robin over the
three paths so that machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import anyio
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

PROMPT = "statue of a man"
SOURCE = REPO / "tests" / "data" / "agiqa" / "midjourney_normal_000.jpg"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def make_image(folder: Path, size: int) -> Path:
    img = Image.open(SOURCE).convert("RGB")
    img.thumbnail((size, size))
    path = folder / "bench.png"
    img.save(path)
    return path


def server_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFY_QUALITY_MCP_")}
    env.update(
        {
            "COMFY_QUALITY_OFFLINE": env.get("COMFY_QUALITY_OFFLINE", "1"),
            "COMFY_QUALITY_DEVICE": env.get("COMFY_QUALITY_DEVICE", "cpu"),
            "COMFY_QUALITY_MCP_ROOTS": str(folder),
            "COMFY_QUALITY_MCP_SCORE_QUEUE": "64",
            "COMFY_QUALITY_MCP_LOG_LEVEL": "WARNING",
        }
    )
    return env


@contextmanager
def http_server(folder: Path) -> Iterator[str]:
    env = server_env(folder) | {"COMFY_QUALITY_MCP_LOG_LEVEL": "INFO"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_server", "--transport", "http", "--port", "0"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    found: queue.Queue[str] = queue.Queue()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                found.put(match.group(1))
        found.put("")

    threading.Thread(target=drain, daemon=True).start()
    try:
        url = found.get(timeout=180)
        if not url:
            raise RuntimeError("the HTTP server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def concurrent_calls(calls: list[Callable[[], Awaitable[object]]], per_client: int) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def worker(call: Callable[[], Awaitable[object]]) -> None:
        for _ in range(per_client):
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for call in calls:
            tg.start_soon(worker, call)
    return len(latencies) / (time.perf_counter() - t0), latencies


def checked(client: Client, image: str) -> Callable[[], Awaitable[object]]:
    async def call() -> object:
        result = await client.call_tool("score_image", {"image": image, "prompt": PROMPT})
        if result.is_error:
            raise RuntimeError(result.content[0].text)  # type: ignore[union-attr]
        return result

    return call


async def bench_all(folder: Path, image: Path, n: int, concurrency: int, per_client: int) -> dict[str, dict]:
    """Sequential calls interleaved round-robin over the three paths (so machine noise hits them alike), then
    each path's throughput on its own."""
    from quality.scorer import Scorer

    scorer = Scorer()
    data = image.read_bytes()
    report = scorer.score(data, PROMPT)

    async def in_process() -> object:
        return scorer.score(data, PROMPT)  # blocking on purpose: nothing else runs during the sequential phase

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server"], env=server_env(folder), cwd=str(REPO)
    )
    with http_server(folder) as url:
        async with Client(params, read_timeout_seconds=300) as stdio, Client(url, read_timeout_seconds=300) as http:
            paths = {
                "in-process scorer": in_process,
                "MCP stdio": checked(stdio, image.name),
                "MCP streamable HTTP": checked(http, image.name),
            }
            seq: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(5):
                for call in paths.values():
                    await call()
            for _ in range(n):
                for name, call in paths.items():
                    t0 = time.perf_counter()
                    await call()
                    seq[name].append(time.perf_counter() - t0)
            stdio_rate, stdio_lat = await concurrent_calls([paths["MCP stdio"]] * concurrency, per_client)
        clients = [Client(url, read_timeout_seconds=300) for _ in range(concurrency)]
        for c in clients:
            await c.__aenter__()
        try:
            for c in clients:
                await checked(c, image.name)()  # warm each session
            http_rate, http_lat = await concurrent_calls([checked(c, image.name) for c in clients], per_client)
        finally:
            for c in reversed(clients):
                await c.__aexit__(None, None, None)
    base_rate, base_lat = inprocess_throughput(scorer, data, concurrency, per_client)
    scorer.close()
    return {
        "in-process scorer": {
            "seq": seq["in-process scorer"],
            "rate": base_rate,
            "lat": base_lat,
            "metrics": report.coverage.metrics_ran,
            "device": report.device,
        },
        "MCP stdio": {"seq": seq["MCP stdio"], "rate": stdio_rate, "lat": stdio_lat},
        "MCP streamable HTTP": {"seq": seq["MCP streamable HTTP"], "rate": http_rate, "lat": http_lat},
    }


def inprocess_throughput(scorer: object, data: bytes, concurrency: int, per_client: int) -> tuple[float, list[float]]:
    lat: list[float] = []

    def worker() -> None:
        for _ in range(per_client):
            t0 = time.perf_counter()
            scorer.score(data, PROMPT)  # type: ignore[attr-defined]
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    return len(lat) / (time.perf_counter() - t0), lat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="sequential calls per path")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=10, help="calls per concurrent client")
    parser.add_argument("--size", type=int, default=256, help="long side of the test image")
    args = parser.parse_args()
    os.environ.setdefault("COMFY_QUALITY_OFFLINE", "1")
    os.environ.setdefault("COMFY_QUALITY_DEVICE", "cpu")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = make_image(folder, args.size)
        print(
            f"image: {image.stat().st_size} bytes, long side {args.size} px; {args.calls} sequential calls, "
            f"{args.concurrency} concurrent clients x {args.per_client} calls",
            file=sys.stderr,
        )
        results = anyio.run(bench_all, folder, image, args.calls, args.concurrency, args.per_client)

    base = results["in-process scorer"]
    floor = statistics.median(base["seq"])
    print(f"\nmetrics run: {', '.join(base['metrics'])} on {base['device']} (cores: {os.cpu_count()})")
    print(f"\n{'path':<24}{'p50 ms':>9}{'p95 ms':>9}{'added p50':>11}   {'throughput':>12}{'p50 ms @conc':>14}")
    for name, res in results.items():
        seq, lat = res["seq"], res["lat"]
        p50 = statistics.median(seq)
        added = "" if res is base else f"{(p50 - floor) * 1000:+.1f}"
        print(
            f"{name:<24}{p50 * 1000:>9.1f}{percentile(seq, 95) * 1000:>9.1f}{added:>11}   "
            f"{res['rate']:>8.1f} /s {statistics.median(lat) * 1000:>12.1f}"
        )
    print("\ntarget: ≤ 20 ms added per call (p50)")


if __name__ == "__main__":
    main()
