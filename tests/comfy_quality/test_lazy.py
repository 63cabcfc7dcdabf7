"""Lazy package exports (comfy_quality.lazy): a submodule or a light name loads without the heavy ones, and a lazy
name resolves to the defining module's object on first use."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from comfy_quality.lazy import lazy_exports


def test_lazy_exports_import_on_first_use_and_keep_the_value(monkeypatch):
    package = types.ModuleType("lazy_pkg_under_test")
    monkeypatch.setitem(sys.modules, package.__name__, package)
    getter, lister = lazy_exports(package.__name__, {"dumps": "json"})
    assert getter("dumps") is json.dumps
    assert package.__dict__["dumps"] is json.dumps  # kept: the next access does not come back here
    assert "dumps" in lister()
    with pytest.raises(AttributeError, match="no attribute 'loads'"):
        getter("loads")


def test_the_settings_of_the_servers_load_without_their_web_stack():
    """The typo check of any entry point imports the MCP and dashboard settings; that must not load the MCP SDK,
    starlette or uvicorn (0.5 s on every CLI start), yet the packages' public names still resolve."""
    code = """
import json, sys
import mcp_server.settings, dashboard.settings, storage, quality
heavy = [m for m in ("mcp", "starlette", "uvicorn", "minio", "quality.scorer") if m in sys.modules]
import mcp_server, dashboard
resolved = [callable(mcp_server.build_server), callable(dashboard.build_app), quality.Scorer.__name__]
print(json.dumps({"heavy": heavy, "resolved": resolved}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["heavy"] == []
    assert out["resolved"] == [True, True, "Scorer"]
