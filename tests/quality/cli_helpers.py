"""What the CLI test modules share: the offline, CPU-only environment (imported as an autouse fixture) and a
runner that captures stdout."""

import io

import pytest

from quality.cli import main


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("COMFY_QUALITY_OFFLINE", "1")
    monkeypatch.setenv("COMFY_QUALITY_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("COMFY_QUALITY_DEVICE", "cpu")


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()
