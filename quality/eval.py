"""``python -m quality eval DATASET_DIR``: how well do the scores agree with human opinion?

The dataset is a folder with ``labels.csv`` and the images (in ``images/`` or next to the CSV). Columns: ``name``
and ``mos_quality`` are required; ``prompt``, ``mos_align``, ``generator`` and ``variant`` are used when present
(the AGIQA-3K layout; any folder with the same columns works, e.g. your own rated images).

For every raw metric, every dimension and the composite it reports SROCC, KROCC and PLCC (after the standard
4-parameter logistic fit) against ``mos_quality`` — and for prompt adherence against ``mos_align`` — overall and
per generator, each with a percentile-bootstrap 95 % interval. It also checks what a grade promises: the mean
human score per grade (it should rise from F to A), and false positives (images in the bottom quartile of human
scores that get a composite ≥ 7.0). Outputs: a table on stdout, ``eval.json``, ``scores.jsonl`` (per image, reusable
with ``--scores``), ``composite_vs_mos.png`` and ``mos_per_grade.png`` in ``--output``.

What refinement needs is agreement *inside* one workflow: within every (prompt, generator) group it reports pair
accuracy (the share of pairs whose human scores differ by at least 0.5 that the score orders as people did) and
selection gain (the human score of the scorer's top pick minus the group mean, as a share of the best pick's).

``--ladders DIR`` (with or without a dataset) damages every image of ``DIR`` with every kind of
:mod:`quality.distortions` at four severities and checks that the technical score and the composite fall at every
step (:mod:`quality.ladder_check`; ``ladders.json``; exit status 4 when a ladder does not fall strictly or a
heavily damaged copy keeps a composite of 5.0 or more).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from comfy_quality.boundary import recorded_reason
from quality.specs import DIMENSION_SPECS, DIMENSIONS, METRICS, MetricSpec
from quality.stats import bootstrap, krocc, pair_accuracy, plcc, selection_gain, srocc

log = logging.getLogger(__name__)


def _judges_prompt(spec: MetricSpec) -> bool:
    return spec.needs_prompt or DIMENSION_SPECS[spec.dimension].needs_prompt


#: predictors whose within-group agreement is reported (the scores refinement chooses by): a chosen subset of the
#: composite, dimensions and metrics, each a name of the registry (tests/quality/test_registry.py checks it)
WITHIN_GROUP_PREDICTORS = ("composite_score", "technical", "detail", "aesthetic", "brisque", "niqe", "edge_density")
#: within-group pairs count when their human scores differ by at least this much
PAIR_MIN_DELTA = 0.5
#: predictors checked against mos_quality: the composite, then every dimension and raw metric that does not judge
#: the prompt (from the metric registry); those that do are checked against mos_align
QUALITY_PREDICTORS = (
    "composite_score",
    *(d for d in DIMENSIONS if not DIMENSION_SPECS[d].needs_prompt),
    *(name for name, spec in METRICS.items() if not _judges_prompt(spec)),
)
ALIGN_PREDICTORS = (
    *(d for d in DIMENSIONS if DIMENSION_SPECS[d].needs_prompt),
    *(name for name, spec in METRICS.items() if _judges_prompt(spec)),
)
GRADES = ("F", "D", "C", "B", "A")
FALSE_POSITIVE_COMPOSITE = 7.0


@dataclass
class Sample:
    name: str
    path: Path
    mos_quality: float
    prompt: str | None = None
    mos_align: float | None = None
    generator: str = "all"
    variant: str | None = None
    values: dict[str, float | None] = field(default_factory=dict)
    grade: str | None = None
    seconds: float | None = None
    error: str | None = None


def _float(value: str | None) -> float | None:
    if value is None or value.strip() == "":
        return None
    return float(value)


def load_dataset(folder: Path, *, limit: int | None = None) -> list[Sample]:
    labels = folder / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"{labels} not found: a dataset folder needs labels.csv (name, mos_quality, ...)")
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    samples: list[Sample] = []
    with labels.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"name", "mos_quality"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{labels} lacks the column(s) {sorted(missing)}")
        for row in reader:
            mos = _float(row.get("mos_quality"))
            if mos is None:
                continue
            samples.append(
                Sample(
                    name=row["name"],
                    path=image_dir / row["name"],
                    mos_quality=mos,
                    prompt=(row.get("prompt") or None),
                    mos_align=_float(row.get("mos_align")),
                    generator=row.get("generator") or "all",
                    variant=row.get("variant") or None,
                )
            )
    if limit:
        samples = samples[:limit]
    return samples


# -- scoring (optionally in several processes) ----------------------------------------------------------------
_worker_scorer: Any = None


def _init_worker(settings_json: str) -> None:
    global _worker_scorer
    from quality.scorer import Scorer
    from quality.settings import QualitySettings

    _worker_scorer = Scorer(QualitySettings.model_validate_json(settings_json))


def _values(report: Any) -> dict[str, float | None]:
    out: dict[str, float | None] = {"composite_score": report.composite_score}
    for dim in DIMENSIONS:
        block = getattr(report, dim).model_dump()
        out[dim] = block.pop("score")
        out.update(block)
    return out


def _score_one(args: tuple[str, str | None]) -> tuple[dict[str, float | None] | None, str | None, float, str | None]:
    path, prompt = args
    started = time.perf_counter()
    try:
        report = _worker_scorer.score(path, prompt)
    except Exception as exc:  # a bug is logged with its traceback; either way the sample records why
        return None, None, time.perf_counter() - started, f"{type(exc).__name__}: {recorded_reason(path, exc)}"
    return _values(report), report.grade, report.seconds, None


def score_samples(samples: list[Sample], settings: Any, *, jobs: int = 1, progress: bool = True) -> None:
    """Fill ``values``/``grade``/``seconds`` of every sample (``jobs`` processes, each with its own Scorer)."""
    from tqdm import tqdm

    work = [(str(s.path), s.prompt) for s in samples]
    bar = tqdm(total=len(work), unit="img", file=sys.stderr, disable=not progress)
    if jobs <= 1:
        _init_worker(settings.model_dump_json())
        results: Iterable[Any] = map(_score_one, work)
    else:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(settings.model_dump_json(),))  # fmt: skip
        results = pool.map(_score_one, work, chunksize=4)
    try:
        for sample, (values, grade, seconds, error) in zip(samples, results, strict=True):
            sample.values, sample.grade, sample.seconds, sample.error = values or {}, grade, seconds, error
            bar.update()
    finally:
        bar.close()
        if jobs > 1:
            pool.shutdown()


def save_scores(samples: Sequence[Sample], path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps({"name": s.name, "values": s.values, "grade": s.grade, "seconds": s.seconds,
                                 "error": s.error}) + "\n")  # fmt: skip


def load_scores(samples: Sequence[Sample], path: Path) -> bool:
    """Reuse per-image scores from an earlier run; False if any sample is missing from the file."""
    cached = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            cached[item["name"]] = item
    if any(s.name not in cached for s in samples):
        return False
    for s in samples:
        item = cached[s.name]
        s.values, s.grade, s.seconds, s.error = item["values"], item["grade"], item["seconds"], item.get("error")
    return True


# -- statistics ----------------------------------------------------------------------------------------------
def correlations(pred: np.ndarray, mos: np.ndarray, *, resamples: int, plcc_resamples: int) -> dict[str, Any]:
    ok = np.isfinite(pred) & np.isfinite(mos)
    pred, mos = pred[ok], mos[ok]
    if len(pred) < 5 or np.ptp(pred) == 0:
        return {"n": len(pred)}
    return {
        "n": len(pred),
        "srocc": bootstrap(srocc, pred, mos, resamples=resamples).as_dict(),
        "krocc": bootstrap(krocc, pred, mos, resamples=resamples).as_dict(),
        "plcc": bootstrap(plcc, pred, mos, resamples=plcc_resamples).as_dict(),
    }


def _column(samples: Sequence[Sample], key: str) -> np.ndarray:
    return np.array([np.nan if s.values.get(key) is None else float(s.values[key]) for s in samples])  # type: ignore[arg-type]


def agreement_table(
    samples: Sequence[Sample], *, resamples: int = 1000, plcc_resamples: int = 200
) -> dict[str, dict[str, dict[str, Any]]]:
    """{target: {predictor: {group: stats}}}; groups are "overall" and each generator."""
    scored = [s for s in samples if s.error is None]
    groups: dict[str, list[Sample]] = {"overall": scored}
    for s in scored:
        groups.setdefault(s.generator, []).append(s)
    if len(groups) == 2:  # one generator: its group equals overall
        groups = {"overall": scored}
    out: dict[str, dict[str, dict[str, Any]]] = {"mos_quality": {}, "mos_align": {}}
    targets: list[tuple[str, tuple[str, ...], Callable[[Sample], float | None]]] = [
        ("mos_quality", QUALITY_PREDICTORS, lambda s: s.mos_quality),
        ("mos_align", ALIGN_PREDICTORS, lambda s: s.mos_align),
    ]
    for target, predictors, get in targets:
        for key in predictors:
            for group, members in groups.items():
                pred = _column(members, key)
                if not np.isfinite(pred).any():
                    continue
                mos = np.array([np.nan if get(s) is None else get(s) for s in members], dtype=np.float64)
                stats = correlations(pred, mos, resamples=resamples, plcc_resamples=plcc_resamples)
                if "srocc" in stats:
                    out[target].setdefault(key, {})[group] = stats
    return out


def within_group(samples: Sequence[Sample]) -> dict[str, dict[str, Any]]:
    """Agreement inside each (prompt, generator) group, the choice refinement makes between retries: pair
    accuracy (pairs with |ΔMOS| >= :data:`PAIR_MIN_DELTA`) and selection gain (:mod:`quality.stats`), per
    predictor. Samples without a prompt are left out (there is no group to compare within)."""
    scored = [s for s in samples if s.error is None and s.prompt is not None]
    groups = [(s.prompt, s.generator) for s in scored]
    mos = np.array([s.mos_quality for s in scored], dtype=np.float64)
    out: dict[str, dict[str, Any]] = {}
    for key in WITHIN_GROUP_PREDICTORS:
        pred = _column(scored, key)
        if not np.isfinite(pred).any():
            continue
        acc, pairs = pair_accuracy(pred, mos, groups, min_delta=PAIR_MIN_DELTA)
        gain, n_groups = selection_gain(pred, mos, groups)
        if pairs == 0 and n_groups == 0:
            continue
        out[key] = {
            "pair_accuracy": None if pairs == 0 else round(acc, 4), "pairs": pairs,
            "selection_gain": None if n_groups == 0 else round(gain, 4), "groups": n_groups,
        }  # fmt: skip
    return out


def grade_checks(samples: Sequence[Sample]) -> dict[str, Any]:
    scored = [s for s in samples if s.error is None and s.grade]
    mos = np.array([s.mos_quality for s in scored])
    per_grade: dict[str, dict[str, Any]] = {}
    for g in GRADES:
        members = np.array([s.mos_quality for s in scored if s.grade == g])
        if len(members):
            per_grade[g] = {"n": len(members), "mean_mos": round(float(members.mean()), 4)}
    means = [per_grade[g]["mean_mos"] for g in GRADES if g in per_grade]
    q1 = float(np.quantile(mos, 0.25)) if len(mos) else float("nan")
    false_pos = [
        s.name for s in scored
        if s.mos_quality <= q1 and (s.values.get("composite_score") or 0) >= FALSE_POSITIVE_COMPOSITE
    ]  # fmt: skip
    seconds = np.array([s.seconds for s in scored if s.seconds is not None])
    return {
        "per_grade": per_grade,
        "mean_mos_rises_from_F_to_A": bool(all(a < b for a, b in itertools.pairwise(means))),
        "bottom_quartile_mos": round(q1, 4),
        "false_positives": false_pos,
        "false_positive_rule": f"mos_quality <= bottom quartile and composite >= {FALSE_POSITIVE_COMPOSITE}",
        "seconds_per_image": {
            "mean": round(float(seconds.mean()), 4) if len(seconds) else None,
            "p50": round(float(np.median(seconds)), 4) if len(seconds) else None,
        },
        "images": len(samples),
        "failed": [s.name for s in samples if s.error],
    }


# -- rendering -----------------------------------------------------------------------------------------------
def _cell(stats: dict[str, Any], key: str) -> str:
    est = stats.get(key)
    if not est or est["value"] is None:
        return "–"
    if est["ci_low"] is None:
        return f"{est['value']:.3f}"
    return f"{est['value']:.3f} [{est['ci_low']:.2f},{est['ci_high']:.2f}]"


def render(table: dict[str, dict[str, dict[str, Any]]], checks: dict[str, Any],
           within: dict[str, dict[str, Any]] | None = None) -> str:  # fmt: skip
    lines = []
    for target, predictors in table.items():
        if not predictors:
            continue
        lines.append(f"\nagreement with {target} (value [95% CI])")
        lines.append(f"  {'predictor':<17}{'group':<12}{'n':>5}  {'SROCC':<22}{'KROCC':<22}{'PLCC':<22}")
        for key, groups in predictors.items():
            for group, stats in groups.items():
                row = f"  {key:<17}{group:<12}{stats['n']:>5}  "
                row += f"{_cell(stats, 'srocc'):<22}{_cell(stats, 'krocc'):<22}{_cell(stats, 'plcc'):<22}"
                lines.append(row)
    if within:
        lines.append(f"\nwithin one prompt and generator (pairs with |ΔMOS| >= {PAIR_MIN_DELTA}; selection gain: "
                     "top pick's MOS - group mean, as a share of the best pick's)")  # fmt: skip
        lines.append(f"  {'predictor':<17}{'pair accuracy':>14}{'pairs':>8}{'selection gain':>16}{'groups':>8}")
        for key, w in within.items():
            acc = "–" if w["pair_accuracy"] is None else f"{w['pair_accuracy']:.3f}"
            gain = "–" if w["selection_gain"] is None else f"{100 * w['selection_gain']:.1f} %"
            lines.append(f"  {key:<17}{acc:>14}{w['pairs']:>8}{gain:>16}{w['groups']:>8}")
    lines.append("\nmean human score per grade")
    for g, info in checks["per_grade"].items():
        lines.append(f"  {g}: {info['mean_mos']:.3f}  (n={info['n']})")
    lines.append(f"  rises strictly from F to A: {checks['mean_mos_rises_from_F_to_A']}")
    lines.append(f"false positives ({checks['false_positive_rule']}): {len(checks['false_positives'])}")
    sec = checks["seconds_per_image"]
    lines.append(f"seconds per image: mean {sec['mean']}, p50 {sec['p50']}")
    return "\n".join(lines) + "\n"


def plot(samples: Sequence[Sample], checks: dict[str, Any], out_dir: Path, suffix: str = "") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from quality.stats import fit_logistic4, logistic4

    scored = [s for s in samples if s.error is None and s.values.get("composite_score") is not None]
    paths = []
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    for gen in sorted({s.generator for s in scored}):
        xs = [float(s.values["composite_score"] or 0.0) for s in scored if s.generator == gen]
        ys = [s.mos_quality for s in scored if s.generator == gen]
        ax.scatter(xs, ys, s=8, alpha=0.6, label=gen)
    x = np.array([s.values["composite_score"] for s in scored], dtype=float)
    y = np.array([s.mos_quality for s in scored], dtype=float)
    params = fit_logistic4(x, y) if len(x) > 4 else None
    if params is not None:
        grid = np.linspace(x.min(), x.max(), 200)
        ax.plot(grid, logistic4(grid, *params), color="black", lw=1.5, label="logistic fit")
    ax.set_xlabel("composite score (0–10)")
    ax.set_ylabel("human MOS (quality)")
    ax.set_title(f"composite vs human opinion (SROCC {srocc(x, y):.3f}, n={len(x)})" if len(x) > 2 else "")
    ax.legend(fontsize=7, markerscale=2)
    fig.tight_layout()
    paths.append(out_dir / f"composite_vs_mos{suffix}.png")
    fig.savefig(paths[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    grades = [g for g in GRADES if g in checks["per_grade"]]
    means = [checks["per_grade"][g]["mean_mos"] for g in grades]
    errs = []
    for g in grades:
        vals = np.array([s.mos_quality for s in scored if s.grade == g])
        errs.append(1.96 * vals.std(ddof=1) / np.sqrt(len(vals)) if len(vals) > 1 else 0.0)
    bars = ax.bar(grades, means, yerr=errs, capsize=4, color="#4c72b0")
    for bar, g in zip(bars, grades, strict=True):
        ax.annotate(f"n={checks['per_grade'][g]['n']}", (bar.get_x() + bar.get_width() / 2, 0.05), ha="center",
                    color="white", fontsize=8)  # fmt: skip
    ax.set_xlabel("grade")
    ax.set_ylabel("mean human MOS (95% CI)")
    ax.set_title("calibration: mean human score per grade")
    fig.tight_layout()
    paths.append(out_dir / f"mos_per_grade{suffix}.png")
    fig.savefig(paths[-1])
    plt.close(fig)
    return paths


# -- command -------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m quality eval", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", type=Path, nargs="?", help="folder with labels.csv and the images")
    p.add_argument("--ladders", type=Path, metavar="DIR",
                   help="damage ladders: damage every image of DIR with every distortion at 4 severities and check "
                        "that the technical score and the composite fall at every step (exit 4 when not)")
    p.add_argument("--distortion", action="append", metavar="KIND", help="with --ladders: only these kinds")
    p.add_argument("-o", "--output", type=Path, default=Path("eval-out"), help="folder for JSON, scores and plots")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--jobs", type=int, default=1, help="scoring processes (each loads its own models)")
    p.add_argument("--scores", type=Path, help="reuse per-image scores from an earlier run's scores.jsonl")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for SROCC/KROCC (0: none)")
    p.add_argument("--plcc-bootstrap", type=int, default=200, help="bootstrap resamples for PLCC (refits each)")
    p.add_argument("--no-calibration", action="store_true", help="score with the plain spec-table mapping")
    p.add_argument("--cv", action="append", metavar="K|logo",
                   help="also report cross-validated calibration: each image's technical/detail/composite from a "
                        "model fitted without it (K folds, or leave-one-generator-out); repeatable; needs scikit-learn")
    p.add_argument("--seed", type=int, default=0, help="seed of the --cv folds and fits")
    p.add_argument("--cache", type=Path, help="with --cv: folder keeping image and damage-ladder features")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def _cv_schemes(values: Sequence[str]) -> list[str]:
    if not values:
        return []
    from quality.calibration.evaluate import scheme_names

    return scheme_names(values)


def _cross_validation(samples: Sequence[Sample], schemes: Sequence[str], args: argparse.Namespace, settings: Any,
                      out: IO[str]) -> dict[str, Any]:  # fmt: skip
    """Tables, checks and plots of out-of-fold calibrated scores (:mod:`quality.calibration.evaluate`)."""
    from quality.calibration.evaluate import cross_validated_samples

    results: dict[str, Any] = {}
    per_scheme = cross_validated_samples(samples, schemes, seed=args.seed, jobs=max(1, args.jobs),
                                         config=settings.composite, cache=args.cache)  # fmt: skip
    for scheme, (cv_samples, info) in per_scheme.items():
        table = agreement_table(cv_samples, resamples=args.bootstrap, plcc_resamples=args.plcc_bootstrap)
        checks = grade_checks(cv_samples)
        within = within_group(cv_samples)
        out.write(f"\n== cross-validated calibration: {scheme} (seed {args.seed}, {info['folds']} folds): technical, "
                  "detail, composite and grade of every image come from a model fitted without it ==")  # fmt: skip
        out.write(render(table, checks, within))
        if not args.no_plots:
            for path in plot(cv_samples, checks, args.output, suffix=f"_{scheme}"):
                out.write(f"wrote {path}\n")
        with (args.output / f"cv_{scheme}.jsonl").open("w", encoding="utf-8") as fh:
            for s in cv_samples:
                fh.write(json.dumps({"name": s.name, "values": s.values, "grade": s.grade}) + "\n")
        results[scheme] = {"agreement": table, "within_group": within, "checks": checks, "folds": info}
    return results


def fitted_on(samples: Sequence[Sample], labels: Path) -> str | None:
    """Why the shipped calibration model has seen (some of) these images, or ``None``: same ``labels.csv``, or one
    of the model's check images (name and bytes) is among them. Its figures on them would be in-sample."""
    from quality.calibration import load_default
    from quality.calibration.fit import sha256_file
    from quality.errors import QualityError

    try:
        meta = load_default().meta
    except QualityError:
        return None
    if sha256_file(labels) == meta.get("dataset", {}).get("labels_sha256"):
        return f"{labels} is the labels file the shipped calibration model was fitted on"
    by_name = {s.name: s.path for s in samples}
    for name, check in meta.get("check", {}).items():
        path = by_name.get(name)
        if path is not None and path.is_file() and sha256_file(path) == check.get("sha256"):
            return f"{name} is one of the images the shipped calibration model was fitted on"
    return None


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    from quality.settings import QualitySettings

    if args.dataset is None and args.ladders is None:
        print("error: give a dataset folder, --ladders DIR, or both", file=sys.stderr)
        return 2
    if args.dataset is None:
        return _ladders(args, out)
    try:
        samples = load_dataset(args.dataset, limit=args.limit)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not samples:
        print(f"error: no rated images in {args.dataset / 'labels.csv'}", file=sys.stderr)
        return 2
    try:
        schemes = _cv_schemes(args.cv or [])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    settings = QualitySettings()
    if args.no_calibration:
        settings = settings.model_copy(update={"calibration": False})
    if not (args.scores and load_scores(samples, args.scores)):
        score_samples(samples, settings, jobs=max(1, args.jobs), progress=not args.quiet)
    save_scores(samples, args.output / "scores.jsonl")
    table = agreement_table(samples, resamples=args.bootstrap, plcc_resamples=args.plcc_bootstrap)
    checks = grade_checks(samples)
    within = within_group(samples)
    result = {"dataset": str(args.dataset), "images": len(samples), "agreement": table, "within_group": within,
              "checks": checks,
              "settings": {"calibration": settings.calibration, "device": settings.device}}  # fmt: skip
    overlap = fitted_on(samples, args.dataset / "labels.csv") if settings.calibration else None
    if overlap is not None:
        result["in_sample"] = overlap
        out.write(f"NOTE: {overlap}: the calibrated technical/detail/composite figures below are in-sample "
                  "(optimistic); --cv K or --cv logo gives figures from models that never saw the images\n")
    out.write(render(table, checks, within))
    if not args.no_plots:
        for path in plot(samples, checks, args.output):
            out.write(f"wrote {path}\n")
    if schemes:
        result["cross_validation"] = _cross_validation(samples, schemes, args, settings, out)
    (args.output / "eval.json").write_text(json.dumps(result, indent=2))
    out.write(f"wrote {args.output / 'eval.json'}\n")
    code = 0 if not checks["failed"] else 3
    if args.ladders is not None:
        ladder_code = _ladders(args, out)
        code = code or ladder_code
    return code


def _ladders(args: argparse.Namespace, out: IO[str]) -> int:
    from quality import ladder_check
    from quality.settings import QualitySettings

    settings = QualitySettings()
    if args.no_calibration:
        settings = settings.model_copy(update={"calibration": False})
    return ladder_check.main(args.ladders, settings, args.output, jobs=max(1, args.jobs), kinds=args.distortion,
                             limit=args.limit, out=out)  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
