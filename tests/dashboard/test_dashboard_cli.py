"""``python -m dashboard`` as a real process: serves on 127.0.0.1 and refuses an unprotected public bind."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from storage.index import Index
from tests.storage.factories import make_metadata

REPO = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"dashboard listening on (http://\S+)/ ")


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMFY_QUALITY_", "AWS_"))}
    env.update(
        {
            "COMFY_QUALITY_STORAGE_LOCAL_ROOT": str(tmp_path / "store"),
            "COMFY_QUALITY_STORAGE_INDEX_PATH": str(tmp_path / "index.sqlite3"),
            "COMFY_QUALITY_DASHBOARD_THUMBNAIL_CACHE_DIR": str(tmp_path / "thumbs"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def test_serves_on_loopback(tmp_path: Path) -> None:
    with Index(tmp_path / "index.sqlite3") as index:
        index.add(make_metadata(generation_id="from-cli"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard", "--port", "0"],
        cwd=REPO,
        env=env_for(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)

    threading.Thread(target=drain, daemon=True).start()
    try:
        url = None
        seen = []
        while url is None:
            line = lines.get(timeout=60)
            seen.append(line)
            match = LISTENING.search(line)
            url = match.group(1) if match else None
        assert url.startswith("http://127.0.0.1:"), seen
        health = httpx.get(url + "/api/health", timeout=10)
        assert health.json()["generations"] == 1
        page = httpx.get(url + "/generations/from-cli", timeout=10)
        assert page.status_code == 200 and "a red car on a mountain road" in page.text
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_public_bind_without_token_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dashboard", "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO,
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "requires a token" in done.stderr and "COMFY_QUALITY_DASHBOARD_TOKEN" in done.stderr


def test_bad_setting_is_reported(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dashboard"],
        cwd=REPO,
        env=env_for(tmp_path, COMFY_QUALITY_DASHBOARD_TIMEZONE="Mars/Olympus"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "unknown time zone 'Mars/Olympus'" in done.stderr
