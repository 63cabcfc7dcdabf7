"""The MCP Inspector's CLI mode lists and calls the tools over stdio (npm @modelcontextprotocol/inspector).

Excluded by default (``-m inspector`` runs it). It installs the Inspector itself, once, into a cache folder
(``COMFY_QUALITY_INSPECTOR_DIR``, default ``~/.cache/comfy-quality/inspector``) through npm. 0.15.0 is the newest
release that runs on Node 20 (later ones require Node ≥ 22).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mcp_server.fakes import REPO
from tests.mcp_server.procs import server_env

pytestmark = pytest.mark.inspector

INSPECTOR_VERSION = "0.15.0"


@pytest.fixture(scope="module")
def inspector() -> Path:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("the Inspector test needs Node.js and npm on PATH")
    default = Path.home() / ".cache" / "comfy-quality" / "inspector"
    folder = Path(os.environ.get("COMFY_QUALITY_INSPECTOR_DIR", default)) / INSPECTOR_VERSION
    binary = folder / "node_modules" / ".bin" / "mcp-inspector"
    if not binary.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(folder),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}",
            ],
            check=True,
            timeout=600,
            stdout=subprocess.DEVNULL,
        )
    assert binary.exists()
    return binary


def run_cli(inspector: Path, tmp_path: Path, *args: str) -> dict:
    env = server_env(tmp_path)
    passed = [
        arg
        for k, v in env.items()
        if k.startswith("COMFY_QUALITY_") or k == "PYTHONUNBUFFERED"
        for arg in ("-e", f"{k}={v}")
    ]
    proc = subprocess.run(
        [str(inspector), "--cli", *passed, sys.executable, "-m", "mcp_server", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    return json.loads(proc.stdout)


def test_inspector_lists_the_tools(inspector: Path, tmp_path: Path):
    listed = run_cli(inspector, tmp_path, "--method", "tools/list")
    tools = {t["name"]: t for t in listed["tools"]}
    assert set(tools) == {
        "score_image",
        "generate_quality",
        "generation_status",
        "cancel_generation",
        "list_generations",
    }
    assert tools["score_image"]["outputSchema"]["properties"]["grade"]


def test_inspector_calls_score_image_and_generate_quality(inspector: Path, tmp_path: Path):
    scored = run_cli(
        inspector,
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "score_image",
        "--tool-arg",
        "image=midjourney_normal_000.jpg",
        "--tool-arg",
        "prompt=statue of a man",
    )
    assert scored["isError"] is False, scored["content"][0]["text"]
    assert scored["structuredContent"]["grade"] in "ABCDF"
    assert scored["structuredContent"]["metrics"]["edge_density"]["status"] == "ok"
    generated = run_cli(
        inspector,
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "generate_quality",
        "--tool-arg",
        "prompt=a red fox",
        "--tool-arg",
        "max_attempts=2",
    )
    assert generated["isError"] is False and generated["structuredContent"]["status"] == "success"
    refused = run_cli(
        inspector,
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "score_image",
        "--tool-arg",
        "image=/etc/passwd",
    )
    assert refused["isError"] is True and "outside the allowed folders" in refused["content"][0]["text"]
