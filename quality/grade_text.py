"""The texts that explain grades, rendered from a :class:`~quality.composite.CompositeConfig` (never written out
by hand, so they follow ``COMFY_QUALITY_GRADES_JSON`` and ``COMFY_QUALITY_MIN_GRADED_COVERAGE``).

* :func:`grade_bounds` — ``A ≥ 8.0, B ≥ 6.5, C ≥ 5.0, D ≥ 3.0, else F`` (schemas, reports);
* :func:`grade_scale` — ``A ≥ 8 excellent, B ≥ 6.5 good, C ≥ 5 acceptable, D ≥ 3 poor, F failed`` (what an agent
  reads in the MCP tool descriptions);
* :func:`coverage_share` — the least scored share of the weight for a letter: ``half`` or ``60 %``.

Model field descriptions are fixed when their class is defined, so they render the default configuration and say
so; the MCP tool descriptions render the server's configuration.
"""

from __future__ import annotations

from quality.composite import CompositeConfig, Grade

LETTERS: tuple[Grade, ...] = ("A", "B", "C", "D")
MEANINGS: dict[Grade, str] = {"A": "excellent", "B": "good", "C": "acceptable", "D": "poor", "F": "failed"}
DEFAULT = CompositeConfig()


def _number(value: float, fixed: bool) -> str:
    return f"{value:.1f}" if fixed and value == round(value, 1) else f"{value:g}"


def grade_bounds(config: CompositeConfig = DEFAULT) -> str:
    """``A ≥ 8.0, B ≥ 6.5, C ≥ 5.0, D ≥ 3.0, else F``."""
    return ", ".join(f"{g} ≥ {_number(config.grades[g], True)}" for g in LETTERS) + ", else F"


def grade_scale(config: CompositeConfig = DEFAULT) -> str:
    """``A ≥ 8 excellent, B ≥ 6.5 good, C ≥ 5 acceptable, D ≥ 3 poor, F failed``."""
    return ", ".join(f"{g} ≥ {_number(config.grades[g], False)} {MEANINGS[g]}" for g in LETTERS) + ", F failed"


def coverage_share(config: CompositeConfig = DEFAULT) -> str:
    """The least share of the applicable weight a letter grade needs, in words: ``half`` or ``60 %``."""
    share = config.min_graded_coverage
    return "half" if share == 0.5 else f"{share * 100:g} %"

