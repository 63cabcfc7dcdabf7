"""The Scorer: loads its metrics once, scores images into :class:`~quality.report.QualityReport` s.

    scorer = Scorer()                      # settings from the environment; models loaded here, once
    report = scorer.score("cat.png", "a cat on a sofa")
    report.composite_score, report.grade, report.technical.brisque, report.coverage.metrics_unavailable

Flow per image: decode (limits, EXIF, alpha…; memory estimate and pixel budget: :mod:`quality.budget`) →
flat-image check → every backend in a thread pool (independent
metrics run concurrently; torch and numpy release the GIL) → raw values → 0–10 per metric (spec table) →
dimension scores (weighted mean of the dimension's metrics that ran) → composite over the scored dimensions.
The scorer runs the steps that need its loaded models (backends, calibration) and gathers what they find in one
:class:`~quality.assembly.ImageScoring`; :func:`quality.assembly.assemble` turns that into the report. Which
backends exist and which metrics each computes comes from the metric registry (:mod:`quality.specs`,
:mod:`quality.registry`).

A metric whose weights are absent is *unavailable* (with the reason) and its dimension is left out of the
composite, which then says its coverage; nothing is ever filled in with a made-up value.
"""

from __future__ import annotations

import functools
import logging
import platform
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from importlib import metadata
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from quality.assembly import Calibrated, ImageScoring, assemble
from quality.backends.base import Backend, LoadContext
from quality.errors import ImageTooSmallError, MetricError, PartialMetricError, QualityError, WeightsError
from quality.grading import MIN_SIDE, too_small_message
from quality.image_io import ImageInput, PreparedImage, load_image
from quality.models import load_backend
from quality.normalize import in_plausible_range, to_score
from quality.registry import BackendTarget, backend_class, default_backends
from quality.report import CalibrationInfo, MetricResult, QualityReport
from quality.settings import QualitySettings, resolve_device
from quality.specs import METRICS, WEIGHT_OPTIONS, Dimension, metrics_by_backend
from quality.weights import WeightsStore

if TYPE_CHECKING:
    from quality.calibration import CalibrationModel

log = logging.getLogger(__name__)

#: backend name → "module:Class", from the metric table (quality.specs); imported lazily (quality.registry) so
#: an unused family costs nothing
BACKENDS: dict[str, BackendTarget] = default_backends()

