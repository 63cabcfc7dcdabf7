"""Start the real server as a subprocess (``python -m mcp_server``) with in-test components."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.mcp_server.fakes import AGIQA, REPO

LISTENING = re.compile(r"listening on (http://\S+)")


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFY_QUALITY_")}
    env.update(
        {
            "COMFY_QUALITY_OFFLINE": "1",
            "COMFY_QUALITY_DEVICE": "cpu",
            "COMFY_QUALITY_WEIGHTS_DIR": str(tmp_path / "no-weights"),
            "COMFY_QUALITY_MCP_ROOTS": str(AGIQA),
            "COMFY_QUALITY_MCP_COMPONENTS": "tests.mcp_server.fakes:subprocess_components",
            "COMFY_QUALITY_MCP_DEFAULT_WAIT_SECONDS": "20",
            "COMFY_QUALITY_TEST_STORE": str(tmp_path / "store"),
            "COMFY_QUALITY_STORAGE_LOCAL_ROOT": str(tmp_path / "store"),
            "COMFY_QUALITY_STORAGE_INDEX_PATH": str(tmp_path / "index.sqlite3"),
            "COMFY_QUALITY_STORAGE_SPOOL_DIR": str(tmp_path / "spool"),
            "COMFY_QUALITY_DASHBOARD_THUMBNAIL_CACHE_DIR": str(tmp_path / "thumbs"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    url: str = ""
    lines: list[str] = field(default_factory=list)


@contextmanager
def http_server(tmp_path: Path, *args: str, timeout: float = 120, **env: str) -> Iterator[ServerProcess]:
    """Run ``python -m mcp_server ARGS`` and yield once it logs its listening URL (stderr is drained meanwhile)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_server", "--port", "0", *args],
        cwd=REPO,
        env=server_env(tmp_path, **env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    found: queue.Queue[str] = queue.Queue()
    server = ServerProcess(proc)

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            server.lines.append(line)
            match = LISTENING.search(line)
            if match:
                found.put(match.group(1))
        found.put("")  # the process ended

    threading.Thread(target=drain, daemon=True).start()
    try:
        try:
            server.url = found.get(timeout=timeout)
        except queue.Empty:
            server.url = ""
        if not server.url:
            raise AssertionError("the server did not start:\n" + "".join(server.lines[-40:]))
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
