"""``comfy-quality-mcp doctor`` against the ComfyUI test server (up, down, missing models), a local store, real
SeaweedFS S3 (probe, refused credentials, down with a spool), the index and the MCP input settings."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfy_quality.config import SectionSettings
from mcp_server.__main__ import main as mcp_main
from mcp_server.doctor import Report, render, run_checks
from storage import Index
from storage.s3 import S3Store
from tests.fakes.comfyui_server import FakeComfyUI
from tests.fakes.comfyui_testing import free_port
from tests.storage.factories import make_image, make_metadata
from tests.storage.seaweed import SeaweedServer, serve


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch) -> Path:
    """Only the settings a test sets; everything the doctor touches lives in tmp_path."""
    for name in list(os.environ):
        if name.startswith(("COMFY_QUALITY_", "AWS_")) or name in ("HF_HUB_OFFLINE", "XDG_DATA_HOME"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("COMFY_QUALITY_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("COMFY_QUALITY_OFFLINE", "1")
    (tmp_path / "pics").mkdir()
    monkeypatch.setenv("COMFY_QUALITY_MCP_ROOTS", str(tmp_path / "pics"))
    monkeypatch.setenv("COMFY_QUALITY_MCP_URL_ALLOWLIST", "example.com")
    monkeypatch.setenv("COMFY_QUALITY_COMFYUI_URLS", f"http://127.0.0.1:{free_port()}")  # nobody listens
    return tmp_path


def by_name(report: Report) -> dict[str, object]:
    return {c.name: c for c in report.checks}


async def checks(**kwargs) -> tuple[Report, dict]:
    report = await run_checks(timeout=10, **kwargs)  # generous: refused connections answer at once anyway
    return report, by_name(report)


async def cli(*argv: str) -> tuple[int, str]:
    """The real command line (its own event loop, in a thread, so the fake server keeps serving here)."""
    out = io.StringIO()

    def call() -> int:
        from mcp_server.doctor import main

        return main(list(argv), out=out)

    code = await asyncio.to_thread(call)
    return code, out.getvalue()


@pytest.fixture
async def comfy(monkeypatch) -> FakeComfyUI:
    async with FakeComfyUI() as server:
        monkeypatch.setenv("COMFY_QUALITY_COMFYUI_URLS", server.url)
        yield server


# -- ComfyUI -------------------------------------------------------------------------------------------------
async def test_all_good_with_comfyui_up_and_a_local_store(comfy, env):
    report, c = await checks()
    assert report.ok, render(report)
    comfyui = c[f"comfyui {comfy.url}"]
    assert comfyui.status == "ok" and "default workflow 'sd15': nodes and model files present" in comfyui.detail
    assert any(r.path.startswith("/object_info") for r in comfy.requests)
    assert c["storage"].status == "ok" and "write, read back and delete OK" in c["storage"].detail
    store_root = env / "data" / "comfy-quality" / "store"
    assert store_root.is_dir() and list(store_root.iterdir()) == []  # the probe is gone
    assert c["mcp roots"].status == "ok" and c["mcp URL allowlist"].status == "ok"
    assert c["index"].status == "ok" and "does not exist yet" in c["index"].detail
    code, text = await cli()
    assert code == 0 and "generation can work" in text and f"OK    comfyui {comfy.url}" in text


async def test_comfyui_down_fails_with_the_fix():
    report, _ = await checks()
    [comfyui] = [c for c in report.checks if c.name.startswith("comfyui")]
    assert not report.ok and comfyui.status == "fail" and "unreachable" in comfyui.detail
    assert "COMFY_QUALITY_COMFYUI_URLS" in (comfyui.fix or "")
    code, text = await cli()
    assert code == 1 and "FAIL  comfyui" in text and "generation cannot work: 1 check(s) failed" in text
    code, text = await cli("--json")
    data = json.loads(text)
    assert code == 1 and data["ok"] is False and {c["status"] for c in data["checks"]} >= {"fail", "ok"}


async def test_one_server_down_among_several_only_warns(comfy, monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("COMFY_QUALITY_COMFYUI_URLS", f"{comfy.url},{dead}")
    report, c = await checks()
    assert report.ok and c[f"comfyui {comfy.url}"].status == "ok"
    assert c[f"comfyui {dead}"].status == "warn" and "other servers" in c[f"comfyui {dead}"].detail


async def test_missing_model_files_fail_and_name_the_file(monkeypatch):
    async with FakeComfyUI(models={"checkpoints": ["something-else.safetensors"]}) as server:
        monkeypatch.setenv("COMFY_QUALITY_COMFYUI_URLS", server.url)
        report, c = await checks()
    check = c[f"comfyui {server.url}"]
    assert not report.ok and check.status == "fail"
    assert "v1-5-pruned-emaonly-fp16.safetensors" in check.detail and "model files" in (check.fix or "")


async def test_missing_custom_nodes_fail(comfy, monkeypatch, tmp_path):
    from refinement.workflows import load_template

    workflow = load_template("sd15")
    workflow["99"] = {"class_type": "SomeCustomNodeThatIsNotInstalled", "inputs": {"strength": 1.0}}
    (tmp_path / "wf.json").write_text(json.dumps(workflow))
    monkeypatch.setenv("COMFY_QUALITY_DEFAULT_WORKFLOW", str(tmp_path / "wf.json"))
    report, c = await checks()
    check = c[f"comfyui {comfy.url}"]
    assert not report.ok and "SomeCustomNodeThatIsNotInstalled" in check.detail and "custom nodes" in check.fix


async def test_an_unknown_default_workflow_fails(comfy, monkeypatch):
    monkeypatch.setenv("COMFY_QUALITY_DEFAULT_WORKFLOW", "no-such-template")
    report, c = await checks()
    assert not report.ok and c["default workflow"].status == "fail"
    assert c[f"comfyui {comfy.url}"].status == "ok"  # the server itself answers


# -- settings ------------------------------------------------------------------------------------------------
async def test_invalid_settings_fail_by_group(monkeypatch):
    monkeypatch.setenv("COMFY_QUALITY_MCP_PORT", "not-a-port")
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_BACKEND", "ftp")
    report, c = await checks()
    assert not report.ok
    assert c["settings (mcp)"].status == "fail" and "port" in c["settings (mcp)"].detail
    assert c["settings (storage)"].status == "fail" and "COMFY_QUALITY_STORAGE_*" in c["settings (storage)"].fix


async def test_misspelled_variables_are_listed_with_the_closest_name(comfy, monkeypatch, env):
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_BAKEND", "s3")
    (env / ".env").write_text("COMFY_QUALITY_MCP_TRANSPROT=sse\n")
    monkeypatch.setitem(SectionSettings.model_config, "env_file", ".env")  # this test reads the folder's .env
    report, c = await checks()
    assert report.ok  # a typo warns, it does not stop the server
    typo = c["settings (unknown COMFY_QUALITY_STORAGE_BAKEND)"]
    assert typo.status == "warn" and "environment" in typo.detail
    assert typo.fix == "rename it to COMFY_QUALITY_STORAGE_BACKEND"
    in_file = c["settings (unknown COMFY_QUALITY_MCP_TRANSPROT)"]
    assert in_file.status == "warn" and ".env" in in_file.detail
    assert in_file.fix == "rename it to COMFY_QUALITY_MCP_TRANSPORT"
    assert not any("COMFY_QUALITY_MCP_ROOTS" in name for name in c)  # known names are not listed
    code, text = await cli()
    assert code == 0 and "WARN  settings (unknown COMFY_QUALITY_STORAGE_BAKEND)" in text


async def test_mcp_settings_that_refuse_common_inputs_warn(comfy, monkeypatch):
    monkeypatch.delenv("COMFY_QUALITY_MCP_ROOTS")
    monkeypatch.delenv("COMFY_QUALITY_MCP_URL_ALLOWLIST")
    report, c = await checks()
    assert report.ok  # generation still works
    assert c["mcp roots"].status == "warn" and "refuses every local path" in c["mcp roots"].detail
    assert c["mcp URL allowlist"].status == "warn" and "COMFY_QUALITY_MCP_URL_ALLOWLIST" in c["mcp URL allowlist"].fix
    monkeypatch.setenv("COMFY_QUALITY_MCP_ROOTS", "/no/such/folder")
    monkeypatch.setenv("COMFY_QUALITY_MCP_TRANSPORT", "http")
    monkeypatch.setenv("COMFY_QUALITY_MCP_HOST", "0.0.0.0")
    report, c = await checks()
    assert "not a folder: /no/such/folder" in c["mcp roots"].detail
    assert not report.ok and c["mcp transport"].status == "fail" and "token" in c["mcp transport"].detail


async def test_weights_present_and_missing(comfy, env):
    _, c = await checks()
    weights = c["weights"]
    assert weights.status == "warn" and "present: brisque_svm, niqe_pristine" in weights.detail
    assert "missing: clip_vit_l14" in weights.detail and "prefetched weights folder" in weights.fix  # offline


# -- storage and index ---------------------------------------------------------------------------------------
async def test_an_unwritable_local_store_fails(comfy, monkeypatch, env):
    blocker = env / "file"
    blocker.write_text("x")
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_LOCAL_ROOT", str(blocker / "store"))  # a folder inside a file
    report, c = await checks()
    assert not report.ok and c["storage"].status == "fail" and "COMFY_QUALITY_STORAGE_LOCAL_ROOT" in c["storage"].fix


async def test_the_index_count_and_a_damaged_index(comfy, monkeypatch, env):
    path = env / "index.sqlite3"
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_INDEX_PATH", str(path))
    with Index(path) as index:
        index.add_many([make_metadata(), make_metadata(prompt="a boat")])
    report, c = await checks()
    assert c["index"].status == "ok" and "2 generation(s)" in c["index"].detail
    path.write_bytes(b"this is not sqlite" * 100)
    report, c = await checks()
    assert not report.ok and c["index"].status == "fail" and "rebuild-index" in c["index"].fix


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory) -> Iterator[SeaweedServer]:
    yield from serve(tmp_path_factory, "seaweed")


def use_s3(monkeypatch, endpoint: str, bucket: str, secret: str = SeaweedServer.secret_key) -> None:
    for key, value in {"BACKEND": "s3", "S3_ENDPOINT": endpoint, "S3_BUCKET": bucket, "S3_RETRIES": "0",
                       "S3_ACCESS_KEY": SeaweedServer.access_key, "S3_SECRET_KEY": secret,
                       "S3_TIMEOUT_SECONDS": "3"}.items():  # fmt: skip
        monkeypatch.setenv(f"COMFY_QUALITY_STORAGE_{key}", value)


@pytest.mark.s3
async def test_s3_probe_writes_reads_and_deletes(comfy, seaweed, monkeypatch):
    use_s3(monkeypatch, seaweed.endpoint, "cq-doctor")
    report, c = await checks()
    assert report.ok, render(report)
    assert c["storage"].status == "ok" and "bucket created" in c["storage"].detail
    assert c["spool"].status == "ok" and "nothing waiting" in c["spool"].detail
    client = seaweed.client()
    assert client.bucket_exists("cq-doctor")
    assert list(client.list_objects("cq-doctor", recursive=True)) == []  # the probe was deleted
    report, c = await checks()
    assert "bucket created" not in c["storage"].detail  # it exists now


@pytest.mark.s3
async def test_s3_refused_credentials_fail(comfy, seaweed, monkeypatch):
    use_s3(monkeypatch, seaweed.endpoint, "cq-doctor-creds", secret="wrong-secret-key")
    report, c = await checks()
    assert not report.ok and c["storage"].status == "fail" and "S3_SECRET_KEY" in c["storage"].detail


async def test_s3_down_warns_and_counts_the_spool(comfy, monkeypatch, env):
    endpoint = f"127.0.0.1:{free_port()}"  # nobody listens
    use_s3(monkeypatch, endpoint, "cq-down")
    store = S3Store(endpoint=endpoint, bucket="cq-down", spool_dir=env / "data" / "comfy-quality" / "spool",
                    access_key="a", secret_key="b", retries=0, timeout=2, flush_interval=3600)  # fmt: skip
    stored = await store.put_generation(make_image(), make_metadata())
    await store.aclose()
    assert stored.spooled
    report, c = await checks()
    assert report.ok, render(report)  # images are kept: generation works
    assert c["storage"].status == "warn" and "spooled" in c["storage"].fix
    assert c["spool"].status == "warn" and "1 generation(s) wait" in c["spool"].detail
    assert "flush-spool" in c["spool"].fix


def test_doctor_is_a_subcommand_of_the_server_cli(capsys):
    with pytest.raises(SystemExit) as exc:
        mcp_main(["--help"])
    assert exc.value.code == 0 and "doctor" in capsys.readouterr().out
    assert mcp_main(["doctor", "--help"]) == 0 and "--verify-weights" in capsys.readouterr().out
    assert mcp_main(["doctor", "--timeout", "0"]) == 2
