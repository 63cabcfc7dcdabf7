from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quality.models import clear_cache
from quality.settings import QualitySettings
from tests.quality.tiny_models import TINY_OPTIONS, tiny_weights_store

REPO = Path(__file__).resolve().parents[2]
AGIQA = REPO / "tests" / "data" / "agiqa"


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """WeightsStore with tiny random-weight checkpoints of every deep metric (state-dict CLIP)."""
    return tiny_weights_store(tmp_path_factory.mktemp("tiny-weights"))


@pytest.fixture(scope="session")
def tiny_options():
    return dict(TINY_OPTIONS)


@pytest.fixture
def fresh_models():
    """Start and end the test with an empty process-wide model cache."""
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def offline_settings(tmp_path):
    return QualitySettings(offline=True, weights_dir=tmp_path / "no-weights", device="cpu")


def textured(seed: int = 0, size: int = 256) -> Image.Image:
    """A natural-ish test image: smooth gradients plus blobs plus mild texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.stack([xx * 200 + 30, yy * 180 + 40, (1 - xx) * 150 + 50], -1)
    for _ in range(12):
        cx, cy, r = [*rng.uniform(0, 1, 2).tolist(), rng.uniform(0.03, 0.15)]
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
        img[mask] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 4, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
