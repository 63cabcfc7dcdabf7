"""One settings tree: the shared rules (comfy_quality.config), every section on them, the composed tree."""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

import comfy_quality.settings as tree_module
from comfy_quality.config import (
    ENV_FILE,
    SectionSettings,
    hf_offline,
    parse_bool,
    parse_bytes,
    parse_list,
    unknown_variables,
)
from comfy_quality.settings import SECTIONS, Settings, find_unknown_variables, known_variables, section_class
from dashboard.settings import DashboardSettings
from jobqueue.settings import JobsSettings
from mcp_server.settings import McpSettings
from quality.settings import QualitySettings
from quality.weights import WeightsStore
from refinement.settings import RefinementSettings
from storage.settings import StorageSettings

REPO = Path(__file__).resolve().parents[2]
MIB = 2**20


# -- one bool parser -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("1", True), ("true", True), ("True", True), ("TRUE", True), (" yes ", True), ("On", True),
        ("0", False), ("false", False), ("False", False), ("no", False), ("OFF", False),
        (True, True), (False, False), (1, True), (0, False),
    ],
)  # fmt: skip
def test_parse_bool_table(given: object, expected: bool) -> None:
    assert parse_bool(given) is expected


@pytest.mark.parametrize("given", ["2", "maybe", "", "enable", "truthy", 2, None])
def test_parse_bool_refuses_anything_else_naming_the_value(given: object) -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool(given)


