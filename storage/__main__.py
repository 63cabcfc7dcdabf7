"""``python -m storage``: the metadata schema, index rebuilds, spool flushes and a health check.

python -m storage schema                 print the metadata JSON Schema
python -m storage health                 check the configured store (COMFY_QUALITY_STORAGE_* variables)
python -m storage flush-spool            upload what waits in the S3 spool now
python -m storage rebuild-index [--index PATH] [--no-prune]

Exit codes: 0 ok, 1 unhealthy / some documents or uploads failed, 2 a storage error or invalid settings (the
message says which), 70 internal error (a bug: its traceback is logged on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from comfy_quality.boundary import CliErrors, ErrorTable
from comfy_quality.errors import ComfyQualityError
from storage.factory import open_store
from storage.index import Index, rebuild_index
from storage.metadata import metadata_json_schema
from storage.settings import StorageSettings

ERRORS = CliErrors(
    ErrorTable("python -m storage", [(ComfyQualityError, 2), (ValidationError, 2)]), default=2
)
"""A storage error, or settings pydantic refuses (COMFY_QUALITY_STORAGE_*) → the message and exit code 2."""


def schema_text() -> str:
    """The checked-in ``storage/metadata.schema.json`` must equal this."""
    return json.dumps(metadata_json_schema(), indent=2, ensure_ascii=False) + "\n"


async def _health() -> int:
    async with open_store(StorageSettings()) as store:
        health = await store.health()
    print(health.model_dump_json(indent=2))
    return 0 if health.ok else 1


async def _flush() -> int:
    async with open_store(StorageSettings()) as store:
        report = await store.flush_spool()
    print(
        json.dumps({"uploaded": len(report.uploaded), "failed": report.failed, "remaining": report.remaining})
    )
    return 0 if report.ok else 1


async def _rebuild(index_path: Path | None, prune: bool) -> int:
    settings = StorageSettings()
    with Index(index_path or settings.index_path) as index:
        async with open_store(settings) as store:
            report = await rebuild_index(store, index, prune=prune)
    print(report.model_dump_json(indent=2))
    return 0 if not report.failed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("schema", help="print the metadata JSON Schema")
    sub.add_parser("health", help="check the configured store")
    sub.add_parser("flush-spool", help="upload spooled generations to S3 now")
    rebuild = sub.add_parser("rebuild-index", help="re-index every metadata.json of the store")
    rebuild.add_argument("--index", type=Path, help="index file (default: COMFY_QUALITY_STORAGE_INDEX_PATH)")
    rebuild.add_argument("--no-prune", action="store_true", help="keep rows of generations not in the store")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if args.command != "schema":
        from comfy_quality.settings import report_unknown_variables

        report_unknown_variables()
    try:
        if args.command == "schema":
            sys.stdout.write(schema_text())
            return 0
        if args.command == "health":
            return asyncio.run(_health())
        if args.command == "flush-spool":
            return asyncio.run(_flush())
        return asyncio.run(_rebuild(args.index, not args.no_prune))
    except Exception as exc:
        return ERRORS.answer(exc)


if __name__ == "__main__":
    sys.exit(main())
