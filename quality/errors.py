"""The quality package's exception tree.

Every error carries a message that says what went wrong *and what to do about it*; callers (CLI, MCP tools)
show ``str(err)`` to people and agents as is.

    QualityError (comfy_quality.errors.ComfyQualityError)
    ├── ImageError                 the input image cannot be used
    │   ├── ImageDecodeError       corrupt, truncated or not an image
    │   ├── UnsupportedImageError  a format or mode we do not read
    │   ├── ImageTooLargeError     over the byte or pixel limit (decompression bombs included)
    │   └── ImageTooSmallError     under the smallest size the technical metrics score (32 px short side)
    ├── WeightsError               model weights cannot be had
    │   ├── WeightsUnavailableError   absent and not downloadable (offline, no network)
    │   └── WeightsChecksumError      present but not the expected bytes
    ├── MetricError                a metric failed while computing (bug or unexpected input)
    │   └── PartialMetricError     a backend of several metrics produced some; each failed one has its reason
    └── ConfigError                invalid settings (weights, thresholds, unknown metric names); a SettingsError
"""

from __future__ import annotations

from comfy_quality.errors import ComfyQualityError, SettingsError


class QualityError(ComfyQualityError):
    """Base class of every error raised by :mod:`quality`."""


class ImageError(QualityError):
    """The input image cannot be used."""


class ImageDecodeError(ImageError):
    """The bytes are not a readable image (corrupt, truncated, empty, or another file type)."""


class UnsupportedImageError(ImageError):
    """The image is readable but in a form we do not score."""


class ImageTooLargeError(ImageError):
    """The image exceeds the configured file-size or pixel-count limit."""


class ImageTooSmallError(ImageError):
    """The image is smaller than the technical metrics can score (see :mod:`quality.grading`)."""


class WeightsError(QualityError):
    """Model weights for a metric cannot be used."""

    def __init__(self, message: str, *, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


class WeightsUnavailableError(WeightsError):
    """The weights file is absent and cannot be downloaded."""


class WeightsChecksumError(WeightsError):
    """The weights file exists but its SHA-256 does not match the expected value."""


class MetricError(QualityError):
    """A metric failed while computing a value."""

    def __init__(self, message: str, *, metric: str | None = None) -> None:
        super().__init__(message)
        self.metric = metric


class PartialMetricError(MetricError):
    """A backend computing several metrics at once could produce only some of them.

    ``values`` holds the raw values it did produce, ``reasons`` each missing metric's own reason (so BRISQUE's
    reason talks about BRISQUE, NIQE's about NIQE).
    """

    def __init__(self, values: dict[str, float], reasons: dict[str, str]) -> None:
        super().__init__("; ".join(f"{m}: {r}" for m, r in reasons.items()))
        self.values = values
        self.reasons = reasons


class ConfigError(QualityError, SettingsError):
    """Settings are inconsistent or name unknown things."""
