"""The float32 moment-ratio tables of the GGD/AGGD fits, shipped as ``quality/data/nss_ratio_tables.npz``.

BRISQUE's reference (pyiqa 0.1.16) fits its shape parameters against tables evaluated in float32 with torch's
``lgamma`` and ``exp``. Their rounding differs from the exact values by up to 3e-6 (relative), enough to move
about 1 % of the nearest-grid choices by one step, and one step of a shape feature can move the BRISQUE score
by up to 0.1. So the tables are data: evaluated once with torch in float32 and shipped, which keeps the
backend free of torch at run time and gives the same values on every machine.

Regenerate (only if the reference changes) with ``python -m quality.backends.nss_tables`` (needs torch); the
test suite checks that the shipped file equals a fresh evaluation. torch's float32 ``lgamma``/``exp`` on x86 are
MKL's vector math, whose result depends on the code path MKL picks for the CPU: on AVX2/AVX-512 paths about 160
of the 9801 values of each table come out 1 ulp away from the unfused path the tables were made with (and that
``MKL_CBWR=COMPATIBLE`` forces on every x86 CPU), so ``main`` sets that mode before importing torch.

Arrays (float32, 9801 values each, for the shape grid ``0.2, 0.201, …, 10``):

* ``grid``: the grid as torch's float32 ``arange(0.2, 10.001, 0.001)`` produces it;
* ``ggd``: ``exp(lgamma(1/a) + lgamma(3/a) - 2 lgamma(2/a))`` (GGD ratio E[x²]/E[|x|]², decreasing);
* ``aggd``: ``exp(2 lgamma(2/a) - (lgamma(1/a) + lgamma(3/a)))`` (its reciprocal, increasing);
* ``eta``: ``exp(lgamma(2/a) - (lgamma(1/a) + lgamma(3/a)) / 2)`` (factor of BRISQUE's AGGD mean feature).
"""

from __future__ import annotations

import logging
import os
import sys
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

TABLES_FILE = "nss_ratio_tables.npz"
TABLE_NAMES = ("grid", "ggd", "aggd", "eta")


def evaluate_with_torch() -> dict[str, NDArray[np.float32]]:
    """Evaluate the tables in float32 with torch (the reference's arithmetic)."""
    import torch

    a = torch.arange(0.2, 10 + 0.001, 0.001, dtype=torch.float32)
    l1, l2, l3 = torch.lgamma(1.0 / a), torch.lgamma(2.0 / a), torch.lgamma(3.0 / a)
    tables = {
        "grid": a,
        "ggd": torch.exp(l1 + l3 - 2 * l2),
        "aggd": torch.exp(2 * l2 - (l1 + l3)),
        "eta": torch.exp(l2 - (l1 + l3) / 2),
    }
    return {name: t.numpy().astype(np.float32) for name, t in tables.items()}


def load_shipped() -> dict[str, NDArray[np.float32]]:
    ref = resources.files("quality") / "data" / TABLES_FILE
    with ref.open("rb") as fh, np.load(fh, allow_pickle=False) as data:
        return {name: np.asarray(data[name], dtype=np.float32) for name in TABLE_NAMES}


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if "torch" in sys.modules:
        log.warning("torch is already imported: MKL_CBWR=COMPATIBLE may not apply")
    os.environ.setdefault("MKL_CBWR", "COMPATIBLE")  # read by MKL once, when torch first calls it
    target = Path(str(resources.files("quality") / "data" / TABLES_FILE))
    t = evaluate_with_torch()
    np.savez_compressed(target, grid=t["grid"], ggd=t["ggd"], aggd=t["aggd"], eta=t["eta"])
    log.info("wrote %s", target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