@pytest.mark.parametrize(
    ("value", "offline"),
    [("1", True), ("True", True), ("true", True), ("YES", True), ("on", True),
     ("0", False), ("False", False), ("", False), ("maybe", False)],
)  # fmt: skip
def test_hf_hub_offline_has_one_meaning_everywhere(value: str, offline: bool, monkeypatch, tmp_path) -> None:
    """huggingface_hub's reading: the scorer settings and the weights store agree (``True`` used to mean online
    in the store and offline in the settings)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hf_offline() is offline
    assert QualitySettings().offline is offline
    assert WeightsStore(tmp_path / "w").offline is offline


def test_every_boolean_setting_uses_the_one_parser(monkeypatch) -> None:
    monkeypatch.setenv("COMFY_QUALITY_PREFLIGHT", "Off")
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_S3_SECURE", "YES")
    monkeypatch.setenv("COMFY_QUALITY_MCP_PREVIEW", "0")
    monkeypatch.setenv("COMFY_QUALITY_DASHBOARD_ALLOW_UNAUTHENTICATED_REMOTE", "on")
    monkeypatch.setenv("COMFY_QUALITY_CALIBRATION", "False")
    assert RefinementSettings().preflight is False
    assert StorageSettings().s3_secure is True
    assert McpSettings().preview is False
    assert DashboardSettings().allow_unauthenticated_remote is True
    assert QualitySettings().calibration is False
    monkeypatch.setenv("COMFY_QUALITY_MCP_PREVIEW", "nope")
    with pytest.raises(ValidationError, match="not a boolean"):
        McpSettings()


# -- one list parser -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("a,b", ["a", "b"]),
        (" a , ,b ,", ["a", "b"]),
        ("", []),
        ("   ", []),
        ("one", ["one"]),
        ('["a,b", "c"]', ["a,b", "c"]),
        (" [] ", []),
        (["x", "y"], ["x", "y"]),
        (("x",), ["x"]),
    ],
)
def test_parse_list_table(given: object, expected: list[str]) -> None:
    assert parse_list(given) == expected


@pytest.mark.parametrize(("given", "message"), [("[1,", "not a valid JSON list"), ('["a"] x', "not a valid JSON")])
def test_parse_list_names_a_broken_json_list(given: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_list(given)


def test_every_list_setting_uses_the_one_parser(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("COMFY_QUALITY_COMFYUI_URLS", '["http://a:8188", "http://b:8188"]')
    monkeypatch.setenv("COMFY_QUALITY_METRICS", "brisque, niqe")
    monkeypatch.setenv("COMFY_QUALITY_MCP_ROOTS", json.dumps([str(tmp_path / "a,b"), str(tmp_path / "c")]))
    monkeypatch.setenv("COMFY_QUALITY_MCP_URL_ALLOWLIST", "example.com,*.cdn.example")
    monkeypatch.setenv("COMFY_QUALITY_DASHBOARD_ALLOWED_HOSTS", '["dash.example.com"]')
    assert RefinementSettings().comfyui_urls == ["http://a:8188", "http://b:8188"]
    assert QualitySettings().metrics == ["brisque", "niqe"]
    mcp = McpSettings()
    assert mcp.roots == [tmp_path / "a,b", tmp_path / "c"]
    assert mcp.url_allowlist == ["example.com", "*.cdn.example"]
    assert DashboardSettings().allowed_hosts == ["dash.example.com"]
    monkeypatch.setenv("COMFY_QUALITY_COMFYUI_URLS", "[broken")
    with pytest.raises(ValidationError, match="not a valid JSON list"):
        RefinementSettings()


# -- one unit per concept: sizes are bytes -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [("67108864", 67108864), ("64MiB", 64 * MIB), ("64 mib", 64 * MIB), ("64MB", 64_000_000), ("1.5GiB", 3 * 2**29),
     ("2KiB", 2048), ("2kb", 2000), ("100B", 100), (123, 123)],
)  # fmt: skip
def test_parse_bytes_table(given: object, expected: int) -> None:
    assert parse_bytes(given) == expected


@pytest.mark.parametrize("given", ["64M", "-1", "abc", "1.2.3MB", "MiB"])
def test_parse_bytes_refuses_what_is_not_a_size(given: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_bytes(given)


def test_image_limits_are_bytes_in_every_section(monkeypatch) -> None:
    monkeypatch.setenv("COMFY_QUALITY_MAX_IMAGE_BYTES", "32MiB")
    monkeypatch.setenv("COMFY_QUALITY_MCP_DOWNLOAD_MAX_BYTES", "8MiB")
    monkeypatch.setenv("COMFY_QUALITY_DASHBOARD_MAX_IMAGE_BYTES", "16MiB")
    assert QualitySettings().max_image_bytes == 32 * MIB
    assert McpSettings().download_max_bytes == 8 * MIB
    assert DashboardSettings().max_image_bytes == 16 * MIB


def test_dashboard_mib_variables_of_earlier_versions_still_work(monkeypatch) -> None:
    defaults = DashboardSettings()
    assert (defaults.max_image_bytes, defaults.thumbnail_cache_max_bytes) == (64 * MIB, 256 * MIB)
    monkeypatch.setenv("COMFY_QUALITY_DASHBOARD_MAX_IMAGE_MB", "2.5")
    monkeypatch.setenv("COMFY_QUALITY_DASHBOARD_THUMBNAIL_CACHE_MAX_MB", "10")
    old = DashboardSettings()
    assert (old.max_image_bytes, old.thumbnail_cache_max_bytes) == (int(2.5 * MIB), 10 * MIB)
    monkeypatch.setenv("COMFY_QUALITY_DASHBOARD_MAX_IMAGE_BYTES", "1000")  # the byte variable wins
    assert DashboardSettings().max_image_bytes == 1000


# -- one base, .env everywhere -------------------------------------------------------------------------------
def test_every_section_is_on_the_shared_base() -> None:
    classes = {name: section_class(name) for name in SECTIONS}
    assert set(classes) == {"quality", "refinement", "storage", "mcp", "dashboard", "jobs"}
    for module in {c.__module__ for c in classes.values()}:
        importlib.import_module(module)
    # any settings class of the project (a new one too) derives from SectionSettings
    pending = list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in {"quality", "refinement", "storage", "mcp_server", "dashboard", "jobqueue"}:
            assert issubclass(cls, SectionSettings), cls
    assert all(dict(c.model_config).get("extra") == "ignore" for c in classes.values())


DOTENV = (
    "COMFY_QUALITY_DEVICE=cpu\n"
    "COMFY_QUALITY_ATTEMPT_TIMEOUT_SECONDS=33\n"
    "COMFY_QUALITY_STORAGE_BACKEND=s3\n"
    "COMFY_QUALITY_STORAGE_S3_ENDPOINT=minio:9000\n"
    "COMFY_QUALITY_MCP_PORT=9999\n"
    "COMFY_QUALITY_DASHBOARD_PAGE_SIZE=7\n"
    "COMFY_QUALITY_JOBS_URL=redis://localhost:6379/5\n"
)


def test_dotenv_is_honoured_by_every_section_of_the_tree(tmp_path) -> None:
    env = tmp_path / ".env"
    env.write_text(DOTENV)
    tree = Settings(env_file=env)
    assert tree.quality.device == "cpu"
    assert tree.refinement.attempt_timeout_seconds == 33
    assert tree.storage.backend == "s3"
    assert tree.mcp.port == 9999
    assert tree.dashboard.page_size == 7
    assert tree.dashboard.storage is tree.storage
    assert tree.jobs.redis_url() == "redis://localhost:6379/5"
    assert Settings(env_file=None).storage.backend == "local"


def test_dotenv_in_the_working_directory_reaches_storage_dashboard_and_jobs(tmp_path) -> None:
    """The bug: COMFY_QUALITY_STORAGE_BACKEND=s3 in .env left the store local (storage and dashboard did not read
    .env) and wants_workers read COMFY_QUALITY_JOBS_URL from the process environment only. A fresh interpreter in a
    folder with a .env, with no variable set, as a user runs it (the test fixtures switch .env reading off)."""
    (tmp_path / ENV_FILE).write_text(DOTENV)
    (tmp_path / "gallery").mkdir()
    code = (
        "import json\n"
        "from storage.settings import StorageSettings\n"
        "from dashboard.settings import DashboardSettings\n"
        "from jobqueue.settings import wants_workers\n"
        "from quality.settings import QualitySettings\n"
        "print(json.dumps([StorageSettings().backend, DashboardSettings().storage.backend,\n"
        "                  DashboardSettings().page_size, wants_workers(['gallery'], False),\n"
        "                  QualitySettings().device]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFY_QUALITY_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == ["s3", "s3", 7, True, "cpu"]


def test_wants_workers_follows_the_jobs_settings(tmp_path) -> None:
    (tmp_path / "g").mkdir()
    folder = str(tmp_path / "g")
    with_url = JobsSettings(url="redis://localhost:6379/0")  # type: ignore[arg-type]
    assert JobsSettings.__module__ == "jobqueue.settings"
    from jobqueue.settings import wants_workers

    assert wants_workers([folder], False, with_url) is True
    assert wants_workers([folder], True, with_url) is False  # --local
    assert wants_workers([folder], False, JobsSettings()) is False
    assert wants_workers(["s3://bucket/prefix"], False, JobsSettings()) is True


# -- unknown variables ---------------------------------------------------------------------------------------
def test_known_variables_cover_every_section_and_alias() -> None:
    known = known_variables()
    for name in (
        "COMFY_QUALITY_DEVICE", "COMFY_QUALITY_COMFYUI_URLS", "COMFY_QUALITY_STORAGE_BACKEND",
        "COMFY_QUALITY_STORAGE_S3_ACCESS_KEY", "COMFY_QUALITY_MCP_TRANSPORT", "COMFY_QUALITY_DASHBOARD_PAGE_SIZE",
        "COMFY_QUALITY_DASHBOARD_MAX_IMAGE_MB", "COMFY_QUALITY_JOBS_URL", "COMFY_QUALITY_GRADES_JSON",
    ):  # fmt: skip
        assert name in known, name
    assert "COMFY_QUALITY_DASHBOARD_STORAGE" not in known  # a nested section, not a variable
    assert known["COMFY_QUALITY_STORAGE_S3_ACCESS_KEY"] == (StorageSettings, "s3_access_key")


def test_a_misspelled_variable_is_reported_with_the_closest_name(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_BAKEND", "s3")
    monkeypatch.setenv("COMFY_QUALITY_DEVICE", "cpu")  # known: not reported
    monkeypatch.setenv("COMFY_QUALITY_ZZZZZZZZZZ", "1")  # nothing close
    monkeypatch.setenv("OTHER_TOOL_SETTING", "1")  # not ours
    env = tmp_path / ".env"
    env.write_text("COMFY_QUALITY_MCP_TRANSPROT=sse\nCOMFY_QUALITY_MCP_PORT=1\n")
    found = {u.name: u for u in find_unknown_variables(env_file=env)}
    assert set(found) == {"COMFY_QUALITY_STORAGE_BAKEND", "COMFY_QUALITY_ZZZZZZZZZZ", "COMFY_QUALITY_MCP_TRANSPROT"}
    assert found["COMFY_QUALITY_STORAGE_BAKEND"].suggestion == "COMFY_QUALITY_STORAGE_BACKEND"
    assert found["COMFY_QUALITY_STORAGE_BAKEND"].source == "environment"
    assert found["COMFY_QUALITY_MCP_TRANSPROT"].suggestion == "COMFY_QUALITY_MCP_TRANSPORT"
    assert found["COMFY_QUALITY_MCP_TRANSPROT"].source == str(env)
    assert found["COMFY_QUALITY_ZZZZZZZZZZ"].suggestion is None
    assert "did you mean COMFY_QUALITY_STORAGE_BACKEND?" in found["COMFY_QUALITY_STORAGE_BAKEND"].message()


def test_unknown_variables_compare_names_in_capitals() -> None:
    found = unknown_variables(["COMFY_QUALITY_DEVICE"], environ={"comfy_quality_device": "cpu", "COMFY_QUALITY_X": ""})
    assert [u.name for u in found] == ["COMFY_QUALITY_X"]


def test_loading_the_tree_logs_each_unknown_variable_once(monkeypatch, caplog) -> None:
    monkeypatch.setattr(tree_module, "_reported", set())
    monkeypatch.setenv("COMFY_QUALITY_DEVCE", "cpu")
    with caplog.at_level(logging.WARNING, logger="comfy_quality.settings"):
        settings = tree_module.load_settings()
        tree_module.report_unknown_variables(settings)
    warnings = [r.getMessage() for r in caplog.records if "COMFY_QUALITY_DEVCE" in r.getMessage()]
    assert len(warnings) == 1
    assert "did you mean COMFY_QUALITY_DEVICE?" in warnings[0]


def test_the_tree_refuses_an_unknown_section() -> None:
    with pytest.raises(TypeError, match="unknown settings section"):
        Settings(storge={"backend": "s3"})
    assert Settings(storage={"backend": "s3"}, env_file=None).dashboard.storage.backend == "s3"


def test_the_scorer_section_needs_no_other_package_of_ours() -> None:
    """quality depends on nothing of ours: its settings import only the foundation."""
    code = (
        "import sys\n"
        "from quality.settings import QualitySettings\n"
        "QualitySettings(_env_file=None)\n"
        "ours = {'refinement', 'storage', 'mcp_server', 'dashboard', 'jobqueue', 'serving'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ours))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFY_QUALITY_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_every_variable_the_docs_and_code_name_is_a_setting() -> None:
    """A documented or read ``COMFY_QUALITY_*`` name that no section declares would be reported as a typo (and a
    documented typo would mislead): README, docs/, examples/, package READMEs and the packages' code."""
    import re

    known = set(known_variables()) | tree_module.NOT_SETTINGS | {"COMFY_QUALITY_STORAGE_BAKEND"}  # README's typo
    files = [REPO / "README.md", REPO / "run", *REPO.glob("*/README.md"), *REPO.glob("docs/**/*.md")]
    files += [p for p in REPO.glob("examples/**/*") if p.is_file()]
    for package in ("comfy_quality", "quality", "refinement", "storage", "mcp_server", "dashboard", "jobqueue"):
        files += list((REPO / package).rglob("*.py"))
    stale = set()
    for path in files:
        for name in re.findall(r"COMFY_QUALITY_[A-Z0-9_]*[A-Z0-9]\b(?!_)", path.read_text(errors="replace")):
            if name not in known and not any(k.startswith(name + "_") for k in known):  # a prefix: MCP, STORAGE
                stale.add(f"{path.relative_to(REPO)}: {name}")
    assert sorted(stale) == []


