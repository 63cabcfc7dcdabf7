"""A realistic store for the dashboard tests: real AI-generated images (tests/data/agiqa) and full metadata
documents (tests.storage.factories), written through the real store and indexed as the orchestrator does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.index import Index
from storage.metadata import GenerationMetadata
from storage.store import Store
from tests.storage.factories import make_metadata

IMAGES = Path(__file__).resolve().parents[1] / "data" / "agiqa"
XSS_PROMPT = '<script>alert("xss")</script> a <b>bold</b> statue & "quotes" \'single\''


def image(name: str) -> bytes:
    return (IMAGES / name).read_bytes()


def today_noonish(now: datetime | None = None) -> datetime:
    """A time today (UTC) that is never in the future: halfway between midnight and now."""
    now = now or datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + (now - midnight) / 2


@dataclass
class Spec:
    """One generation: the composite of each attempt (None = failed) and the image file of each attempt."""

    key: str
    prompt: str
    attempts: list[float | None]
    images: list[str | None]
    workflow: str = "flux-dev"
    strategy: str | None = "progressive"
    days_ago: int = 0
    threshold: float | None = 7.0
    attempt_images: bool = True


SPECS = [
    Spec(
        "statue",
        "statue of a man, marble, museum lighting",
        [4.8, 6.9, 8.3],
        ["sd1.5_normal_000.jpg", "sd1.5_lowcorr_000.jpg", "midjourney_normal_000.jpg"],
    ),
    Spec(
        "sushi",
        "a tray of sushi, top-down photo",
        [7.1, 8.6],
        ["DALLE2_normal_001.jpg", "sd1.5_lowstep_001.jpg"],
        workflow="sdxl",
        strategy="seed_search",
        threshold=8.0,
    ),
    Spec(
        "armor",
        "red and blue armor, fantasy concept art",
        [5.2, 6.1, 5.9],
        ["glide_normal_000.jpg", "xl2.2_normal_004.jpg", "AttnGAN_normal_000.jpg"],
        workflow="sdxl",
        strategy="adaptive",
    ),
    Spec("xss", XSS_PROMPT, [6.0, 7.4], ["glide_normal_000.jpg", "midjourney_lowstep_000.jpg"]),
    Spec(
        "bronze",
        "statue of a man, bronze, green patina",
        [8.4],
        ["sd1.5_highcorr_000.jpg"],
        workflow="sd15",
        strategy="prompt_enhance",
        days_ago=1,
    ),
    Spec("cat", "a cat in the rain", [None, None], [None, None], days_ago=3),
    Spec(
        "castle",
        "a castle at night, oil painting",
        [3.5, 4.2, 4.9, 4.4],
        ["AttnGAN_normal_000.jpg", "glide_normal_000.jpg", "sd1.5_normal_000.jpg", "sd1.5_lowcorr_000.jpg"],
        workflow="sdxl",
        strategy="best_of_n",
        days_ago=5,
        attempt_images=False,
    ),
    Spec(
        "statue-old",
        "statue of a man, granite, overcast",
        [6.6, 8.1],
        ["midjourney_lowstep_000.jpg", "midjourney_normal_000.jpg"],
        days_ago=9,
    ),
]


@dataclass
class Dataset:
    """What was stored: generation id by spec key, and the documents as stored."""

    ids: dict[str, str] = field(default_factory=dict)
    documents: dict[str, GenerationMetadata] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def doc(self, key: str) -> GenerationMetadata:
        return self.documents[self.ids[key]]


def metadata_for(spec: Spec, when: datetime, number: int) -> GenerationMetadata:
    return make_metadata(
        prompt=spec.prompt,
        attempts=spec.attempts,
        workflow=spec.workflow,
        strategy=spec.strategy,
        threshold=spec.threshold,
        timestamp=when,
        generation_id=f"gen-{spec.key}-{number:03d}",
    )


async def store_generation(store: Store, index: Index | None, spec: Spec, md: GenerationMetadata) -> GenerationMetadata:
    best = md.refinement.best_attempt
    best_name = spec.images[best - 1] if best is not None else None
    best_bytes = image(best_name) if best_name else None
    extra = {}
    if spec.attempt_images:
        extra = {
            n: image(name)
            for n, name in enumerate(spec.images, start=1)
            if name is not None and n != best and spec.attempts[n - 1] is not None
        }
    stored = await store.put_generation(best_bytes, md, attempt_images=extra)
    if index is not None:
        index.add(stored.metadata)
    return stored.metadata


async def fill(store: Store, index: Index | None, specs: list[Spec] = SPECS) -> Dataset:
    """Store (and index, unless ``index`` is None) every spec; times relative to now."""
    data = Dataset()
    base = today_noonish(data.now)
    for number, spec in enumerate(specs):
        when = base - timedelta(days=spec.days_ago, microseconds=number)
        stored = await store_generation(store, index, spec, metadata_for(spec, when, number))
        data.ids[spec.key] = stored.generation_id
        data.documents[stored.generation_id] = stored
    return data


# More generations for a fuller gallery (the browser test and its screenshots).
EXTRA = [
    Spec("sushi-2", "sushi platter on a slate board, studio light", [8.1], ["DALLE2_normal_001.jpg"], workflow="sdxl",
         strategy="seed_search"),
    Spec("knight", "a knight in red and blue armor, dramatic sky", [5.8, 7.2], ["glide_normal_000.jpg",
         "xl2.2_normal_004.jpg"], workflow="sdxl", strategy="adaptive", days_ago=1),
    Spec("bust", "marble bust of a philosopher, soft light", [6.7, 6.9, 7.6], ["sd1.5_lowcorr_000.jpg",
         "midjourney_lowstep_000.jpg", "sd1.5_highcorr_000.jpg"], days_ago=2),
    Spec("park", "bronze statue in a park, wide angle", [7.9, 8.8], ["sd1.5_highcorr_000.jpg",
         "midjourney_normal_000.jpg"], workflow="sd15", strategy="prompt_enhance", days_ago=4),
    Spec("gan", "statue of a man, early GAN look", [1.9, 2.6], ["AttnGAN_normal_000.jpg", "AttnGAN_normal_000.jpg"],
         workflow="custom", strategy="best_of_n", days_ago=6),
    Spec("plate", "a tray of sushi, overhead, bokeh", [6.2, 6.8], ["sd1.5_lowstep_001.jpg",
         "DALLE2_normal_001.jpg"], workflow="flux-dev", strategy="seed_search", days_ago=7),
    Spec("hero", "armored hero, concept art, 8k", [8.9], ["xl2.2_normal_004.jpg"], workflow="flux-dev",
         strategy="adaptive", days_ago=8),
    Spec("fog", "statue in fog, cinematic", [4.4, 5.1, 5.6], ["sd1.5_normal_000.jpg", "glide_normal_000.jpg",
         "sd1.5_lowcorr_000.jpg"], workflow="sd15", days_ago=10),
]  # fmt: skip
