"""``python -m quality.calibration``: refit the calibration model, or show the one in use.

    python -m quality.calibration fit DATASET_DIR [-o model.npz] [--report fit-report.json] [--seed 0] [--jobs 2]
    python -m quality.calibration info [MODEL.npz]

``fit`` reads ``DATASET_DIR/labels.csv`` (columns ``name``, ``mos_quality``, optional ``generator``: the layout of
:mod:`quality.eval`), uses only those images, cross-validates the fixed protocol of :mod:`.fit` (5-fold and
leave-one-generator-out: every figure comes from models that never saw the images they score), fits the final
model on all usable images, and writes the model file and a JSON fit report (hashes of ``labels.csv`` and of the
image set, seed, environment, figures). Seeds and folds are fixed; the features are reproducible (the gradient magnitude
comes from ``cv2.cartToPolar``, which is exact; ``cv2.magnitude`` varied by one float32 ulp between runs), but
whether a whole refit is bit-identical has not been re-checked since.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from quality.calibration import fit as F
from quality.calibration.evaluate import composite_of, cross_validate_schemes, scheme_names
from quality.calibration.model import DEFAULT_FILE, CalibrationModel, load, load_default
from quality.distortions import KINDS
from quality.errors import QualityError

log = logging.getLogger(__name__)

DEFAULT_NAME = "agiqa3k-nss-damage-ladders"


def summarise(records: Sequence[F.Record], result: F.CVResult, *, resamples: int = 1000) -> dict[str, Any]:
    """Agreement of the out-of-fold dimension scores and composite with the human scores (via :mod:`quality.eval`),
    inside (prompt, generator) groups, and the held-out images' damage ladders."""
    from quality.eval import Sample, agreement_table, grade_checks, within_group

    samples = []
    for i, r in enumerate(records):
        scores = {d: float(result.score[d][i]) for d in result.score}
        composite, grade = composite_of(scores)
        samples.append(Sample(name=r.name, path=Path(r.path), mos_quality=r.mos, generator=r.group, prompt=r.prompt,
                              values={**scores, "composite_score": composite}, grade=grade))  # fmt: skip
    table = agreement_table(samples, resamples=resamples, plcc_resamples=min(resamples, 200))
    checks = grade_checks(samples)
    checks.pop("seconds_per_image", None)
    out = {"agreement": table["mos_quality"], "within_group": within_group(samples), "checks": checks,
           "seconds": round(result.seconds, 1)}  # fmt: skip
    if result.ladders:
        out["ladders"] = ladder_summary(records, result)
    return out


def ladder_summary(records: Sequence[F.Record], result: F.CVResult) -> dict[str, Any]:
    """The held-out images' damage ladders (the fit's own distortion code and severities): per kind the share of
    ladders whose technical score / composite falls at every step, and the clean-to-heaviest drop."""
    from quality.ladder_check import summarise as summarise_ladders

    entries = []
    for j, dims in result.ladders.items():
        lad = records[j].ladders
        assert lad is not None
        for k, kind in enumerate(lad.kinds):
            if kind not in KINDS:  # the fit's whole-factor ladder is not a kind of the ladder check
                continue
            tech = [float(v) for v in dims["technical"][k]]
            comp = [composite_of({d: float(dims[d][k][i]) for d in dims})[0] for i in range(len(tech))]
            entries.append({"image": records[j].name, "kind": kind,
                            "scores": {"technical": tech, "composite_score": comp}})  # fmt: skip
    summary = summarise_ladders(entries)
    summary["not_strict"] = len(summary["not_strict"])
    summary["heavy_at_or_above_limit"] = len(summary["heavy_at_or_above_limit"])
    return summary


