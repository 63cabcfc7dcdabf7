"""Cold start: without deep-model weights nothing imports torch, open_clip, timm, torchvision or pyiqa; with
some weights present a backend imports only what it uses. Each check runs in a fresh interpreter (the test
process itself has imported everything)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.quality.conftest import AGIQA

DEEP = ("torch", "open_clip", "timm", "torchvision", "pyiqa")
IMAGE = AGIQA / "DALLE2_normal_001.jpg"


def fresh_python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (cwd outside the repo, no COMFY_QUALITY_* from the caller, ``env``
    added); it must exit 0."""
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COMFY_QUALITY_", "HF_HUB_OFFLINE"))}
    clean.update(env)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_python(code: str, tmp_path: Path, **env: str) -> dict[str, object]:
    """:func:`fresh_python` for code that prints one JSON object on its last stderr line; that object."""
    out: dict[str, object] = json.loads(fresh_python(code, tmp_path, **env).stderr.strip().splitlines()[-1])
    return out


def test_the_cli_scores_without_importing_any_deep_learning_package(tmp_path):
    """The one-image CLI with the default settings (device auto, calibration on) and an empty weights folder."""
    code = f"""
import contextlib, io, json, sys
from quality.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    rc = main([{str(IMAGE)!r}, "a tray of sushi", "--offline", "--json"])
report = json.loads(out.getvalue())
sys.stderr.write("\\n" + json.dumps({{
    "rc": rc, "ran": report["coverage"]["metrics_ran"], "device": report["device"],
    "imported": [m for m in {DEEP!r} if m in sys.modules],
    "unavailable": sorted(report["coverage"]["metrics_unavailable"]),
}}))
"""
    result = run_python(code, tmp_path, COMFY_QUALITY_WEIGHTS_DIR=str(tmp_path / "empty"))
    assert result["rc"] == 0
    assert {"brisque", "niqe", "edge_density"} <= set(result["ran"])  # type: ignore[arg-type]
    assert set(result["unavailable"]) == {"laion_aesthetic", "nima_mean", "clip_score", "topiq"}  # type: ignore[arg-type]
    assert result["device"] == "cpu"
    assert result["imported"] == []


WEB_AND_SERVERS = ("mcp", "starlette", "uvicorn", "websockets", "redis", "docket", "minio", "mcp_server", "dashboard",
                   "refinement", "storage", "jobqueue.records", "jobqueue.rescore")


def test_the_cli_loads_no_server_stack_for_its_settings_check_or_its_plug_ins(tmp_path):
    """The one-image CLI asks the score plug-ins (the job queue's) and checks for misspelled COMFY_QUALITY_*
    variables; with only quality's own variables set neither may load the other packages' settings (the MCP
    section pulls in the MCP SDK and its web stack: 0.7 s on every start) nor the job queue's machinery."""
    code = f"""
import contextlib, io, json, sys
from quality.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    rc = main([{str(IMAGE)!r}, "--offline", "--json"])
sys.stderr.write("\\n" + json.dumps({{"rc": rc, "imported": [m for m in {WEB_AND_SERVERS!r} if m in sys.modules]}}))
"""
    result = run_python(code, tmp_path, COMFY_QUALITY_WEIGHTS_DIR=str(tmp_path / "empty"))
    assert result["rc"] == 0
    assert result["imported"] == []


def test_a_misspelled_variable_is_still_reported_by_the_cli(tmp_path):
    """The fast path above must not hide a typo: a name no loaded section reads makes every section load."""
    code = f"""
import contextlib, io, json, logging, sys
logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
from quality.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    rc = main([{str(IMAGE)!r}, "--offline", "--json"])
sys.stderr.write("\\n" + json.dumps({{"rc": rc}}))
"""
    env = {"COMFY_QUALITY_WEIGHTS_DIR": str(tmp_path / "empty"), "COMFY_QUALITY_MCP_PORTT": "9000"}
    proc = fresh_python(code, tmp_path, **env)
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == {"rc": 0}
    assert "COMFY_QUALITY_MCP_PORTT (from environment) is not a comfy-quality setting" in proc.stderr
    assert "did you mean COMFY_QUALITY_MCP_PORT?" in proc.stderr


