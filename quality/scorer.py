"""The Scorer: loads its metrics once, scores images into :class:`~quality.report.QualityReport` s.

    scorer = Scorer()                      # settings from the environment; models loaded here, once
    report = scorer.score("cat.png", "a cat on a sofa")
    report.composite_score, report.grade, report.technical.brisque, report.coverage.metrics_unavailable

Flow per image: decode (limits, EXIF, alpha…; memory estimate and pixel budget: :mod:`quality.budget`) →
flat-image check → every backend in a thread pool (independent
metrics run concurrently; torch and numpy release the GIL) → raw values → 0–10 per metric (spec table) →
dimension scores (weighted mean of the dimension's metrics that ran) → composite over the scored dimensions.

A metric whose weights are absent is *unavailable* (with the reason) and its dimension is left out of the
composite, which then says its coverage; nothing is ever filled in with a made-up value.
"""

from __future__ import annotations

import functools
import importlib
import logging
import platform
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from importlib import metadata
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from pydantic import BaseModel

from quality.backends.base import Backend, LoadContext
from quality.composite import Grade, combine
from quality.errors import ImageTooSmallError, MetricError, PartialMetricError, QualityError, WeightsError
from quality.grading import MIN_SIDE, REQUIRED_DIMENSION, niqe_upscaled_size, not_graded_text, too_small_message
from quality.image_io import ImageInput, PreparedImage, load_image
from quality.models import load_backend
from quality.normalize import in_plausible_range, to_score
from quality.report import (
    AestheticScores,
    CalibrationInfo,
    Coverage,
    DetailScores,
    DimensionStatus,
    MetricResult,
    PromptAdherenceScores,
    QualityReport,
    TechnicalScores,
)
from quality.settings import QualitySettings, resolve_device
from quality.specs import DIMENSIONS, METRICS, Dimension
from quality.weights import WeightsStore

if TYPE_CHECKING:
    from quality.calibration import CalibrationModel

log = logging.getLogger(__name__)

#: backend name → "module:Class"; imported lazily so an unused family costs nothing
BACKENDS: dict[str, str] = {
    "nss": "quality.backends.nss:NSSBackend",
    "edges": "quality.backends.edges:EdgeBackend",
    "clip": "quality.backends.clip:ClipBackend",
    "nima": "quality.backends.nima:NIMABackend",
    "topiq": "quality.backends.topiq:TopiqBackend",
}

#: weights entry → the backend option that may name another entry instead (see each backend's docstring); the
#: scorer resolves a metric's weights *before* importing its backend, so a metric without weights costs no import
#: of torch, open_clip, timm or pyiqa
WEIGHT_OPTIONS: dict[str, str] = {
    "clip_vit_l14": "clip.weights",
    "laion_aesthetic_head": "clip.head",
    "nima_inception_resnet_v2_ava": "nima.weights",
    "topiq_nr_koniq_res50": "topiq.weights",
}

#: luma standard deviation (8-bit units) below which an image counts as one flat colour
FLAT_STD = 1.0

_SCORE_BLOCKS: dict[Dimension, type[BaseModel]] = {
    "technical": TechnicalScores,
    "aesthetic": AestheticScores,
    "prompt_adherence": PromptAdherenceScores,
    "detail": DetailScores,
}


def _import_backend(path: str) -> type[Backend]:
    module_name, _, cls_name = path.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), cls_name)
    return cls


