"""Cross-validation shared by the fit command and ``python -m quality eval DATASET_DIR --cv K|logo``.

:func:`cross_validate_schemes` runs the fixed protocol of :mod:`.fit` under K folds with a fixed seed and/or
leave-one-generator-out (``logo``: the model never saw the generator it scores): per split, codebooks and members
are fitted on that split's training images only, and every image is decoded once for all codebook sets.

The eval command scores every image with the scorer (raw metrics, the other dimensions, timing);
:func:`cross_validated_samples` replaces each image's technical and detail scores, and so its composite and grade,
with those of a model fitted on the other images only. Images whose calibration features are undefined (flat,
failed generations) keep what the scorer gave them (a flat image is graded F without metrics).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from quality.calibration import fit as F
from quality.calibration.patches import Codebook
from quality.calibration.runtime import F64
from quality.composite import CompositeConfig, combine
from quality.specs import DIMENSIONS


def scheme_name(cv: str) -> str:
    """``"5"`` → ``"kfold5"``, ``"logo"`` → ``"logo"`` (raises ``ValueError`` otherwise)."""
    if cv == "logo":
        return cv
    if cv.isdigit() and int(cv) >= 2:
        return f"kfold{int(cv)}"
    raise ValueError(f"--cv takes a number of folds (>= 2) or 'logo', got {cv!r}")


def scheme_names(values: Sequence[str]) -> list[str]:
    """The ``--cv`` values as scheme names, in order, without repeats."""
    return list(dict.fromkeys(scheme_name(v) for v in values))


def splits_for(scheme: str, records: Sequence[F.Record], seed: int) -> list[F.Split]:
    if scheme == "logo":
        return F.leave_one_group_out([r.group for r in records])
    return F.kfold(len(records), int(scheme.removeprefix("kfold")), seed)


def composite_of(
    scores: Mapping[str, float | None], prompt: str | None = None, config: CompositeConfig | None = None
) -> tuple[float, str | None]:
    """Composite and grade of dimension scores (prompt adherence not applicable without a prompt)."""
    dims = {d: scores.get(d) for d in DIMENSIONS}
    na = frozenset({"prompt_adherence"}) if prompt is None else frozenset()
    result = combine(dims, config or CompositeConfig(), not_applicable=na)  # type: ignore[arg-type]
    return result.composite_score, result.grade


@dataclasses.dataclass
class SchemeResult:
    splits: list[F.Split]
    result: F.CVResult


def cross_validate_schemes(
    usable: Sequence[F.Record], schemes: Sequence[str], *, seed: int = F.SEED, jobs: int = 1,
    also: Sequence[dict[str, Codebook]] = (), natural: F.LadderPairs | None = None,
) -> tuple[dict[str, SchemeResult], list[dict[str, F64]]]:  # fmt: skip
    """Out-of-fold predictions per scheme for ``usable`` records, and the encodings with the codebook sets
    ``also`` (e.g. the final model's), computed in the same pass over the images. ``natural``: the damage head's
    natural-photo ladders (:func:`quality.calibration.fit.natural_pairs`)."""
    splits = {scheme: splits_for(scheme, usable, seed) for scheme in schemes}
    sets = {scheme: [F.codebooks_for(usable, train, seed) for train, _ in sp] for scheme, sp in splits.items()}
    encoded = F.encode_records(usable, [cb for scheme in schemes for cb in sets[scheme]] + list(also), jobs=jobs)
    out: dict[str, SchemeResult] = {}
    pos = 0
    for scheme in schemes:
        sp = splits[scheme]
        result = F.cross_validate(usable, sp, seed=seed, sets=sets[scheme], encoded=encoded[pos : pos + len(sp)],
                                  natural=natural)  # fmt: skip
        pos += len(sp)
        out[scheme] = SchemeResult(sp, result)
    return out, encoded[pos:]


def cross_validated_samples(
    samples: Sequence[Any], schemes: Sequence[str], *, seed: int = F.SEED, jobs: int = 1,
    config: CompositeConfig | None = None, cache: Path | None = None,
) -> dict[str, tuple[list[Any], dict[str, Any]]]:  # fmt: skip
    """For each scheme: copies of ``samples`` (:class:`quality.eval.Sample`) with out-of-fold technical, detail,
    composite and grade, and a description of the folds. The protocol is the shipped model's, damage ladders
    included (:data:`quality.calibration.fit.LADDER_IMAGES` images; ``cache``: a folder keeping their features)."""
    F._sklearn()
    scored = [s for s in samples if s.error is None]
    records = F.prepare_records([F.Record(s.name, str(s.path), s.mos_quality, s.generator, prompt=s.prompt)
                                 for s in scored], seed=seed, jobs=jobs, cache=cache)  # fmt: skip
    usable = [r for r in records if r.usable]
    F.attach_ladders(usable, F.ladder_names(usable, F.LADDER_IMAGES), jobs=jobs, cache=cache)
    excluded = {r.name: r.error or "features undefined" for r in records if not r.usable}
    index = {r.name: i for i, r in enumerate(usable)}
    natural = F.natural_pairs(list(usable[0].features or {}), jobs=jobs, cache=cache) if usable else None
    results, _ = cross_validate_schemes(usable, schemes, seed=seed, jobs=jobs, natural=natural)
    out: dict[str, tuple[list[Any], dict[str, Any]]] = {}
    for scheme, done in results.items():
        sp, result = done.splits, done.result
        copies = []
        for s in samples:
            c = dataclasses.replace(s, values=dict(s.values))
            i = index.get(s.name)
            if i is not None:
                for dim in result.score:
                    c.values[dim] = round(float(result.score[dim][i]), 4)
                c.values["composite_score"], c.grade = composite_of(c.values, s.prompt, config)
            copies.append(c)
        info = {
            "scheme": scheme, "seed": seed, "folds": len(sp),
            "fit_images_per_fold": [len(train) for train, _ in sp],
            "test_images_per_fold": [len(test) for _, test in sp],
            "held_out_groups": [sorted({usable[i].group for i in test}) for _, test in sp],
            "cross_validated_images": len(usable), "kept_scorer_values": excluded, "seconds": round(result.seconds, 1),
        }  # fmt: skip
        out[scheme] = (copies, info)
    return out
