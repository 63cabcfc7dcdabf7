"""BRISQUE + NIQE on 1024×1024 images: pyiqa (as the original ComfyGen used it, and warm) against the native
``nss`` backend.

    /work/venv/bin/python bench/nss.py [--images 8] [--rounds 3]

Variants, each in its own subprocess (so imports and peak memory do not mix), run ``--rounds`` times in
alternation to spread the noise of a shared machine:

* ``a``  pyiqa, both metrics created anew for every image (the original ComfyGen);
* ``b``  pyiqa, both metrics created once, then BRISQUE and NIQE one after the other per image;
* ``b1`` the same with ``torch.set_num_threads(1)`` (faster than ``b`` when other work shares the CPUs);
* ``c``  ``quality.backends.nss.NSSBackend`` (default: NIQE in a worker thread while BRISQUE runs);
* ``c1`` the same with ``nss_threads=1`` (everything in the calling thread).

All variants start from the same decoded uint8 RGB arrays (AGIQA-3K test images upscaled to 1024×1024 with
bicubic); decoding is not timed. Printed: p50 and mean wall latency per image, p50 CPU time per image, peak
RSS of the process and its growth while scoring, the ratios, and the largest |difference| from pyiqa.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO / "quality" / "data"
SIZE = 1024
VARIANTS = ("a", "b", "b1", "c", "c1")
LABELS = {
    "a": "(a) pyiqa, metrics created per image",
    "b": "(b) pyiqa warm, BRISQUE then NIQE",
    "b1": "(b1) pyiqa warm, 1 torch thread",
    "c": "(c) native nss (2 threads)",
    "c1": "(c1) native nss (1 thread)",
}


def images(count: int) -> list[np.ndarray]:
    files = sorted((REPO / "tests" / "data" / "agiqa").glob("*.jpg"))
    picked = [files[i % len(files)] for i in range(count)]
    bicubic = Image.Resampling.BICUBIC
    return [np.asarray(Image.open(f).convert("RGB").resize((SIZE, SIZE), bicubic)) for f in picked]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_variant(variant: str, count: int) -> dict[str, Any]:
    rgbs = images(count)
    if variant in ("a", "b", "b1"):
        import pyiqa
        import torch

        if variant == "b1":  # OpenMP threads suffer most when the machine is busy: pyiqa's best case there
            torch.set_num_threads(1)

        def create() -> tuple[Any, Any]:
            with contextlib.redirect_stdout(io.StringIO()):  # pyiqa prints while loading
                return (
                    pyiqa.create_metric("brisque", device="cpu",
                                        pretrained_model_path=str(DATA / "brisque_svm_weights.pth")),
                    pyiqa.create_metric("niqe", device="cpu",
                                        pretrained_model_path=str(DATA / "niqe_modelparameters.mat")),
                )

        def tensor(rgb: np.ndarray) -> Any:
            return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).contiguous().float().div(255)[None]

        metrics = create()
        metrics[0](tensor(rgbs[0]))
        metrics[1](tensor(rgbs[0]))  # warm-up, not timed

        def score(rgb: np.ndarray) -> tuple[float, float]:
            nonlocal metrics
            if variant == "a":
                metrics = create()
            t = tensor(rgb)
            return float(metrics[0](t).item()), float(metrics[1](t).item())
    else:
        from quality.backends.base import LoadContext
        from quality.backends.nss import NSSBackend
        from quality.image_io import load_image
        from quality.weights import WeightsStore

        backend = NSSBackend()
        threads = 1 if variant == "c1" else 2
        backend.load(LoadContext(weights=WeightsStore(offline=True), options={"nss_threads": threads}))
        prepared = {id(rgb): load_image(Image.fromarray(rgb)) for rgb in rgbs}
        backend.compute(prepared[id(rgbs[0])], None)  # warm-up, not timed

        def score(rgb: np.ndarray) -> tuple[float, float]:
            values = backend.compute(prepared[id(rgb)], None)
            return values["brisque"], values["niqe"]

    rss_setup = rss_mib()
    wall, cpu, values = [], [], []
    for rgb in rgbs:
        t0, c0 = time.perf_counter(), time.process_time()
        values.append(score(rgb))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out: dict[str, Any] = {
        "wall": wall, "cpu": cpu, "values": values, "rss_setup": rss_setup, "rss_peak": rss_mib()
    }
    if variant in ("c", "c1"):  # numpy/OpenCV working memory of one image (torch memory is invisible to it)
        tracemalloc.start()
        score(rgbs[0])
        out["traced_peak"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        json.dump(run_variant(args.variant, args.images), sys.stdout)
        return 0

    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        for v in VARIANTS:
            print(f"round {r + 1}/{args.rounds}: {LABELS[v]} …", file=sys.stderr, flush=True)
            proc = subprocess.run(
                [sys.executable, __file__, "--variant", v, "--images", str(args.images)],
                capture_output=True, text=True, check=True,
            )
            runs[v].append(json.loads(proc.stdout))

    stats: dict[str, dict[str, float]] = {}
    for v, rs in runs.items():
        wall = [t for r in rs for t in r["wall"]]
        cpu = [t for r in rs for t in r["cpu"]]
        stats[v] = {
            "p50": statistics.median(wall), "mean": statistics.fmean(wall), "cpu": statistics.median(cpu),
            "rss": max(r["rss_peak"] for r in rs),
            "grow": max(r["rss_peak"] - r["rss_setup"] for r in rs),
            "traced": max((r.get("traced_peak", float("nan")) for r in rs), default=float("nan")),
        }

    load = os.getloadavg()
    print(f"\nBRISQUE + NIQE, {args.images} images of {SIZE}×{SIZE}, {args.rounds} rounds "
          f"({args.images * args.rounds} timed images per variant); {os.cpu_count()} CPUs, load average "
          f"before/after {load_before[0]:.1f}/{load[0]:.1f} (other work on the machine slows pyiqa's "
          "OpenMP threads the most)\n")
    print(f"{'variant':42s} {'p50 ms':>8s} {'mean ms':>8s} {'CPU p50':>8s} {'peak RSS':>9s} "
          f"{'+scoring':>9s} {'traced':>8s}")
    for v in VARIANTS:
        s = stats[v]
        traced = "n/a" if np.isnan(s["traced"]) else f"{s['traced']:.0f} MiB"
        print(f"{LABELS[v]:42s} {s['p50'] * 1e3:8.1f} {s['mean'] * 1e3:8.1f} {s['cpu'] * 1e3:8.1f} "
              f"{s['rss']:6.0f} MiB {s['grow']:5.0f} MiB {traced:>8s}")
    print()
    for ours in ("c", "c1"):
        for ref in ("b", "b1", "a"):
            print(f"ratio ({ref})/({ours}):  p50 {stats[ref]['p50'] / stats[ours]['p50']:5.1f}×   "
                  f"mean {stats[ref]['mean'] / stats[ours]['mean']:5.1f}×   "
                  f"CPU {stats[ref]['cpu'] / stats[ours]['cpu']:5.1f}×")

    ref = np.array(runs["b"][0]["values"])
    print()
    for v in ("a", "b1", "c", "c1"):
        got = np.array(runs[v][0]["values"])
        d = np.abs(got - ref).max(axis=0)
        print(f"max |{v} - b|: BRISQUE {d[0]:.2e}   NIQE {d[1]:.2e}")
    print("(pyiqa evaluates the BRISQUE SVR in float32: about ±0.01 of rounding noise; the native backend "
          "uses float64 on features that agree to float32 rounding)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
