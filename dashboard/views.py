"""View models shared by the JSON API and the HTML pages: a generation with its attempts compared.

For every attempt: what changed from the attempt before it (parameters, and the prompt word by word), how its
scores moved against the previous scored attempt, and whether it *helped* (raised the best composite so far).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel, Field

from quality.specs import DIMENSION_SPECS, DIMENSIONS, metrics_of
from storage.index import AttemptRow, GenerationRow
from storage.metadata import AttemptRecord, GenerationMetadata

SCORES = ("composite", *DIMENSIONS)
SCORE_LABELS: dict[str, str] = {
    "composite": "Composite",
    **{d: spec.label.capitalize() for d, spec in DIMENSION_SPECS.items()},
    "gain": "Refinement gain",
}
PARAMETER_ORDER = (
    "prompt", "negative_prompt", "seed", "steps", "cfg", "guidance", "sampler", "scheduler",
    "width", "height", "denoise", "batch_size", "loras",
)  # fmt: skip
#: dimension → its raw metrics, the columns of the metrics table (from the metric registry)
RAW_METRICS = {dim: tuple(spec.name for spec in metrics_of(dim)) for dim in DIMENSIONS}


class Change(BaseModel):
    field: str
    before: Any
    after: Any
    text: str = Field(description="human-readable, e.g. 'steps 30 → 40' or 'prompt: added “highly detailed”'")


class Links(BaseModel):
    page: str | None = None
    api: str | None = None
    image: str | None = None
    thumbnail: str | None = None
    metadata: str | None = None


class AttemptView(BaseModel):
    attempt: int
    is_best: bool
    status: str
    grade: str | None
    grade_status: str | None = Field(None, description="'graded', 'insufficient' (no grade) or null (failed)")
    grade_reasons: str | None = Field(None, description="why the attempt was not graded")
    scores: dict[str, float | None]
    partial: bool | None
    parameters: dict[str, Any]
    compared_to: int | None = Field(description="the previous scored attempt the deltas are measured against")
    delta: dict[str, float | None] = Field(description="score − the same score of attempt compared_to")
    helped: bool | None = Field(description="raised the best composite so far (null: first scored or failed)")
    outcome: str
    changes: list[Change] = Field(description="parameters that differ from the previous attempt")
    raw_metrics: dict[str, dict[str, float | None]]
    rejected_reason: str | None
    error: str | None
    prompt_id: str | None
    timings: dict[str, float | None]
    links: Links


class GenerationView(BaseModel):
    generation: dict[str, Any]
    summary: str
    attempts: list[AttemptView]
    raw_metrics: dict[str, dict[str, float | None]]
    quality: dict[str, Any] | None = Field(description="the kept image's quality block as stored")
    links: Links


def row_json(row: GenerationRow) -> dict[str, Any]:
    """A generation row for the API (the store-time URL is left out: it may be presigned and expired)."""
    return row.model_dump(mode="json", exclude={"image_url"})


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value) or "none"
    if isinstance(value, dict):
        name = value.get("name", "?")
        strength = value.get("strength_model")
        return f"{name} @ {strength:g}" if isinstance(strength, int | float) else str(name)
    return str(value)


_TOKEN = re.compile(r"[^\s,;]+|[,;]")


def _words(tokens: list[str]) -> str:
    text = " ".join(tokens).replace(" ,", ",").replace(" ;", ";")
    return text.strip(" ,;")


def prompt_change(before: str | None, after: str | None, field: str = "prompt") -> str:
    """``'prompt: added “highly detailed”; “red” → “blue”'`` (word level; commas separate words)."""
    old, new = _TOKEN.findall(before or ""), _TOKEN.findall(after or "")
    parts: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        gone, came = _words(old[i1:i2]), _words(new[j1:j2])
        if op == "replace" and gone and came:
            parts.append(f"“{gone}” → “{came}”")
        elif op != "equal" and came:
            parts.append(f"added “{came}”")
        elif op != "equal" and gone:
            parts.append(f"removed “{gone}”")
    return f"{field}: " + ("; ".join(parts) if parts else "punctuation or spacing changed")


def parameter_changes(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    keys = [k for k in PARAMETER_ORDER if k in before or k in after]
    keys += sorted(k for k in {*before, *after} if k not in PARAMETER_ORDER)
    changes = []
    for key in keys:
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if key in ("prompt", "negative_prompt") and (isinstance(old, str) or isinstance(new, str)):
            text = prompt_change(old, new, key.replace("_", " "))
        else:
            text = f"{key.replace('_', ' ')} {_fmt(old)} → {_fmt(new)}"
        changes.append(Change(field=key, before=old, after=new, text=text))
    return changes


def raw_metrics(quality: Any) -> dict[str, dict[str, float | None]]:
    """``{dimension: {metric: raw value}}`` of a quality block (a model or a dict), for the metrics table."""
    if quality is None:
        return {}
    data = quality if isinstance(quality, dict) else quality.model_dump()
    return {dim: {name: (data.get(dim) or {}).get(name) for name in names} for dim, names in RAW_METRICS.items()}


def _outcome(
    number: int, composite: float | None, previous_best: float | None, error: str | None
) -> tuple[bool | None, str]:
    if composite is None:
        return None, f"failed: {error}" if error else "failed: no scored image"
    if previous_best is None:
        return None, "first scored attempt (baseline)" if number > 1 else "first attempt (baseline)"
    diff = composite - previous_best
    if diff > 0:
        return True, f"helped: composite {composite:.2f}, {diff:+.2f} over the best so far ({previous_best:.2f})"
    return False, f"did not help: composite {composite:.2f}, {diff:+.2f} against the best so far ({previous_best:.2f})"


def compare_attempts(
    attempts: list[AttemptRow],
    records: dict[int, AttemptRecord],
    links: dict[int, Links],
) -> list[AttemptView]:
    views: list[AttemptView] = []
    previous_params: dict[str, Any] | None = None
    previous_scored: AttemptRow | None = None
    best_so_far: float | None = None
    for a in attempts:
        scores = {s: getattr(a, s) for s in SCORES}
        helped, outcome = _outcome(a.attempt, a.composite, best_so_far, a.error)
        delta: dict[str, float | None] = {}
        if previous_scored is not None and a.composite is not None:
            for s in SCORES:
                old, new = getattr(previous_scored, s), scores[s]
                delta[s] = round(new - old, 4) if old is not None and new is not None else None
        record = records.get(a.attempt)
        views.append(
            AttemptView(
                attempt=a.attempt,
                is_best=a.is_best,
                status=a.status,
                grade=a.grade,
                grade_status=a.grade_status,
                grade_reasons=a.grade_reasons,
                scores=scores,
                partial=a.partial,
                parameters=a.parameters,
                compared_to=previous_scored.attempt if previous_scored and a.composite is not None else None,
                delta=delta,
                helped=helped,
                outcome=outcome,
                changes=parameter_changes(previous_params, a.parameters) if previous_params is not None else [],
                raw_metrics=raw_metrics(record.quality if record else None),
                rejected_reason=a.rejected_reason,
                error=a.error,
                prompt_id=a.prompt_id,
                timings={
                    "generate_seconds": a.generate_seconds,
                    "score_seconds": a.score_seconds,
                    "store_seconds": a.store_seconds,
                },
                links=links.get(a.attempt, Links()),
            )
        )
        previous_params = a.parameters
        if a.composite is not None:
            previous_scored = a
            best_so_far = a.composite if best_so_far is None else max(best_so_far, a.composite)
    return views


def summary(row: GenerationRow, attempts: list[AttemptView]) -> str:
    """One sentence: what refinement did for this generation."""
    count = len(attempts)
    strategy = f" with {row.strategy}" if row.strategy else ""
    if row.composite is None:
        return f"{count} attempt{'s' * (count != 1)}{strategy}; none produced a scored image"
    first = row.first_composite
    text = f"{count} attempt{'s' * (count != 1)}{strategy}: "
    verdict = f"grade {row.grade}" if row.grade is not None else f"not graded ({row.grade_reasons or 'insufficient'})"
    if row.grade is None:
        text += f"composite {row.composite:.2f} is not a grade: {verdict}"
    elif first is not None and count > 1:
        text += f"composite {first:.2f} → {row.composite:.2f} ({row.composite - first:+.2f}), {verdict}"
    else:
        text += f"composite {row.composite:.2f}, {verdict}"
    if row.threshold is not None and row.grade is None:
        text += f"; an ungraded composite never reaches the threshold {row.threshold:g}"
    elif row.threshold is not None:
        reached = "reached" if row.status == "success" else "did not reach"
        text += f"; {reached} the threshold {row.threshold:g}"
    return text


def generation_view(
    row: GenerationRow,
    attempts: list[AttemptRow],
    metadata: GenerationMetadata | None,
    links: Links,
    attempt_links: dict[int, Links],
) -> GenerationView:
    records = {r.attempt: r for r in metadata.refinement.attempts} if metadata else {}
    views = compare_attempts(attempts, records, attempt_links)
    quality = metadata.quality if metadata else None
    return GenerationView(
        generation=row_json(row),
        summary=summary(row, views),
        attempts=views,
        raw_metrics=raw_metrics(quality),
        quality=quality.model_dump(mode="json") if quality else None,
        links=links,
    )
