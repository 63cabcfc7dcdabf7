"""``python -m quality``: score images from the command line, manage weights, show the metric table.

    python -m quality IMAGE [PROMPT]              one image → readable table (or --json)
    python -m quality a.png b.jpg DIR 'g/*.png'   many images (files, folders, globs) → one line per image and a
                                                  summary; CSV or JSONL with --format / --output / --json
    python -m quality weights list|prefetch|verify  what weights are present / fetch / check them
    python -m quality metrics                     the metric table (ranges and mappings used for normalisation)
    python -m quality eval DATASET_DIR            agreement with human scores (see quality.eval)

Exit codes: 0 scored (and passed --min-grade/--min-score); 1 scored but below --min-grade/--min-score (an image
that is not graded never passes them);
2 usage error; 3 an image could not be read (in a batch: at least one); 4 settings or weights error; 70 internal
error (a bug: its traceback is logged on stderr). Errors are answered by one table, :data:`ERRORS`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import glob
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from comfy_quality.boundary import CliErrors, ErrorTable
from comfy_quality.errors import SettingsError
from quality.errors import ConfigError, ImageError, QualityError, WeightsError
from quality.specs import DIMENSION_SPECS, DIMENSIONS, metrics_of

log = logging.getLogger(__name__)

EXIT_OK, EXIT_BELOW, EXIT_USAGE, EXIT_IMAGE, EXIT_CONFIG = 0, 1, 2, 3, 4
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
GRADE_ORDER = "FDCBA"
SUBCOMMANDS = ("weights", "metrics", "eval", "score")


class UsageError(QualityError):
    """A command line that cannot be run as given (exit code 2); the message says what to change."""


ERRORS = CliErrors(
    ErrorTable(
        "comfy-quality",
        [
            (UsageError, EXIT_USAGE),
            (ConfigError, EXIT_CONFIG),
            (SettingsError, EXIT_CONFIG),
            (WeightsError, EXIT_CONFIG),
            (ImageError, EXIT_IMAGE),
            (QualityError, EXIT_IMAGE),  # a metric failed on this image
        ],
    ),
    default=EXIT_CONFIG,  # another package's error (the store, the job queue): the setup, not the image
)
"""The command line's one error table: library error → its message and exit code; anything else → logged with
its traceback, a short message and exit code 70."""


# -- input expansion -----------------------------------------------------------------------------------------
def _clip(text: str, width: int = 80) -> str:
    """Long user text shortened in the middle (the end of a path names the file)."""
    if len(text) <= width:
        return text
    head = (width - 3) // 3
    return text[:head] + "..." + text[-(width - 3 - head) :]


def _exists(item: str) -> bool:
    """Like ``Path.exists``, but a name the OS refuses (too long, NUL...) simply does not exist."""
    try:
        return Path(item).exists()
    except (OSError, ValueError):
        return False


def expand_inputs(items: Sequence[str]) -> list[Path]:
    """Files, folders (recursively, image suffixes only) and glob patterns → sorted unique paths."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if _exists(item):
            if path.is_dir():
                out.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
            else:
                out.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                raise UsageError(f"no files match {_clip(item)!r}")
            out.extend(files)
        else:
            raise UsageError(f"no such file or folder: {_clip(item)}")
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def read_prompts(path: Path) -> dict[str, str]:
    """A CSV with columns ``name`` and ``prompt`` (the AGIQA-3K ``labels.csv`` layout works as is)."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "name" not in reader.fieldnames or "prompt" not in reader.fieldnames:
            raise UsageError(f"{path} needs the columns 'name' and 'prompt'")
        return {row["name"]: row["prompt"] for row in reader}


# -- rendering -----------------------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _first_sentence(text: str) -> str:
    head = text.split(". ")[0].split(" (")[0] if len(text) > 160 else text
    return head if len(head) <= 160 else head[:157] + "..."


def render_table(report: Any) -> str:
    from quality.specs import METRICS

    info = report.image
    lines = [
        f"{info.source or 'image'}  ({info.width}×{info.height} {info.format or ''} {info.mode or ''})".rstrip()
        + (f'   prompt: "{report.prompt}"' if report.prompt else "   (no prompt)")
    ]
    lines.append(f"  {'dimension':<18}{'score':>7}  raw metrics")
    problems: dict[str, list[str]] = {}
    for dim in DIMENSIONS:
        status = report.coverage.dimensions[dim]
        parts = []
        for name, spec in METRICS.items():
            if spec.dimension != dim:
                continue
            r = report.metrics[name]
            if r.status == "ok":
                parts.append(f"{name} {r.raw:.4g}" + (" (out of range)" if r.out_of_range else ""))
            else:
                parts.append(f"{name} –")
                if r.status != "not_applicable":
                    problems.setdefault(_first_sentence(r.reason or r.status), []).append(name)
        score = report.dimension_score(dim)
        label = DIMENSION_SPECS[dim].label
        shown = _fmt(score) if status == "scored" else "–"
        suffix = "" if status == "scored" else f"   ({status.replace('_', ' ')})"
        lines.append(f"  {label:<18}{shown:>7}  " + " · ".join(parts) + suffix)
    cov = report.coverage
    if report.grade is None:
        tail = (
            f"  {'composite':<18}{report.composite_score:>7.2f}  NOT GRADED: {'; '.join(report.grade_reasons)}"
            f"\n  {'':<25}(the composite covers {cov.coverage:.0%} of the weight and is not a grade)"
        )
    else:
        tail = f"  {'composite':<18}{report.composite_score:>7.2f}  grade {report.grade}"
    if report.partial and report.grade is not None:
        scored = " + ".join(d for d, s in cov.dimensions.items() if s == "scored") or "nothing"
        tail += f"  (partial: covers {scored} = {cov.coverage:.0%} of the weight)"
    lines.append(tail)
    for reason, names in problems.items():
        lines.append(f"  {', '.join(names)}: {reason}")
    if any("weights file" in reason for reason in problems):
        lines.append("  → `python -m quality weights list` shows what is missing; `... weights prefetch` fetches it")
    for note in report.notes:
        if not note.startswith(("partial grade", "not graded")):
            lines.append(f"  note: {note}")
    cal = report.calibration_info
    if cal is not None and cal.used:
        dims = ", ".join(d for d, how in cal.dimensions.items() if how == "calibrated")
        lines.append(f"  calibrated ({dims}): {cal.model}")
    elif cal is not None and cal.reason:
        lines.append(f"  calibration not used: {cal.reason}")
    lines.append(f"  device {report.device}, {report.seconds:.2f} s")
    return "\n".join(lines)


#: the CSV columns of a batch: each dimension followed by its metrics' raw values, from the metric registry
FLAT_COLUMNS = [
    "file", "prompt", "composite_score", "grade", "grade_status", "grade_reasons", "ungraded_composite", "partial",
    "coverage",
    *(col for dim in DIMENSIONS for col in (dim, *(spec.name for spec in metrics_of(dim)))),
    "seconds", "error",
]  # fmt: skip


def flat_row(file: str, report: Any | None, error: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(FLAT_COLUMNS, "")
    row["file"] = file
    if report is None:
        row["error"] = error or ""
        return row
    row.update(
        prompt=report.prompt or "",
        composite_score=report.composite_score if report.grade is not None else "",
        grade=report.grade or "",
        grade_status=report.grade_status,
        grade_reasons="; ".join(report.grade_reasons),
        ungraded_composite=report.composite_score if report.grade is None else "",
        partial=report.partial,
        coverage=report.coverage.coverage,
        seconds=report.seconds,
    )
    for dim in DIMENSIONS:
        block = getattr(report, dim)
        for key, value in block.model_dump().items():
            row[dim if key == "score" else key] = "" if value is None else value
    return row


def _passes(report: Any, min_grade: str | None, min_score: float | None) -> bool:
    if report.grade is None:  # not graded: no threshold is met by a composite that is not a grade
        return min_grade is None and min_score is None
    if min_grade and GRADE_ORDER.index(report.grade) < GRADE_ORDER.index(min_grade):
        return False
    return not (min_score is not None and report.composite_score < min_score)


# -- plug-in point ---------------------------------------------------------------------------------------------
SCORE_HANDLERS = "comfy_quality.score_handlers"
"""Entry-point group of handlers that may take ``score`` elsewhere. Each is a callable ``(args, inputs, prompt,
out) -> int | None``: an exit code when it ran the command, None to leave it to the local scorer. quality imports
nothing of the other packages; the job queue declares its handler here (``pyproject.toml``:
``[project.entry-points."comfy_quality.score_handlers"]``), taking ``s3://`` sources, and one folder when
``COMFY_QUALITY_JOBS_URL`` is set (unless ``--local``)."""

ScoreHandler = Callable[[argparse.Namespace, list[str], "str | None", IO[str]], "int | None"]


def score_handlers() -> list[ScoreHandler]:
    """The installed ``score`` handlers, by entry-point name; one that cannot be imported is skipped (logged)."""
    from importlib.metadata import entry_points

    found: list[ScoreHandler] = []
    seen: set[str] = set()
    for point in sorted(entry_points(group=SCORE_HANDLERS), key=lambda p: p.name):
        if point.name in seen:  # the same distribution found twice on sys.path (a source tree and its install)
            continue
        seen.add(point.name)
        try:
            found.append(point.load())
        except (ImportError, AttributeError) as exc:  # a plug-in whose package is not installed here
            log.warning("score handler %s (%s) not loaded: %s", point.name, point.value, exc)
    return found


# -- commands ------------------------------------------------------------------------------------------------
def _settings(args: argparse.Namespace) -> Any:
    from quality.settings import QualitySettings

    overrides: dict[str, Any] = {}
    if getattr(args, "weights_dir", None):
        overrides["weights_dir"] = args.weights_dir
    if getattr(args, "offline", False):
        overrides["offline"] = True
    if getattr(args, "device", None):
        overrides["device"] = args.device
    if getattr(args, "metrics", None):
        overrides["metrics"] = args.metrics
    if getattr(args, "no_calibration", False):
        overrides["calibration"] = False
    try:
        return QualitySettings(**overrides)
    except ValueError as exc:  # pydantic refused a COMFY_QUALITY_* variable or an option
        raise ConfigError(f"invalid settings: {exc}") from exc


def cmd_score(args: argparse.Namespace, out: IO[str]) -> int:
    from quality.scorer import Scorer

    items = list(args.inputs)
    prompt = args.prompt
    if prompt is None and len(items) == 2 and not _exists(items[1]) and not glob.has_magic(items[1]):
        items, prompt = items[:1], items[1]
    for handler in score_handlers():  # e.g. a gallery scored by the job queue's workers (docs/jobs.md)
        answer = handler(args, items, prompt, out)
        if answer is not None:
            return answer
    remote = [item for item in items if item.startswith("s3://")]
    if remote:
        raise UsageError(
            f"{remote[0][:80]}: s3:// sources are scored by the comfy-quality workers, and no score handler is "
            f"installed (entry-point group {SCORE_HANDLERS}); reinstall comfy-quality (pip install -e .)"
        )
    try:
        paths = expand_inputs(items)
    except UsageError as exc:
        raise UsageError(_prompt_hint(items, str(exc))) from exc
    if not paths:
        raise UsageError("no images to score")
    prompts = read_prompts(Path(args.prompts)) if args.prompts else {}
    if not args.prompts:  # a folder that carries its own labels (name,prompt columns) uses them
        for item in items:
            labels = Path(item) / "labels.csv"
            if Path(item).is_dir() and labels.is_file():
                with contextlib.suppress(UsageError):
                    prompts.update(read_prompts(labels))
    settings = _settings(args)
    try:
        scorer = Scorer(settings)
    except ValueError as exc:  # a setting the scorer cannot use (weights, grades): ConfigError and WeightsError pass
        raise ConfigError(f"invalid settings: {exc}") from exc
    single = len(paths) == 1 and not args.output and args.format is None
    if single:
        report = scorer.score(paths[0], prompts.get(paths[0].name, prompt))  # an ImageError: exit code 3 (ERRORS)
        out.write((report.model_dump_json(indent=2) if args.json else render_table(report)) + "\n")
        return EXIT_OK if _passes(report, args.min_grade, args.min_score) else EXIT_BELOW
    return _score_batch(scorer, paths, prompt, prompts, args, out)


def _prompt_hint(items: Sequence[str], message: str) -> str:
    """A missing last item after several images is most likely a prompt: say how to give one."""
    *images, last = items or [""]
    if len(images) < 2 or _exists(last) or glob.has_magic(last):
        return message
    if not all(_exists(item) or glob.has_magic(item) for item in images):
        return message  # another item is missing: that is what the message names
    return (
        f"no such file or folder: {_clip(last, 40)!r}. A prompt may follow a single image only; for several images "
        "use -p/--prompt PROMPT (the same prompt for all) or --prompts FILE.csv (columns name,prompt)"
    )


def _short(path: Path, width: int) -> str:
    text = str(path)
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _dim(report: Any, name: str) -> str:
    value = report.dimension_score(name)
    return "–" if value is None else f"{value:.2f}"


class BatchTable:
    """The batch output on stdout by default: one line per image as it is scored, then a summary."""

    HEADER = f"{'grade':<6}{'score':>6}" + "".join(f"{DIMENSION_SPECS[d].abbrev:>7}" for d in DIMENSIONS) + (
        f"{'cover':>7}{'sec':>7}"
    )

    def __init__(self, paths: Sequence[Path], sink: IO[str]) -> None:
        self.width = max(12, min(60, max(len(str(p)) for p in paths)))
        self.sink = sink
        self.grades: dict[str, int] = {}
        self.composites: list[float] = []
        self.failed = 0

    def _write(self, line: str) -> None:
        from tqdm import tqdm

        tqdm.write(line, file=self.sink)  # keeps a progress bar on stderr intact
        self.sink.flush()

    def header(self) -> None:
        self._write(f"{'image':<{self.width}}  {self.HEADER}")

    def row(self, path: Path, report: Any) -> None:
        grade = str(report.grade) if report.grade else "–"
        self.grades[grade] = self.grades.get(grade, 0) + 1
        self.composites.append(report.composite_score)
        cover = f"{report.coverage.coverage:.0%}" + ("*" if report.partial else "")
        dims = "".join(f"{_dim(report, d):>7}" for d in DIMENSIONS)
        self._write(
            f"{_short(path, self.width):<{self.width}}  {grade:<6}{report.composite_score:>6.2f}"
            f"{dims}{cover:>7}{report.seconds:>7.2f}"
        )

    def error(self, path: Path, message: str) -> None:
        self.failed += 1
        self._write(f"{_short(path, self.width):<{self.width}}  error: {_first_sentence(message)}")

    def summary(self, below: int, bar: str | None) -> None:
        scored = len(self.composites)
        lines = [f"{scored + self.failed} images: {scored} scored, {self.failed} failed"]
        if scored:
            order = sorted(self.grades, key=lambda g: ("ABCDF".index(g) if g in list("ABCDF") else 9, g))
            grades = " · ".join(f"{g} {self.grades[g]}" for g in order)
            mean = sum(self.composites) / scored
            lines.append(f"grades: {grades}   composite mean {mean:.2f}, min {min(self.composites):.2f}, "
                         f"max {max(self.composites):.2f}")  # fmt: skip
        if bar:
            lines.append(f"below {bar}: {below}")
        if scored:
            lines.append("cover: share of the composite weight that was scored (* partial grade); "
                         "--json or --format csv|jsonl for everything")  # fmt: skip
        self._write("\n".join(lines))


def _score_batch(
    scorer: Any, paths: list[Path], prompt: str | None, prompts: dict[str, str], args: argparse.Namespace, out: IO[str]
) -> int:
    if args.format:
        fmt = args.format
    elif args.output:
        fmt = "csv" if str(args.output).endswith(".csv") else "jsonl"
    else:
        fmt = "jsonl" if args.json else "table"  # machine formats only when asked for
    sink: IO[str] = open(args.output, "w", newline="", encoding="utf-8") if args.output else out  # noqa: SIM115
    writer = csv.DictWriter(sink, fieldnames=FLAT_COLUMNS) if fmt == "csv" else None
    table = BatchTable(paths, sink) if fmt == "table" else None
    if writer:
        writer.writeheader()
    if table:
        table.header()
    failures = below = 0
    try:
        from tqdm import tqdm

        from quality.batch import score_files

        items = [(path, prompts.get(path.name, prompt)) for path in paths]
        show = not args.quiet and (sys.stderr.isatty() or args.progress)
        results = score_files(items, scorer.settings, jobs=args.jobs, scorer=scorer)
        for (path, _), outcome in tqdm(zip(items, results, strict=True), total=len(items), unit="img",
                                       file=sys.stderr, disable=not show):  # fmt: skip
            if isinstance(outcome, str):
                failures += 1
                if table:
                    table.error(path, outcome)
                elif writer:
                    writer.writerow(flat_row(str(path), None, outcome))
                else:
                    sink.write(json.dumps({"file": str(path), "error": outcome}) + "\n")
                continue
            report = outcome
            below += not _passes(report, args.min_grade, args.min_score)
            if table:
                table.row(path, report)
            elif writer:
                writer.writerow(flat_row(str(path), report))
            else:
                sink.write(json.dumps({"file": str(path), **report.model_dump(mode="json")}) + "\n")
            sink.flush()
        if table:
            bars = [f"grade {args.min_grade}" if args.min_grade else "", f"score {args.min_score}"
                    if args.min_score is not None else ""]  # fmt: skip
            table.summary(below, " / ".join(b for b in bars if b) or None)
    finally:
        if sink is not out:
            sink.close()
    if not table:
        print(f"scored {len(paths) - failures} of {len(paths)} images ({failures} failed)", file=sys.stderr)
    if failures:
        return EXIT_IMAGE
    return EXIT_BELOW if below else EXIT_OK


def cmd_weights(args: argparse.Namespace, out: IO[str]) -> int:
    from quality.weights import WeightsStore

    settings = _settings(args)
    store = WeightsStore(settings.weights_dir, offline=settings.offline)
    if args.action == "prefetch":
        if settings.offline:
            print("error: prefetch needs network access; unset COMFY_QUALITY_OFFLINE / HF_HUB_OFFLINE", file=sys.stderr)
            return EXIT_CONFIG
        results = store.prefetch(args.names or None)
        for name, outcome in results.items():
            out.write(f"{name:<32} {outcome}\n")
        return EXIT_OK if all(v == "ok" for v in results.values()) else EXIT_CONFIG
    if args.action == "verify":
        return _verify_weights(store, args, out)
    rows = store.statuses(hash_files=not args.no_hash)
    if args.json:
        out.write(
            json.dumps(
                [
                    {
                        "name": s.entry.name,
                        "file": s.spec.filename if s.spec else s.entry.filename,
                        "path": str(s.path) if s.path else None,
                        "present": s.present,
                        "size": s.size,
                        "sha256": s.sha256,
                        "verified": s.verified,
                        "note": s.note,
                    }
                    for s in rows
                ],
                indent=2,
            )
            + "\n"
        )
        return EXIT_OK
    out.write(f"weights folder: {store.dir}{'  (offline)' if store.offline else ''}\n")
    out.write(f"{'name':<30} {'present':<8} {'size':>10}  {'sha256':<16}  status\n")
    for s in rows:
        size = f"{s.size / 1e6:.1f} MB" if s.size else ("~" + f"{s.entry.size / 1e6:.0f} MB" if s.entry.size else "?")
        sha = (s.sha256 or "")[:16]
        status = s.note if s.verified is not False else "CHECKSUM MISMATCH"
        out.write(f"{s.entry.name:<30} {'yes' if s.present else 'no':<8} {size:>10}  {sha:<16}  {status}\n")
    return EXIT_OK


def _verify_weights(store: Any, args: argparse.Namespace, out: IO[str]) -> int:
    """``weights verify [NAMES] [--reset NAME]``: check the present files now (size, then the pinned or recorded
    SHA-256; a file with neither is read as a checkpoint and recorded if it loads). ``--reset NAME`` first forgets
    NAME's recorded checksum (a file replaced on purpose, or a bad first download recorded by an older version);
    pinned checksums cannot be reset."""
    from quality.errors import WeightsError

    reset = list(args.reset or [])
    names = list(dict.fromkeys([*reset, *args.names])) or [
        s.entry.name for s in store.statuses(hash_files=False) if s.present
    ]
    failed = False
    for name in names:
        try:
            if name in reset:
                entry = store.entry(name)
                if all(spec.sha256 for spec in entry.files()):
                    out.write(f"{name:<32} pinned checksum: nothing to reset (delete a file that fails and prefetch)\n")
                    failed = True
                    continue
                removed = store.reset(name)
                what = ", ".join(removed) if removed else "none was recorded"
                out.write(f"{name:<32} forgot the recorded checksum ({what})\n")
            out.write(f"{name:<32} {store.verify(name)}\n")
        except WeightsError as exc:
            out.write(f"{name:<32} FAILED: {exc}\n")
            failed = True
    return EXIT_CONFIG if failed else EXIT_OK


def cmd_metrics(args: argparse.Namespace, out: IO[str]) -> int:
    from quality.specs import METRICS, BandMap

    out.write("| metric | dimension | raw range | direction | 0–10 mapping |\n| --- | --- | --- | --- | --- |\n")
    for spec in METRICS.values():
        m = spec.mapping
        if isinstance(m, BandMap):
            mapping = f"10 in [{m.ideal_low}, {m.ideal_high}], 0 at ≤{m.zero_low} and ≥{m.zero_high} (linear in log10)"
            direction = "band"
        else:
            mapping = f"{m.worst} → 0, {m.best} → 10 (linear, clamped)"
            direction = "lower is better" if m.lower_better else "higher is better"
        lo, hi = spec.plausible
        out.write(f"| `{spec.name}` | {spec.dimension} | {lo} … {hi} | {direction} | {mapping} |\n")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: the same options on the top parser and every subparser must not reset each other
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--weights-dir", help="weights folder (COMFY_QUALITY_WEIGHTS_DIR)")
    common.add_argument("--offline", action="store_true", help="never download weights")
    common.add_argument("--device", help="auto, cpu, cuda, cuda:N, mps")
    common.add_argument("-v", "--verbose", action="count", help="log more (stderr)")

    parser = argparse.ArgumentParser(prog="python -m quality", description=__doc__.split("\n\n")[0], parents=[common])
    sub = parser.add_subparsers(dest="command")

    score = sub.add_parser("score", parents=[common], help="score images (default command)")
    score.add_argument("inputs", nargs="+", help="image files, folders or globs; with one image, a prompt may follow")
    score.add_argument("-p", "--prompt", help="prompt for prompt adherence (all images)")
    score.add_argument("--prompts", help="CSV with columns name,prompt (per-image prompts; AGIQA labels.csv works)")
    score.add_argument("--json", action="store_true", help="print the full report as JSON (several images: JSONL)")
    score.add_argument("--format", choices=["table", "csv", "jsonl"],
                       help="batch output: table (one line per image and a summary; default on stdout), csv or "
                       "jsonl (default with --output: from its suffix)")  # fmt: skip
    score.add_argument("-o", "--output", help="batch output file (.csv or .jsonl); default stdout")
    score.add_argument("--metrics", help="comma-separated subset of metrics to run")
    score.add_argument("--no-calibration", action="store_true", help="use the plain spec-table mapping only")
    score.add_argument("--min-grade", choices=list("ABCDF"), help="exit 1 if any image grades below this")
    score.add_argument("--min-score", type=float, help="exit 1 if any composite is below this")
    score.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a tty")
    score.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    score.add_argument("-j", "--jobs", type=int, default=1, help="scoring processes (each loads the models)")
    score.add_argument("--local", action="store_true", help="score here even when COMFY_QUALITY_JOBS_URL is set "
                       "(a folder is otherwise scored by the workers)")  # fmt: skip

    weights = sub.add_parser("weights", parents=[common], help="list, prefetch or verify model weights")
    weights.add_argument("action", choices=["list", "prefetch", "verify"])
    weights.add_argument("names", nargs="*", help="prefetch / verify only these entries")
    weights.add_argument(
        "--reset",
        action="append",
        metavar="NAME",
        help="verify: forget NAME's recorded checksum first, then check and record it again (repeatable)",
    )
    weights.add_argument("--json", action="store_true")
    weights.add_argument("--no-hash", action="store_true", help="list without hashing files (fast)")

    sub.add_parser("metrics", parents=[common], help="print the metric table")

    ev = sub.add_parser("eval", parents=[common], help="agreement with human opinion scores")
    ev.add_argument("rest", nargs=argparse.REMAINDER, help="DATASET_DIR and/or --ladders DIR, and eval's options")
    return parser


OPTIONS_WITH_VALUE = {"--weights-dir", "--device"}


def _first_positional(argv: Sequence[str]) -> int | None:
    """Index of the first token that is neither an option nor an option's value (the subcommand or an image)."""
    skip = False
    for i, token in enumerate(argv):
        if skip:
            skip = False
        elif token in OPTIONS_WITH_VALUE:
            skip = True
        elif not token.startswith("-"):
            return i
    return None


