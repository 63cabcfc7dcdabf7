"""``comfy-quality-mcp doctor``: can this setup generate and score, and if not, what to fix.

    comfy-quality-mcp doctor                 a line per check: OK / WARN / FAIL, with the fix under each problem
    comfy-quality-mcp doctor --json          the same as JSON ({"ok": ..., "checks": [...]})
    ./run doctor                             the same from a checkout

It reads the same environment (``COMFY_QUALITY_*``, ``.env``) as the server, so run it where the server runs
(for a host's server: ``env K=V ... comfy-quality-mcp doctor`` with the entry's variables). Checks:

* **settings**: every settings group parses (an invalid value stops the server from starting); each
  ``COMFY_QUALITY_*`` variable no setting reads (environment or ``.env``: a typo) is a warning naming the closest
  known variable.
* **comfyui URL** (each of ``COMFY_QUALITY_COMFYUI_URLS``): reachable (``/object_info``, ``/system_stats``), and the
  default workflow's node classes and model files exist there: the check the orchestrator runs before a job
  (:func:`refinement.comfyui.client.check_against_object_info`).
* **storage**: writes, reads back and deletes a probe object (local folder, or the S3 bucket: created if missing,
  as the first generation would); S3 unreachable is a warning (images are spooled), refused credentials a failure.
* **spool**: generations waiting for upload (S3 only), and whether the spool folder is writable.
* **index**: the SQLite index opens (read-only) and how many generations it holds.
* **weights**: which model weights are present; missing deep-model weights mean fewer metrics, not a failure.
* **mcp roots / mcp URL allowlist / mcp transport**: settings that make ``score_image`` refuse local paths or
  URLs, and an HTTP bind that would refuse to start.

Exit codes: 0 when generation can work (warnings allowed), 1 when a check failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import BaseModel, Field, ValidationError

Status = Literal["ok", "warn", "fail"]
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
PROBE_PREFIX = "doctor-probe"


class Check(BaseModel):
    name: str = Field(description="what was checked, e.g. 'comfyui http://127.0.0.1:8188'")
    status: Status
    detail: str = Field(description="what was found")
    fix: str | None = Field(None, description="what to do about a warning or failure")


class Report(BaseModel):
    ok: bool = Field(description="generation can work: no check failed")
    checks: list[Check]

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in ("ok", "warn", "fail")}


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "value"
    return f"{where}: {error['msg']}" + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- settings ------------------------------------------------------------------------------------------------
class Settings:
    """Every settings group of the process's settings tree (:class:`comfy_quality.settings.Settings`, loaded
    once; default: from the environment and ``.env``); a group that does not parse becomes a failed check."""

    def __init__(self, tree: Any = None) -> None:
        from comfy_quality.settings import Settings as SettingsTree

        self.tree = tree if tree is not None else SettingsTree()
        self.checks: list[Check] = []
        self.mcp = self._load("mcp", "COMFY_QUALITY_MCP_*", "mcp")
        self.quality = self._load("scorer", "COMFY_QUALITY_*", "quality")
        self.refinement = self._load("refinement", "COMFY_QUALITY_*", "refinement")
        self.storage = self._load("storage", "COMFY_QUALITY_STORAGE_*", "storage")

    def _load(self, label: str, prefix: str, section: str) -> Any:
        try:
            return getattr(self.tree, section)
        except (ValidationError, ValueError) as exc:
            detail = _first_error(exc) if isinstance(exc, ValidationError) else _short(str(exc))
            self.checks.append(
                Check(
                    name=f"settings ({label})",
                    status="fail",
                    detail=f"invalid: {detail}",
                    fix=f"correct the {prefix} variable (environment or .env)",
                )
            )
            return None

    def unknown(self) -> list[Check]:
        """A warning per ``COMFY_QUALITY_*`` variable (environment or ``.env``) that no setting reads."""
        return [
            Check(
                name=f"settings (unknown {item.name})",
                status="warn",
                detail=f"set in {item.source} but no setting reads it: it has no effect",
                fix=f"rename it to {item.suggestion}" if item.suggestion else "remove it (see the README's "
                "configuration table for the names)",
            )
            for item in self.tree.unknown_variables()
        ]


# -- ComfyUI -------------------------------------------------------------------------------------------------
async def check_comfyui(url: str, workflow: dict[str, Any] | None, workflow_name: str, timeout: float) -> Check:
    from refinement.comfyui.client import ComfyUIClient, check_against_object_info
    from refinement.comfyui.errors import ComfyUIError, ComfyUIMissingModelsError, ComfyUIMissingNodesError

    name = f"comfyui {url}"
    try:
        async with ComfyUIClient(url, request_timeout=timeout, connect_timeout=timeout) as client:
            info = await asyncio.wait_for(client.object_info(), timeout * 2)
            version = ""
            try:
                stats = await asyncio.wait_for(client.system_stats(), timeout)
                version = str((stats.get("system") or {}).get("comfyui_version") or "")
            except (ComfyUIError, TimeoutError):
                pass
    except TimeoutError:
        return Check(
            name=name,
            status="fail",
            detail=f"no answer within {timeout * 2:.0f} s",
            fix="check that ComfyUI runs there and is not stuck; correct COMFY_QUALITY_COMFYUI_URLS",
        )
    except ComfyUIError as exc:
        return Check(
            name=name,
            status="fail",
            detail=f"unreachable: {_short(exc.message)}",
            fix="start ComfyUI (e.g. `python main.py --listen 127.0.0.1 --port 8188`) or correct "
            "COMFY_QUALITY_COMFYUI_URLS",
        )
    except ValueError as exc:  # a malformed URL
        return Check(
            name=name,
            status="fail",
            detail=f"not a usable URL: {_short(str(exc))}",
            fix="correct COMFY_QUALITY_COMFYUI_URLS (http://host:port)",
        )
    seen = f"reachable{f' (ComfyUI {version})' if version else ''}, {len(info)} node classes"
    if workflow is None:
        return Check(name=name, status="ok", detail=seen)
    try:
        check_against_object_info(workflow, info, server=url)
    except ComfyUIMissingNodesError as exc:
        return Check(
            name=name,
            status="fail",
            detail=f"{seen}; default workflow {workflow_name!r}: {_short(exc.message, 600)}",
            fix="install the custom nodes it names, or set COMFY_QUALITY_DEFAULT_WORKFLOW to a workflow "
            "this server can run",
        )
    except ComfyUIMissingModelsError as exc:
        return Check(
            name=name,
            status="fail",
            detail=f"{seen}; default workflow {workflow_name!r}: {_short(exc.message, 600)}",
            fix="put the model files in ComfyUI's models folders (or pick another workflow with "
            "COMFY_QUALITY_DEFAULT_WORKFLOW)",
        )
    return Check(
        name=name, status="ok", detail=f"{seen}; default workflow {workflow_name!r}: nodes and model files present"
    )


async def check_comfyui_all(settings: Any, timeout: float) -> list[Check]:
    from refinement.workflows import WorkflowError, load_workflow

    checks: list[Check] = []
    workflow: dict[str, Any] | None = None
    try:
        workflow = load_workflow(settings.default_workflow)
    except (WorkflowError, OSError, ValueError) as exc:
        checks.append(
            Check(
                name="default workflow",
                status="fail",
                detail=_short(str(exc)),
                fix="set COMFY_QUALITY_DEFAULT_WORKFLOW to a template (`python -m refinement "
                "workflows` lists them), an API-format workflow file or its JSON",
            )
        )
    source = str(settings.default_workflow).strip()
    label = "(inline JSON)" if source.startswith("{") else (source if len(source) <= 60 else "..." + source[-57:])
    servers = await asyncio.gather(*(check_comfyui(url, workflow, label, timeout) for url in settings.comfyui_urls))
    if any(c.status == "ok" for c in servers):  # jobs go to the servers that answer: the others only warn
        servers = [
            c
            if c.status == "ok"
            else c.model_copy(
                update={"status": "warn", "detail": c.detail + " (jobs go to the other servers meanwhile)"}
            )
            for c in servers
        ]
    return checks + list(servers)


# -- storage, spool, index -----------------------------------------------------------------------------------
def _probe_local(root: Path) -> str:
    from storage.local import atomic_write

    root.mkdir(parents=True, exist_ok=True)
    probe = root / f".{PROBE_PREFIX}-{uuid.uuid4().hex}"
    data = uuid.uuid4().bytes
    try:
        atomic_write(probe, data)
        if probe.read_bytes() != data:
            raise OSError(f"{probe} read back different bytes")
    finally:
        probe.unlink(missing_ok=True)
    return f"local folder {root}: write, read back and delete OK"


def _probe_s3(store: Any) -> str:
    import io

    client, bucket = store.client, store.bucket
    created = ""
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
        created = " (bucket created, as the first generation would)"
    key = f"{PROBE_PREFIX}/{uuid.uuid4().hex}.txt"
    data = uuid.uuid4().bytes
    client.put_object(bucket, key, io.BytesIO(data), len(data), content_type="text/plain")
    try:
        response = client.get_object(bucket, key)
        try:
            if response.read() != data:
                raise OSError(f"s3://{bucket}/{key} read back different bytes")
        finally:
            response.close()
            response.release_conn()
    finally:
        client.remove_object(bucket, key)
    return f"S3 {store.endpoint}/{bucket}: write, read back and delete OK{created}"


def check_storage(settings: Any) -> list[Check]:
    from storage import StorageError, open_store
    from storage.s3_errors import is_transient

    try:
        store = open_store(settings)
    except StorageError as exc:
        return [
            Check(
                name="storage",
                status="fail",
                detail=_short(str(exc)),
                fix="correct the COMFY_QUALITY_STORAGE_* settings (see the README's storage table)",
            )
        ]
    if settings.backend == "local":
        try:
            return [Check(name="storage", status="ok", detail=_probe_local(Path(settings.local_root)))]
        except OSError as exc:
            return [
                Check(
                    name="storage",
                    status="fail",
                    detail=f"local folder {settings.local_root}: {_short(str(exc))}",
                    fix="make it writable, or set COMFY_QUALITY_STORAGE_LOCAL_ROOT to a writable folder",
                )
            ]
    checks = []
    spool_ok = True
    try:
        _probe_local(Path(settings.spool_dir))
    except OSError as exc:
        spool_ok = False
        checks.append(
            Check(
                name="spool",
                status="fail",
                detail=f"{settings.spool_dir}: {_short(str(exc))}",
                fix="make it writable or set COMFY_QUALITY_STORAGE_SPOOL_DIR: images wait there while S3 is down",
            )
        )
    try:
        detail = _probe_s3(store)
        checks.insert(0, Check(name="storage", status="ok", detail=detail))
    except Exception as exc:
        message = str(getattr(store, "describe", str)(exc))
        if is_transient(exc) and spool_ok:
            checks.insert(
                0,
                Check(
                    name="storage",
                    status="warn",
                    detail=f"S3 unavailable: {_short(message)}",
                    fix=f"start S3 or correct COMFY_QUALITY_STORAGE_S3_ENDPOINT; meanwhile images are "
                    f"spooled to {settings.spool_dir} and uploaded when it is back",
                ),
            )
        else:
            checks.insert(
                0,
                Check(
                    name="storage",
                    status="fail",
                    detail=_short(message),
                    fix="correct the COMFY_QUALITY_STORAGE_S3_* settings (credentials, bucket)",
                ),
            )
    if spool_ok:
        from storage.spool import Spool

        waiting = Spool(settings.spool_dir).count()
        if waiting:
            checks.append(
                Check(
                    name="spool",
                    status="warn",
                    detail=f"{waiting} generation(s) wait in {settings.spool_dir} for upload",
                    fix="they upload by themselves while the server runs and S3 answers; or run "
                    "`python -m storage flush-spool`",
                )
            )
        else:
            checks.append(Check(name="spool", status="ok", detail=f"{settings.spool_dir}: writable, nothing waiting"))
    return checks


def check_index(settings: Any) -> Check:
    from storage import Index, StorageError

    path = Path(settings.index_path)
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is None or not os.access(parent, os.W_OK):
            return Check(
                name="index",
                status="fail",
                detail=f"{path} does not exist and {parent} is not writable",
                fix="set COMFY_QUALITY_STORAGE_INDEX_PATH to a writable place",
            )
        return Check(
            name="index",
            status="ok",
            detail=f"{path} does not exist yet: created by the first generation (or `python -m storage "
            "rebuild-index` from the store)",
        )
    try:
        index = Index(path, read_only=True)
        try:
            count = index.count()
        finally:
            index.close()
    except (StorageError, Exception) as exc:
        return Check(
            name="index",
            status="fail",
            detail=_short(str(exc)),
            fix="delete the file and run `python -m storage rebuild-index`",
        )
    return Check(name="index", status="ok", detail=f"{path}: {count} generation(s)")


# -- weights and scorer --------------------------------------------------------------------------------------
def check_weights(settings: Any, *, hash_files: bool) -> Check:
    from quality.weights import WeightsStore

    store = WeightsStore(settings.weights_dir, offline=settings.offline)
    statuses = store.statuses(hash_files=hash_files)
    broken = [s.entry.name for s in statuses if s.entry.packaged and not s.present]
    bad = [s.entry.name for s in statuses if s.verified is False]
    present = [s.entry.name for s in statuses if s.present and s.verified is not False]
    missing = [s.entry.name for s in statuses if not s.present]
    where = f"weights folder {store.dir}"
    if broken:
        return Check(
            name="weights",
            status="fail",
            detail=f"packaged parameters missing: {', '.join(broken)}",
            fix="reinstall comfy-quality (the package ships them in quality/data)",
        )
    if bad:
        return Check(
            name="weights",
            status="fail",
            detail=f"checksum mismatch: {', '.join(bad)} ({where})",
            fix="delete those files and run `python -m quality weights prefetch`",
        )
    detail = f"present: {', '.join(present)}" + (f"; missing: {', '.join(missing)}" if missing else "") + f" ({where})"
    if not missing:
        return Check(name="weights", status="ok", detail=detail)
    how = (
        "copy a prefetched weights folder there (offline mode)"
        if store.offline
        else "run `python -m quality weights prefetch` now, or they download on first use"
    )
    return Check(
        name="weights",
        status="warn",
        detail=detail + "; the metrics that need them report 'unavailable' and the grade is partial",
        fix=how,
    )


def check_device(settings: Any) -> Check | None:
    if settings.device in ("auto", "cpu"):
        return None
    from quality.errors import ConfigError
    from quality.settings import resolve_device

    try:
        return Check(name="device", status="ok", detail=resolve_device(settings.device))
    except ConfigError as exc:
        return Check(name="device", status="fail", detail=_short(str(exc)), fix="set COMFY_QUALITY_DEVICE=auto or cpu")


# -- MCP input settings --------------------------------------------------------------------------------------
def check_mcp(settings: Any) -> list[Check]:
    from mcp_server.errors import McpServerConfigError

    checks = []
    roots = list(settings.roots)
    if not roots:
        checks.append(
            Check(
                name="mcp roots",
                status="warn",
                detail="none: score_image refuses every local path",
                fix="set COMFY_QUALITY_MCP_ROOTS to the folders the agent may read (comma-separated)",
            )
        )
    else:
        gone = [str(r) for r in roots if not Path(r).is_dir()]
        shown = ", ".join(str(r) for r in roots)
        if gone:
            checks.append(
                Check(
                    name="mcp roots",
                    status="warn",
                    detail=f"{shown}; not a folder: {', '.join(gone)}",
                    fix="create them or correct COMFY_QUALITY_MCP_ROOTS",
                )
            )
        else:
            checks.append(Check(name="mcp roots", status="ok", detail=shown))
    if not settings.url_allowlist:
        checks.append(
            Check(
                name="mcp URL allowlist",
                status="warn",
                detail="empty: score_image refuses every URL",
                fix="set COMFY_QUALITY_MCP_URL_ALLOWLIST (e.g. 'images.example.com,*.cdn.example', or "
                "'*' for any public host)",
            )
        )
    else:
        checks.append(Check(name="mcp URL allowlist", status="ok", detail=", ".join(settings.url_allowlist)))
    try:
        settings.check_serving()
    except McpServerConfigError as exc:
        checks.append(
            Check(
                name="mcp transport",
                status="fail",
                detail=_short(str(exc)),
                fix="set COMFY_QUALITY_MCP_AUTH_TOKEN or bind to 127.0.0.1",
            )
        )
    return checks


# -- all together --------------------------------------------------------------------------------------------
async def run_checks(*, timeout: float = 5.0, hash_weights: bool = False) -> Report:
    """Every check, from the environment. ComfyUI servers are asked concurrently; nothing is left running."""
    settings = Settings()
    checks = list(settings.checks) + settings.unknown()

    async def blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    tasks: list[Awaitable[Any]] = []
    if settings.refinement is not None:
        tasks.append(check_comfyui_all(settings.refinement, timeout))
    if settings.storage is not None:
        tasks.append(blocking(check_storage, settings.storage))
        tasks.append(blocking(check_index, settings.storage))
    if settings.quality is not None:
        tasks.append(blocking(check_weights, settings.quality, hash_files=hash_weights))
        tasks.append(blocking(check_device, settings.quality))
    for result in await asyncio.gather(*tasks):
        if result is None:
            continue
        checks.extend(result if isinstance(result, list) else [result])
    if settings.mcp is not None:
        checks.extend(check_mcp(settings.mcp))
    return Report(ok=not any(c.status == "fail" for c in checks), checks=checks)


LABELS = {"ok": "OK", "warn": "WARN", "fail": "FAIL"}


def render(report: Report) -> str:
    width = max(len(c.name) for c in report.checks) if report.checks else 10
    lines = []
    for c in report.checks:
        lines.append(f"{LABELS[c.status]:<5} {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != "ok":
            lines.append(f"{'':<5} {'':<{width}}  → {c.fix}")
    n = report.counts()
    tail = f"{n['warn']} warning(s)" if n["warn"] else "no warnings"
    if report.ok:
        lines.append(f"generation can work ({tail})")
    else:
        lines.append(f"generation cannot work: {n['fail']} check(s) failed, {tail}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfy-quality-mcp doctor",
        description="Check ComfyUI, storage, the index, the weights and the MCP settings; say what to fix. "
        "Exit 0 when generation can work, 1 when a check failed.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per network request (default 5)")
    parser.add_argument("--verify-weights", action="store_true", help="hash the weight files (slow for CLIP)")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    if args.timeout <= 0:
        sys.stderr.write("error: --timeout must be positive\n")
        return EXIT_USAGE
    import logging

    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    report = asyncio.run(run_checks(timeout=args.timeout, hash_weights=args.verify_weights))
    out.write((report.model_dump_json(indent=2) if args.json else render(report)) + "\n")
    return EXIT_OK if report.ok else EXIT_FAIL
