"""The ``./run`` task runner: help text, ``score`` argument handling (``./run score [IMAGE [PROMPT]] [-- ARGS]``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A venv folder for ``run`` that is this interpreter: no setup, no pip."""
    root = tmp_path_factory.mktemp("venv")
    (root / "bin").mkdir()
    python = root / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    stamp = root / ".comfy-quality-installed"
    stamp.touch()
    later = (REPO / "pyproject.toml").stat().st_mtime + 3600
    os.utime(stamp, (later, later))  # newer than pyproject.toml: `run` skips its setup
    return root


def run(venv: Path, *args: str, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COMFY_QUALITY_VENV=str(venv), COMFY_QUALITY_OFFLINE="1",
               COMFY_QUALITY_WEIGHTS_DIR=str(tmp_path / "weights"), COMFY_QUALITY_DEVICE="cpu", **extra)  # fmt: skip
    command = [str(REPO / "run"), *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)


def test_help_prints_the_usage_block_only(venv, tmp_path):
    proc = run(venv, "help", tmp_path=tmp_path)
    assert proc.returncode == 0
    assert "./run score [IMAGE [PROMPT]] [-- CLI ARGS]" in proc.stdout and "./run doctor" in proc.stdout
    assert "set -euo" not in proc.stdout and "#" not in proc.stdout and "cd " not in proc.stdout
    unknown = run(venv, "frobnicate", tmp_path=tmp_path)
    assert unknown.returncode == 2 and "unknown task 'frobnicate'" in unknown.stderr
    assert "./run score" in unknown.stderr and unknown.stdout == ""


def test_score_help_shows_the_score_options(venv, tmp_path):
    proc = run(venv, "score", "--help", tmp_path=tmp_path)
    assert proc.returncode == 0
    for option in ("--prompts", "--min-grade", "--format", "--json"):
        assert option in proc.stdout


def test_score_image_prompt_then_cli_args(venv, tmp_path):
    sample = str(REPO / "examples" / "sample.jpg")
    proc = run(venv, "score", sample, "statue of a man", "--", "--json", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["prompt"] == "statue of a man" and report["image"]["width"] > 0


def test_score_with_only_cli_args_scores_the_sample_with_its_prompt(venv, tmp_path):
    proc = run(venv, "score", "--", "--json", "--metrics", "brisque", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["prompt"] == (REPO / "examples" / "sample.prompt.txt").read_text().strip()
    assert report["metrics"]["brisque"]["status"] == "ok" and report["metrics"]["niqe"]["status"] != "ok"


def test_install_and_doctor_tasks_reach_the_server_cli(venv, tmp_path):
    proc = run(venv, "install", "cursor", "--print", "--env", "COMFY_QUALITY_OFFLINE=1", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    entry = json.loads(proc.stdout)["mcpServers"]["comfy-quality"]
    assert os.path.isabs(entry["command"]) and entry["env"] == {"COMFY_QUALITY_OFFLINE": "1"}
    proc = run(venv, "doctor", "--json", "--timeout", "2", tmp_path=tmp_path, HOME=str(tmp_path),
               XDG_DATA_HOME=str(tmp_path / "data"), COMFY_QUALITY_COMFYUI_URLS="http://127.0.0.1:9")  # fmt: skip
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["ok"] is False
    assert any(c["name"] == "comfyui http://127.0.0.1:9" and c["status"] == "fail" for c in report["checks"])
