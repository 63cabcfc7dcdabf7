"""The whole scorer on 1024×1024 images, against pyiqa used the way the original ComfyGen did, plus model
loading and batch throughput.

    ./run bench scoring [--images 6] [--rounds 2] [--baseline REV | --baseline none]

1. Latency: ``Scorer.score`` on 1024×1024 PNG bytes (decode included) with every metric that runs on this machine
   offline (BRISQUE, NIQE, edge density; the deep metrics report unavailable without weights), against
   (a) pyiqa creating BRISQUE and NIQE anew for every image and (b) the same pyiqa metrics kept warm and run one
   after another (both on pre-decoded tensors, so they are *favoured*). p50 per image, peak RSS, ratios, and the
   largest |difference| of the BRISQUE/NIQE values from pyiqa's; and the calibrated scorer of a baseline revision
   (``git archive``; default: the last one before the shared image planes, ``bench/baseline_tree.py``), timed in
   the same rounds, with its min, p50 and CPU time per image beside this tree's.
2. Loading: with the tiny test checkpoints of every deep metric (CLIP + LAION head, NIMA, TOPIQ), the cost of
   reloading every model for every image (ComfyGen) against loading once, and the process-wide load counts after
   several scorers and images (each must be 1).
3. Batch throughput: ``quality.batch.score_files`` with 1 and 2 processes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SIZE = 1024


def png_images(count: int) -> list[bytes]:
    files = sorted((REPO / "tests" / "data" / "agiqa").glob("*.jpg"))
    out = []
    for i in range(count):
        img = Image.open(files[i % len(files)]).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def full_scorer(count: int, calibration: bool, source: Path | None = None) -> dict[str, Any]:
    if source is not None:  # a baseline revision's quality package
        sys.path.insert(0, str(source))
    import logging

    from quality.scorer import Scorer
    from quality.settings import QualitySettings

    weights = Path(tempfile.mkdtemp())
    settings = QualitySettings(offline=True, device="cpu", weights_dir=weights, calibration=calibration)
    logging.disable(logging.WARNING)  # the deep metrics' "weights absent" lines
    scorer = Scorer(settings)
    data = png_images(count)
    scorer.score(data[0])  # warm-up
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, cpu, values = [], [], []
    for blob in data:
        c0, t0 = time.process_time(), time.perf_counter()
        r = scorer.score(blob)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        values.append((r.technical.brisque, r.technical.niqe, r.technical.score))
    ran = r.coverage.metrics_ran
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall": wall, "cpu": cpu, "values": values, "rss": rss, "rss_setup": rss0, "ran": ran}


def pyiqa_variant(variant: str, count: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "nss.py"), "--variant", variant, "--images",
                           str(count)], capture_output=True, text=True, check=True)  # fmt: skip
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def loading(images: int) -> dict[str, Any]:
    from quality.models import LOAD_COUNTS, clear_cache
    from quality.scorer import Scorer
    from quality.settings import QualitySettings
    from tests.quality.tiny_models import TINY_OPTIONS, tiny_weights_store

    store = tiny_weights_store(Path(tempfile.mkdtemp()))
    settings = QualitySettings(device="cpu", weights_dir=store.dir)
    data = png_images(images)
    clear_cache()
    reload_times = []
    for blob in data:  # ComfyGen: models created for every image
        t0 = time.perf_counter()
        clear_cache()
        Scorer(settings, weights=store, options=TINY_OPTIONS).score(blob, "a prompt")
        reload_times.append(time.perf_counter() - t0)
    clear_cache()
    t0 = time.perf_counter()
    first = Scorer(settings, weights=store, options=TINY_OPTIONS)
    load_s = time.perf_counter() - t0
    warm_times = []
    for blob in data:
        t0 = time.perf_counter()
        first.score(blob, "a prompt")
        warm_times.append(time.perf_counter() - t0)
    Scorer(settings, weights=store, options=TINY_OPTIONS).score(data[0], "another prompt")
    return {"reload": reload_times, "warm": warm_times, "load_s": load_s, "counts": dict(LOAD_COUNTS)}


def throughput(count: int) -> dict[int, float]:
    from quality.batch import score_files
    from quality.settings import QualitySettings

    folder = Path(tempfile.mkdtemp())
    paths = []
    for i, blob in enumerate(png_images(count)):
        paths.append(folder / f"{i}.png")
        paths[-1].write_bytes(blob)
    settings = QualitySettings(offline=True, device="cpu", weights_dir=folder / "w")
    out: dict[int, tuple[float, float]] = {}
    for jobs in (1, 2):
        t0 = time.perf_counter()
        stamps = [time.perf_counter() for _ in score_files([(p, None) for p in paths], settings, jobs=jobs)]
        total = count / (stamps[-1] - t0)
        steady = (count - 1) / (stamps[-1] - stamps[0])  # after the first result: workers started, models loaded
        out[jobs] = (total, steady)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--baseline", default=None, help="git revision to compare with ('none': no comparison)")
    ap.add_argument("--part", choices=["full", "cal"], help=argparse.SUPPRESS)
    ap.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part is not None:
        json.dump(full_scorer(args.images, calibration=args.part == "cal", source=args.source), sys.stdout)
        return 0
    sys.path.insert(0, str(REPO / "bench"))
    from baseline_tree import DEFAULT_BASELINE, extract

    rev = args.baseline or DEFAULT_BASELINE
    baseline = extract(rev) if rev != "none" else None
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict[str, Any]]] = {"full": [], "cal": [], "a": [], "b": []}
    if baseline is not None:
        runs["cal_base"] = []
    for r in range(args.rounds):
        for name in runs:
            print(f"round {r + 1}/{args.rounds}: {name} …", file=sys.stderr, flush=True)
            if name in ("full", "cal", "cal_base"):
                extra = ["--source", str(baseline)] if name == "cal_base" else []
                command = [sys.executable, __file__, "--part", name.removesuffix("_base"), "--images", str(args.images)]
                proc = subprocess.run([*command, *extra], capture_output=True, text=True, check=True)
                runs[name].append(json.loads(proc.stdout))
            else:
                runs[name].append(pyiqa_variant(name, args.images))
    p50 = {k: statistics.median([t for r in v for t in r["wall"]]) for k, v in runs.items()}
    rss = {k: max(r.get("rss", r.get("rss_peak", 0.0)) for r in v) for k, v in runs.items()}
    print(f"\n1. latency per 1024×1024 image ({args.images} images × {args.rounds} rounds; {os.cpu_count()} CPUs, "
          f"load average {load_before:.1f} → {os.getloadavg()[0]:.1f})")
    labels = {"full": f"comfy-quality Scorer ({', '.join(runs['full'][0]['ran'])}; PNG decode included)",
              "cal": "the same + calibration (the default: technical/detail from the calibration model)",
              "a": "(a) pyiqa BRISQUE+NIQE created per image (ComfyGen)",
              "b": "(b) pyiqa BRISQUE+NIQE warm, one after another"}  # fmt: skip
    for k in ("full", "cal", "b", "a"):
        print(f"  {labels[k]:80s} p50 {p50[k] * 1e3:7.1f} ms   peak RSS {rss[k]:6.0f} MiB")
    print(f"  ratio (b)/ours: {p50['b'] / p50['full']:.1f}×   (a)/ours: {p50['a'] / p50['full']:.1f}×   "
          "(target: ≥ 3× against (b))")
    print(f"  with calibration: (b)/ours {p50['b'] / p50['cal']:.1f}×   (a)/ours {p50['a'] / p50['cal']:.1f}×")
    if baseline is not None:
        for k in ("cal", "cal_base"):
            wall = [t for r in runs[k] for t in r["wall"]]
            cpu = [t for r in runs[k] for t in r["cpu"]]
            label = "calibrated, this tree" if k == "cal" else f"calibrated, baseline {rev} (previous implementation)"
            print(f"  {label:58s} min {min(wall) * 1e3:6.1f}  p50 {p50[k] * 1e3:6.1f}  CPU p50 "
                  f"{statistics.median(cpu) * 1e3:6.1f} ms")  # fmt: skip
        pairs = zip(runs["cal"][0]["values"], runs["cal_base"][0]["values"], strict=True)
        same = max(abs(a[2] - b[2]) for a, b in pairs)
        print(f"  baseline/this p50: {p50['cal_base'] / p50['cal']:.2f}×   largest |technical score difference|: "
              f"{same:.1e}   (target: calibrated p50 <= 150 ms)")  # fmt: skip
    ours = np.array(runs["full"][0]["values"], dtype=float)[:, :2]
    ref = np.array(runs["b"][0]["values"], dtype=float)
    d = np.abs(ours - ref).max(axis=0)
    print(f"  max |ours − pyiqa|: BRISQUE {d[0]:.2e}, NIQE {d[1]:.2e} (PNG round trip is lossless)")

    lo = loading(args.images)
    print("\n2. deep-metric loading (tiny test checkpoints of CLIP+LAION, NIMA, TOPIQ)")
    print(f"  models reloaded for every image (ComfyGen): p50 {statistics.median(lo['reload']) * 1e3:7.1f} ms/image")
    warm = statistics.median(lo["warm"]) * 1e3
    print(f"  loaded once ({lo['load_s'] * 1e3:.0f} ms), then:     p50 {warm:7.1f} ms/image")
    print(f"  loads per backend after {args.images + 1} images and 2 scorers: {lo['counts']}")

    tp = throughput(max(24, args.images))
    print("\n3. batch throughput, 1024×1024 PNG files (quality.batch.score_files, offline metrics)")
    for jobs, (total, steady) in tp.items():
        print(f"  {jobs} process(es): {steady:5.2f} images/s steady ({total:5.2f} including process start-up)")
    print(f"  steady-state speed-up with 2 processes: {tp[2][1] / tp[1][1]:.2f}× on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
