"""The root conftest's isolation: neither the developer's environment nor a ``.env`` file reaches a test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dashboard.settings import DashboardSettings
from mcp_server.settings import McpSettings
from quality.settings import QualitySettings
from refinement.settings import RefinementSettings
from storage.settings import StorageSettings


def test_no_settings_variable_is_visible() -> None:
    leaked = [n for n in os.environ if n.startswith(("COMFY_QUALITY_", "AWS_")) or n == "HF_HUB_OFFLINE"]
    assert leaked == []


def test_a_dotenv_file_in_the_working_directory_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "COMFY_QUALITY_DEVICE=cuda:7\nCOMFY_QUALITY_ATTEMPT_TIMEOUT_SECONDS=3\nCOMFY_QUALITY_MCP_TRANSPORT=sse\n"
        "COMFY_QUALITY_STORAGE_BACKEND=s3\nCOMFY_QUALITY_DASHBOARD_PAGE_SIZE=7\n"
    )
    monkeypatch.chdir(tmp_path)
    assert QualitySettings().device == "auto"
    assert RefinementSettings().attempt_timeout_seconds != 3
    assert McpSettings().transport != "sse"
    assert StorageSettings().backend == "local"
    # a test that checks .env handling asks for the file explicitly
    assert QualitySettings(_env_file=tmp_path / ".env").device == "cuda:7"  # type: ignore[call-arg]
    assert DashboardSettings().page_size == 48
