"""``comfy-quality-mcp install HOST``: connect an agent host to this installation's MCP server.

    comfy-quality-mcp install claude-desktop --env COMFY_QUALITY_MCP_ROOTS=~/Pictures
    comfy-quality-mcp install cursor [--workspace DIR]           ~/.cursor/mcp.json (or DIR/.cursor/mcp.json)
    comfy-quality-mcp install vscode [--workspace DIR]           the user mcp.json (or DIR/.vscode/mcp.json)
    comfy-quality-mcp install claude-code [--run]                prints (or runs) `claude mcp add ...`
    comfy-quality-mcp install HOST --print                       prints the entry, writes nothing

The entry launches the ``comfy-quality-mcp`` script next to the running interpreter (absolute path), or
``python -m mcp_server`` with this interpreter where the script is absent, with the ``--env`` variables.

Default files (``--config PATH`` overrides):

* claude-desktop: macOS ``~/Library/Application Support/Claude/claude_desktop_config.json``, Windows
  ``%APPDATA%\\Claude\\claude_desktop_config.json``, Linux ``$XDG_CONFIG_HOME/Claude/claude_desktop_config.json``
  (``~/.config`` when unset).
* cursor: ``~/.cursor/mcp.json`` (Windows: ``%USERPROFILE%\\.cursor\\mcp.json``).
* vscode (the user profile's ``mcp.json``): macOS ``~/Library/Application Support/Code/User/mcp.json``, Windows
  ``%APPDATA%\\Code\\User\\mcp.json``, Linux ``$XDG_CONFIG_HOME/Code/User/mcp.json``.

``--workspace DIR``: ``DIR/.cursor/mcp.json``, ``DIR/.vscode/mcp.json``, or for Claude Code the project file
``DIR/.mcp.json``. Claude Desktop and Cursor use ``{"mcpServers": {NAME: {command, args, env}}}``; VS Code uses
``{"servers": {NAME: {"type": "stdio", command, args, env}}}``; Claude Code's ``.mcp.json`` is ``mcpServers``
with ``"type": "stdio"``. Without ``--config``/``--workspace`` Claude Code is configured through its own CLI
(``claude mcp add NAME --scope user -e K=V -- COMMAND``), which owns ``~/.claude.json``.

Writing a file: other servers and other keys are kept, key order included; the previous file is copied to
``FILE.bak-YYYYMMDD-HHMMSS`` first; the new file replaces the old one atomically. Running the same command
again changes nothing and makes no backup. A file that is not valid JSON (VS Code's comments included) or whose
top level is not an object is refused with the reason, and nothing is written.

Exit codes: 0 done (or nothing to do), 2 usage error (bad ``--env``, unknown host), 3 the file cannot be used
(invalid JSON, not writable), 4 ``claude`` failed or was not found (``--run``).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mcp_server.errors import InstallError

HOSTS = ("claude-desktop", "claude-code", "cursor", "vscode")
DEFAULT_NAME = "comfy-quality"
EXIT_OK, EXIT_USAGE, EXIT_FILE, EXIT_CLAUDE = 0, 2, 3, 4
SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "ACCESS_KEY")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PREFIX = "COMFY_QUALITY_"


# -- where and how each host keeps its servers ---------------------------------------------------------------
def _say(stream: TextIO, text: str) -> None:
    stream.write(text + "\n")


def _system(system: str | None) -> str:
    value = system or sys.platform
    if value.startswith("win"):
        return "windows"
    if value in ("darwin", "macos"):
        return "macos"
    return "linux"


def _appdata(home: Path, environ: Mapping[str, str]) -> Path:
    return Path(environ["APPDATA"]) if environ.get("APPDATA") else home / "AppData" / "Roaming"


def _xdg_config(home: Path, environ: Mapping[str, str]) -> Path:
    value = environ.get("XDG_CONFIG_HOME")
    return Path(value) if value and Path(value).is_absolute() else home / ".config"


def default_config_path(
    host: str,
    *,
    system: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
    workspace: Path | None = None,
) -> Path | None:
    """The file ``host`` reads its MCP servers from; None for Claude Code's user scope (its CLI owns it)."""
    environ = os.environ if environ is None else environ
    home = home or Path.home()
    kind = _system(system)
    if workspace is not None:
        return workspace / {"claude-desktop": "", "cursor": ".cursor/mcp.json", "vscode": ".vscode/mcp.json",
                            "claude-code": ".mcp.json"}[host]  # fmt: skip
    if host == "claude-desktop":
        if kind == "macos":
            return home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
        if kind == "windows":
            return _appdata(home, environ) / "Claude" / "claude_desktop_config.json"
        return _xdg_config(home, environ) / "Claude" / "claude_desktop_config.json"
    if host == "cursor":
        return home / ".cursor" / "mcp.json"
    if host == "vscode":
        if kind == "macos":
            return home / "Library" / "Application Support" / "Code" / "User" / "mcp.json"
        if kind == "windows":
            return _appdata(home, environ) / "Code" / "User" / "mcp.json"
        return _xdg_config(home, environ) / "Code" / "User" / "mcp.json"
    if host == "claude-code":
        return None
    raise InstallError(f"unknown host {host!r}: choose one of {', '.join(HOSTS)}", EXIT_USAGE)


