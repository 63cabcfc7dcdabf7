"""``comfy-quality-mcp install HOST``: every host's format and default path, merging, backups, idempotence,
refusal of broken files, --print, --env checks and Claude Code's command line. Config files live in tmp only:
HOME, APPDATA, XDG_CONFIG_HOME and USERPROFILE point into the test's folder."""

from __future__ import annotations

import io
import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_server.__main__ import main as mcp_main
from mcp_server.install import default_config_path, entry_point
from mcp_server.install import main as install_main

PYTHON_DIR = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    for name in ("HOME", "USERPROFILE"):
        monkeypatch.setenv(name, str(home))
    monkeypatch.setenv("APPDATA", str(home / "AppData" / "Roaming"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name in ("COMFY_QUALITY_MCP_ROOTS", "COMFY_QUALITY_MCP_URL_ALLOWLIST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def install(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = install_main(list(argv), out=out)
    return code, out.getvalue()


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".bak-*"))


# -- default paths -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "system", "expected"),
    [
        ("claude-desktop", "darwin", "H/Library/Application Support/Claude/claude_desktop_config.json"),
        ("claude-desktop", "win32", "A/Claude/claude_desktop_config.json"),
        ("claude-desktop", "linux", "H/.config/Claude/claude_desktop_config.json"),
        ("cursor", "darwin", "H/.cursor/mcp.json"),
        ("cursor", "win32", "H/.cursor/mcp.json"),
        ("cursor", "linux", "H/.cursor/mcp.json"),
        ("vscode", "darwin", "H/Library/Application Support/Code/User/mcp.json"),
        ("vscode", "win32", "A/Code/User/mcp.json"),
        ("vscode", "linux", "H/.config/Code/User/mcp.json"),
    ],
)
def test_default_config_path_per_host_and_os(host, system, expected, tmp_path):
    h, a = tmp_path / "h", tmp_path / "appdata"
    got = default_config_path(host, system=system, environ={"APPDATA": str(a)}, home=h)
    root, _, rest = expected.partition("/")
    assert got == {"H": h, "A": a}[root] / rest


