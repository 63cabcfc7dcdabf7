"""``python -m mcp_server`` / ``comfy-quality-mcp``: start the comfy-quality MCP server.

    python -m mcp_server                                  stdio (what Claude Desktop, Cursor and VS Code launch)
    python -m mcp_server --transport http --port 8765     streamable HTTP on http://127.0.0.1:8765/mcp
    python -m mcp_server --transport sse                  SSE on http://127.0.0.1:8765/sse
    python -m mcp_server install HOST [--env K=V ...]     connect claude-desktop, claude-code, cursor or vscode
    python -m mcp_server doctor [--json]                  check ComfyUI, storage, index, weights and settings

Settings come from COMFY_QUALITY_MCP_* / COMFY_QUALITY_* environment variables or .env (see the README); the
options here override them. Exit codes: 0 stopped, 1 a component failed (its message says which), 2 invalid
settings, 70 internal error (a bug: its traceback is logged on stderr; stdout carries only the protocol).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import anyio
from pydantic import ValidationError

from comfy_quality.boundary import CliErrors, ErrorTable
from comfy_quality.errors import SettingsError
from comfy_quality.settings import Settings, report_unknown_variables
from mcp_server.errors import McpServerConfigError
from mcp_server.serve import configure_logging, run

ERRORS = CliErrors(ErrorTable("comfy-quality-mcp", [(SettingsError, 2)]), default=1, prefix="comfy-quality-mcp: ")
"""Invalid settings of any package → exit code 2; any other library error → 1; anything else is a bug (70)."""

TRANSPORTS = {"stdio": "stdio", "sse": "sse", "http": "http", "streamable-http": "http"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    summary = __doc__.split("\n\n")[0] if __doc__ else None
    parser = argparse.ArgumentParser(
        prog="comfy-quality-mcp",
        description=summary,
        epilog="other commands: `comfy-quality-mcp install HOST` connects an agent host (claude-desktop, "
        "claude-code, cursor, vscode); `comfy-quality-mcp doctor` checks the setup. Each has --help.",
    )
    parser.add_argument("--transport", choices=sorted(TRANSPORTS), help="default: stdio (COMFY_QUALITY_MCP_TRANSPORT)")
    parser.add_argument("--host", help="HTTP bind address (default 127.0.0.1; others need a bearer token)")
    parser.add_argument("--port", type=int, help="HTTP port (default 8765; 0 = any free port)")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["install"]:
        from mcp_server.install import main as install_main

        return ERRORS.run(lambda: install_main(argv[1:]))
    if argv[:1] == ["doctor"]:
        from mcp_server.doctor import main as doctor_main

        return ERRORS.run(lambda: doctor_main(argv[1:]))
    args = parse_args(argv)
    overrides = {
        "transport": TRANSPORTS[args.transport] if args.transport else None,
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
    }
    tree = Settings(mcp={k: v for k, v in overrides.items() if v is not None})
    try:
        settings = tree.mcp
        settings.check_serving()
    except ValidationError as exc:
        return ERRORS.answer(McpServerConfigError(f"invalid settings:\n{exc}"))
    except Exception as exc:
        return ERRORS.answer(exc)
    configure_logging(settings.log_level)
    report_unknown_variables(tree)
    try:
        anyio.run(run, tree)
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        return ERRORS.answer(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
