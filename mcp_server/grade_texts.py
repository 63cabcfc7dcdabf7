"""The tool descriptions' grade texts, rendered from the scorer's composite configuration
(``COMFY_QUALITY_GRADES_JSON``, ``COMFY_QUALITY_MIN_GRADED_COVERAGE``) when the server is built: an agent reads
the thresholds this server grades with, not the defaults."""

from __future__ import annotations

import logging

from comfy_quality.settings import Settings
from mcp_server.tools import GRADES_TEXT, THRESHOLD_TEXT
from quality.composite import CompositeConfig
from quality.grade_text import coverage_share, grade_scale
from quality.grading import MIN_SIDE
from refinement.api import GenerationRequest

log = logging.getLogger(__name__)


def grades_text(grading: CompositeConfig) -> str:
    return (
        f"Grades: {grade_scale(grading)} (e.g. blank or broken). "
        "grade null (grade_status 'insufficient') means NOT GRADED: the technical metrics did not run or less than "
        f"{coverage_share(grading)} of the weight was scored; grade_reasons says why, composite_score is then null "
        "and the number in ungraded_composite is not a grade. "
        f"Images under {MIN_SIDE} px on the short side are refused. "
    )


def threshold_text(grading: CompositeConfig) -> str:
    default = float(GenerationRequest.model_fields["quality_threshold"].default)
    top = grading.grades["A"]
    return (
        f"The default threshold {default:g} asks for grade {grading.grade(default)} or better; above {top:g} "
        "(grade A) rarely succeeds within 3 attempts.\n"
    )


def describe(text: str, grading: CompositeConfig | None = None) -> str:
    """A tool description with its grade texts rendered from ``grading`` (default: the default configuration)."""
    grading = grading or CompositeConfig()
    return text.replace(GRADES_TEXT, grades_text(grading)).replace(THRESHOLD_TEXT, threshold_text(grading))


def configured_grading(settings: Settings | None = None) -> CompositeConfig:
    """The scorer's composite configuration (the tree's ``quality`` section; default: a tree read from the
    environment). Settings that do not parse give the defaults here: the scorer refuses them when the server
    starts, with the message that names the problem."""
    tree = settings if settings is not None else Settings()
    try:
        return tree.quality.composite
    except ValueError as exc:
        log.debug("tool descriptions use the default grading (scorer settings invalid: %s)", exc)
        return CompositeConfig()
