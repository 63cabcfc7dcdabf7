"""mcp.json launches what exists, with valid settings; the README documents every server setting."""

from __future__ import annotations

import json

from mcp_server.settings import McpSettings
from tests.mcp_server.fakes import REPO


def test_mcp_json_has_entries_for_each_host_with_valid_settings(monkeypatch):
    config = json.loads((REPO / "mcp.json").read_text())
    desktop = config["mcpServers"]["comfy-quality"]  # Claude Desktop / Cursor
    vscode = config["servers"]["comfy-quality"]  # VS Code
    assert desktop["command"].endswith("/.venv/bin/comfy-quality-mcp")
    assert vscode["type"] == "stdio" and vscode["command"] == "${workspaceFolder}/.venv/bin/comfy-quality-mcp"
    assert config["servers"]["comfy-quality-http"]["url"] == "http://127.0.0.1:8765/mcp"
    token_input = config["servers"]["comfy-quality-http"]["headers"]["Authorization"].split("${input:")[1][:-1]
    assert token_input in {i["id"] for i in config["inputs"]} and config["inputs"][0]["password"] is True
    known = {f"COMFY_QUALITY_MCP_{n.upper()}" for n in McpSettings.model_fields}
    for entry in (desktop, vscode):
        for key, value in entry["env"].items():
            assert key in known or key.startswith("COMFY_QUALITY_"), key
            monkeypatch.setenv(key, value)
        McpSettings(_env_file=None)  # the values parse


def test_pyproject_console_script_points_at_main():
    text = (REPO / "pyproject.toml").read_text()
    assert 'comfy-quality-mcp = "mcp_server.__main__:main"' in text
    from mcp_server.__main__ import main

    assert callable(main)


def test_readme_documents_every_server_setting():
    readme = (REPO / "README.md").read_text()
    missing = [f"COMFY_QUALITY_MCP_{n.upper()}" for n in McpSettings.model_fields]
    missing = [m for m in missing if f"`{m}`" not in readme]
    assert missing == []