def test_importing_the_package_and_its_public_types_is_light(tmp_path):
    code = f"""
import json, sys
import quality, quality.report, quality.models, quality.settings, quality.scorer, quality.calibration
from quality import QualityReport, Scorer, QualitySettings
heavy = {DEEP!r} + ("matplotlib", "sklearn", "minio", "httpx", "websockets", "scipy.stats", "scipy.optimize")
sys.stderr.write("\\n" + json.dumps({{"imported": [m for m in heavy if m in sys.modules]}}))
"""
    assert run_python(code, tmp_path)["imported"] == []


def test_with_only_nima_weights_only_nima_s_packages_are_imported(tmp_path, tiny_weights):
    """A backend imports what it uses when it is first needed: NIMA needs torch, timm and torchvision, never
    open_clip or pyiqa (whose weights are absent)."""
    entry = tiny_weights.registry["nima_inception_resnet_v2_ava"]
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(tiny_weights.dir / entry.filename, folder / entry.filename)
    code = f"""
import json, sys
from dataclasses import replace
from quality.scorer import Scorer
from quality.settings import QualitySettings
from quality.weights import WEIGHT_FILES, WeightsStore
registry = dict(WEIGHT_FILES)
registry["nima_inception_resnet_v2_ava"] = replace(registry["nima_inception_resnet_v2_ava"], sha256={entry.sha256!r})
before = [m for m in {DEEP!r} if m in sys.modules]
store = WeightsStore({str(folder)!r}, offline=True, registry=registry)
report = Scorer(QualitySettings(device="cpu"), weights=store, options={{"nima.arch": "resnet18"}}).score({str(IMAGE)!r})
sys.stderr.write("\\n" + json.dumps({{
    "before": before, "after": [m for m in {DEEP!r} if m in sys.modules], "ran": report.coverage.metrics_ran,
}}))
"""
    result = run_python(code, tmp_path)
    assert result["before"] == []
    assert "nima_mean" in result["ran"]  # type: ignore[operator]
    assert {"torch", "timm"} <= set(result["after"])  # type: ignore[arg-type]
    assert "open_clip" not in result["after"] and "pyiqa" not in result["after"]  # type: ignore[operator]


def test_the_weights_check_before_import_follows_the_backends_weights_options(tmp_path, tiny_weights, fresh_models):
    """A backend option naming another weights entry (``nima.weights``) is what the scorer checks before
    importing the backend: the default entry is absent, the named one present, and NIMA runs."""
    from dataclasses import replace

    from quality.scorer import WEIGHT_OPTIONS, Scorer
    from quality.settings import QualitySettings
    from quality.weights import WEIGHT_FILES, WeightsStore

    entry = tiny_weights.registry["nima_inception_resnet_v2_ava"]
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(tiny_weights.dir / entry.filename, folder / "my-nima.pth")
    registry = dict(WEIGHT_FILES)
    registry["my_nima"] = replace(entry, name="my_nima", filename="my-nima.pth")
    store = WeightsStore(folder, offline=True, registry=registry)
    settings = QualitySettings(device="cpu", metrics=["nima_mean", "edge_density"])
    options = {"nima.arch": "resnet18", WEIGHT_OPTIONS["nima_inception_resnet_v2_ava"]: "my_nima"}
    report = Scorer(settings, weights=store, options=options).score(IMAGE)
    assert report.metrics["nima_mean"].status == "ok", report.metrics["nima_mean"].reason

    missing = Scorer(settings, weights=store, options={"nima.weights": "no_such_entry"}).score(IMAGE)
    assert missing.metrics["nima_mean"].status == "unavailable"
    assert "no_such_entry" in (missing.metrics["nima_mean"].reason or "")
