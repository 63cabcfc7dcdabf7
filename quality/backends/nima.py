"""NIMA (Talebi & Milanfar): a CNN predicts the distribution of 1–10 human ratings (AVA); we report its mean.

The network is a timm backbone (``inception_resnet_v2`` for the published AVA weights) used as a feature
extractor, global average pooling, and a linear layer + softmax over 10 rating bins. The module layout matches
the published checkpoint (``base_model.*``, ``classifier.2.*``), so the file loads as is. The backbone is built
*without* ImageNet weights (they would be overwritten by the checkpoint anyway, and fetching them would need a
download).

Pre-processing: resize the short side to the backbone's input size (299 for Inception-ResNet-v2) with antialiased
bilinear interpolation, center crop, normalise with the backbone's mean/std.

Options: ``nima.arch`` (timm name), ``nima.weights`` (weights entry), ``nima.classes`` (10).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from quality.backends.base import Backend, LoadContext
from quality.backends.torch_util import image_tensor, load_into, read_state_dict, sha_tag
from quality.image_io import PreparedImage


class NIMANet(nn.Module):
    def __init__(self, arch: str, num_classes: int = 10) -> None:
        super().__init__()
        import timm

        base: Any = timm.create_model(arch, pretrained=False, features_only=True)
        self.base_model = base
        channels = int(base.feature_info.channels()[-1])
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(p=0.0), nn.Linear(channels, num_classes), nn.Softmax(dim=-1)
        )
        cfg: dict[str, Any] = dict(base.pretrained_cfg or {})
        self.input_size = int(cfg.get("input_size", (3, 224, 224))[-1])
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) in [0, 1] → rating distribution (N, classes)."""
        import torchvision.transforms.functional as tf

        x = tf.resize(x, self.input_size, antialias=True)
        x = tf.center_crop(x, [self.input_size, self.input_size])
        x = (x - self.mean) / self.std
        feats = self.base_model(x)[-1]
        dist: torch.Tensor = self.classifier(self.global_pool(feats))
        return dist


class NIMABackend(Backend):
    def __init__(self) -> None:
        super().__init__()
        self.net: NIMANet | None = None
        self.device = "cpu"
        self._version = ""

    def load(self, ctx: LoadContext) -> None:
        arch = str(ctx.options.get("nima.arch", "inception_resnet_v2"))
        weights_name = str(ctx.options.get("nima.weights", "nima_inception_resnet_v2_ava"))
        classes = int(str(ctx.options.get("nima.classes", 10)))
        path = ctx.weights.path(weights_name)
        net = NIMANet(arch, classes)
        load_into(net, read_state_dict(path), source=path)
        ctx.weights.confirm(weights_name)  # an unpinned file's checksum is recorded only once it has loaded
        self.device = ctx.device
        self.net = net.to(ctx.device).eval()
        digest = ctx.weights.digest(weights_name)
        self._version = f"nima/1 timm:{arch} {sha_tag(path, digest)}"

    @torch.inference_mode()
    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        assert self.net is not None
        rgb = image.fit(1024)
        x = image_tensor(rgb)
        dist = self.net(x.to(self.device)).float().reshape(-1)
        bins = torch.arange(1, dist.numel() + 1, dtype=dist.dtype, device=dist.device)
        return {"nima_mean": float((dist * bins).sum())}

    def versions(self) -> dict[str, str]:
        return {"nima_mean": self._version}
