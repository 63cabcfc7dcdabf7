"""Scorer settings, from arguments, environment variables (prefix ``COMFY_QUALITY_``) or a ``.env`` file.

The rules shared by every section (sources, booleans, lists, sizes, unknown names) are
:mod:`comfy_quality.config`'s.

| variable | default | meaning |
| --- | --- | --- |
| ``COMFY_QUALITY_WEIGHTS_DIR`` | ``~/.cache/comfy-quality/weights`` | model weights (download target) |
| ``COMFY_QUALITY_OFFLINE`` | ``false`` (``true`` when ``HF_HUB_OFFLINE`` is 1/true/yes/on) | never download weights |
| ``COMFY_QUALITY_DEVICE`` | ``auto`` | ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:1``, ``mps`` |
| ``COMFY_QUALITY_METRICS`` | all | subset of metrics to run, comma-separated or a JSON list (``brisque,niqe``) |
| ``COMFY_QUALITY_WEIGHTS_JSON`` | 0.30/0.25/0.25/0.20 | composite weights as JSON, e.g. ``{"technical":0.4,...}`` |
| ``COMFY_QUALITY_GRADES_JSON`` | A 8.0, B 6.5, C 5.0, D 3.0 | grade lower bounds as JSON |
| ``COMFY_QUALITY_MIN_GRADED_COVERAGE`` | 0.5 | least scored share of the applicable weight for a letter grade |
| ``COMFY_QUALITY_CALIBRATION`` | ``true`` | use the shipped calibration model for the technical and detail scores |
| ``COMFY_QUALITY_MAX_IMAGE_BYTES`` | 67108864 (64 MiB) | largest encoded image accepted (bytes, or ``64MiB``) |
| ``COMFY_QUALITY_MAX_IMAGE_PIXELS`` | 50000000 | largest pixel count accepted (decompression-bomb guard) |
| ``COMFY_QUALITY_SCORING_MAX_PIXELS`` | 8388608 | pixel budget: larger images are downscaled before scoring |
| ``COMFY_QUALITY_MAX_IMAGE_MEMORY`` | 1610612736 | per-image memory estimate limit (bytes, or ``1.5GiB``) |
| ``COMFY_QUALITY_WORKERS`` | 2 | threads used to run independent metrics of one image concurrently |
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from comfy_quality.config import ENV_PREFIX, ByteCount, Flag, SectionSettings, hf_offline, parse_list
from quality.budget import DEFAULT_MAX_IMAGE_MEMORY, DEFAULT_SCORING_MAX_PIXELS
from quality.composite import CompositeConfig
from quality.image_io import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from quality.specs import METRICS
from quality.weights import default_weights_dir


class QualitySettings(SectionSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    weights_dir: Path = Field(default_factory=default_weights_dir)
    offline: Flag = Field(default_factory=hf_offline)
    device: str = "auto"
    metrics: Annotated[list[str] | None, NoDecode] = Field(None, description="subset of metrics to run; None = all")
    composite: CompositeConfig = Field(default_factory=CompositeConfig)
    weights_json: str | None = Field(None, description="composite weights as JSON (env convenience)")
    grades_json: str | None = Field(None, description="grade thresholds as JSON (env convenience)")
    min_graded_coverage: float | None = Field(
        None, ge=0.0, le=1.0, description="share of the applicable weight needed for a grade (default 0.5)"
    )
    calibration: Flag = True
    max_image_bytes: ByteCount = Field(DEFAULT_MAX_BYTES, gt=0)
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, gt=0)
    scoring_max_pixels: int = Field(
        DEFAULT_SCORING_MAX_PIXELS, ge=0, description="pixel budget for scoring (see quality.budget); 0 = off"
    )
    max_image_memory: ByteCount = Field(
        DEFAULT_MAX_IMAGE_MEMORY, ge=0, description="per-image memory estimate limit in bytes; 0 = off"
    )
    workers: int = Field(2, ge=1, le=32)

    @field_validator("metrics", mode="before")
    @classmethod
    def _split_metrics(cls, value: Any) -> Any:
        value = parse_list(value)
        if value is not None:
            unknown = [v for v in value if v not in METRICS]
            if unknown:
                raise ValueError(f"unknown metric(s) {unknown}; known: {', '.join(METRICS)}")
        return value

    def model_post_init(self, __context: Any) -> None:
        updates: dict[str, Any] = {}
        if self.weights_json:
            updates["weights"] = json.loads(self.weights_json)
        if self.grades_json:
            updates["grades"] = json.loads(self.grades_json)
        if self.min_graded_coverage is not None:
            updates["min_graded_coverage"] = self.min_graded_coverage
        if updates:
            merged = self.composite.model_dump() | updates
            self.composite = CompositeConfig.model_validate(merged)

    def enabled_metrics(self) -> list[str]:
        return list(self.metrics) if self.metrics else list(METRICS)


def resolve_device(device: str) -> str:
    """``auto`` → the best available torch device; anything else is checked and returned. Only ``auto`` and
    ``cuda…`` import torch (to ask it); ``cpu`` and ``mps`` cost nothing."""
    if device in ("cpu", "mps"):
        return device
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from quality.errors import ConfigError

        raise ConfigError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return device
