"""Start test servers as real subprocesses (for end-to-end tests of CLIs and the MCP server)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def fake_comfyui_process(timeout: float = 60.0) -> Iterator[str]:
    """``python -m tests.fakes.comfyui_server --port 0`` in a subprocess; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.comfyui_server", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    url: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "listening on" in line and not url:
                url.append(line.strip().rsplit(" ", 1)[-1])
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(timeout) or not url:
            raise RuntimeError("the fake ComfyUI subprocess did not start")
        yield url[0]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