@functools.cache
def _package_versions() -> dict[str, str]:
    """Versions recorded in every report, read once per process from the installed distributions' metadata
    (importlib.metadata: nothing is imported to learn a version)."""
    out = {"python": platform.python_version()}
    for dist in ("comfy-quality", "torch", "open_clip_torch", "pyiqa", "timm", "numpy", "opencv-python-headless"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _load_calibration() -> CalibrationModel:
    from quality.calibration import load_default

    return load_default()


class Scorer:
    """Scores images; holds the loaded backends. Thread-safe: ``score`` may be called from several threads."""

    def __init__(
        self,
        settings: QualitySettings | None = None,
        *,
        weights: WeightsStore | None = None,
        backends: Mapping[str, str | type[Backend]] | None = None,
        options: Mapping[str, object] | None = None,
        load: bool = True,
        calibration_model: CalibrationModel | None = None,
    ) -> None:
        self.settings = settings or QualitySettings()
        self.weights = weights or WeightsStore(self.settings.weights_dir, offline=self.settings.offline)
        # "auto" is resolved (which imports torch) only when a backend that uses torch is about to load: a scorer
        # whose deep-model weights are absent never imports torch, and its metrics all run on the CPU
        self._auto_device = self.settings.device == "auto"
        self.device = "cpu" if self._auto_device else resolve_device(self.settings.device)
        self._backend_paths = dict(BACKENDS if backends is None else backends)
        self._options = dict(options or {})
        self._enabled = self.settings.enabled_metrics()
        self._backends: dict[str, Backend] = {}
        self._unavailable: dict[str, str] = {}
        self._versions: dict[str, str] = {}
        self._pool = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="quality")
        self._loaded = False
        self._calibration: CalibrationModel | None = calibration_model
        self._calibration_error: str | None = None
        self.load_seconds = 0.0
        if load:
            self.load()

    # -- loading ------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Load every backend that an enabled metric needs (once per process; see :mod:`quality.models`)."""
        if self._loaded:
            return
        started = time.perf_counter()
        # the calibration model's file (tens of MB, deflated) is read and inflated in a worker thread while the
        # backends import and load here: zlib and hashlib release the GIL, so the two overlap
        calibration: Future[CalibrationModel] | None = None
        if self.settings.calibration and self._calibration is None:
            calibration = self._pool.submit(_load_calibration)
        ctx = LoadContext(weights=self.weights, device=self.device, options=self._options)
        wanted: dict[str, list[str]] = {}
        for name in self._enabled:
            wanted.setdefault(METRICS[name].backend, []).append(name)
        for backend_name, metric_names in wanted.items():
            target = self._backend_paths.get(backend_name)
            if target is None:
                for m in metric_names:
                    self._unavailable[m] = f"no backend {backend_name!r} is configured"
                continue
            if isinstance(target, str):
                missing = {m: reason for m in metric_names if (reason := self._missing_weights(m)) is not None}
                if len(missing) == len(metric_names):  # nothing this backend computes could run: don't import it
                    self._unavailable.update(missing)
                    log.warning("metrics %s unavailable: %s", ", ".join(metric_names), next(iter(missing.values())))
                    continue
            try:
                cls = _import_backend(target) if isinstance(target, str) else target
                if self._auto_device and getattr(cls, "uses_torch", True):
                    self.device = resolve_device("auto")
                    self._auto_device = False
                    ctx = replace(ctx, device=self.device)
                backend = load_backend(cls, ctx)
            except WeightsError as exc:
                for m in metric_names:
                    self._unavailable[m] = str(exc)
                log.warning("metrics %s unavailable: %s", ", ".join(metric_names), exc)
                continue
            except ImportError as exc:
                for m in metric_names:
                    self._unavailable[m] = f"backend {backend_name!r} cannot be imported: {exc}"
                log.warning("backend %s cannot be imported: %s", backend_name, exc)
                continue
            self._backends[backend_name] = backend
            if isinstance(target, str):
                self._unavailable.update(missing)
            for m in metric_names:
                if m in backend.unavailable:
                    self._unavailable[m] = backend.unavailable[m]
            self._versions.update({k: v for k, v in backend.versions().items() if k in metric_names})
        for name in METRICS:
            if name not in self._enabled:
                self._unavailable[name] = "disabled by settings (COMFY_QUALITY_METRICS)"
        if calibration is not None:
            try:
                self._calibration = calibration.result()
            except QualityError as exc:
                self._calibration_error = str(exc)
                log.warning("calibration unavailable, using the spec-table mapping: %s", exc)
        self._loaded = True
        self.load_seconds = time.perf_counter() - started

    def _missing_weights(self, metric: str) -> str | None:
        """Why ``metric`` cannot run for want of a weights file (None: every file it needs is here or was fetched).
        The weights store downloads a missing file unless offline, exactly as the backend's own lookup would."""
        for entry in METRICS[metric].weights_files:
            name = str(self._options.get(WEIGHT_OPTIONS.get(entry, ""), entry))
            try:
                self.weights.path(name)
            except WeightsError as exc:
                return str(exc)
        return None

    # -- scoring ------------------------------------------------------------------------------------------
    def prepare(self, image: ImageInput, *, source_name: str | None = None) -> PreparedImage:
        return load_image(
            image,
            max_bytes=self.settings.max_image_bytes,
            max_pixels=self.settings.max_image_pixels,
            source_name=source_name,
            max_memory=self.settings.max_image_memory or None,
            work_pixels=self.settings.scoring_max_pixels or None,
        )

    def score(self, image: ImageInput, prompt: str | None = None, *, source_name: str | None = None) -> QualityReport:
        """Score one image. Raises :class:`quality.errors.ImageError` for unusable input."""
        started = time.perf_counter()
        prepared = self.prepare(image, source_name=source_name)
        return self.score_prepared(prepared, prompt, started=started)

    def score_prepared(
        self, prepared: PreparedImage, prompt: str | None = None, *, started: float | None = None
    ) -> QualityReport:
        """Score a decoded image. Raises :class:`ImageTooSmallError` under :data:`quality.grading.MIN_SIDE`."""
        if min(prepared.height, prepared.width) < MIN_SIDE:
            raise ImageTooSmallError(too_small_message(prepared.width, prepared.height))
        self.load()
        started = time.perf_counter() if started is None else started
        prompt = prompt.strip() if prompt and prompt.strip() else None
        results: dict[str, MetricResult] = {}
        timings: dict[str, float] = {}
        notes: list[str] = []
        luma_std = prepared.luma_std()
        flat = luma_std < FLAT_STD
        info = prepared.info
        if info.scored_width is not None:
            notes.append(
                f"scored at {info.scored_width}x{info.scored_height}: the {info.width}x{info.height} image is over "
                f"the scoring pixel budget of {self.settings.scoring_max_pixels:,} pixels "
                "(COMFY_QUALITY_SCORING_MAX_PIXELS) and was downscaled (antialiased bicubic) before every metric"
            )

        for name, spec in METRICS.items():
            if name in self._unavailable:
                results[name] = MetricResult(
                    name=name, dimension=spec.dimension, status="unavailable", reason=self._unavailable[name]
                )
            elif spec.needs_prompt and prompt is None:
                results[name] = MetricResult(
                    name=name, dimension=spec.dimension, status="not_applicable", reason="no prompt given"
                )

        if flat:
            notes.append(
                f"the image is one flat colour (luma standard deviation {luma_std:.2f} of 255): a failed "
                "generation; graded F without running the metrics"
            )
            for name, spec in METRICS.items():
                results.setdefault(
                    name,
                    MetricResult(name=name, dimension=spec.dimension, status="error", reason="flat image"),
                )
            calibrated, calibration = self._calibrate(prepared, results, {}, timings, flat=True)
        else:
            early = self._start_calibration(prepared)
            extras = self._run_backends(prepared, prompt, results, timings)
            calibrated, calibration = self._calibrate(prepared, results, extras, timings, flat=False, early=early)

        return self._assemble(prepared, prompt, results, timings, notes, flat, started, calibrated, calibration)

    def _run_backends(
        self,
        prepared: PreparedImage,
        prompt: str | None,
        results: dict[str, MetricResult],
        timings: dict[str, float],
    ) -> dict[str, dict[str, Any]]:
        """Run the backends; fills ``results``/``timings`` and returns each backend's reusable extras."""
        extras: dict[str, dict[str, Any]] = {}
        partial: dict[str, dict[str, str]] = {}  # backend → its failed metrics' own reasons

        def run(backend: Backend) -> tuple[dict[str, float] | Exception, float]:
            t0 = time.perf_counter()
            try:
                values, extras[backend.name] = backend.compute_detailed(prepared, prompt)
                return values, time.perf_counter() - t0
            except PartialMetricError as exc:
                partial[backend.name] = dict(exc.reasons)
                return dict(exc.values), time.perf_counter() - t0
            except Exception as exc:  # a metric failure must not sink the other metrics
                return exc, time.perf_counter() - t0

        todo = [b for b in self._backends.values() if any(m not in results and m in self._enabled for m in b.metrics)]
        futures = [(b, self._pool.submit(run, b)) for b in todo]
        for backend, future in futures:
            outcome, seconds = future.result()
            timings[backend.name] = round(seconds, 4)
            for name in backend.metrics:
                if name in results:
                    continue
                spec = METRICS[name]
                if isinstance(outcome, Exception):
                    reason = (
                        str(outcome) if isinstance(outcome, MetricError) else f"{type(outcome).__name__}: {outcome}"
                    )
                    if not isinstance(outcome, MetricError):
                        log.exception("backend %s failed", backend.name, exc_info=outcome)
                    results[name] = MetricResult(name=name, dimension=spec.dimension, status="error", reason=reason)
                    continue
                raw = outcome.get(name)
                if raw is None:
                    reason = partial.get(backend.name, {}).get(name, f"{backend.name} gave no value")
                    results[name] = MetricResult(name=name, dimension=spec.dimension, status="error", reason=reason)
                    continue
                try:
                    score = to_score(spec, raw)
                except MetricError as exc:
                    results[name] = MetricResult(name=name, dimension=spec.dimension, status="error", reason=str(exc))
                    continue
                results[name] = MetricResult(
                    name=name,
                    dimension=spec.dimension,
                    status="ok",
                    raw=round(float(raw), 6),
                    score=round(score, 4),
                    out_of_range=not in_plausible_range(spec, raw),
                    seconds=round(seconds, 4),
                    version=self._versions.get(name),
                )
        return extras

    def _calibration_score(
        self, working: np.ndarray, nss: Mapping[str, Any] | None, params: Any
    ) -> tuple[dict[str, float], dict[str, float], float] | Exception:
        assert self._calibration is not None
        t0 = time.perf_counter()
        try:
            scores, mos = self._calibration.score(working, dict(nss) if nss is not None else None, params)
        except (QualityError, ValueError) as exc:
            return exc
        return scores, mos, time.perf_counter() - t0

    def _start_calibration(self, prepared: PreparedImage) -> Future[Any] | None:
        """For an image larger than the model's working size, the calibration works on a reduced copy and so
        cannot reuse the NSS backend's features: start it now, concurrently with the backends."""
        model = self._calibration
        if not self.settings.calibration or model is None:
            return None
        if max(prepared.height, prepared.width) <= model.working_side:
            return None
        if any(m in self._unavailable for m in model.requires):
            return None
        return self._pool.submit(self._calibration_score, prepared.fit(model.working_side), None, None)

    def _calibrate(
        self,
        prepared: PreparedImage,
        results: Mapping[str, MetricResult],
        extras: Mapping[str, Mapping[str, Any]],
        timings: dict[str, float],
        *,
        flat: bool,
        early: Future[Any] | None = None,
    ) -> tuple[dict[Dimension, float], CalibrationInfo | None]:
        """Calibrated dimension scores (those the model could produce) and what the report says about it.

        The model works on the image reduced to its working size; when that is the image itself, the NSS
        backend's features of the same pixels are reused rather than computed again (otherwise ``early`` is
        the computation started by :meth:`_start_calibration`).
        """
        if not self.settings.calibration:
            return {}, None
        model = self._calibration
        if model is None:
            reason = self._calibration_error or "no calibration model is loaded"
            return {}, CalibrationInfo(enabled=True, reason=f"{reason}; spec-table mapping used")
        info = CalibrationInfo(
            enabled=True, model=model.identity(), model_sha256=model.sha256, features=len(model.feature_names),
            features_sha256=model.features_sha256(), features_version=model.meta.get("features_version"),
            seed=model.meta.get("seed"), dataset_labels_sha256=model.meta.get("dataset", {}).get("labels_sha256"),
            dataset_images_sha256=model.meta.get("dataset", {}).get("images_sha256"),
            cross_validation=model.meta.get("cv", {}), dimensions=dict.fromkeys(model.dimensions, "spec_table"),
        )  # fmt: skip
        missing = [m for m in model.requires if m not in results or results[m].status != "ok"]
        wanted = [
            cast(Dimension, d) for d, covers in model.dimensions.items()
            if all(c in results and results[c].status == "ok" for c in covers)
        ]  # fmt: skip
        if flat:
            info.reason = "flat image: graded F without metrics"
        elif missing:
            info.reason = f"the calibration needs {', '.join(missing)}, which did not run: spec-table mapping used"
        elif not wanted:
            info.reason = "the metrics the calibrated dimensions replace did not run: spec-table mapping used"
        if info.reason is not None:
            if early is not None:
                early.cancel()
            return {}, info
        if early is not None:
            outcome = early.result()
        else:
            working = prepared.fit(model.working_side)
            nss_extra = extras.get("nss", {})
            reuse = working is prepared.rgb and nss_extra.get("shape") == tuple(working.shape)
            outcome = self._calibration_score(working, nss_extra.get("nss") if reuse else None, nss_extra.get("params"))
        if isinstance(outcome, Exception):
            info.reason = f"calibration features undefined for this image ({outcome}): spec-table mapping used"
            return {}, info
        scores, mos, seconds = outcome
        timings["calibration"] = round(seconds, 4)
        calibrated = {d: scores[d] for d in wanted if d in scores}
        for d in calibrated:
            info.dimensions[d] = "calibrated"
        skipped = [d for d in model.dimensions if d not in calibrated]
        if skipped:
            info.reason = f"{', '.join(skipped)}: the metrics it replaces did not run; spec-table mapping used"
        info.used = bool(calibrated)
        info.predicted_mos = {d: round(mos[d], 4) for d in calibrated}
        info.seconds = timings["calibration"]
        return calibrated, info

    def _dimension_scores(
        self, results: Mapping[str, MetricResult], calibrated: Mapping[Dimension, float] | None = None
    ) -> dict[Dimension, float | None]:
        """Weighted mean of each dimension's metric scores. A calibrated dimension score stands in for the
        metrics the model replaces (with their summed weight); other metrics of that dimension (e.g. TOPIQ in
        detail, when it runs) keep their spec-table scores and weights."""
        calibrated = calibrated or {}
        covers = self._calibration.dimensions if self._calibration is not None else {}
        scores: dict[Dimension, float | None] = {}
        for dim in DIMENSIONS:
            replaced = set(covers.get(dim, [])) if dim in calibrated else set()
            ok = [
                (METRICS[r.name].weight, r.score)
                for r in results.values()
                if r.dimension == dim and r.status == "ok" and r.name not in replaced
            ]
            if replaced:
                ok.append((sum(METRICS[m].weight for m in replaced), calibrated[dim]))
            total = sum(w for w, _ in ok)
            scores[dim] = round(sum(w * s for w, s in ok if s is not None) / total, 4) if total > 0 else None
        return scores

    def _assemble(
        self,
        prepared: PreparedImage,
        prompt: str | None,
        results: dict[str, MetricResult],
        timings: dict[str, float],
        notes: list[str],
        flat: bool,
        started: float,
        calibrated: Mapping[Dimension, float] | None = None,
        calibration: CalibrationInfo | None = None,
    ) -> QualityReport:
        cfg = self.settings.composite
        not_applicable: frozenset[Dimension] = frozenset(("prompt_adherence",) if prompt is None else ())
        dims = self._dimension_scores(results, calibrated)
        reasons: list[str] = []
        if flat:  # a definite verdict without metrics: a failed generation is graded F
            composite = combine(dict.fromkeys(DIMENSIONS), cfg, not_applicable=not_applicable)
            composite_score, grade, coverage_value, partial = 0.0, cast(Grade | None, "F"), 0.0, False
        else:
            composite = combine(dims, cfg, not_applicable=not_applicable)
            composite_score, grade = composite.composite_score, composite.grade
            coverage_value, partial = composite.coverage, composite.partial
            reasons = _explain(composite.grade_reasons, results)
        upscaled = niqe_upscaled_size(prepared.width, prepared.height)
        if upscaled is not None and not flat and "niqe" in results and results["niqe"].status == "ok":
            notes.append(
                f"NIQE was computed on a bicubic copy upscaled to {upscaled[0]}×{upscaled[1]} px (it compares "
                f"96-px blocks; the image is {prepared.width}×{prepared.height})"
            )
        if grade is None:
            notes.append(
                f"{not_graded_text(reasons)}; the composite {composite_score:.2f} covers "
                f"{coverage_value:.0%} of the applicable weight and is not a grade"
            )
        dim_status: dict[Dimension, DimensionStatus] = {}
        for dim in DIMENSIONS:
            if dim in not_applicable:
                dim_status[dim] = "not_applicable"
            else:
                dim_status[dim] = "scored" if dims[dim] is not None else "unavailable"
        if partial:
            missing = [d for d, s in dim_status.items() if s == "unavailable"]
            what = "partial grade" if grade is not None else "partial scores"
            notes.append(f"{what}: {', '.join(missing)} could not be scored (see metrics_unavailable)")
        blocks: dict[str, Any] = {}
        for block_dim, block_cls in _SCORE_BLOCKS.items():
            fields: dict[str, Any] = {"score": dims[block_dim]}
            for name, r in results.items():
                if r.dimension == block_dim:
                    fields[name] = r.raw
            blocks[block_dim] = block_cls(**fields)
        coverage = Coverage(
            coverage=coverage_value,
            partial=partial,
            dimensions=dim_status,
            effective_weights=composite.effective_weights if not flat else {},
            metrics_ran=[n for n, r in results.items() if r.status == "ok"],
            metrics_unavailable={n: r.reason or "" for n, r in results.items() if r.status in ("unavailable", "error")},
        )
        versions = _package_versions() | {f"metric:{k}": v for k, v in self._versions.items()}
        return QualityReport(
            composite_score=composite_score,
            grade=grade,
            grade_status="graded" if grade is not None else "insufficient",
            grade_reasons=reasons,
            **blocks,
            partial=partial,
            coverage=coverage,
            metrics=results,
            flat=flat,
            notes=notes,
            prompt=prompt,
            image=prepared.info,
            device=self.device,
            versions=versions,
            calibration=calibration.model if calibration is not None and calibration.used else None,
            calibration_info=calibration,
            seconds=round(time.perf_counter() - started, 4),
            timings=timings,
        )

    # -- lifecycle ----------------------------------------------------------------------------------------
    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _explain(reasons: list[str], results: Mapping[str, MetricResult]) -> list[str]:
    """The composite's reasons for withholding a grade, with why the technical metrics gave no value."""
    out: list[str] = []
    for reason in reasons:
        if reason == f"{REQUIRED_DIMENSION} not scored":
            by_reason: dict[str, list[str]] = {}  # metrics computed together fail together: one reason each
            for r in results.values():
                if r.dimension == REQUIRED_DIMENSION and r.status != "ok":
                    by_reason.setdefault(_short(r.reason or r.status), []).append(r.name)
            if by_reason:
                reason += " (" + "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items()) + ")"
        out.append(reason)
    return out


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
