"""Builders of realistic metadata documents and small real images for the storage tests."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
from PIL import Image

from quality.report import Coverage
from storage.metadata import (
    AttemptRecord,
    AttemptTimings,
    GenerationMetadata,
    GenerationParameters,
    InputInfo,
    LoraSpec,
    QualityRecord,
    RefinementInfo,
    Source,
    WorkflowInfo,
    describe_rejection,
)

DIMS = ("technical", "aesthetic", "prompt_adherence", "detail")


def make_image(seed: int = 0, size: tuple[int, int] = (48, 32), fmt: str = "PNG") -> bytes:
    """A small real image whose bytes depend on ``seed``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def grade_of(composite: float) -> str:
    for grade, bound in (("A", 8.0), ("B", 6.5), ("C", 5.0), ("D", 3.0)):
        if composite >= bound:
            return grade
    return "F"


def make_quality(composite: float, *, spread: float = 0.5, partial: bool = False) -> QualityRecord:
    """Dimension scores around ``composite``: technical +spread, detail -spread (so detail is the weakest)."""
    offsets = {"technical": spread, "aesthetic": spread / 2, "prompt_adherence": 0.0, "detail": -spread}
    scores = {d: round(min(10.0, max(0.0, composite + offsets[d])), 3) for d in DIMS}
    return QualityRecord.model_validate(
        {
            "composite_score": composite,
            "grade": grade_of(composite),
            "technical": {"score": scores["technical"], "brisque": 22.5, "niqe": 4.25},
            "aesthetic": {"score": scores["aesthetic"], "laion_aesthetic": 6.1, "nima_mean": 5.4},
            "prompt_adherence": {"score": scores["prompt_adherence"], "clip_score": 0.31},
            "detail": {"score": scores["detail"], "topiq": 0.62, "edge_density": 0.12},
            "partial": partial,
            "coverage": Coverage(
                coverage=0.75 if partial else 1.0,
                partial=partial,
                dimensions={d: ("unavailable" if partial and d == "aesthetic" else "scored") for d in DIMS},
                effective_weights={
                    "technical": 0.3,
                    "aesthetic": 0.25,
                    "prompt_adherence": 0.25,
                    "detail": 0.2,
                },
                metrics_ran=["brisque", "niqe", "clip_score", "topiq", "edge_density"],
                metrics_unavailable={"laion_aesthetic": "weights missing"} if partial else {},
            ),
            "device": "cpu",
            "versions": {"brisque": "ours-1.0", "clip_score": "open_clip ViT-L-14 openai"},
            "calibration": None,
            "seconds": 1.25,
        }
    )


def make_metadata(
    *,
    prompt: str = "a red car on a mountain road",
    attempts: list[float | None] | None = None,
    workflow: str = "flux-dev",
    strategy: str | None = "progressive",
    threshold: float | None = 7.0,
    timestamp: datetime | None = None,
    generation_id: str | None = None,
    negative_prompt: str | None = "blurry",
    partial: bool = False,
    source: Source = "mcp",
) -> GenerationMetadata:
    """A full document: ``attempts`` are the composites of each attempt (``None`` = the attempt failed)."""
    composites = attempts if attempts is not None else [6.0, 7.4]
    records = []
    for number, composite in enumerate(composites, start=1):
        params = GenerationParameters(
            seed=1000 + number,
            steps=20 + 10 * number,
            cfg=7.0 + 0.5 * number,
            guidance=3.5,
            sampler="euler",
            scheduler="normal",
            width=1024,
            height=768,
            batch_size=1,
            denoise=1.0,
            loras=[LoraSpec(name="detail.safetensors", strength_model=0.6)],
            prompt=f"{prompt}, highly detailed" if number > 1 else prompt,
            negative_prompt=negative_prompt,
        )
        quality = make_quality(composite, partial=partial) if composite is not None else None
        records.append(
            AttemptRecord(
                attempt=number,
                parameters=params,
                quality=quality,
                prompt_id=f"prompt-{number}",
                timings=AttemptTimings(generate_seconds=10.0 + number, score_seconds=1.5, store_seconds=0.02),
                error=None if quality is not None else "ComfyUI execution error in KSampler: out of memory",
            )
        )
    refinement = RefinementInfo.from_attempts(
        records, strategy=strategy, threshold=threshold, max_attempts=max(3, len(records))
    )
    for record in records:
        if record.quality is not None and record.attempt != refinement.best_attempt:
            record.rejected_reason = describe_rejection(record.quality, threshold)
    best = next((r for r in records if r.attempt == refinement.best_attempt), None)
    extra = {} if generation_id is None else {"generation_id": generation_id}
    return GenerationMetadata(
        timestamp=timestamp or datetime(2026, 11, 24, 14, 30, 0, 123456, tzinfo=UTC),
        input=InputInfo(
            prompt=prompt,
            negative_prompt=negative_prompt,
            source=source,
            client="claude-code",
            quality_threshold=threshold,
            max_attempts=max(3, len(records)),
            strategy=strategy,
        ),
        workflow=WorkflowInfo(
            name=workflow, sha256="ab" * 32, server_url="http://127.0.0.1:8188", comfyui_version="0.3.64"
        ),
        parameters=best.parameters if best else GenerationParameters(),
        quality=best.quality if best else None,
        refinement=refinement,
        **extra,
    )
