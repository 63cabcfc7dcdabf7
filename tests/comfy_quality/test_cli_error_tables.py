"""Each command line's one error table: a library error → its message on stderr and its exit code; anything else →
logged with its traceback (through logging, to stderr), a short generic message, exit code 70, and nothing of the
exception's text or traceback in the answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from comfy_quality.boundary import EXIT_INTERNAL, CliErrors, ErrorTable
from comfy_quality.errors import ComfyQualityError, SettingsError

SECRET = "s3cr3t-input-/etc/shadow"


class Boom(RuntimeError):
    """A bug: a non-library exception whose text must not reach the user."""


@pytest.fixture(autouse=True)
def _no_stale_log_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start from a root logger without handlers: an earlier test's CLI may have left one writing to a stream its
    capture has closed since (pytest adds its own capture handler for the test's call afterwards)."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])


def _raiser(exc: BaseException) -> Callable[..., Any]:
    def raise_it(*_args: Any, **_kwargs: Any) -> Any:
        raise exc

    return raise_it


def _async_raiser(exc: BaseException) -> Callable[..., Any]:
    async def raise_it(*_args: Any, **_kwargs: Any) -> Any:
        raise exc

    return raise_it


def _assert_unexpected_answered(code: int, err: str, caplog: pytest.LogCaptureFixture) -> None:
    assert code == EXIT_INTERNAL
    assert "internal error (Boom)" in err
    assert SECRET not in err and "Traceback" not in err and len(err) < 300
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is Boom]
    assert logged, "the unexpected exception was not logged with its traceback"
    assert logged[0].levelno == logging.ERROR
    assert SECRET in str(logged[0].exc_info[1])  # the log keeps what the answer leaves out


# -- the table itself ------------------------------------------------------------------------------------------
def test_cli_errors_answers_library_errors_with_their_message_and_code(capsys: pytest.CaptureFixture[str]) -> None:
    class Special(ComfyQualityError):
        pass

    errors = CliErrors(ErrorTable("tool", [(SettingsError, 4), (Special, 3)]), default=9)
    assert errors.answer(SettingsError("set COMFY_QUALITY_X to a number")) == 4
    assert capsys.readouterr().err == "error: set COMFY_QUALITY_X to a number\n"
    assert errors.answer(Special("the image is broken")) == 3
    assert errors.answer(ComfyQualityError("another package's problem")) == 9  # never "internal error"
    assert "another package's problem" in capsys.readouterr().err
    assert errors.answer(ExceptionGroup("task group", [Special("inside a group")])) == 3
    assert capsys.readouterr().err == "error: inside a group\n"


def test_cli_errors_logs_an_unexpected_error_with_traceback_and_answers_briefly(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    errors = CliErrors(ErrorTable("tool", [(SettingsError, 4)]))

    def body() -> int:
        raise Boom(SECRET)

    code = errors.run(body)
    _assert_unexpected_answered(code, capsys.readouterr().err, caplog)


# -- each entry point ------------------------------------------------------------------------------------------
def test_quality_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                     caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    from quality import cli
    from quality.errors import ImageDecodeError, WeightsUnavailableError

    monkeypatch.setattr(cli, "cmd_metrics", _raiser(WeightsUnavailableError("no weights: run `weights prefetch`")))
    assert cli.main(["metrics"]) == cli.EXIT_CONFIG
    captured = capsys.readouterr()
    assert captured.err == "error: no weights: run `weights prefetch`\n" and captured.out == ""
    monkeypatch.setattr(cli, "cmd_metrics", _raiser(ImageDecodeError("x.png is not an image")))
    assert cli.main(["metrics"]) == cli.EXIT_IMAGE
    monkeypatch.setattr(cli, "cmd_metrics", _raiser(cli.UsageError("no images to score")))
    assert cli.main(["metrics"]) == cli.EXIT_USAGE
    capsys.readouterr()
    monkeypatch.setattr(cli, "cmd_metrics", _raiser(Boom(SECRET)))
    code = cli.main(["metrics"])
    captured = capsys.readouterr()
    assert captured.out == ""
    _assert_unexpected_answered(code, captured.err, caplog)


def test_quality_cli_invalid_settings_are_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from quality import cli

    monkeypatch.setenv("COMFY_QUALITY_WORKERS", "not-a-number")
    assert cli.main(["weights", "list"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("error: invalid settings:") and "workers" in err


def test_refinement_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                        caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    from refinement import cli
    from refinement.comfyui.errors import ComfyUIUnreachableError
    from refinement.workflows import WorkflowLoadError

    monkeypatch.setattr(cli, "list_workflows", _raiser(WorkflowLoadError("unknown template 'x'")))
    assert cli.main(["workflows"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err == "error: unknown template 'x'\n"
    monkeypatch.setattr(cli, "list_workflows", _raiser(ComfyUIUnreachableError("start ComfyUI", server="h:1")))
    assert cli.main(["workflows"]) == cli.EXIT_FAILED
    assert capsys.readouterr().err == "error: start ComfyUI [server h:1]\n"
    monkeypatch.setattr(cli, "list_workflows", _raiser(Boom(SECRET)))
    code = cli.main(["workflows"])
    _assert_unexpected_answered(code, capsys.readouterr().err, caplog)


def test_refinement_cli_bad_comfyui_url_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    from refinement import cli

    code = cli.main(["generate", "--prompt", "a fox", "--comfyui", "ftp://nowhere", "-q"])
    assert code == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("error: configuration:") and "http(s)" in err


def test_mcp_server_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                        caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    import mcp_server.__main__ as entry
    from storage.errors import StorageConfigError, StorageIndexError

    monkeypatch.setattr(entry, "configure_logging", lambda level: None)  # keeps pytest's log capture in place
    monkeypatch.setattr(entry, "run", _async_raiser(StorageConfigError("set COMFY_QUALITY_STORAGE_S3_ENDPOINT")))
    assert entry.main([]) == 2
    captured = capsys.readouterr()
    assert captured.err == "comfy-quality-mcp: set COMFY_QUALITY_STORAGE_S3_ENDPOINT\n"
    assert captured.out == ""  # stdio mode: stdout carries nothing but the protocol
    monkeypatch.setattr(entry, "run", _async_raiser(StorageIndexError("the index is locked")))
    assert entry.main([]) == 1
    assert capsys.readouterr().err == "comfy-quality-mcp: the index is locked\n"
    monkeypatch.setattr(entry, "run", _async_raiser(Boom(SECRET)))
    code = entry.main([])
    captured = capsys.readouterr()
    assert captured.out == ""
    _assert_unexpected_answered(code, captured.err, caplog)


def test_mcp_server_cli_invalid_settings(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import mcp_server.__main__ as entry

    assert entry.main(["--transport", "http", "--host", "0.0.0.0"]) == 2  # a public bind without a token
    err = capsys.readouterr().err
    assert err.startswith("comfy-quality-mcp: ") and "token" in err.lower()


def test_dashboard_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                       caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    import dashboard.__main__ as entry
    from storage.errors import StorageIndexError

    monkeypatch.setattr(entry, "configure_logging", lambda level: None)
    monkeypatch.setattr(entry, "run", _async_raiser(StorageIndexError("cannot open the index: check its folder")))
    assert entry.main([]) == 2
    assert capsys.readouterr().err == "dashboard: cannot open the index: check its folder\n"
    monkeypatch.setattr(entry, "run", _async_raiser(Boom(SECRET)))
    code = entry.main([])
    _assert_unexpected_answered(code, capsys.readouterr().err, caplog)


def test_storage_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                     caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    import storage.__main__ as entry
    from storage.errors import StorageUnavailableError

    monkeypatch.setattr(entry, "_health", _async_raiser(StorageUnavailableError("S3 is down and the spool too")))
    assert entry.main(["health"]) == 2
    assert capsys.readouterr().err == "error: S3 is down and the spool too\n"
    monkeypatch.setattr(entry, "_health", _async_raiser(Boom(SECRET)))
    code = entry.main(["health"])
    _assert_unexpected_answered(code, capsys.readouterr().err, caplog)


def test_worker_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                    caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    from jobqueue import worker
    from refinement.errors import RefinementConfigError

    assert worker.main([]) == 2  # no COMFY_QUALITY_JOBS_URL: said, not a silent exit
    assert "COMFY_QUALITY_JOBS_URL is not set" in capsys.readouterr().err
    monkeypatch.setenv("COMFY_QUALITY_JOBS_URL", "redis://127.0.0.1:1/0")
    assert worker.main(["--concurrency", "0"]) == 2
    assert "--concurrency 0" in capsys.readouterr().err
    monkeypatch.setattr(worker, "serve", _async_raiser(RefinementConfigError("at least one ComfyUI URL is needed")))
    assert worker.main([]) == 2
    assert capsys.readouterr().err == "comfy-quality-worker: at least one ComfyUI URL is needed\n"
    monkeypatch.setattr(worker, "serve", _async_raiser(Boom(SECRET)))
    code = worker.main([])
    _assert_unexpected_answered(code, capsys.readouterr().err, caplog)


def test_mcp_server_subcommands_answer_unexpected_errors_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import mcp_server.__main__ as entry
    from mcp_server import doctor, install

    monkeypatch.setattr(install, "main", _raiser(Boom(SECRET)))
    code = entry.main(["install", "cursor"])
    _assert_unexpected_answered(code, capsys.readouterr().err, caplog)
    caplog.clear()
    monkeypatch.setattr(doctor, "main", _raiser(Boom(SECRET)))
    code = entry.main(["doctor"])
    _assert_unexpected_answered(code, capsys.readouterr().err, caplog)