def test_default_paths_follow_xdg_and_workspace(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert default_config_path("vscode", system="linux", environ=env, home=tmp_path) == (
        tmp_path / "xdg" / "Code" / "User" / "mcp.json"
    )
    assert default_config_path("claude-desktop", system="win32", environ={}, home=tmp_path) == (
        tmp_path / "AppData" / "Roaming" / "Claude" / "claude_desktop_config.json"
    )
    ws = tmp_path / "proj"
    assert default_config_path("vscode", workspace=ws) == ws / ".vscode" / "mcp.json"
    assert default_config_path("cursor", workspace=ws) == ws / ".cursor" / "mcp.json"
    assert default_config_path("claude-code", workspace=ws) == ws / ".mcp.json"
    assert default_config_path("claude-code", home=tmp_path) is None  # its CLI owns ~/.claude.json


def test_entry_point_is_the_script_beside_the_interpreter_or_python_m(tmp_path):
    command, args = entry_point()
    assert os.path.isabs(command) and os.path.isfile(command) and args == []
    assert command == str(PYTHON_DIR / "comfy-quality-mcp")
    bare = tmp_path / "bin" / "python3"
    bare.parent.mkdir()
    bare.touch()
    assert entry_point(str(bare)) == (str(bare), ["-m", "mcp_server"])


# -- each host -----------------------------------------------------------------------------------------------
def test_claude_desktop_default_file_gets_an_absolute_entry(home, tmp_path):
    (tmp_path / "pics").mkdir()
    code, text = install("claude-desktop", "--env", "COMFY_QUALITY_MCP_ROOTS=pics,~/more",
                         "--env", "COMFY_QUALITY_WEIGHTS_DIR=w")  # fmt: skip
    path = home / ".config" / "Claude" / "claude_desktop_config.json"
    assert code == 0 and str(path) in text and "new file" in text
    entry = json.loads(path.read_text())["mcpServers"]["comfy-quality"]
    assert entry["command"] == str(PYTHON_DIR / "comfy-quality-mcp") and entry["args"] == []
    assert entry["env"] == {
        "COMFY_QUALITY_MCP_ROOTS": f"{tmp_path / 'pics'},{home / 'more'}",
        "COMFY_QUALITY_WEIGHTS_DIR": str(tmp_path / "w"),
    }
    assert "type" not in entry


def test_a_host_folder_that_does_not_exist_is_pointed_out(home, capsys):
    assert install("cursor")[0] == 0
    assert "is Cursor installed?" in capsys.readouterr().err
    assert install("cursor", "--name", "second")[0] == 0
    assert "installed?" not in capsys.readouterr().err  # the folder exists now


def test_cursor_and_vscode_formats(home, tmp_path):
    assert install("cursor", "--env", "COMFY_QUALITY_COMFYUI_URLS=http://gpu:8188")[0] == 0
    cursor = json.loads((home / ".cursor" / "mcp.json").read_text())
    assert cursor["mcpServers"]["comfy-quality"]["env"] == {"COMFY_QUALITY_COMFYUI_URLS": "http://gpu:8188"}
    assert install("vscode")[0] == 0
    vscode = json.loads((home / ".config" / "Code" / "User" / "mcp.json").read_text())
    entry = vscode["servers"]["comfy-quality"]
    assert entry["type"] == "stdio" and os.path.isabs(entry["command"]) and "mcpServers" not in vscode
    assert install("vscode", "--workspace", str(tmp_path / "proj"))[0] == 0
    assert json.loads((tmp_path / "proj" / ".vscode" / "mcp.json").read_text())["servers"]["comfy-quality"] == entry


def test_claude_code_project_file_and_config(tmp_path):
    assert install("claude-code", "--workspace", str(tmp_path))[0] == 0
    entry = json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]["comfy-quality"]
    assert entry["type"] == "stdio" and entry["command"] == str(PYTHON_DIR / "comfy-quality-mcp")


def test_claude_code_prints_a_quoted_claude_mcp_add_line(tmp_path):
    code, text = install("claude-code", "--env", "COMFY_QUALITY_MCP_ROOTS=/my pics/it's here",
                         "--env", "COMFY_QUALITY_MCP_URL_ALLOWLIST=*.example.com")  # fmt: skip
    assert code == 0
    assert shlex.split(text.strip()) == [
        "claude", "mcp", "add", "comfy-quality", "--scope", "user",
        "-e", "COMFY_QUALITY_MCP_ROOTS=/my pics/it's here", "-e", "COMFY_QUALITY_MCP_URL_ALLOWLIST=*.example.com",
        "--", str(PYTHON_DIR / "comfy-quality-mcp"),
    ]  # fmt: skip
    assert not any(tmp_path.rglob("*.json"))  # nothing written