def brief(summary: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key in ("composite_score", "technical", "detail"):
        stats = summary["agreement"].get(key, {}).get("overall", {})
        if "srocc" in stats:
            out["composite" if key == "composite_score" else key] = stats["srocc"]["value"]
    out["false_positives"] = len(summary["checks"]["false_positives"])
    within = summary.get("within_group", {}).get("composite_score", {})
    for key in ("pair_accuracy", "selection_gain"):
        if within.get(key) is not None:
            out[key] = within[key]
    lad = summary.get("ladders", {}).get("overall", {})
    for key, short in (("technical", "technical"), ("composite_score", "composite")):
        if key in lad and lad[key]["strict_ladders"] is not None:
            out[f"ladders_strict_{short}"] = lad[key]["strict_ladders"]
    return out


def run_fit(dataset: Path, out: Path, report_path: Path, *, seed: int = F.SEED, jobs: int = 1,
            name: str = DEFAULT_NAME, schemes: Sequence[str] = ("kfold5", "logo"), limit: int | None = None,
            resamples: int = 1000, cache: Path | None = None, holdout: int = F.HOLDOUT_IMAGES,
            ladder_images: int = F.LADDER_IMAGES) -> dict[str, Any]:  # fmt: skip
    from quality.eval import load_dataset

    F._sklearn()
    started = time.perf_counter()
    samples = load_dataset(dataset, limit=limit)
    records = [F.Record(s.name, str(s.path), s.mos_quality, s.generator, prompt=s.prompt) for s in samples]
    records = F.prepare_records(records, seed=seed, jobs=jobs, cache=cache)
    usable = [r for r in records if r.usable]
    excluded = [r for r in records if not r.usable]
    if len(usable) < 11 * holdout:  # a small folder keeps every image for fitting
        log.info("only %d usable images: no held-out images", len(usable))
        holdout = 0
    held = set(F.holdout_names(usable, holdout))
    usable = [r for r in usable if r.name not in held]
    F.attach_ladders(usable, F.ladder_names(usable, ladder_images), jobs=jobs, cache=cache)
    if len(usable) < 10:
        raise F.CalibrationFitError(f"only {len(usable)} usable images in {dataset}: a calibration needs more")
    log.info("%d images usable, %d excluded", len(usable), len(excluded))
    if len({r.group for r in usable}) < 2:  # one generator: nothing to leave out
        schemes = [s for s in schemes if s != "logo"]
    final_set = F.codebooks_for(usable, range(len(usable)), seed)
    names = list(usable[0].features or {})
    natural = F.natural_pairs(names, jobs=jobs, cache=cache)
    log.info("damage head and ranking term: %d natural-photo ladders", len(natural))
    results, (final_encoded,) = cross_validate_schemes(usable, schemes, seed=seed, jobs=jobs, also=[final_set],
                                                       natural=natural)  # fmt: skip
    cv: dict[str, Any] = {}
    for scheme, done in results.items():
        cv[scheme] = summarise(usable, done.result, resamples=resamples)
        log.info("%s: %s", scheme, brief(cv[scheme]))
    meta = F.model_meta(name, usable, excluded, dataset / "labels.csv", seed, {s: brief(v) for s, v in cv.items()})
    meta["dataset"]["held_out"] = sorted(held)
    meta["dataset"]["ladder_images"] = sorted(r.name for r in usable if r.ladders is not None)
    check = F.check_rows(usable)
    mos = np.array([r.mos for r in usable])
    damage = F.damage_rows(usable, range(len(usable)), F.damage_floor(mos))
    integrity = F.integrity_rows(usable, range(len(usable)), natural)
    ranking = F.ranking_pairs(usable, range(len(usable)), natural)
    model = F.fit_model(F.base_matrix(usable, names), final_encoded, mos, final_set, seed=seed, meta=meta,
                        check=check, damage=damage if len(damage[1]) else None,
                        integrity=integrity if len(integrity[1]) else None,
                        ranking=ranking if len(ranking[0]) else None)  # fmt: skip
    for image, row in check.items():  # identify the check images' bytes too
        model.meta["check"][image]["sha256"] = F.sha256_file(Path(usable[row].path))
    out.parent.mkdir(parents=True, exist_ok=True)
    sha = model.save(out)
    report = {"model": str(out), "model_sha256": sha, **meta, "cv_details": cv,
              "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2))
    return report


def _member(m: Any) -> str:
    inputs = "all features" if m.inputs is None else f"{len(m.inputs)} features"
    return f"{m.dimension}:{m.kind}({inputs}{' + ' + m.codebook if m.codebook else ''})"


def _integrity(model: CalibrationModel) -> str:
    if model.integrity is None:
        return "none (scores are the human-aligned part alone)"
    w, t = model.integrity
    cap = model.severity_cap
    severity = "severity" if cap is None else f"min(severity, {cap:g})"
    return f"score -= 10 x {w:g} x max(0, {severity} - {t:g}) (then soft_floor: scores below 1 stay above 0)"


def _ranking(model: CalibrationModel) -> str:
    if model.ranking is None:
        return "none"
    slope, knee = model.ranking_slope
    extra = f" + {slope:g} x min(0, ranking - ({knee:g}))" if slope else ""
    return (
        f"score += {model.ranking:g} x ranking_gain(ranking){extra}, a pairwise ranker of the features and their"
        " squares"
    )


def describe(model: CalibrationModel) -> str:
    m = model.meta
    ds = m.get("dataset", {})
    dims = "; ".join(f"{d} replaces {'+'.join(c)}" for d, c in model.dimensions.items())
    scale = ", ".join(f"{a:.3f}->{b:g}" for a, b in zip(model.scale.mos, model.scale.score, strict=True))
    lines = [
        f"calibration model: {model.identity()}",
        f"  file: {model.path}",
        f"  dimensions: {dims}",
        f"  members: {', '.join(_member(x) for x in model.members)}",
        f"  features: {len(model.feature_names)} handcrafted ({m.get('features_version')})"
        + (f" + codebooks {', '.join(f'{k} K={v}' for k, v in m.get('codebooks', {}).items())}"
           if m.get("codebooks") else "")
        + f"; sha256 {model.features_sha256()[:12]}",
        f"  damage ladders: {len(ds.get('ladder_images', []))} images; held out of every fit: "
        f"{len(ds.get('held_out', []))} images",
        f"  scale (MOS -> score): {scale}",
        f"  damage head: {_integrity(model)}",
        f"  ranking term: {_ranking(model)}",
        f"  data: {ds.get('images')} images, labels sha256 {str(ds.get('labels_sha256'))[:12]}, "
        f"images sha256 {str(ds.get('images_sha256'))[:12]}, excluded {len(ds.get('excluded', {}))}",
        f"  seed {m.get('seed')}; cross-validated: {json.dumps(m.get('cv', {}))}",
    ]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m quality.calibration", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="fit the calibration model on a rated folder")
    f.add_argument("dataset", type=Path, help="folder with labels.csv and the images")
    f.add_argument("-o", "--output", type=Path, default=Path(DEFAULT_FILE), help="model file to write")
    f.add_argument("--report", type=Path, help="fit report JSON (default: next to the model)")
    f.add_argument("--seed", type=int, default=F.SEED)
    f.add_argument("--jobs", type=int, default=1, help="worker processes for image features")
    f.add_argument("--name", default=DEFAULT_NAME)
    f.add_argument("--cv", action="append", metavar="K|logo|none",
                   help="cross-validation: K folds, leave-one-generator-out, or none; repeatable (default: 5 and logo)")
    f.add_argument("--limit", type=int, help="only the first N images (smoke tests)")
    f.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the figures' intervals")
    f.add_argument("--cache", type=Path, help="folder (outside the repository) keeping image and damage-ladder "
                   "features between fits")
    f.add_argument("--holdout", type=int, default=F.HOLDOUT_IMAGES,
                   help="images kept out of every fit (for the ladder check on held-out AI images)")
    f.add_argument("--ladder-images", type=int, default=F.LADDER_IMAGES,
                   help="fit images that get damage ladders (0: human scores only)")
    f.add_argument("--no-natural-ladders", action="store_true",
                   help="the damage head learns from the rated images' ladders only (not from natural photos)")
    i = sub.add_parser("info", help="describe a calibration model (default: the shipped one)")
    i.add_argument("model", type=Path, nargs="?")
    return p


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        if args.command == "info":
            out.write(describe(load(args.model) if args.model else load_default()))
            return 0
        if args.command == "fit" and args.no_natural_ladders:
            F.NATURAL_LADDERS = False
        cv = args.cv or ["5", "logo"]
        schemes = [] if "none" in cv else scheme_names(cv)
        report_path = args.report or args.output.with_suffix(".report.json")
        report = run_fit(args.dataset, args.output, report_path, seed=args.seed, jobs=max(1, args.jobs),
                         name=args.name, schemes=schemes, limit=args.limit, resamples=args.bootstrap,
                         cache=args.cache, holdout=args.holdout, ladder_images=args.ladder_images)  # fmt: skip
    except (QualityError, FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    out.write(f"wrote {args.output} (sha256 {report['model_sha256'][:12]}) and {report_path}\n")
    out.write(f"cross-validated: {json.dumps(report['cv'])}\n")
    return 0