#: luma standard deviation (8-bit units) below which an image counts as one flat colour
FLAT_STD = 1.0


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
        backends: Mapping[str, BackendTarget] | None = None,
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
        #: backend name → the enabled metrics it computes (from the metric table)
        self._backend_metrics: dict[str, list[str]] = {}
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
        for backend_name, metric_names in metrics_by_backend(self._enabled).items():
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
                cls = backend_class(target)
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
            self._backend_metrics[backend_name] = metric_names
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
        state = ImageScoring(
            prepared=prepared,
            prompt=prompt.strip() if prompt and prompt.strip() else None,
            started=time.perf_counter() if started is None else started,
        )
        luma_std = prepared.luma_std()
        state.flat = luma_std < FLAT_STD
        info = prepared.info
        if info.scored_width is not None:
            state.notes.append(
                f"scored at {info.scored_width}x{info.scored_height}: the {info.width}x{info.height} image is over "
                f"the scoring pixel budget of {self.settings.scoring_max_pixels:,} pixels "
                "(COMFY_QUALITY_SCORING_MAX_PIXELS) and was downscaled (antialiased bicubic) before every metric"
            )
        self._skip_metrics(state)
        if state.flat:
            state.notes.append(
                f"the image is one flat colour (luma standard deviation {luma_std:.2f} of 255): a failed "
                "generation; graded F without running the metrics"
            )
            for name, spec in METRICS.items():
                state.results.setdefault(
                    name, MetricResult(name=name, dimension=spec.dimension, status="error", reason="flat image")
                )
            calibrated = self._calibrate(state)
        else:
            early = self._start_calibration(prepared)
            self._run_backends(state)
            calibrated = self._calibrate(state, early)
        versions = _package_versions() | {f"metric:{k}": v for k, v in self._versions.items()}
        return assemble(state, calibrated, composite=self.settings.composite, device=self.device, versions=versions)

    def _skip_metrics(self, state: ImageScoring) -> None:
        """The results of the metrics that will not run: unavailable, or needing a prompt there is not."""
        for name, spec in METRICS.items():
            if name in self._unavailable:
                state.results[name] = MetricResult(
                    name=name, dimension=spec.dimension, status="unavailable", reason=self._unavailable[name]
                )
            elif spec.needs_prompt and state.prompt is None:
                state.results[name] = MetricResult(
                    name=name, dimension=spec.dimension, status="not_applicable", reason="no prompt given"
                )

    def _run_backends(self, state: ImageScoring) -> None:
        """Run the backends concurrently; fills ``state.results``, ``.timings`` and ``.extras``."""
        partial: dict[str, dict[str, str]] = {}  # backend → its failed metrics' own reasons

        def run(name: str, backend: Backend) -> tuple[dict[str, float] | Exception, float]:
            t0 = time.perf_counter()
            try:
                values, state.extras[name] = backend.compute_detailed(state.prepared, state.prompt)
                return values, time.perf_counter() - t0
            except PartialMetricError as exc:
                partial[name] = dict(exc.reasons)
                return dict(exc.values), time.perf_counter() - t0
            except Exception as exc:  # a metric failure must not sink the other metrics
                return exc, time.perf_counter() - t0

        todo = {
            name: backend
            for name, backend in self._backends.items()
            if any(m not in state.results for m in self._backend_metrics[name])
        }
        futures = [(name, self._pool.submit(run, name, backend)) for name, backend in todo.items()]
        for backend_name, future in futures:
            outcome, seconds = future.result()
            state.timings[backend_name] = round(seconds, 4)
            for name in self._backend_metrics[backend_name]:
                if name not in state.results:
                    reason = partial.get(backend_name, {}).get(name, f"{backend_name} gave no value")
                    state.results[name] = self._metric_result(name, backend_name, outcome, seconds, reason)

    def _metric_result(
        self, name: str, backend_name: str, outcome: Mapping[str, float] | Exception, seconds: float, missing: str
    ) -> MetricResult:
        """One metric's result from its backend's outcome (``missing``: the reason when it gave no value)."""
        spec = METRICS[name]
        if isinstance(outcome, Exception):
            if not isinstance(outcome, MetricError):
                log.exception("backend %s failed", backend_name, exc_info=outcome)
            reason = str(outcome) if isinstance(outcome, MetricError) else f"{type(outcome).__name__}: {outcome}"
            return MetricResult(name=name, dimension=spec.dimension, status="error", reason=reason)
        raw = outcome.get(name)
        if raw is None:
            return MetricResult(name=name, dimension=spec.dimension, status="error", reason=missing)
        try:
            score = to_score(spec, raw)
        except MetricError as exc:
            return MetricResult(name=name, dimension=spec.dimension, status="error", reason=str(exc))
        return MetricResult(
            name=name,
            dimension=spec.dimension,
            status="ok",
            raw=round(float(raw), 6),
            score=round(score, 4),
            out_of_range=not in_plausible_range(spec, raw),
            seconds=round(seconds, 4),
            version=self._versions.get(name),
        )

    def _calibration_score(
        self, working: np.ndarray, nss: Mapping[str, Any] | None, params: Any, source: np.ndarray | None = None
    ) -> tuple[dict[str, float], dict[str, float], float] | Exception:
        """``source``: the image ``working`` was reduced from (the JPEG block measures are taken on it)."""
        assert self._calibration is not None
        t0 = time.perf_counter()
        try:
            scores, mos = self._calibration.score(working, dict(nss) if nss is not None else None, params, source)
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
        return self._pool.submit(self._calibration_score, prepared.fit(model.working_side), None, None, prepared.rgb)

    def _calibrate(self, state: ImageScoring, early: Future[Any] | None = None) -> Calibrated:
        """Calibrated dimension scores (those the model could produce) and what the report says about it.

        The model works on the image reduced to its working size; when that is the image itself, the NSS
        backend's features of the same pixels are reused rather than computed again (otherwise ``early`` is
        the computation started by :meth:`_start_calibration`).
        """
        if not self.settings.calibration:
            return Calibrated()
        model = self._calibration
        if model is None:
            reason = self._calibration_error or "no calibration model is loaded"
            return Calibrated(info=CalibrationInfo(enabled=True, reason=f"{reason}; spec-table mapping used"))
        info = _calibration_identity(model)
        wanted, info.reason = _calibration_plan(state, model)
        if info.reason is not None:
            if early is not None:
                early.cancel()
            return Calibrated(covers=model.dimensions, info=info)
        outcome = early.result() if early is not None else self._calibration_reusing_features(state, model)
        if isinstance(outcome, Exception):
            info.reason = f"calibration features undefined for this image ({outcome}): spec-table mapping used"
            return Calibrated(covers=model.dimensions, info=info)
        scores, mos, seconds = outcome
        state.timings["calibration"] = round(seconds, 4)
        calibrated = {d: scores[d] for d in wanted if d in scores}
        for d in calibrated:
            info.dimensions[d] = "calibrated"
        skipped = [d for d in model.dimensions if d not in calibrated]
        if skipped:
            info.reason = f"{', '.join(skipped)}: the metrics it replaces did not run; spec-table mapping used"
        info.used = bool(calibrated)
        info.predicted_mos = {d: round(mos[d], 4) for d in calibrated}
        info.seconds = state.timings["calibration"]
        return Calibrated(scores=calibrated, covers=model.dimensions, info=info)

    def _calibration_reusing_features(
        self, state: ImageScoring, model: CalibrationModel
    ) -> tuple[dict[str, float], dict[str, float], float] | Exception:
        """The calibration on the image at the model's working size, with the NSS backend's features when they
        are of those very pixels."""
        working = state.prepared.fit(model.working_side)
        nss_extra = state.extras.get("nss", {})
        reuse = working is state.prepared.rgb and nss_extra.get("shape") == tuple(working.shape)
        source = None if working is state.prepared.rgb else state.prepared.rgb
        return self._calibration_score(working, nss_extra.get("nss") if reuse else None, nss_extra.get("params"),
                                       source)  # fmt: skip

    # -- lifecycle ----------------------------------------------------------------------------------------
    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



