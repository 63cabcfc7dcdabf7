"""Calibration: a learned mapping from weight-free image statistics to the technical and detail scores.

The scorer's spec table maps each raw metric onto 0–10 with fixed end points; on AI-generated images that agrees
only loosely with people (BRISQUE/NIQE alone reach a rank correlation of about 0.5 with human opinion on
AGIQA-3K). The calibration model, fitted on human scores and on damage ladders (a damaged copy is worse than its
original, a stronger damage worse than a weaker one), predicts what people would say from richer statistics of
the same image (BRISQUE/NIQE features at several scales, local sharpness, noise, colour, texture) and maps the
prediction onto 0–10 so the composite's grades keep their meaning. See ``README.md`` here.

    from quality.calibration import load_default
    model = load_default()
    scores, mos = model.score(working_rgb)      # {"technical": 6.9, "detail": 7.1}, predicted MOS per dimension

Run time needs numpy, scipy and OpenCV only; fitting (:mod:`.fit`, ``python -m quality.calibration fit``) needs
scikit-learn.
"""

from quality.calibration.model import CalibrationModel, Member, from_bytes, load, load_default

__all__ = ["CalibrationModel", "Member", "from_bytes", "load", "load_default"]
