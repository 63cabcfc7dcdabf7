"""``python -m dashboard`` / ``comfy-quality-dashboard``: the quality dashboard.

    python -m dashboard [--host 127.0.0.1] [--port 8766]   serve it (read-only; binds loopback by default)
    python -m dashboard rebuild-index [--no-prune]         fill the index from every metadata.json in the store

Settings: COMFY_QUALITY_DASHBOARD_* and COMFY_QUALITY_STORAGE_* (see dashboard/README.md); options override them.
Exit codes: 0 ok, 1 rebuild skipped unreadable documents, 2 invalid settings or storage error, 70 internal error
(a bug: its traceback is logged on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from comfy_quality.boundary import CliErrors, ErrorTable
from comfy_quality.errors import ComfyQualityError
from comfy_quality.settings import Settings, report_unknown_variables
from dashboard.errors import DashboardConfigError
from dashboard.serve import configure_logging, run
from dashboard.settings import DashboardSettings
from storage.factory import open_store
from storage.index import Index, rebuild_index

ERRORS = CliErrors(ErrorTable("python -m dashboard", [(ComfyQualityError, 2)]), default=2, prefix="dashboard: ")
"""Every library error (settings, storage, the dashboard's own) → its message and exit code 2."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    # SUPPRESS: an option left out of the subcommand does not overwrite the same option given before it
    quiet = argparse.SUPPRESS
    parser = argparse.ArgumentParser(
        prog="python -m dashboard", description="comfy-quality quality dashboard", argument_default=quiet
    )
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the dashboard (the default)", argument_default=quiet)
    rebuild = sub.add_parser("rebuild-index", help="re-index every metadata.json of the store", argument_default=quiet)
    rebuild.add_argument("--no-prune", action="store_true", help="keep rows of generations not in the store")
    for p in (parser, serve):
        p.add_argument("--host", help="bind address (default 127.0.0.1; others need a token)")
        p.add_argument("--port", type=int, help="port (default 8766; 0 = any free port)")
        p.add_argument(
            "--allow-unauthenticated-remote",
            action="store_true",
            help="serve a non-loopback bind without a token (only behind an authenticating proxy)",
        )
        p.add_argument("--rebuild-index", action="store_true", help="rebuild the index before serving")
    for p in (parser, serve, rebuild):
        p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


async def rebuild(settings: DashboardSettings, *, prune: bool) -> int:
    store = open_store(settings.storage)  # not entered: no S3 spool flusher (read-only)
    try:
        with Index(settings.storage.index_path) as index:
            report = await rebuild_index(store, index, prune=prune)
    finally:
        await store.aclose()
    print(report.model_dump_json(indent=2))
    for key, why in report.failed.items():
        print(f"skipped {key}: {why}", file=sys.stderr)
    return 1 if report.failed else 0


async def serve(settings: DashboardSettings, *, rebuild_first: bool) -> int:
    if rebuild_first:
        await rebuild(settings, prune=True)
    await run(settings)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    overrides: dict[str, Any] = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "allow_unauthenticated_remote": getattr(args, "allow_unauthenticated_remote", None),
        "log_level": getattr(args, "log_level", None),
    }
    tree = Settings(dashboard={k: v for k, v in overrides.items() if v is not None})
    try:
        settings = tree.dashboard
        if args.command != "rebuild-index":
            settings.check_serving()
    except ValidationError as exc:
        return ERRORS.answer(DashboardConfigError(f"invalid settings:\n{exc}"))
    except Exception as exc:
        return ERRORS.answer(exc)
    configure_logging(settings.log_level)
    report_unknown_variables(tree)
    try:
        if args.command == "rebuild-index":
            return asyncio.run(rebuild(settings, prune=not getattr(args, "no_prune", False)))
        return asyncio.run(serve(settings, rebuild_first=bool(getattr(args, "rebuild_index", False))))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        return ERRORS.answer(exc)


if __name__ == "__main__":
    sys.exit(main())