def test_claude_code_run_calls_claude_remove_then_add(tmp_path, monkeypatch):
    bindir, log = tmp_path / "bin", tmp_path / "claude.log"
    bindir.mkdir()
    fake = bindir / "claude"
    fake.write_text(f'#!/bin/sh\nprintf "%s|" "$@" >> "{log}"\necho >> "{log}"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    code, text = install("claude-code", "--run", "--scope", "local", "--env", "COMFY_QUALITY_MCP_AUTH_TOKEN=s3cret")
    assert code == 0 and "s3cret" not in text and "added comfy-quality" in text
    calls = log.read_text().splitlines()
    assert calls[0] == "mcp|remove|comfy-quality|--scope|local|"
    assert calls[1].startswith("mcp|add|comfy-quality|--scope|local|-e|COMFY_QUALITY_MCP_AUTH_TOKEN=s3cret|--|")


def test_claude_code_run_without_claude_exits_4(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert install("claude-code", "--run")[0] == 4
    assert "`claude` command is not on PATH" in capsys.readouterr().err


# -- merging, backups, idempotence ---------------------------------------------------------------------------
def test_merge_keeps_other_servers_and_keys_backs_up_and_is_idempotent(tmp_path):
    config = tmp_path / "claude_desktop_config.json"
    original = {
        "globalShortcut": "Ctrl+Space",
        "mcpServers": {"filesystem": {"command": "npx", "args": ["-y", "server-filesystem", "/x"]}},
        "preferences": {"theme": "dark"},
    }
    config.write_text(json.dumps(original, indent=4))
    before = config.read_text()
    code, text = install("claude-desktop", "--config", str(config))
    assert code == 0 and "added comfy-quality" in text
    merged = json.loads(config.read_text())
    assert list(merged) == ["globalShortcut", "mcpServers", "preferences"]
    assert merged["mcpServers"]["filesystem"] == original["mcpServers"]["filesystem"]
    assert merged["preferences"] == {"theme": "dark"} and "comfy-quality" in merged["mcpServers"]
    [backup] = backups(config)
    assert backup.read_text() == before and str(backup) in text
    after_first = config.read_bytes()
    mtime = config.stat().st_mtime_ns
    code, text = install("claude-desktop", "--config", str(config))
    assert code == 0 and "nothing changed" in text
    assert config.read_bytes() == after_first and config.stat().st_mtime_ns == mtime and len(backups(config)) == 1


def test_a_changed_entry_is_updated_in_place_with_a_new_backup(tmp_path):
    config = tmp_path / "mcp.json"
    assert install("cursor", "--config", str(config), "--env", "COMFY_QUALITY_OFFLINE=1")[0] == 0
    assert backups(config) == []  # there was no file to back up
    data = json.loads(config.read_text())
    data["mcpServers"]["other"] = {"command": "x"}
    config.write_text(json.dumps(data))
    code, text = install("cursor", "--config", str(config), "--env", "COMFY_QUALITY_DEVICE=cpu")
    assert code == 0 and "updated comfy-quality" in text and "COMFY_QUALITY_OFFLINE" in text  # dropped key named
    servers = json.loads(config.read_text())["mcpServers"]
    assert list(servers) == ["comfy-quality", "other"] and servers["comfy-quality"]["env"] == {
        "COMFY_QUALITY_DEVICE": "cpu"
    }
    assert len(backups(config)) == 1


def test_a_second_server_name_sits_beside_the_first(tmp_path):
    config = tmp_path / "mcp.json"
    install("vscode", "--config", str(config))
    install("vscode", "--config", str(config), "--name", "comfy-quality-gpu", "--env", "COMFY_QUALITY_DEVICE=cuda")
    assert list(json.loads(config.read_text())["servers"]) == ["comfy-quality", "comfy-quality-gpu"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"servers": {"a": {"command": "x"}},}', "not valid JSON (line 1"),
        ('{\n  // my servers\n  "servers": {}\n}', "not valid JSON (line 2, column 3"),
        ('[{"servers": {}}]', "holds a JSON list, not an object"),
        ('{"servers": ["a"]}', '"servers" in'),
    ],
)
def test_a_file_that_is_not_a_json_object_is_refused_untouched(tmp_path, capsys, content, reason):
    config = tmp_path / "mcp.json"
    config.write_text(content)
    code, text = install("vscode", "--config", str(config))
    err = capsys.readouterr().err
    assert code == 3 and reason in err and "nothing was written" in err and text == ""
    assert config.read_text() == content and backups(config) == []


def test_print_writes_nothing(home, capsys):
    code, text = install("claude-desktop", "--print", "--env", "COMFY_QUALITY_MCP_URL_ALLOWLIST=example.com")
    assert code == 0
    printed = json.loads(text)
    assert printed["mcpServers"]["comfy-quality"]["env"] == {"COMFY_QUALITY_MCP_URL_ALLOWLIST": "example.com"}
    assert not (home / ".config").exists()
    code, text = install("vscode", "--print")
    assert json.loads(text)["servers"]["comfy-quality"]["type"] == "stdio"


