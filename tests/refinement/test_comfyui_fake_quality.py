"""The fake server's images: their quality must truly depend on steps, seed and cfg, as real no-reference
metrics (pyiqa's BRISQUE and NIQE with the project's bundled parameters; lower is better) see it."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from refinement.comfyui import ComfyUIClient
from refinement.params import GenerationParams
from refinement.workflows import load_template, patch
from tests.fakes.comfyui_server import FakeComfyUI
from tests.fakes.comfyui_server.render import seed_luck
from tests.fakes.comfyui_testing import REPO

pyiqa_brisque = pytest.importorskip("pyiqa.archs.brisque_arch")
pyiqa_niqe = pytest.importorskip("pyiqa.archs.niqe_arch")

PROMPT = "a beautiful mountain landscape at sunset, highly detailed"


class Metrics:
    def __init__(self) -> None:
        data = REPO / "quality" / "data"
        self.brisque = pyiqa_brisque.BRISQUE(pretrained_model_path=str(data / "brisque_svm_weights.pth"))
        self.niqe = pyiqa_niqe.NIQE(pretrained_model_path=str(data / "niqe_modelparameters.mat"))

    @staticmethod
    def _tensor(png: bytes) -> torch.Tensor:
        with Image.open(io.BytesIO(png)) as img:
            rgb = np.asarray(img.convert("RGB"), np.float32) / 255
        return torch.from_numpy(rgb).permute(2, 0, 1)[None]

    def brisque_of(self, png: bytes) -> float:
        with torch.no_grad():
            return float(self.brisque(self._tensor(png)))

    def niqe_of(self, png: bytes) -> float:
        with torch.no_grad():
            return float(self.niqe(self._tensor(png)))


def _contrast(png: bytes) -> float:
    with Image.open(io.BytesIO(png)) as img:
        return float(np.asarray(img.convert("L"), np.float32).std())


def _seeds() -> tuple[list[int], int]:
    good = [s for s in range(1, 200) if 0.35 <= seed_luck(s, PROMPT) <= 0.85][:2]
    bad = next(s for s in range(1, 200) if seed_luck(s, PROMPT) < 0.2)
    return good, bad


async def test_more_steps_better_seeds_and_sane_cfg_score_better() -> None:
    metrics = Metrics()
    good, bad = _seeds()
    base = load_template("sd15")

    async with FakeComfyUI() as fake, ComfyUIClient(fake.url) as client:

        async def image(**params: object) -> bytes:
            wf = patch(base, GenerationParams(prompt=PROMPT, width=256, height=256, **params))
            return (await client.run(wf)).images[0].data

        series = {steps: [await image(seed=s, steps=steps, cfg=7.0) for s in good] for steps in (30, 50, 80)}
        bad_seed = await image(seed=bad, steps=50, cfg=7.0)
        burnt = await image(seed=good[0], steps=50, cfg=20.0)
        washed = await image(seed=good[0], steps=50, cfg=1.5)

    brisque = {k: [metrics.brisque_of(png) for png in v] for k, v in series.items()}
    niqe = {k: metrics.niqe_of(v[0]) for k, v in series.items()}
    # 30 -> 50 -> 80 steps keep improving, for every seed
    assert all(brisque[30][i] > brisque[50][i] > brisque[80][i] for i in range(len(good))), brisque
    assert niqe[30] > niqe[50] > niqe[80], niqe
    # the seed matters: seeds differ, and a bad seed is plainly worse (flat, low contrast, mushy)
    assert abs(brisque[50][0] - brisque[50][1]) > 0.5
    assert metrics.brisque_of(bad_seed) > max(brisque[50])
    assert _contrast(bad_seed) < 0.7 * min(_contrast(png) for png in series[50])
    # extreme cfg is worse than cfg 7: burnt (halos, clipping) and washed out (hazy, flat)
    assert metrics.brisque_of(burnt) > brisque[50][0]
    assert metrics.niqe_of(washed) > niqe[50]
