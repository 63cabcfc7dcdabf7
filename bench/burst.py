"""A burst against the MCP server over streamable HTTP: back-pressure, latency and memory, with and without
the scoring pixel budget.

    python bench/burst.py [--scores 50] [--generations 10] [--big-side 7000] [--variants burst,big,big-unbounded]

Each variant starts a fresh server (``python -m mcp_server --transport http`` on 127.0.0.1, the built-in wiring:
the real orchestrator on the fake ComfyUI of ``tests/fakes`` (a subprocess), a local store and the SQLite index
in a temporary folder, the scorer offline on CPU) and fires every call at once, one MCP session per call:

* ``burst``: ``--scores`` ``score_image`` calls (distinct 512-px PNGs, by path under the server's root) and
  ``--generations`` ``generate_quality`` calls (sd15, 256 px, 2 attempts); a generation still running when its
  call returns is followed with ``generation_status`` until it ends;
* ``big``: the same burst plus one ``score_image`` of a ``--big-side``² PNG (7000² = 49 MP, a smooth
  pattern: a few MB encoded), fired first, with the default budget (``COMFY_QUALITY_SCORING_MAX_PIXELS`` = 8 MiP);
* ``big-unbounded``: the same with the budget and the memory estimate off (``COMFY_QUALITY_SCORING_MAX_PIXELS=0``,
  ``COMFY_QUALITY_MAX_IMAGE_MEMORY=0``): the behaviour before the limits, as the baseline.

Printed per variant and tool: successes, "server busy" answers, other errors, p50 / max latency of the call; the
big call's latency and answer; the peak RSS of the server process (``VmHWM`` from ``/proc``, read before it
stops; Linux only) and its RSS when idle before the burst. The server's default bounds apply (2 scores at once +
16 queued, 1 generation + 4 queued): the rest is expected to be answered "busy" at once.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mcp import Client  # noqa: E402

from tests.fakes.processes import fake_comfyui_process  # noqa: E402
from tests.mcp_server.procs import ServerProcess, http_server  # noqa: E402

PROMPT = "a lighthouse at dusk"
GENERATION = {"prompt": PROMPT, "workflow": "sd15", "width": 256, "height": 256, "steps": 6, "max_attempts": 2,
              "quality_threshold": 10.0, "include_preview": False, "return_scores": False}  # fmt: skip


def make_images(folder: Path, count: int, big_side: int) -> tuple[list[str], str]:
    """``count`` distinct 512-px PNGs and one ``big_side``² PNG (a smooth pattern: large, but small encoded)."""
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        base = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        img = Image.fromarray(base, "RGB").resize((512, 512), Image.Resampling.BICUBIC)
        names.append(f"small-{i:03d}.png")
        img.save(folder / names[-1])
    big = folder / f"big-{big_side}.png"
    if not big.exists():
        ramp = np.linspace(0, 255, big_side, dtype=np.float32)
        wave = (np.sin(np.arange(big_side, dtype=np.float32) / 37.0) * 20).astype(np.float32)
        g = np.clip(ramp[:, None] * 0.5 + ramp[None, :] * 0.5 + wave[None, :], 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(np.stack([g, g[::-1], g.T], -1), "RGB").save(buf, "PNG", compress_level=9)
        big.write_bytes(buf.getvalue())
    return names, big.name


def rss_kib(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@contextmanager
def mcp_http_server(folder: Path, comfy_url: str, extra_env: dict[str, str]) -> Iterator[ServerProcess]:
    """The MCP server over streamable HTTP with its built-in wiring (orchestrator, local store, index), started
    the way the tests start it (:func:`tests.mcp_server.procs.http_server`)."""
    env = {
        "COMFY_QUALITY_MCP_COMPONENTS": "",  # the built-in wiring
        "COMFY_QUALITY_DEVICE": os.environ.get("COMFY_QUALITY_DEVICE", "cpu"),
        "COMFY_QUALITY_WEIGHTS_DIR": os.environ.get("COMFY_QUALITY_WEIGHTS_DIR", str(folder / "no-weights")),
        "COMFY_QUALITY_MCP_ROOTS": str(folder),
        "COMFY_QUALITY_MCP_LOG_LEVEL": "INFO",
        "COMFY_QUALITY_COMFYUI_URLS": comfy_url,
        "COMFY_QUALITY_STORAGE_BACKEND": "local",
        "PYTHONPATH": str(REPO),
        **extra_env,
    }
    with http_server(folder, "--transport", "http", timeout=180, **env) as server:
        yield server


@dataclass
class Outcome:
    tool: str
    seconds: float
    kind: str  # ok / busy / error
    text: str = ""
    final: str | None = None  # a generation's final status
    big: bool = False


def _text(result: Any) -> str:
    block = result.content[0] if result.content else None
    return getattr(block, "text", "") or ""


async def call(url: str, tool: str, args: dict[str, Any], outcomes: list[Outcome], big: bool = False) -> None:
    t0 = time.perf_counter()

    def add(outcome: Outcome) -> None:
        outcome.big = big
        outcomes.append(outcome)

    try:
        async with Client(url, read_timeout_seconds=600) as client:
            result = await client.call_tool(tool, args)
            seconds = time.perf_counter() - t0
            text = _text(result)
            if result.is_error:
                kind = "busy" if "server busy" in text else "error"
                add(Outcome(tool, seconds, kind, text[:200]))
                return
            final = None
            if tool == "generate_quality":
                out = result.structured_content or {}
                deadline = time.monotonic() + 600
                while not out.get("done") and time.monotonic() < deadline:
                    polled = await client.call_tool(
                        "generation_status", {"job_id": out["job_id"], "include_preview": False, "wait_seconds": 20}
                    )
                    out = polled.structured_content or {}
                final = out.get("status")
            if big:
                sc = result.structured_content or {}
                image, timing = sc.get("image", {}), sc.get("timing", {})
                text = (f"grade {sc.get('grade')}, image {image.get('width')}x{image.get('height')} scored at "
                        f"{image.get('scored_width') or image.get('width')}x"
                        f"{image.get('scored_height') or image.get('height')}, queue {timing.get('queue_seconds')} s, "
                        f"scoring {timing.get('score_seconds')} s")  # fmt: skip
            add(Outcome(tool, seconds, "ok", text[:200], final))
    except Exception as exc:  # a transport failure counts as an error of that call
        add(Outcome(tool, time.perf_counter() - t0, "error", f"{type(exc).__name__}: {exc}"[:200]))


async def fire(url: str, smalls: list[str], generations: int, big: str | None) -> tuple[list[Outcome], float]:
    outcomes: list[Outcome] = []
    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        if big is not None:
            tg.start_soon(call, url, "score_image", {"image": big, "prompt": PROMPT}, outcomes, True, name="big")
            await anyio.sleep(0.2)  # let it be admitted first (it takes a scoring slot)
        for i, name in enumerate(smalls):
            tg.start_soon(call, url, "score_image", {"image": name, "prompt": PROMPT}, outcomes)
            if i < generations:
                tg.start_soon(call, url, "generate_quality", GENERATION | {"seed": i}, outcomes)
        for i in range(len(smalls), generations):
            tg.start_soon(call, url, "generate_quality", GENERATION | {"seed": i}, outcomes)
    return outcomes, time.perf_counter() - t0


async def warm(url: str, image: str) -> None:
    async with Client(url, read_timeout_seconds=600) as client:
        result = await client.call_tool("score_image", {"image": image})
        if result.is_error:
            raise RuntimeError(f"warm-up call failed: {_text(result)[:300]}")


def summarize(name: str, outcomes: list[Outcome], wall: float, idle_kib: int | None, peak_kib: int | None) -> None:
    print(f"\n== {name}: {len(outcomes)} calls in {wall:.1f} s; server RSS idle {fmt_mib(idle_kib)}, "
          f"peak {fmt_mib(peak_kib)}")  # fmt: skip
    print(f"  {'tool':<18} {'ok':>4} {'busy':>5} {'error':>6} {'p50 s':>8} {'max s':>8}")
    smalls = [o for o in outcomes if not o.big]
    for tool in ("score_image", "generate_quality"):
        mine = [o for o in smalls if o.tool == tool]
        if not mine:
            continue
        lat = [o.seconds for o in mine]
        counts = {k: sum(o.kind == k for o in mine) for k in ("ok", "busy", "error")}
        print(f"  {tool:<18} {counts['ok']:>4} {counts['busy']:>5} {counts['error']:>6} "
              f"{statistics.median(lat):>8.2f} {max(lat):>8.2f}")  # fmt: skip
        finals = [o.final for o in mine if o.final]
        if finals:
            print(f"  {'':<18} generations ended: " + ", ".join(f"{s} {finals.count(s)}" for s in sorted(set(finals))))
        errors = [o.text for o in mine if o.kind == "error"]
        if errors:
            print(f"  {'':<18} first error: {errors[0][:160]}")
    for o in (o for o in outcomes if o.big):
        print(f"  large-image call: {o.kind} in {o.seconds:.1f} s: {o.text[:220]!r}")
    ok_scores = [o.seconds for o in smalls if o.tool == "score_image" and o.kind == "ok"]
    if ok_scores:
        print(f"  small score_image calls answered: p50 {statistics.median(ok_scores):.2f} s, "
              f"max {max(ok_scores):.2f} s")  # fmt: skip


def fmt_mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:,.0f} MiB"


VARIANTS: dict[str, tuple[bool, dict[str, str]]] = {
    "burst": (False, {}),
    "big": (True, {}),
    "big-unbounded": (True, {"COMFY_QUALITY_SCORING_MAX_PIXELS": "0", "COMFY_QUALITY_MAX_IMAGE_MEMORY": "0"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scores", type=int, default=50)
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--big-side", type=int, default=7000, help="side of the large image (7000: 49 MP)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    args = parser.parse_args()
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}")

    with tempfile.TemporaryDirectory(prefix="cq-burst-") as tmp:
        folder = Path(tmp)
        smalls, big = make_images(folder, args.scores, args.big_side)
        big_info = f"{args.big_side}x{args.big_side}, {(folder / big).stat().st_size / 1e3:.0f} KB"
        print(f"burst: {args.scores} score_image + {args.generations} generate_quality over streamable HTTP, "
              f"one session per call; large image {big_info}; cpu count {os.cpu_count()}")  # fmt: skip
        with fake_comfyui_process() as comfy_url:
            for variant in chosen:
                with_big, env = VARIANTS[variant]
                with mcp_http_server(folder, comfy_url, env) as server:
                    anyio.run(warm, server.url, smalls[0])
                    idle = rss_kib(server.proc.pid, "VmRSS")
                    outcomes, wall = anyio.run(fire, server.url, smalls, args.generations, big if with_big else None)
                    peak = rss_kib(server.proc.pid, "VmHWM")
                settings = ", ".join(f"{k}={v}" for k, v in env.items()) or "defaults"
                summarize(f"{variant} ({settings})", outcomes, wall, idle, peak)


if __name__ == "__main__":
    main()
