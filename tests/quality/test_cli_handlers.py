"""``score``'s plug-in point: quality imports nothing of the other packages; the job queue takes ``score`` for
``s3://`` sources (and a folder when COMFY_QUALITY_JOBS_URL is set) through the ``comfy_quality.score_handlers``
entry-point group, which the project's metadata declares."""

from __future__ import annotations

import importlib.metadata
import logging
import tomllib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from quality.cli import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, SCORE_HANDLERS, score_handlers
from tests.quality.cli_helpers import offline, run  # noqa: F401 (offline: autouse fixture)

REPO = Path(__file__).resolve().parents[2]
calls: list[tuple[list[str], str | None]] = []


def taking_everything(args: Any, items: list[str], prompt: str | None, out: Any) -> int | None:
    calls.append((list(items), prompt))
    out.write("scored elsewhere\n")
    return 7


def taking_nothing(args: Any, items: list[str], prompt: str | None, out: Any) -> int | None:
    calls.append((list(items), prompt))
    return None


def _install(monkeypatch: pytest.MonkeyPatch, *targets: tuple[str, str]) -> None:
    """Only these handlers are installed (name, "module:attr")."""
    points = importlib.metadata.EntryPoints(
        importlib.metadata.EntryPoint(name=name, value=value, group=SCORE_HANDLERS) for name, value in targets
    )

    def entry_points(**params: Any) -> Any:
        return points.select(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    calls.clear()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "one.png"
    Image.new("RGB", (64, 48), (120, 80, 40)).save(path)
    return path


def test_the_projects_metadata_declares_the_job_queues_handler() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"][SCORE_HANDLERS]
    assert declared == {"jobs": "jobqueue.handlers:score_handler"}
    installed = {p.name: p.value for p in importlib.metadata.entry_points(group=SCORE_HANDLERS)}
    assert installed == declared, "the installed metadata is older than pyproject.toml: run `pip install -e .`"
    from jobqueue.handlers import score_handler

    assert score_handlers() == [score_handler]


def test_a_handler_that_answers_runs_the_command(monkeypatch: pytest.MonkeyPatch, image: Path) -> None:
    _install(monkeypatch, ("elsewhere", f"{__name__}:taking_everything"))
    code, out = run("score", str(image), "a red fox")
    assert (code, out) == (7, "scored elsewhere\n")
    assert calls == [([str(image)], "a red fox")]


def test_a_handler_that_declines_leaves_the_command_to_the_local_scorer(
    monkeypatch: pytest.MonkeyPatch, image: Path
) -> None:
    _install(monkeypatch, ("declines", f"{__name__}:taking_nothing"))
    code, out = run("score", str(image), "--json")
    assert code == EXIT_OK and '"composite"' in out
    assert calls == [([str(image)], None)]


def test_a_handler_that_cannot_be_imported_is_skipped_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, image: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _install(monkeypatch, ("gone", "no_such_package_here.handlers:score"), ("declines", f"{__name__}:taking_nothing"))
    caplog.set_level(logging.WARNING, logger="quality.cli")
    assert score_handlers() == [taking_nothing]
    assert "gone" in caplog.text and "not loaded" in caplog.text


def test_an_s3_source_with_no_handler_installed_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _install(monkeypatch)
    code, out = run("score", "s3://gallery/shots")
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and out == ""
    assert "s3:// sources are scored by the comfy-quality workers" in err and SCORE_HANDLERS in err


def test_the_job_queue_takes_s3_sources_and_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], image: Path
) -> None:
    monkeypatch.delenv("COMFY_QUALITY_JOBS_URL", raising=False)
    code, _ = run("score", "s3://gallery/shots")
    assert code == EXIT_CONFIG and "COMFY_QUALITY_JOBS_URL" in capsys.readouterr().err
    # a local image with no queue configured stays here
    code, out = run("score", str(image), "--json")
    assert code == EXIT_OK and '"composite"' in out
