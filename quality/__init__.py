"""comfy-quality's image scorer: four dimensions (technical, aesthetic, prompt adherence, detail), a composite
and a grade.

    from quality import Scorer
    report = Scorer().score("image.png", "a prompt")

Importing this package is cheap: the scorer loads on first use of ``Scorer``, and torch only with deep-model weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from comfy_quality.lazy import lazy_exports
from quality.composite import CompositeConfig, Grade
from quality.errors import (
    ConfigError,
    ImageDecodeError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    MetricError,
    QualityError,
    UnsupportedImageError,
    WeightsChecksumError,
    WeightsError,
    WeightsUnavailableError,
)
from quality.grading import MIN_SIDE, GradeStatus
from quality.report import QualityBlock, QualityReport

if TYPE_CHECKING:
    from quality.scorer import Scorer
    from quality.settings import QualitySettings

__all__ = [
    "MIN_SIDE",
    "CompositeConfig",
    "ConfigError",
    "Grade",
    "GradeStatus",
    "ImageDecodeError",
    "ImageError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "MetricError",
    "QualityBlock",
    "QualityError",
    "QualityReport",
    "QualitySettings",
    "Scorer",
    "UnsupportedImageError",
    "WeightsChecksumError",
    "WeightsError",
    "WeightsUnavailableError",
]

# the scorer (numpy/cv2 maths, the backends) and the settings load on first use
__getattr__, __dir__ = lazy_exports(__name__, {"Scorer": "quality.scorer", "QualitySettings": "quality.settings"})
