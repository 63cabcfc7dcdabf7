"""Refinement on the ComfyUI test server: what each strategy buys, and what orchestration costs.

    ./run bench refinement [--prompts 8] [--attempts 3] [--size 512]

For every strategy and every prompt, one generation with an unreachable threshold (so every attempt runs) on the
fake ComfyUI (real HTTP + websocket, real PNGs whose quality depends on steps, cfg, seed and prompt words), scored
by the real scorer (offline: BRISQUE, NIQE, edge density), stored in a local store with the SQLite index.
Run with the calibrated scorer (the default) and with the spec-table mapping alone (``--scorer``): the fake's
synthetic pictures are unlike the AI-generated images the calibration learned from, and the two scorers weigh its
steps/seed-dependent grain and blur differently. Printed per strategy: mean composite of the first attempt, of the
best attempt, the mean gain (the design asked +1.5 points) and how often the best was not the first; and the
orchestration overhead per attempt: the run's wall time minus ComfyUI generation and scoring time, divided by the
attempts (storing, indexing, planning, patching, progress included; target ≤ 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPTS = [
    "a red fox in the snow", "a lighthouse at dusk", "a bowl of ramen, studio lighting", "portrait of an old sailor",
    "a futuristic city skyline at night", "a field of sunflowers", "a cat sleeping on a windowsill",
    "mountain lake with reflections", "a steampunk airship", "a plate of sushi", "an astronaut riding a horse",
    "a medieval castle in fog",
]  # fmt: skip
STRATEGIES = ("progressive", "seed_search", "prompt_enhance", "adaptive", "best_of_n")


async def run(prompts: int, attempts: int, size: int, calibration: bool) -> list[tuple]:
    import logging

    logging.disable(logging.WARNING)
    from quality.scorer import Scorer
    from quality.settings import QualitySettings
    from refinement.api import GenerationRequest
    from refinement.comfyui import ComfyUIPool
    from refinement.orchestrator import Orchestrator
    from refinement.settings import RefinementSettings
    from storage import Index, LocalStore
    from tests.fakes.comfyui_server import FakeComfyUI

    tmp = Path(tempfile.mkdtemp())
    scorer = Scorer(QualitySettings(offline=True, device="cpu", weights_dir=tmp / "w", calibration=calibration))
    rows = []
    async with FakeComfyUI() as comfy:
        pool = ComfyUIPool([comfy.url])
        orch = Orchestrator(scorer, pool, LocalStore(tmp / "store"), Index(tmp / "index.sqlite3"),
                            RefinementSettings(comfyui_urls=[comfy.url]))  # fmt: skip
        for strategy in STRATEGIES:
            firsts, bests, overheads, improved = [], [], [], 0
            for i, prompt in enumerate(PROMPTS[:prompts]):
                req = GenerationRequest(prompt=prompt, workflow="sd15", width=size, height=size, seed=1000 + i,
                                        quality_threshold=10.0, max_attempts=attempts, retry_strategy=strategy,
                                        best_of_n=3)  # fmt: skip
                result = await orch.generate(req)
                scored = [a for a in result.attempts if a.composite_score is not None]
                firsts.append(scored[0].composite_score)
                bests.append(result.composite_score)
                improved += result.best_attempt != 1
                work = sum(a.seconds.get("generate", 0) + a.seconds.get("score", 0) for a in result.attempts)
                overheads.append((result.seconds - work) / result.attempts_used)
            rows.append((strategy, statistics.fmean(firsts), statistics.fmean(bests), improved, overheads))
            print(f"  {strategy} done", file=sys.stderr, flush=True)
        await pool.close()
    scorer.close()
    return rows


def report(rows: list[tuple], prompts: int, attempts: int, size: int, scorer: str) -> None:
    print(f"\n{prompts} prompts × {attempts} attempts per strategy, {size}×{size}, fake ComfyUI, offline scorer "
          f"(technical + detail), {scorer}\n")  # fmt: skip
    print(f"{'strategy':16s} {'first':>7s} {'best':>7s} {'gain':>7s} {'best≠first':>11s} {'overhead/attempt p50':>22s}")
    for strategy, first, best, improved, overheads in rows:
        print(
            f"{strategy:16s} {first:7.2f} {best:7.2f} {best - first:+7.2f} {improved:>5d}/{prompts:<5d} "
            f"{statistics.median(overheads) * 1e3:17.1f} ms"
        )
    all_over = [o for *_, overheads in rows for o in overheads]
    print(
        f"\norchestration overhead per attempt: p50 {statistics.median(all_over) * 1e3:.1f} ms, "
        f"max {max(all_over) * 1e3:.1f} ms (target ≤ 50 ms)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--attempts", type=int, default=3)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument(
        "--scorer",
        choices=["both", "calibrated", "spec"],
        default="both",
        help="score with the shipped calibration (the default scorer), the spec table alone, or both",
    )
    args = ap.parse_args()
    modes = {"calibrated": True, "spec": False}
    labels = {
        "calibrated": "calibrated scores (the default)",
        "spec": "spec-table scores (COMFY_QUALITY_CALIBRATION=false)",
    }
    chosen = list(modes) if args.scorer == "both" else [args.scorer]
    results = {m: asyncio.run(run(args.prompts, args.attempts, args.size, modes[m])) for m in chosen}
    for m, rows in results.items():
        report(rows, args.prompts, args.attempts, args.size, labels[m])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