def test_a_symlinked_config_is_written_through_the_link(tmp_path):
    target = tmp_path / "dotfiles" / "mcp.json"
    target.parent.mkdir()
    target.write_text('{"mcpServers": {}}')
    link = tmp_path / "mcp.json"
    link.symlink_to(target)
    assert install("cursor", "--config", str(link))[0] == 0
    assert link.is_symlink() and "comfy-quality" in json.loads(target.read_text())["mcpServers"]


def test_a_new_file_holding_a_secret_is_private(tmp_path):
    config = tmp_path / "mcp.json"
    assert install("cursor", "--config", str(config), "--env", "COMFY_QUALITY_STORAGE_S3_SECRET_KEY=k")[0] == 0
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


# -- --env ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("COMFY_QUALITY_MCP_ROOTS", "--env takes KEY=VALUE"),
        ("=x", "--env takes KEY=VALUE"),
        ("BAD KEY=1", "--env takes KEY=VALUE"),
        ("COMFY_QUALITY_MCP_PORT=abc", "--env COMFY_QUALITY_MCP_PORT: Input should be a valid integer"),
        ("COMFY_QUALITY_MCP_URL_ALLOWLIST=http://x/y", "--env COMFY_QUALITY_MCP_URL_ALLOWLIST"),
        ("COMFY_QUALITY_STORAGE_BACKEND=ftp", "--env COMFY_QUALITY_STORAGE_BACKEND"),
        ("COMFY_QUALITY_METRICS=psnr", "--env COMFY_QUALITY_METRICS"),
        ("COMFY_QUALITY_MCP_DEFAULT_WAIT_SECONDS=100", "exceeds max_wait_seconds"),
    ],
)
def test_bad_env_is_a_usage_error_and_writes_nothing(tmp_path, capsys, pair, message):
    config = tmp_path / "mcp.json"
    assert install("cursor", "--config", str(config), "--env", pair)[0] == 2
    assert message in capsys.readouterr().err and not config.exists()


def test_unknown_setting_names_warn_with_a_suggestion_and_others_pass(tmp_path, capsys):
    config = tmp_path / "mcp.json"
    code, _ = install("cursor", "--config", str(config), "--env", "COMFY_QUALITY_WEIGTHS_DIR=/w",
                      "--env", "HF_HUB_OFFLINE=1")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and "COMFY_QUALITY_WEIGTHS_DIR is not a setting" in err and "COMFY_QUALITY_WEIGHTS_DIR?" in err
    assert "HF_HUB_OFFLINE" not in err
    env = json.loads(config.read_text())["mcpServers"]["comfy-quality"]["env"]
    assert env == {"COMFY_QUALITY_WEIGTHS_DIR": "/w", "HF_HUB_OFFLINE": "1"}


def test_missing_roots_and_allowlist_are_pointed_out(tmp_path, capsys):
    install("cursor", "--config", str(tmp_path / "mcp.json"))
    err = capsys.readouterr().err
    assert "no COMFY_QUALITY_MCP_ROOTS" in err and "no COMFY_QUALITY_MCP_URL_ALLOWLIST" in err
    install("cursor", "--config", str(tmp_path / "mcp.json"), "--env", f"COMFY_QUALITY_MCP_ROOTS={tmp_path}",
            "--env", "COMFY_QUALITY_MCP_URL_ALLOWLIST=*")  # fmt: skip
    assert "no COMFY_QUALITY_MCP" not in capsys.readouterr().err


def test_unknown_host_and_wrong_flags_are_usage_errors(tmp_path, capsys):
    assert install("windsurf")[0] == 2
    assert install("cursor", "--run")[0] == 2
    assert install("claude-desktop", "--workspace", str(tmp_path))[0] == 2
    assert install("cursor", "--name", "a b")[0] == 2
    assert install("claude-code", "--run", "--workspace", str(tmp_path))[0] == 2


