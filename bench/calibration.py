"""Per-image scoring time with and without the calibration step, this tree against a baseline revision, same run.

    python bench/calibration.py [--images 6] [--rounds 3] [--baseline REV | --baseline none]

For 512×512 (AGIQA-3K's size: the calibration reuses the NSS backend's features) and 1024×1024 (bicubic upscales:
the calibration works on a 512-px copy, concurrently with the backends), a warm ``Scorer`` scores the same decoded
images with ``calibration`` on and off. The baseline is the ``quality`` package of an earlier revision
(``git archive``; default: the last one before the shared image planes, :data:`baseline_tree.DEFAULT_BASELINE`).
Each tree runs in its own child process; the rounds alternate between the trees to spread the noise of a shared
machine. Printed per size and setting: min, p50 and mean wall time per image, p50 CPU time per image (every thread
of the process), the p50 of the calibration step alone, the baseline/this ratio, the largest difference between
the two trees' scores, and the load average before and after. Offline, no deep-model weights: BRISQUE, NIQE, edge
density (+ calibration).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SIDES = (512, 1024)


def child(source: Path, count: int) -> dict[str, Any]:
    """Time one tree (its ``quality`` package first on ``sys.path``); keys ``"side/on"``."""
    sys.path.insert(0, str(source))
    os.environ.setdefault("COMFY_QUALITY_OFFLINE", "1")
    import logging

    from PIL import Image

    from quality.scorer import Scorer
    from quality.settings import QualitySettings

    logging.disable(logging.WARNING)  # the deep metrics' "weights absent" lines
    sources = sorted((REPO / "tests" / "data" / "agiqa").glob("*.jpg"))[:count]
    decoded = [Image.open(p).convert("RGB") for p in sources]
    bicubic = Image.Resampling.BICUBIC
    sizes = {side: [im.resize((side, side), bicubic) for im in decoded] for side in SIDES}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as empty:
        base = QualitySettings(weights_dir=Path(empty), device="cpu", offline=True)
        scorers = {on: Scorer(base.model_copy(update={"calibration": on})) for on in (True, False)}
        for scorer in scorers.values():  # warm-up
            for side in SIDES:
                scorer.score(sizes[side][0])
        for side, images in sizes.items():
            for on, scorer in scorers.items():
                rec: dict[str, list[float]] = {"wall": [], "cpu": [], "step": [], "technical": []}
                for im in images:
                    c0, t0 = time.process_time(), time.perf_counter()
                    report = scorer.score(im)
                    rec["wall"].append(time.perf_counter() - t0)
                    rec["cpu"].append(time.process_time() - c0)
                    rec["step"].append(report.timings.get("calibration", float("nan")))
                    rec["technical"].append(report.technical.score if report.technical.score is not None else -1.0)
                out[f"{side}/{on}"] = rec
    return out


def run_child(source: Path, count: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", str(source), "--images", str(count)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=None, help="git revision to compare with ('none': no comparison)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        json.dump(child(args.child, args.images), sys.stdout)
        return
    sys.path.insert(0, str(REPO / "bench"))
    from baseline_tree import DEFAULT_BASELINE, extract

    rev = args.baseline or DEFAULT_BASELINE
    trees = {"this tree": REPO}
    if rev != "none" and (folder := extract(rev)) is not None:
        trees[f"baseline {rev}"] = folder
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for r in range(args.rounds):
        for name, folder in trees.items():
            print(f"round {r + 1}/{args.rounds}: {name} …", file=sys.stderr, flush=True)
            runs[name].append(run_child(folder, args.images))
    load_after = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average (1/5/15 min) {'/'.join(f'{v:.1f}' for v in load_before)} before, "
          f"{'/'.join(f'{v:.1f}' for v in load_after)} after; {args.images} images × {args.rounds} rounds per tree; "
          "decoded images (decode not timed), offline metrics")  # fmt: skip
    print(f"{'size':>5} {'calib.':>6} {'tree':<18} {'min s':>7} {'p50 s':>7} {'mean s':>7} {'cpu p50':>8} "
          f"{'step p50':>9}")  # fmt: skip
    p50: dict[tuple[str, str], float] = {}
    for side in SIDES:
        for on in (True, False):
            key = f"{side}/{on}"
            for name in trees:
                wall = [t for run in runs[name] for t in run[key]["wall"]]
                cpu = [t for run in runs[name] for t in run[key]["cpu"]]
                step = [t for run in runs[name] for t in run[key]["step"]]
                p50[(key, name)] = statistics.median(wall)
                step_text = f"{statistics.median(step):>9.3f}" if on else f"{'–':>9}"
                print(f"{side:>5} {'on' if on else 'off':>6} {name:<18} {min(wall):>7.3f} {p50[(key, name)]:>7.3f} "
                      f"{statistics.mean(wall):>7.3f} {statistics.median(cpu):>8.3f} {step_text}")  # fmt: skip
            if len(trees) == 2:
                this, other = trees
                ours = runs[this][0][key]["technical"]
                theirs = runs[other][0][key]["technical"]
                diff = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
                print(f"{'':>12} baseline/this p50: {p50[(key, other)] / p50[(key, this)]:.2f}×; "
                      f"largest |technical score difference|: {diff:.1e}")  # fmt: skip
    print("target: calibrated 1024×1024 p50 <= 0.150 s")


if __name__ == "__main__":
    main()