def _calibration_identity(model: CalibrationModel) -> CalibrationInfo:
    """What the report records about the calibration model, before it is applied to an image."""
    return CalibrationInfo(
        enabled=True, model=model.identity(), model_sha256=model.sha256, features=len(model.feature_names),
        features_sha256=model.features_sha256(), features_version=model.meta.get("features_version"),
        seed=model.meta.get("seed"), dataset_labels_sha256=model.meta.get("dataset", {}).get("labels_sha256"),
        dataset_images_sha256=model.meta.get("dataset", {}).get("images_sha256"),
        cross_validation=model.meta.get("cv", {}), dimensions=dict.fromkeys(model.dimensions, "spec_table"),
    )  # fmt: skip


def _calibration_plan(state: ImageScoring, model: CalibrationModel) -> tuple[list[Dimension], str | None]:
    """The dimensions the model may calibrate for this image (all the metrics each replaces ran), or why it
    is not applied at all."""
    missing = [m for m in model.requires if not state.ran(m)]
    wanted = [cast(Dimension, d) for d, covers in model.dimensions.items() if all(state.ran(c) for c in covers)]
    if state.flat:
        return wanted, "flat image: graded F without metrics"
    if missing:
        return wanted, f"the calibration needs {', '.join(missing)}, which did not run: spec-table mapping used"
    if not wanted:
        return wanted, "the metrics the calibrated dimensions replace did not run: spec-table mapping used"
    return wanted, None