def test_advice_ignores_this_shells_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COMFY_QUALITY_MCP_ROOTS", str(tmp_path))  # the host will not see it
    install("cursor", "--config", str(tmp_path / "mcp.json"))
    assert "no COMFY_QUALITY_MCP_ROOTS" in capsys.readouterr().err


def test_python_m_fallback_adds_the_checkout_to_pythonpath_only_when_needed(tmp_path):
    from mcp_server.install import import_path

    assert import_path(sys.executable) is None  # this interpreter has the package installed
    bare = tmp_path / "python"
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')  # no site-packages: the package is missing
    bare.chmod(0o755)
    folder = import_path(str(bare))
    assert folder is not None and (Path(folder) / "mcp_server" / "__init__.py").is_file()


# -- the entry point and the serve CLI -----------------------------------------------------------------------
def test_written_entry_starts_the_server_cli(tmp_path):
    config = tmp_path / "mcp.json"
    install("cursor", "--config", str(config))
    entry = json.loads(config.read_text())["mcpServers"]["comfy-quality"]
    proc = subprocess.run([entry["command"], *entry["args"], "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--transport" in proc.stdout and "install HOST" in proc.stdout


def test_serve_cli_still_parses_its_options_and_dispatches_install(tmp_path, capsys):
    config = tmp_path / "x.json"
    assert mcp_main(["install", "cursor", "--config", str(config)]) == 0 and config.exists()
    with pytest.raises(SystemExit) as exc:
        mcp_main(["--transport", "bogus"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def host_params(tmp_path):
    """Install into a Claude Desktop file, then what Claude Desktop does: the entry's command and env, run from
    another folder."""
    from mcp.client.stdio import StdioServerParameters

    from tests.mcp_server.fakes import AGIQA

    config = tmp_path / "claude_desktop_config.json"
    env = {"COMFY_QUALITY_MCP_ROOTS": str(AGIQA), "COMFY_QUALITY_OFFLINE": "1", "COMFY_QUALITY_DEVICE": "cpu",
           "COMFY_QUALITY_WEIGHTS_DIR": "weights", "COMFY_QUALITY_STORAGE_LOCAL_ROOT": "store",
           "COMFY_QUALITY_STORAGE_INDEX_PATH": "index.sqlite3", "COMFY_QUALITY_STORAGE_SPOOL_DIR": "spool"}  # fmt: skip
    argv = ["claude-desktop", "--config", str(config)]
    for pair in env.items():
        argv += ["--env", "=".join(pair)]
    assert install(*argv)[0] == 0
    entry = json.loads(config.read_text())["mcpServers"]["comfy-quality"]
    assert entry["env"]["COMFY_QUALITY_WEIGHTS_DIR"] == str(tmp_path / "weights")  # made absolute
    elsewhere = tmp_path / "host-cwd"
    elsewhere.mkdir()
    return StdioServerParameters(command=entry["command"], args=entry["args"], env=entry["env"], cwd=str(elsewhere))


async def test_a_host_can_start_the_written_entry_with_its_settings(tmp_path):
    import anyio
    from mcp import Client

    from tests.mcp_server.fakes import AGIQA

    with anyio.fail_after(180):
        async with Client(host_params(tmp_path)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert "score_image" in tools
            refused = await client.call_tool("score_image", {"image": "/etc/passwd"})
            message = refused.content[0].text
            assert refused.is_error and ("outside the allowed folders" in message or str(AGIQA) in message)


@pytest.mark.slow
async def test_a_host_can_score_through_the_written_entry(tmp_path):
    import anyio
    from mcp import Client

    with anyio.fail_after(300):
        async with Client(host_params(tmp_path)) as client:
            scored = await client.call_tool("score_image", {"image": "midjourney_normal_000.jpg"})
            assert not scored.is_error, scored.content
            assert scored.structured_content["image"]["width"] == 512 and "composite_score" in scored.structured_content