def servers_key(host: str) -> str:
    return "servers" if host == "vscode" else "mcpServers"


def server_entry(host: str, command: str, args: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if host in ("vscode", "claude-code"):
        entry["type"] = "stdio"
    entry["command"] = command
    entry["args"] = list(args)
    if env:
        entry["env"] = dict(env)
    return entry


def entry_point(executable: str | None = None, *, system: str | None = None) -> tuple[str, list[str]]:
    """The absolute command (and arguments) that starts this installation's server over stdio."""
    python = os.path.abspath(executable or sys.executable)  # not resolved: a venv's python must stay the venv's
    name = "comfy-quality-mcp.exe" if _system(system) == "windows" else "comfy-quality-mcp"
    script = os.path.join(os.path.dirname(python), name)
    if os.path.isfile(script):
        return script, []
    return python, ["-m", "mcp_server"]


def import_path(python: str) -> str | None:
    """The folder to put on ``PYTHONPATH`` when ``python`` imports ``mcp_server`` only from this checkout
    (not installed): a host starts the server in a folder of its own choosing. None when no help is needed."""
    import tempfile

    probe = [python, "-c", "import mcp_server"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        if subprocess.run(probe, cwd=tempfile.gettempdir(), env=env, capture_output=True, timeout=60).returncode == 0:
            return None
    except (OSError, subprocess.TimeoutExpired):
        return None
    return str(Path(__file__).resolve().parents[1])


# -- --env ---------------------------------------------------------------------------------------------------
def known_settings() -> dict[str, tuple[Any, str]]:
    """Every ``COMFY_QUALITY_*`` variable the packages read → (settings class, field name)."""
    from comfy_quality.settings import known_variables

    return dict(known_variables())


def _is_path_field(cls: Any, name: str) -> bool:
    annotation = cls.model_fields[name].annotation
    return annotation is Path or annotation == list[Path] or annotation == Path | None


def is_secret(key: str) -> bool:
    return any(marker in key.upper() for marker in SECRET_MARKERS)


def _absolute(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).absolute())


@dataclass
class EnvCheck:
    env: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def check_env(pairs: Iterable[str], *, cwd: Path | None = None) -> EnvCheck:
    """``KEY=VALUE`` items → a checked environment: known names, values that parse, absolute paths.

    Unknown ``COMFY_QUALITY_*`` names are kept with a warning (a newer server may know them); other names
    (``HF_HUB_OFFLINE``, ``AWS_ACCESS_KEY_ID``…) pass as they are. Raises :class:`InstallError` (exit 2).
    """
    from pydantic import ValidationError

    base = cwd or Path.cwd()
    known = known_settings()
    result = EnvCheck()
    fields: dict[Any, dict[str, tuple[str, str]]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not _ENV_NAME.match(key):
            shown = pair if len(pair) <= 40 else pair[:37] + "..."
            raise InstallError(f"--env takes KEY=VALUE, got {shown!r}", EXIT_USAGE)
        if key in known:
            cls, name = known[key]
            if _is_path_field(cls, name) and value.strip():
                from comfy_quality.config import parse_list

                try:
                    items = parse_list(value) if name == "roots" else [value.strip()]
                except ValueError:
                    raise InstallError(f"--env {key}: not a JSON list nor comma-separated paths", EXIT_USAGE) from None
                paths = [_absolute(str(item), base) for item in items]
                value = json.dumps(paths) if any("," in p for p in paths) else ",".join(paths)
                for item in paths:
                    if name == "roots" and not Path(item).is_dir():
                        result.warnings.append(f"{key}: {item} is not a folder (yet)")
            elif name == "default_workflow" and (value.endswith(".json") or os.sep in value):
                value = _absolute(value, base)
            fields.setdefault(cls, {})[name] = (key, value)
        elif key.startswith(_PREFIX):
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            result.warnings.append(f"{key} is not a setting this version knows{hint}; kept as given")
        result.env[key] = value
    for cls, given in fields.items():
        try:
            cls(_env_file=None, **{name: value for name, (_, value) in given.items()})
        except ValidationError as exc:
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else ""
                if name in given:
                    raise InstallError(f"--env {given[name][0]}: {error['msg']}", EXIT_USAGE) from None
                if not name:  # a rule across fields (e.g. default wait above the maximum)
                    keys = ", ".join(key for key, _ in given.values())
                    raise InstallError(f"--env {keys}: {error['msg']}", EXIT_USAGE) from None
    return result


def advice(env: Mapping[str, str]) -> list[str]:
    """What the server would refuse with this environment (the same checks as ``doctor``). Only the entry's
    own variables count: a host starts the server without this shell's environment."""
    notes = []
    if not env.get("COMFY_QUALITY_MCP_ROOTS"):
        notes.append(
            "no COMFY_QUALITY_MCP_ROOTS: score_image will refuse local paths; add "
            "--env COMFY_QUALITY_MCP_ROOTS=/folder/with/images (comma-separated for several)"
        )
    if not env.get("COMFY_QUALITY_MCP_URL_ALLOWLIST"):
        notes.append(
            "no COMFY_QUALITY_MCP_URL_ALLOWLIST: score_image will refuse http(s) URLs; add e.g. "
            "--env COMFY_QUALITY_MCP_URL_ALLOWLIST='*.example.com'"
        )
    return notes


# -- merging into a config file ------------------------------------------------------------------------------
@dataclass
class WriteResult:
    path: Path
    changed: bool
    created: bool = False
    replaced: dict[str, Any] | None = None  # the previous entry of the same name
    backup: Path | None = None


def read_config(path: Path, key: str) -> dict[str, Any]:
    """The file's JSON object ({} when absent or blank); :class:`InstallError` when it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise InstallError(f"cannot read {path}: {exc}") from exc
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InstallError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); nothing was written. "
            "Fix the file (comments and trailing commas are not JSON), or use --print and add the entry by hand"
        ) from None
    if not isinstance(data, dict):
        raise InstallError(f"{path} holds a JSON {type(data).__name__}, not an object; nothing was written")
    if key in data and not isinstance(data[key], dict):
        raise InstallError(f'"{key}" in {path} is a {type(data[key]).__name__}, not an object; nothing was written')
    return data


def _backup_path(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{n}")
        n += 1
    return candidate


def _write_atomic(path: Path, text: str, *, private: bool) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            shutil.copymode(path, tmp)
        elif private:
            os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def merge_into(path: Path, key: str, name: str, entry: Mapping[str, Any]) -> WriteResult:
    """Put ``entry`` at ``data[key][name]`` in the JSON file ``path``, keeping everything else."""
    if path.is_symlink():
        path = path.resolve()  # dotfile managers link these files: write the target, keep the link
    data = read_config(path, key)
    servers = data.get(key) or {}
    previous = servers.get(name)
    if previous == entry:
        return WriteResult(path=path, changed=False)
    merged = dict(data)
    merged[key] = {**servers, name: dict(entry)}
    text = json.dumps(merged, indent=2, ensure_ascii=False) + "\n"
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backup = None
        if existed:
            backup = _backup_path(path)
            shutil.copy2(path, backup)
        _write_atomic(path, text, private=any(is_secret(k) for k in entry.get("env", {})))
    except OSError as exc:
        raise InstallError(f"cannot write {path}: {exc}") from exc
    return WriteResult(path=path, changed=True, created=not existed, replaced=previous, backup=backup)


# -- Claude Code's CLI ---------------------------------------------------------------------------------------
def claude_add_command(name: str, command: str, args: Sequence[str], env: Mapping[str, str], scope: str) -> list[str]:
    argv = ["claude", "mcp", "add", name, "--scope", scope]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    return [*argv, "--", command, *args]


def shell_line(argv: Sequence[str], *, system: str | None = None) -> str:
    if _system(system) == "windows":
        return subprocess.list2cmdline(list(argv))
    return shlex.join(argv)


def _masked(argv: Sequence[str]) -> list[str]:
    out = []
    for item in argv:
        key, sep, _ = item.partition("=")
        out.append(f"{key}=********" if sep and is_secret(key) else item)
    return out


def run_claude(name: str, add: list[str], scope: str, out: TextIO) -> int:
    claude = shutil.which("claude")
    if claude is None:
        _say(sys.stderr, "error: the `claude` command is not on PATH; install Claude Code, or run the line above")
        return EXIT_CLAUDE
    # `claude mcp add` refuses a name that exists: remove ours first, so that a rerun updates it
    subprocess.run([claude, "mcp", "remove", name, "--scope", scope], capture_output=True, text=True, check=False)
    proc = subprocess.run([claude, *add[1:]], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        _say(sys.stderr, f"error: `claude mcp add` failed ({proc.returncode}): {detail[-1] if detail else ''}")
        return EXIT_CLAUDE
    _say(out, f"added {name} to Claude Code ({scope} scope); `claude mcp list` shows it")
    return EXIT_OK


# -- the command ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    here = "; ".join(f"{h}: {default_config_path(h) or '`claude mcp add` (its CLI)'}" for h in HOSTS)
    parser = argparse.ArgumentParser(
        prog="comfy-quality-mcp install",
        description="Connect an agent host to this installation's comfy-quality MCP server (stdio).",
        epilog="Example: comfy-quality-mcp install claude-desktop --env COMFY_QUALITY_MCP_ROOTS=~/Pictures "
        f"--env COMFY_QUALITY_COMFYUI_URLS=http://127.0.0.1:8188. Default files on this machine: {here}.",
    )
    parser.add_argument("host", choices=HOSTS)
    parser.add_argument("--config", type=Path, help="the host's config file (default: the host's own, per OS)")
    parser.add_argument("--workspace", type=Path, nargs="?", const=Path("."), metavar="DIR",
                        help="project config instead of the user's: DIR/.vscode/mcp.json, DIR/.cursor/mcp.json, "
                        "DIR/.mcp.json (Claude Code); DIR defaults to the current folder")  # fmt: skip
    parser.add_argument("--print", action="store_true", dest="print_only", help="print the entry, write nothing")
    parser.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment of the server (repeatable): roots, URL allowlist, weights folder, "
                        "ComfyUI URLs, storage... relative paths become absolute")  # fmt: skip
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"server name in the host (default {DEFAULT_NAME})")
    parser.add_argument("--scope", choices=["user", "local", "project"], default="user",
                        help="Claude Code: where `claude mcp add` records the server (default user)")  # fmt: skip
    parser.add_argument("--run", action="store_true", help="Claude Code: run `claude mcp add` instead of printing it")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    try:
        return _install(args, out)
    except InstallError as exc:
        _say(sys.stderr, f"error: {exc}")
        return exc.code


def _install(args: argparse.Namespace, out: TextIO) -> int:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", args.name):
        raise InstallError(f"--name {args.name!r}: use letters, digits, '-', '_' and '.'", EXIT_USAGE)
    if args.host == "claude-desktop" and args.workspace is not None:
        raise InstallError("Claude Desktop has no project configuration: drop --workspace", EXIT_USAGE)
    if args.run and args.host != "claude-code":
        raise InstallError("--run is for claude-code only", EXIT_USAGE)
    if args.run and (args.config or args.workspace is not None or args.print_only):
        raise InstallError("--run runs `claude mcp add`: drop --config, --workspace and --print", EXIT_USAGE)
    checked = check_env(args.env)
    for warning in checked.warnings:
        _say(sys.stderr, f"warning: {warning}")
    command, cmd_args = entry_point()
    if cmd_args:
        where = os.path.dirname(command)
        _say(sys.stderr, f"note: no comfy-quality-mcp script in {where}: the host will run `python -m mcp_server`")
        extra = import_path(command) if "PYTHONPATH" not in checked.env else None
        if extra:
            checked.env["PYTHONPATH"] = extra
            _say(sys.stderr, f"note: comfy-quality is not installed for {command}: PYTHONPATH={extra} added")
    for note in advice(checked.env):
        _say(sys.stderr, f"note: {note}")
    workspace = args.workspace.absolute() if args.workspace is not None else None
    config = args.config.expanduser().absolute() if args.config else None
    config = config or default_config_path(args.host, workspace=workspace)
    key = servers_key(args.host)
    entry = server_entry(args.host, command, cmd_args, checked.env)

    if config is None:  # Claude Code, user/local scope: its CLI
        add = claude_add_command(args.name, command, cmd_args, checked.env, args.scope)
        if args.run:
            _say(out, shell_line(_masked(add)))
            return run_claude(args.name, add, args.scope, out)
        _say(out, shell_line(add))
        return EXIT_OK
    if args.print_only:
        _say(out, json.dumps({key: {args.name: entry}}, indent=2, ensure_ascii=False))
        return EXIT_OK
    if args.config is None and workspace is None and not config.parent.exists():
        _say(sys.stderr, f"note: {config.parent} does not exist: is {HOST_NAMES[args.host]} installed? "
             "The file is created anyway")  # fmt: skip
    result = merge_into(config, key, args.name, entry)
    if not result.changed:
        _say(out, f"{result.path}: {args.name} is already set up this way; nothing changed")
        return EXIT_OK
    verb = "updated" if result.replaced is not None else "added"
    _say(out, f"{verb} {args.name} in {result.path}" + (" (new file)" if result.created else ""))
    if result.backup is not None:
        _say(out, f"backup of the previous file: {result.backup}")
    if result.replaced is not None:
        dropped = sorted(set(result.replaced.get("env") or {}) - set(checked.env))
        if dropped:
            _say(out, f"note: the previous entry also set {', '.join(dropped)} (kept in the backup only)")
    _say(out, f"server: {shell_line([command, *cmd_args])}")
    _say(out, RESTART_HINT[args.host])
    return EXIT_OK


HOST_NAMES = {"claude-desktop": "Claude Desktop", "claude-code": "Claude Code", "cursor": "Cursor", "vscode": "VS Code"}
RESTART_HINT = {
    "claude-desktop": "restart Claude Desktop to load it (its log: mcp-server-comfy-quality.log beside the app logs)",
    "cursor": "Cursor picks it up in Settings → MCP (toggle it on if needed)",
    "vscode": "VS Code: run 'MCP: List Servers' and start it (or open the file and use the Start code lens)",
    "claude-code": "Claude Code reads .mcp.json at the project root; `claude mcp list` shows it",
}
