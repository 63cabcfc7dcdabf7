"""Edge density: our own weight-free detail metric.

Definition (fixed so values compare across images and machines):

1. the image is downscaled so its long side is at most 1024 px (:meth:`PreparedImage.fit`), then converted to
   BT.601 luma (8-bit);
2. a 5×5 Gaussian blur (σ = 1.0) suppresses pixel noise, as Canny's first step prescribes;
3. Canny edge detection (OpenCV, L2 gradient) with fixed hysteresis thresholds 40 / 120 on the 8-bit luma;
4. ``edge_density = edge pixels / total pixels`` (0–1).

The 0–10 mapping (:class:`quality.specs.BandMap` on ``edge_density``) rewards a band of densities and penalises
both sides: too few edges means a soft, blurry or empty image; too many means noise, grain or high-frequency
artifacts. The band's end points come from the distribution on AI-generated images (AGIQA-3K, 1,977 images at
512²): the ideal band [0.025, 0.12] is the 10th–90th percentile of the best-rated quarter (MOS top quartile;
median 0.063), the lower zero point 0.003 lies below their 1st percentile (0.009) while a quarter of the
worst-rated images are under 0.0064; the upper zero point 0.40 is twice the largest density seen (0.19).
"""

from __future__ import annotations

import numpy as np

from quality.backends.base import Backend, LoadContext
from quality.errors import MetricError
from quality.image_io import PreparedImage

WORKING_SIDE = 1024
BLUR_SIGMA = 1.0
LOW_THRESHOLD = 40
HIGH_THRESHOLD = 120
VERSION = f"edges/1 canny({LOW_THRESHOLD},{HIGH_THRESHOLD}) sigma={BLUR_SIGMA} side<={WORKING_SIDE}"


def edge_density(rgb: np.ndarray) -> float:
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise MetricError(f"edge density needs an HxWx3 image, got shape {rgb.shape}", metric="edge_density")
    luma = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    blurred = cv2.GaussianBlur(luma, (5, 5), BLUR_SIGMA)
    edges = cv2.Canny(blurred, LOW_THRESHOLD, HIGH_THRESHOLD, L2gradient=True)
    return float(np.count_nonzero(edges)) / float(edges.size)


class EdgeBackend(Backend):
    uses_torch = False

    def load(self, ctx: LoadContext) -> None:
        import cv2  # noqa: F401  (fail at load time, not per image, if OpenCV is missing)

    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        return {"edge_density": edge_density(image.fit(WORKING_SIDE))}

    def versions(self) -> dict[str, str]:
        return {"edge_density": VERSION}