def test_worker_variables_are_settings_now(monkeypatch) -> None:
    """Read from os.environ by the worker before, they were invisible to .env and to the unknown-name check."""
    monkeypatch.setenv("COMFY_QUALITY_JOBS_WORKER_COMPONENTS", "my.module:parts")
    monkeypatch.setenv("COMFY_QUALITY_JOBS_LOG_LEVEL", "DEBUG")
    jobs = JobsSettings()
    assert (jobs.worker_components, jobs.log_level) == ("my.module:parts", "DEBUG")
    assert find_unknown_variables() == []
    monkeypatch.setenv("COMFY_QUALITY_JOBS_LOG_LEVEL", "LOUD")
    with pytest.raises(ValidationError):
        JobsSettings()


def test_a_command_warns_of_a_misspelled_variable_in_the_environment_and_dotenv(tmp_path) -> None:
    """What a user sees: ``python -m storage health`` with one typo in the environment and one in ``.env``."""
    (tmp_path / ENV_FILE).write_text("COMFY_QUALITY_STORAGE_LOCAL_ROOTT=/somewhere\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFY_QUALITY_")}
    env |= {"PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(tmp_path / "data"), "COMFY_QUALITY_STORAGE_BAKEND": "s3"}
    proc = subprocess.run(
        [sys.executable, "-m", "storage", "health"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["backend"] == "local"  # the typo changed nothing, and said so:
    assert "COMFY_QUALITY_STORAGE_BAKEND (from environment) is not a comfy-quality setting" in proc.stderr
    assert "did you mean COMFY_QUALITY_STORAGE_BACKEND?" in proc.stderr
    assert "COMFY_QUALITY_STORAGE_LOCAL_ROOTT (from .env)" in proc.stderr
    assert "did you mean COMFY_QUALITY_STORAGE_LOCAL_ROOT?" in proc.stderr
