"""TOPIQ-NR (Chen et al., IEEE TIP 2024) through pyiqa's CFANet architecture, with our own weight handling.

pyiqa is imported only here (it is PolyForm-Noncommercial since 2026; replace this module to drop it). The
network is built with ``backbone_pretrain=False, pretrained=False`` (no download; the checkpoint holds every
tensor, backbone included) and the verified checkpoint is loaded by us. Input: RGB in [0, 1], downscaled so its
long side is at most 1024 px (the KonIQ model is fully convolutional + attention pooling; it was trained on
1024×768 images). Output: a 0–1 quality score (higher is better).

Options: ``topiq.backbone`` (timm name, default ``resnet50``), ``topiq.weights`` (weights entry).
"""

from __future__ import annotations

from typing import Any

import torch

from quality.backends.base import Backend, LoadContext
from quality.backends.torch_util import image_tensor, load_into, read_state_dict, sha_tag
from quality.image_io import PreparedImage

WORKING_SIDE = 1024


def build_cfanet(backbone: str) -> torch.nn.Module:
    from pyiqa.archs.topiq_arch import CFANet

    net: torch.nn.Module = CFANet(
        semantic_model_name=backbone,
        model_name="cfanet_nr_koniq_res50",
        use_ref=False,
        backbone_pretrain=False,
        pretrained=False,
    )
    return net


class TopiqBackend(Backend):
    def __init__(self) -> None:
        super().__init__()
        self.net: Any = None
        self.device = "cpu"
        self._version = ""

    def load(self, ctx: LoadContext) -> None:
        backbone = str(ctx.options.get("topiq.backbone", "resnet50"))
        weights_name = str(ctx.options.get("topiq.weights", "topiq_nr_koniq_res50"))
        path = ctx.weights.path(weights_name)
        net = build_cfanet(backbone)
        load_into(net, read_state_dict(path), source=path)
        ctx.weights.confirm(weights_name)  # an unpinned file's checksum is recorded only once it has loaded
        self.device = ctx.device
        self.net = net.to(ctx.device).eval()
        digest = ctx.weights.digest(weights_name)
        self._version = f"topiq-nr/1 cfanet:{backbone} {sha_tag(path, digest)}"

    @torch.inference_mode()
    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        rgb = image.fit(WORKING_SIDE)
        x = image_tensor(rgb)
        out = self.net(x.to(self.device))
        return {"topiq": float(torch.as_tensor(out).float().reshape(-1)[0])}

    def versions(self) -> dict[str, str]:
        return {"topiq": self._version}
