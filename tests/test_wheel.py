"""A wheel built from the repo, installed into a fresh virtual environment, scores the sample and serves MCP over
stdio, run from outside the checkout.

The fresh environment gets the already-installed dependencies through a ``.pth`` file naming this interpreter's
site-packages folders (a ``.pth`` line adds a folder to ``sys.path`` without running the ``.pth`` files in it, so
an editable install of the checkout found there stays inactive) and the wheel itself with ``pip install --no-deps``:
installing torch afresh would cost gigabytes. Each check asserts that the code that ran is the installed copy.

Building uses pip's build isolation (it fetches the build backend named in ``[build-system]``), so the test needs
the package index or a pip cache holding setuptools.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample.jpg"

PACKAGE_DATA = (
    "quality/data/calibration.npz",
    "quality/data/brisque_svm_weights.pth",
    "quality/data/niqe_pris_params.npz",
    "quality/data/nss_ratio_tables.npz",
    "refinement/workflows/sd15.json",
    "refinement/workflows/sdxl.json",
    "refinement/workflows/flux-dev.json",
    "dashboard/static/dashboard.js",
    "dashboard/static/dashboard.css",
    "dashboard/templates/base.html",
    "storage/metadata.schema.json",
)


def tracked_copy(dest: Path) -> Path:
    """The checkout's tracked files (no build/, egg-info or caches), so the build sees what a clone would."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = raw.decode()
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def dependency_dirs() -> list[str]:
    """Every site-packages folder this interpreter imports from (the venv's, and any a .pth added)."""
    dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], *sys.path]
    seen: list[str] = []
    for d in dirs:
        if d.endswith("site-packages") and Path(d).is_dir() and d not in seen:
            seen.append(d)
    return seen


def run(cmd: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{cmd[:3]} failed ({proc.returncode}):\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"
    return proc


def converse(cmd: list[str], cwd: Path, env: dict[str, str], messages: list[dict[str, object]]) -> dict[int, dict]:
    """Send JSON-RPC messages over the child's stdin one by one, waiting for each request's answer."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    answers: dict[int, dict] = {}
    try:
        for msg in messages:
            proc.stdin.write(json.dumps(msg) + "\n")
            proc.stdin.flush()
            while "id" in msg and msg["id"] not in answers:
                line = proc.stdout.readline()
                assert line, f"{cmd[0]} closed its output (exit code {proc.poll()})"
                answer = json.loads(line)
                if "id" in answer:
                    answers[answer["id"]] = answer
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return answers


@pytest.mark.slow
def test_the_wheel_installs_scores_the_sample_and_serves_mcp(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMFY_QUALITY_", "PYTHON", "VIRTUAL_ENV"))}
    env.update({"COMFY_QUALITY_OFFLINE": "1", "COMFY_QUALITY_WEIGHTS_DIR": str(tmp_path / "weights"),
                "COMFY_QUALITY_STORAGE_LOCAL_ROOT": str(tmp_path / "store"),
                "COMFY_QUALITY_STORAGE_INDEX_PATH": str(tmp_path / "index.sqlite3"),
                "COMFY_QUALITY_STORAGE_SPOOL_DIR": str(tmp_path / "spool")})  # fmt: skip

    # build
    src = tracked_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)], tmp_path, env)
    (wheel,) = dist.glob("comfy_quality-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = [line for line in zf.read(meta_name).decode().splitlines() if line.startswith("Requires-Dist:")]
        entry_points = zf.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    assert [p for p in PACKAGE_DATA if p not in names] == []
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    assert any("opencv-python-headless" in r for r in requires)
    assert "comfy-quality-mcp = mcp_server.__main__:main" in entry_points

    # a fresh environment: the wheel, plus the dependencies already installed here
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env)
    target = Path(purelib.stdout.strip())
    (target / "zz_dependencies.pth").write_text("\n".join(dependency_dirs()) + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)], tmp_path, env)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = run([str(python), "-c", "import json, quality, mcp_server, refinement, storage, dashboard, serving; "
                 "print(json.dumps({m.__name__: m.__file__ for m in "
                 "(quality, mcp_server, refinement, storage, dashboard, serving)}))"], outside, env)  # fmt: skip
    for module, file in json.loads(where.stdout).items():
        assert Path(file).is_relative_to(target), f"{module} imported from {file}, not from the installed wheel"

    # score the sample with the installed command
    scored = run([str(bin_dir / "comfy-quality"), str(SAMPLE), "statue of a man", "--offline", "--json"], outside, env)
    report = json.loads(scored.stdout)
    assert report["grade"] in ("A", "B", "C", "D", "F")
    assert {"brisque", "niqe", "edge_density"} <= set(report["coverage"]["metrics_ran"])
    assert report["calibration_info"]["used"], report["calibration_info"]  # the model file came with the wheel
    assert report["versions"]["comfy-quality"]

    # the MCP server over stdio: initialize, then tools/list
    messages: list[dict[str, object]] = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]  # fmt: skip
    answers = converse([str(bin_dir / "comfy-quality-mcp")], outside, env, messages)
    assert answers[1]["result"]["serverInfo"]["name"]
    assert {"score_image", "generate_quality"} <= {t["name"] for t in answers[2]["result"]["tools"]}
