"""Retry strategies: pure functions from (attempt number, what happened so far) to the next attempt's plan.

No I/O, no randomness beyond a seed derived deterministically from the first seed, so every decision is
reproducible and unit-testable. Each plan carries ``changes``: one line per parameter it changed and why, which
the orchestrator records in the attempt history ("steps 30 → 50: progressive schedule").

Strategies (the first attempt is always the base plan):

``progressive``
    The original design's ladder: steps 30 → 50 → 80 (then ×1.4 per attempt, capped at 150), cfg 7.0 → 7.5 → 8.0
    (+0.5 per attempt, capped at 12). A user-chosen first step count scales the ladder. Same seed, so the change
    is attributable. Flux-style workflows (guidance instead of cfg) raise the guidance by 0.5 instead.
``seed_search``
    Same steps and cfg, a new seed per attempt: the cheapest way out of a bad composition.
``prompt_enhance``
    Same seed; appends quality boosters to the prompt (a different set each attempt) and common defects to the
    negative prompt.
``adaptive``
    Looks at the last report's weakest dimension: technical or detail → more steps (×1.5); prompt adherence →
    stronger guidance (cfg +1 / Flux guidance +0.5) and prompt emphasis; aesthetic → a new seed. If the same lever
    was pulled last time without raising that dimension, it switches to a new seed instead. A failed attempt
    (no image) → new seed.
``best_of_n``
    Each attempt is one batched job of N images (N seeds in one go); all are scored and the best kept. A next
    attempt, if any, uses a fresh seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from refinement.api import Strategy

Family = Literal["sd", "flux"]
Lever = Literal["steps", "guidance", "seed", "prompt", "none"]

PROGRESSIVE_STEPS = (30, 50, 80)
PROGRESSIVE_CFG = (7.0, 7.5, 8.0)
MAX_STEPS = 150
MAX_CFG = 12.0
MAX_GUIDANCE = 10.0
SEED_SPACE = 2**32
SEED_STRIDE = 0x9E3779B1  # golden-ratio stride: successive seeds far apart, never repeating within 2**32

BOOSTERS: tuple[str, ...] = (
    "highly detailed, sharp focus, best quality",
    "intricate details, professional photography, 8k, crisp",
    "masterpiece, award-winning composition, perfect lighting",
    "ultra detailed, high resolution, clean lines",
)
NEGATIVE_BOOSTERS = "blurry, low quality, jpeg artifacts, noisy, deformed, watermark, text"


@dataclass(frozen=True)
class Plan:
    """The parameters of one attempt (what the orchestrator turns into a patched workflow)."""

    prompt: str
    negative_prompt: str | None
    seed: int
    steps: int
    cfg: float
    guidance: float | None = None
    batch_size: int = 1
    family: Family = "sd"
    lever: Lever = "none"
    """Which lever this plan pulled (adaptive uses it to see whether the last change helped)."""
    changes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Outcome:
    """What an attempt produced: its plan and the dimension scores of its best image (None: attempt failed)."""

    plan: Plan
    composite: float | None
    dimensions: dict[str, float | None] | None
    graded: bool = True
    """False when the scorer gave no letter grade (too little was scored): ``composite`` is then not a grade."""


def next_seed(first_seed: int, attempt: int) -> int:
    """Deterministic, well-spread seed for attempt ``attempt`` (1-based) derived from the first seed."""
    return (first_seed + (attempt - 1) * SEED_STRIDE) % SEED_SPACE


def _scaled_steps(base_steps: int, attempt: int) -> int:
    scale = base_steps / PROGRESSIVE_STEPS[0]
    if attempt <= len(PROGRESSIVE_STEPS):
        ladder = PROGRESSIVE_STEPS[attempt - 1]
    else:
        ladder = round(PROGRESSIVE_STEPS[-1] * 1.4 ** (attempt - len(PROGRESSIVE_STEPS)))
    return int(min(MAX_STEPS, max(base_steps, round(ladder * scale))))


def _progressive(base: Plan, attempt: int) -> Plan:
    steps = _scaled_steps(base.steps, attempt)
    changes = [f"steps {base.steps} → {steps}: progressive schedule"] if steps != base.steps else []
    if base.family == "flux" and base.guidance is not None:
        guidance = round(min(MAX_GUIDANCE, base.guidance + 0.5 * (attempt - 1)), 3)
        changes.append(f"guidance {base.guidance} → {guidance}: progressive schedule")
        return replace(base, steps=steps, guidance=guidance, lever="steps", changes=tuple(changes))
    offset = PROGRESSIVE_CFG[min(attempt, len(PROGRESSIVE_CFG)) - 1] - PROGRESSIVE_CFG[0]
    if attempt > len(PROGRESSIVE_CFG):
        offset += 0.5 * (attempt - len(PROGRESSIVE_CFG))
    cfg = round(min(MAX_CFG, base.cfg + offset), 3)
    if cfg != base.cfg:
        changes.append(f"cfg {base.cfg} → {cfg}: progressive schedule")
    return replace(base, steps=steps, cfg=cfg, lever="steps", changes=tuple(changes))


def _seed_search(base: Plan, attempt: int, reason: str = "seed search") -> Plan:
    seed = next_seed(base.seed, attempt)
    return replace(base, seed=seed, lever="seed", changes=(f"seed {base.seed} → {seed}: {reason}",))


def _prompt_enhance(base: Plan, attempt: int) -> Plan:
    booster = BOOSTERS[(attempt - 2) % len(BOOSTERS)]
    prompt = f"{base.prompt.rstrip(' ,')}, {booster}"
    negative = base.negative_prompt or ""
    changes = [f"prompt += '{booster}': prompt enhancement"]
    if NEGATIVE_BOOSTERS not in negative:
        negative = f"{negative.rstrip(' ,')}, {NEGATIVE_BOOSTERS}" if negative.strip() else NEGATIVE_BOOSTERS
        changes.append("negative prompt += common defects")
    return replace(base, prompt=prompt, negative_prompt=negative, lever="prompt", changes=tuple(changes))


def weakest_dimension(dimensions: dict[str, float | None]) -> str | None:
    scored = [(score, name) for name, score in dimensions.items() if score is not None]
    return min(scored)[1] if scored else None


def _emphasise(prompt: str) -> str:
    """ComfyUI prompt weighting: ``(text:1.2)``; raise an existing outer weight instead of nesting."""
    text = prompt.strip()
    if text.startswith("(") and text.endswith(")") and ":" in text:
        inner, _, weight = text[1:-1].rpartition(":")
        try:
            return f"({inner}:{min(1.6, float(weight) + 0.1):.2f})"
        except ValueError:
            pass
    return f"({text}:1.20)"


def _adaptive(base: Plan, attempt: int, history: Sequence[Outcome]) -> Plan:
    last = history[-1]
    current = last.plan
    if last.dimensions is None:
        return _seed_search(replace(current, changes=()), attempt, "last attempt failed: new seed")
    weakest = weakest_dimension(last.dimensions)
    if weakest is None:
        return _seed_search(current, attempt, "no dimension could be scored: new seed")
    score = last.dimensions[weakest]
    lever: Lever = {"technical": "steps", "detail": "steps", "prompt_adherence": "guidance"}.get(weakest, "seed")  # type: ignore[assignment]
    if len(history) >= 2 and current.lever == lever:
        before = history[-2].dimensions or {}
        prev = before.get(weakest)
        if prev is not None and score is not None and score <= prev:
            return _seed_search(current, attempt, f"{weakest} did not improve after more {lever}: new seed instead")
    why = f"weakest dimension: {weakest} {score:.1f}" if score is not None else f"weakest: {weakest}"
    if lever == "steps":
        steps = int(min(MAX_STEPS, round(current.steps * 1.5)))
        if steps == current.steps:
            return _seed_search(current, attempt, f"{why}; steps already at the cap: new seed")
        return replace(current, steps=steps, lever="steps", changes=(f"steps {current.steps} → {steps}: {why}",))
    if lever == "guidance":
        prompt = _emphasise(current.prompt)
        if current.family == "flux" and current.guidance is not None:
            guidance = round(min(MAX_GUIDANCE, current.guidance + 0.5), 3)
            change = f"guidance {current.guidance} → {guidance}: {why}"
            return replace(current, guidance=guidance, prompt=prompt, lever="guidance",
                           changes=(change, f"prompt emphasised: {why}"))  # fmt: skip
        cfg = round(min(MAX_CFG, current.cfg + 1.0), 3)
        return replace(current, cfg=cfg, prompt=prompt, lever="guidance",
                       changes=(f"cfg {current.cfg} → {cfg}: {why}", f"prompt emphasised: {why}"))  # fmt: skip
    return _seed_search(current, attempt, f"{why}: new seed")


def plan_attempt(strategy: Strategy, attempt: int, base: Plan, history: Sequence[Outcome] = ()) -> Plan:
    """The plan of attempt ``attempt`` (1-based). ``base`` is attempt 1's plan; ``history`` the outcomes so far."""
    if attempt < 1:
        raise ValueError("attempts are numbered from 1")
    if attempt == 1:
        return replace(base, changes=())
    if strategy == "progressive":
        return _progressive(base, attempt)
    if strategy == "seed_search" or strategy == "best_of_n":
        return _seed_search(base, attempt, "new batch" if strategy == "best_of_n" else "seed search")
    if strategy == "prompt_enhance":
        return _prompt_enhance(base, attempt)
    if strategy == "adaptive":
        if not history:
            raise ValueError("adaptive needs the previous attempts' outcomes")
        return _adaptive(base, attempt, history)
    raise ValueError(f"unknown strategy {strategy!r}")


def reaches_threshold(composite: float | None, graded: bool, threshold: float) -> bool:
    """Whether an attempt ends the loop: only a *graded* composite at or above the threshold does. An ungraded
    composite (the technical dimension not scored, or too little of the weight) is never compared with it."""
    return graded and composite is not None and composite >= threshold
