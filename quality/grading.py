"""When a composite earns a letter grade, and the smallest image the technical metrics score.

A grade is the product's one promise (the retry loop stops at the threshold, agents trust the letter), so it is
never given from a sliver of evidence. A composite is **graded** only when

* the technical dimension (BRISQUE + NIQE: artifacts, noise, blur) was scored, whenever its weight is not zero,
  and
* the scored weight is at least ``min_graded_coverage`` (default 0.5, ``COMFY_QUALITY_MIN_GRADED_COVERAGE``) of
  the weight that applies (prompt adherence does not apply without a prompt).

Otherwise the report has ``grade: null``, ``grade_status: "insufficient"`` and ``grade_reasons`` saying why. The
composite number is still reported (a weighted mean over what *was* scored, useful for diagnosis), but it is not
a grade: refinement never compares it with a threshold, and every surface shows "not graded" with the reasons.

Image size: the technical metrics need local statistics over enough pixels. BRISQUE is computed directly for
images of at least :data:`MIN_SIDE` px on the short side; NIQE compares 96-px blocks, so an image whose short
side is between :data:`MIN_SIDE` and :data:`NIQE_NATIVE_SIDE` px gets NIQE on a copy upscaled (always with
Pillow's bicubic, aspect ratio kept) until its short side is 96 px. Images under :data:`MIN_SIDE` px are refused
(:class:`quality.errors.ImageTooSmallError`).
"""

from __future__ import annotations

from typing import Literal

GradeStatus = Literal["graded", "insufficient"]

MIN_SIDE = 32
"""Smallest short side (px) the scorer accepts: BRISQUE's half-size pass then still has 16×16 px of statistics."""
NIQE_NATIVE_SIDE = 96
"""NIQE's block size: shorter images are scored through an upscaled copy (see :func:`niqe_upscaled_size`)."""
DEFAULT_MIN_GRADED_COVERAGE = 0.5
REQUIRED_DIMENSION = "technical"


def too_small_message(width: int, height: int) -> str:
    return (
        f"the image is {width}×{height} px, smaller than the {MIN_SIDE} px minimum on its short side that the "
        f"technical metrics (BRISQUE, NIQE) need; score an image of at least {MIN_SIDE}×{MIN_SIDE} px"
    )


def niqe_upscaled_size(width: int, height: int) -> tuple[int, int] | None:
    """(width, height) of the copy NIQE scores, or None when the image is scored as it is (short side ≥ 96).

    The short side becomes exactly :data:`NIQE_NATIVE_SIDE`; the long side is scaled by the same factor and
    rounded up, so the copy always holds at least one whole 96-px block."""
    short = min(width, height)
    if short >= NIQE_NATIVE_SIDE:
        return None
    if width <= height:
        return NIQE_NATIVE_SIDE, -(-height * NIQE_NATIVE_SIDE // short)
    return -(-width * NIQE_NATIVE_SIDE // short), NIQE_NATIVE_SIDE


def not_graded_text(reasons: list[str]) -> str:
    """The one line every surface shows for an ungraded composite."""
    return "not graded: " + ("; ".join(reasons) if reasons else "insufficient evidence")
