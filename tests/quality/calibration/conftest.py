"""Fixtures for the calibration tests: a small synthetic rated folder, prepared records, a quick model."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quality.calibration import fit as F
from tests.quality.conftest import textured

#: codebook size used by the fast tests (the shipped protocol uses F.CODEBOOK_SIZE = 200)
SMALL_CODEBOOK = 12


def make_folder(root: Path, n: int = 24, seed: int = 0) -> Path:
    """``n`` textured 128-px images of three "generators" with labels that have nothing to do with them."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    rows = ["name,mos_quality,generator"]
    for i in range(n):
        gen = ("g1", "g2", "g3")[i % 3]
        img = textured(seed=1000 + i, size=128)
        if i % 2:
            img = img.resize((64, 64), Image.Resampling.BILINEAR).resize((128, 128), Image.Resampling.BILINEAR)
        name = f"{gen}_{i:03d}.png"
        img.save(root / "images" / name)
        rows.append(f"{name},{rng.uniform(0, 4):.4f},{gen}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="session")
def synthetic_folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("rated"))


@pytest.fixture(scope="session")
def synthetic_records(synthetic_folder):
    from quality.eval import load_dataset

    samples = load_dataset(synthetic_folder)
    records = [F.Record(s.name, str(s.path), s.mos_quality, s.generator) for s in samples]
    return F.prepare_records(records)


@pytest.fixture
def small_codebooks(monkeypatch):
    """The fitting protocol scaled down for speed (smaller codebooks, fewer boosting rounds); same code paths."""
    monkeypatch.setattr(F, "CODEBOOK_SIZE", SMALL_CODEBOOK)
    monkeypatch.setattr(F, "LADDER_IMAGES", 2)  # damage ladders for two images only
    monkeypatch.setattr(F, "NATURAL_LADDERS", False)  # the damage head learns from those two images' ladders only
    monkeypatch.setitem(F.TREE_PARAMS, "max_iter", 15)
