"""Damage ladders: does the score fall with every kind of damage? (``python -m quality eval --ladders DIR``)

Every image of a folder is damaged by every kind of :mod:`quality.distortions` at the four severities of
:data:`quality.distortions.LEVELS`, and the original and its four copies are scored. Per kind the report gives the
share of strictly falling steps (and of wholly strict ladders) for the technical score and for the composite,
the clean-to-heaviest drop of both, and every heavily damaged copy (heaviest severity) whose composite is still
:data:`HEAVY_COMPOSITE_LIMIT` or more. A score that stays equal counts as not falling; so does a score that is
missing (metric failed).
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import IO, Any

import numpy as np

from comfy_quality.boundary import recorded_reason
from quality.distortions import KINDS, LEVELS, ladder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
#: a heavily damaged copy must score below this composite
HEAVY_COMPOSITE_LIMIT = 5.0
KEYS = ("technical", "composite_score")

_scorer: Any = None


def _init(settings_json: str) -> None:
    global _scorer
    from quality.scorer import Scorer
    from quality.settings import QualitySettings

    _scorer = Scorer(QualitySettings.model_validate_json(settings_json))


def images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return found


def _score_ladder(args: tuple[str, str, tuple[float, ...], int]) -> dict[str, Any]:
    from PIL import Image

    from quality.image_io import load_image

    path, kind, levels, seed = args
    rgb = load_image(path).rgb
    rungs: dict[str, list[float | None]] = {k: [] for k in KEYS}
    errors = []
    for arr in ladder(kind, rgb, levels, seed):
        try:
            report = _scorer.score(Image.fromarray(arr))
        except Exception as exc:  # a failure is reported and counts as "did not fall"; a bug is logged too
            errors.append(f"{type(exc).__name__}: {recorded_reason(f'{kind} ladder of {path}', exc)}")
            for k in KEYS:
                rungs[k].append(None)
            continue
        rungs["technical"].append(report.technical.score)
        rungs["composite_score"].append(report.composite_score)
    return {"image": Path(path).name, "kind": kind, "scores": rungs, "errors": errors}


def _falls(values: Sequence[float | None]) -> list[bool]:
    return [a is not None and b is not None and b < a for a, b in itertools.pairwise(values)]


def summarise(ladders: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per kind and overall: strict shares, ranges and heavy-damage failures of scored ladders."""
    per_kind: dict[str, dict[str, Any]] = {}
    heavy: list[dict[str, Any]] = []
    not_strict: list[dict[str, Any]] = []
    for lad in ladders:
        entry = per_kind.setdefault(lad["kind"], {"ladders": 0, **{k: {"falling_steps": 0, "steps": 0,
                                    "strict_ladders": 0, "drops": []} for k in KEYS}})  # fmt: skip
        entry["ladders"] += 1
        for k in KEYS:
            vals = lad["scores"][k]
            falls = _falls(vals)
            entry[k]["steps"] += len(falls)
            entry[k]["falling_steps"] += sum(falls)
            entry[k]["strict_ladders"] += all(falls)
            if vals[0] is not None and vals[-1] is not None:
                entry[k]["drops"].append(vals[0] - vals[-1])
            if not all(falls):
                not_strict.append({"image": lad["image"], "kind": lad["kind"], "score": k, "values": vals})
        last = lad["scores"]["composite_score"][-1]
        if last is None or last >= HEAVY_COMPOSITE_LIMIT:
            heavy.append({"image": lad["image"], "kind": lad["kind"], "composite": last})
    out_kinds: dict[str, Any] = {}
    for kind, entry in per_kind.items():
        row: dict[str, Any] = {"ladders": entry["ladders"]}
        for k in KEYS:
            e = entry[k]
            drops = np.array(e["drops"], dtype=np.float64)
            row[k] = {
                "strict_steps": round(e["falling_steps"] / e["steps"], 4) if e["steps"] else None,
                "strict_ladders": round(e["strict_ladders"] / entry["ladders"], 4),
                "drop_mean": round(float(drops.mean()), 3) if drops.size else None,
                "drop_min": round(float(drops.min()), 3) if drops.size else None,
            }
        out_kinds[kind] = row
    totals = {
        k: {
            "strict_steps": _share(sum(per_kind[c][k]["falling_steps"] for c in per_kind),
                                   sum(per_kind[c][k]["steps"] for c in per_kind)),
            "strict_ladders": _share(sum(per_kind[c][k]["strict_ladders"] for c in per_kind), len(ladders)),
        }
        for k in KEYS
    }
    return {
        "kinds": out_kinds, "overall": totals, "ladders": len(ladders), "not_strict": not_strict,
        "heavy_at_or_above_limit": heavy, "heavy_limit": HEAVY_COMPOSITE_LIMIT,
        "passed": not not_strict and not heavy,
    }  # fmt: skip