def _needs_score_command(argv: Sequence[str]) -> bool:
    """``python -m quality IMAGE ...`` means ``python -m quality score IMAGE ...``."""
    i = _first_positional(argv)
    return i is not None and argv[i] not in SUBCOMMANDS


def _split_eval(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """``[common options..., "eval"]`` and eval's arguments when the subcommand is ``eval``, else ``(argv, None)``."""
    i = _first_positional(argv)
    return (argv[: i + 1], argv[i + 1 :]) if i is not None and argv[i] == "eval" else (argv, None)


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    if argv[:1] == ["eval"] and any(a in ("-h", "--help") for a in argv[1:]):  # eval's own options, not ours
        from quality.eval import build_parser as eval_parser

        eval_parser().print_help(out)
        return 0
    if _needs_score_command(argv):
        argv = ["score", *argv]
    parser = build_parser()
    head, tail = _split_eval(argv)
    try:
        args = parser.parse_args(head)
        if tail is not None:  # everything after "eval" is eval's own (quality.eval parses it)
            args.rest = tail
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else EXIT_USAGE
    verbose = getattr(args, "verbose", 0) or 0
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("quality").setLevel(logging.ERROR)
    os.environ.setdefault("TQDM_DISABLE", "0")
    try:
        if args.command == "weights":
            return cmd_weights(args, out)
        if args.command == "metrics":
            return cmd_metrics(args, out)
        if args.command == "eval":
            from quality.eval import main as eval_main

            return eval_main(args.rest, out=out)
        if args.command == "score":
            from comfy_quality.settings import report_unknown_variables  # names every section: a typo is warned of

            report_unknown_variables()
            return cmd_score(args, out)
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        return ERRORS.answer(exc)
