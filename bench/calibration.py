"""Per-image scoring time with and without the calibration step (the weight-free metrics that run offline).

    /work/venv/bin/python bench/calibration.py [--images 10] [--rounds 3]

For 512×512 (AGIQA-3K's size: the calibration reuses the NSS backend's features) and 1024×1024 (bicubic
upscales: the calibration works on a 512-px copy, concurrently with the backends), a warm ``Scorer`` scores the
same decoded images with ``calibration`` on and off, alternating ``--rounds`` times to spread the noise of a
shared machine. Printed: p50 and mean wall time per image, the p50 of the calibration step alone, and the
difference. Offline, no deep-model weights: BRISQUE, NIQE, edge density (+ calibration).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("COMFY_QUALITY_OFFLINE", "1")
    from quality.scorer import Scorer
    from quality.settings import QualitySettings

    sources = sorted((REPO / "tests" / "data" / "agiqa").glob("*.jpg"))[: args.images]
    decoded = [Image.open(p).convert("RGB") for p in sources]
    sizes = {512: [im.resize((512, 512), Image.Resampling.BICUBIC) for im in decoded],
             1024: [im.resize((1024, 1024), Image.Resampling.BICUBIC) for im in decoded]}  # fmt: skip
    with tempfile.TemporaryDirectory() as empty:
        base = QualitySettings(weights_dir=Path(empty), device="cpu", offline=True)
        scorers = {on: Scorer(base.model_copy(update={"calibration": on})) for on in (True, False)}
        for scorer in scorers.values():  # warm-up
            scorer.score(sizes[512][0])
            scorer.score(sizes[1024][0])
        times: dict[tuple[int, bool], list[float]] = {}
        step: dict[int, list[float]] = {}
        for _ in range(args.rounds):
            for side, images in sizes.items():
                for on, scorer in scorers.items():
                    for im in images:
                        t0 = time.perf_counter()
                        report = scorer.score(im)
                        times.setdefault((side, on), []).append(time.perf_counter() - t0)
                        if on:
                            step.setdefault(side, []).append(report.timings.get("calibration", float("nan")))
    print(f"cpu cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, {len(decoded)} images × "
          f"{args.rounds} rounds")  # fmt: skip
    print(f"{'size':>6} {'calibration':>12} {'p50 s':>8} {'mean s':>8} {'step p50 s':>11}")
    for side in sizes:
        for on in (False, True):
            t = times[(side, on)]
            cal = f"{statistics.median(step[side]):>11.3f}" if on else f"{'–':>11}"
            label = "on" if on else "off"
            print(f"{side:>6} {label:>12} {statistics.median(t):>8.3f} {statistics.mean(t):>8.3f} {cal}")
        extra = statistics.median(times[(side, True)]) - statistics.median(times[(side, False)])
        print(f"{side:>6} {'added':>12} {extra:>8.3f}")


if __name__ == "__main__":
    main()