def _share(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def run(folder: Path, settings: Any, *, levels: tuple[float, ...] = LEVELS, kinds: Sequence[str] | None = None,
        jobs: int = 1, seed: int = 0, limit: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Score every ladder of every image in ``folder`` (``jobs`` processes) and :func:`summarise` them."""
    paths = images_in(folder)[:limit] if limit else images_in(folder)
    kinds = list(kinds or KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown distortion(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    work = [(str(p), k, tuple(levels), seed) for p in paths for k in kinds]
    if jobs <= 1:
        _init(settings.model_dump_json())
        done = [_score_ladder(w) for w in work]
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init, initargs=(settings.model_dump_json(),)) as pool:  # fmt: skip
            done = list(pool.map(_score_ladder, work))
    summary = summarise(done)
    summary["images"] = [p.name for p in paths]
    summary["levels"] = list(levels)
    summary["parameters"] = {k: [round(KINDS[k].values(s), 3) for s in levels] for k in kinds}
    summary["calibration"] = bool(getattr(settings, "calibration", True))
    summary["scores"] = done
    return summary


def render(summary: dict[str, Any]) -> str:
    lines = [f"\ndamage ladders: {len(summary['images'])} images × {len(summary['kinds'])} kinds, severities "
             f"{summary['levels']} (calibration {'on' if summary['calibration'] else 'off'})",
             f"  {'kind':<16}{'technical strict':>17}{'drop mean/min':>16}{'composite strict':>18}"
             f"{'drop mean/min':>16}"]
    for kind, row in summary["kinds"].items():
        cells = []
        for k in KEYS:
            r = row[k]
            strict = "–" if r["strict_steps"] is None else f"{100 * r['strict_steps']:.0f} %"
            drop = "–" if r["drop_mean"] is None else f"{r['drop_mean']:.2f}/{r['drop_min']:.2f}"
            cells.append(f"{strict:>17}{drop:>16}" if k == "technical" else f"{strict:>18}{drop:>16}")
        lines.append(f"  {kind:<16}{''.join(cells)}")
    tot = summary["overall"]
    t, c = tot["technical"], tot["composite_score"]
    lines.append(f"  strictly falling steps: technical {_pct(t['strict_steps'])}, composite {_pct(c['strict_steps'])}; "
                 f"strict ladders: technical {_pct(t['strict_ladders'])}, composite {_pct(c['strict_ladders'])}")
    heavy = summary["heavy_at_or_above_limit"]
    lines.append(f"  heaviest copies with composite >= {summary['heavy_limit']}: {len(heavy)}")
    for h in heavy[:20]:
        lines.append(f"    {h['image']} {h['kind']}: {h['composite']}")
    for bad in summary["not_strict"][:20]:
        vals = ", ".join("–" if v is None else f"{v:.2f}" for v in bad["values"])
        lines.append(f"  not strictly falling: {bad['image']} {bad['kind']} {bad['score']}: {vals}")
    if len(summary["not_strict"]) > 20:
        lines.append(f"  … and {len(summary['not_strict']) - 20} more (ladders.json)")
    return "\n".join(lines) + "\n"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def main(folder: Path, settings: Any, output: Path, *, jobs: int = 1, kinds: Sequence[str] | None = None,
         limit: int | None = None, out: IO[str] | None = None) -> int:  # fmt: skip
    """Run, print, write ``output/ladders.json``; 0 when every ladder falls strictly and no heavy copy reaches the
    limit, 4 otherwise, 2 on bad input."""
    out = out or sys.stdout
    try:
        summary = run(folder, settings, jobs=jobs, kinds=kinds, limit=limit)
    except (FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    output.mkdir(parents=True, exist_ok=True)
    (output / "ladders.json").write_text(json.dumps(summary, indent=1))
    out.write(render(summary))
    out.write(f"wrote {output / 'ladders.json'}\n")
    return 0 if summary["passed"] else 4
