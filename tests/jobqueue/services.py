"""Real services for the distributed-jobs tests, each a subprocess on 127.0.0.1 with free ports:
``redis-server`` (Debian's package), fake ComfyUI servers, ``comfy-quality-worker`` processes and MCP server
replicas over streamable HTTP."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.mcp_server.procs import http_server
from tests.storage.seaweed import free_ports

REPO = Path(__file__).resolve().parents[2]


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


class RedisServer:
    """``redis-server`` on a free port; its data (append-only file) survives :meth:`stop` / :meth:`start`."""

    def __init__(self, data_dir: Path) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)[0]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def start(self, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.data_dir), "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if not wait_until(self.ping, timeout):
            raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self.proc = None


@dataclass
class Proc:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    url: str = ""

    def kill(self) -> None:
        """SIGKILL: no cleanup at all (what a crash or the OOM killer does)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(15)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)

    def log(self) -> str:
        return "".join(self.lines[-60:])


def _start(cmd: list[str], env: dict[str, str], ready: Callable[[str], str | None], timeout: float,
           what: str, stream: str = "stderr") -> Proc:  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if stream == "stdout" else subprocess.DEVNULL,
        stderr=subprocess.PIPE if stream == "stderr" else subprocess.DEVNULL, text=True,
    )  # fmt: skip
    found: queue.Queue[str] = queue.Queue()
    p = Proc(proc)

    def drain() -> None:
        pipe = proc.stderr if stream == "stderr" else proc.stdout
        assert pipe is not None
        for line in pipe:
            p.lines.append(line)
            value = ready(line)
            if value is not None:
                found.put(value)
        found.put("")

    threading.Thread(target=drain, daemon=True).start()
    try:
        value = found.get(timeout=timeout)
    except queue.Empty:
        value = ""
    if not value:
        p.stop()
        raise AssertionError(f"{what} did not start:\n{p.log()}")
    p.url = value
    return p


@contextmanager
def fake_comfyui(step_delay: float = 0.0) -> Iterator[Proc]:
    """A fake ComfyUI server subprocess (``step_delay`` seconds per sampler step)."""
    cmd = [sys.executable, "-m", "tests.fakes.comfyui_server", "--port", "0", "--step-delay", str(step_delay)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def ready(line: str) -> str | None:
        return line.strip().rsplit(" ", 1)[-1] if "listening on" in line else None

    p = _start(cmd, env, ready, 60, "fake ComfyUI", stream="stdout")
    try:
        yield p
    finally:
        p.stop()


def shared_env(tmp_path: Path, redis_url: str, **extra: str) -> dict[str, str]:
    """Settings every process of one test deployment shares (one local store and index on this machine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFY_QUALITY_")}
    env.update({
        "COMFY_QUALITY_OFFLINE": "1",
        "COMFY_QUALITY_DEVICE": "cpu",
        "COMFY_QUALITY_WEIGHTS_DIR": str(tmp_path / "no-weights"),
        "COMFY_QUALITY_STORAGE_BACKEND": "local",
        "COMFY_QUALITY_STORAGE_LOCAL_ROOT": str(tmp_path / "store"),
        "COMFY_QUALITY_STORAGE_INDEX_PATH": str(tmp_path / "index.sqlite3"),
        "COMFY_QUALITY_STORAGE_SPOOL_DIR": str(tmp_path / "spool"),
        "COMFY_QUALITY_JOBS_URL": redis_url,
        "COMFY_QUALITY_JOBS_NAME": "cqtest",
        "COMFY_QUALITY_JOBS_REDELIVERY_SECONDS": "4",  # short for the tests; live workers renew every 1 s
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
    })  # fmt: skip
    env.update(extra)
    return env


def start_worker(tmp_path: Path, redis_url: str, comfy_urls: list[str], name: str, **extra: str) -> Proc:
    env = shared_env(tmp_path, redis_url, COMFY_QUALITY_COMFYUI_URLS=",".join(comfy_urls), **extra)
    cmd = [sys.executable, "-m", "jobqueue.worker", "--name", name]

    def ready(line: str) -> str | None:
        return name if f"worker {name} ready" in line else None

    return _start(cmd, env, ready, 180, f"worker {name}")


@contextmanager
def worker(tmp_path: Path, redis_url: str, comfy_urls: list[str], name: str, **extra: str) -> Iterator[Proc]:
    p = start_worker(tmp_path, redis_url, comfy_urls, name, **extra)
    try:
        yield p
    finally:
        p.stop()


@contextmanager
def replica(tmp_path: Path, redis_url: str, **extra: str) -> Iterator[str]:
    """An MCP server replica (stateless streamable HTTP, the built-in wiring); yields its URL."""
    env = shared_env(
        tmp_path, redis_url, COMFY_QUALITY_MCP_COMPONENTS="", COMFY_QUALITY_MCP_STATELESS_HTTP="true", **extra
    )
    env = {k: v for k, v in env.items() if k.startswith("COMFY_QUALITY_") or k == "PYTHONPATH"}
    with http_server(tmp_path, "--transport", "http", **env) as server:
        yield server.url


@asynccontextmanager
async def mcp_client(url: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=120))
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        yield client


def fake_prompts(comfy_url: str) -> list[dict]:
    """The workflows POSTed to a fake ComfyUI server (``/_fake/requests``)."""
    import httpx

    requests = httpx.get(f"{comfy_url}/_fake/requests", timeout=10).json()["requests"]
    return [r["json"]["prompt"] for r in requests if r["method"] == "POST" and r["path"].endswith("/prompt")]


def fake_state(comfy_url: str) -> dict:
    import httpx

    return dict(httpx.get(f"{comfy_url}/_fake/state", timeout=10).json())


def sampler_steps(workflow: dict) -> list[int]:
    return [int(n["inputs"]["steps"]) for n in workflow.values() if "KSampler" in str(n.get("class_type"))]


def job_record(redis_url: str, job_id: str, name: str = "cqtest"):  # type: ignore[no-untyped-def]
    """The job's record as Redis holds it (None when absent)."""
    import redis

    from jobqueue.records import JobKeys, JobRecord

    raw = redis.Redis.from_url(redis_url, socket_timeout=5).hgetall(JobKeys(name).job(job_id))
    return JobRecord.from_hash(raw) if raw else None


async def poll(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> object:
    """Await ``predicate()`` (sync or async) until truthy, within an overall timeout."""
    import inspect

    import anyio

    with anyio.fail_after(timeout):
        while True:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            await anyio.sleep(interval)
    raise AssertionError(what)  # pragma: no cover


@contextmanager
def workers(tmp_path: Path, redis_url: str, comfy_urls: list[str], names: list[str], **extra: str) -> Iterator[
    dict[str, Proc]
]:
    """Several workers, started in parallel (each loads the scoring models)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(names)) as pool:
        futures = {n: pool.submit(start_worker, tmp_path, redis_url, comfy_urls, n, **extra) for n in names}
    started: dict[str, Proc] = {}
    try:
        for n, f in futures.items():
            started[n] = f.result()
        yield started
    finally:
        for f in futures.values():
            if f.exception() is None:
                f.result().stop()
