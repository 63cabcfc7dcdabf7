"""Two special functions the scorer needs on every image, in numpy alone.

``scipy.special`` costs about 0.2 s to import (its array-API layer clones the whole numpy namespace, which pulls
in ``numpy.ma`` and ``numpy.f2py``): more than the rest of a one-image score. The scorer needs only

* :func:`lgamma` — log Γ(x) for the BRISQUE/NIQE shape tables (evaluated once per process on a fixed grid), and
* :func:`ndtri` — the inverse of the standard normal CDF for the calibration model's quantile transform,

so they are computed here. Both agree with ``scipy.special.gammaln`` / ``ndtri`` to within a few units in the last
place (``tests/quality/test_special.py`` checks it), far below anything a score can show.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

F64 = NDArray[np.float64]

# Wichura, "Algorithm AS 241: The percentage points of the normal distribution", Applied Statistics 37 (1988),
# PPND16: rational approximations with relative error about 1e-16. Coefficients highest degree first.
_CENTRAL_NUM = (2.5090809287301226727e3, 3.3430575583588128105e4, 6.7265770927008700853e4, 4.5921953931549871457e4,
                1.3731693765509461125e4, 1.9715909503065514427e3, 1.3314166789178437745e2, 3.3871328727963666080e0)
_CENTRAL_DEN = (5.2264952788528545610e3, 2.8729085735721942674e4, 3.9307895800092710610e4, 2.1213794301586595867e4,
                5.3941960214247511077e3, 6.8718700749205790830e2, 4.2313330701600911252e1, 1.0)
_NEAR_NUM = (7.74545014278341407640e-4, 2.27238449892691845833e-2, 2.41780725177450611770e-1,
             1.27045825245236838258e0, 3.64784832476320460504e0, 5.76949722146069140550e0,
             4.63033784615654529590e0, 1.42343711074968357734e0)
_NEAR_DEN = (1.05075007164441684324e-9, 5.47593808499534494600e-4, 1.51986665636164571966e-2,
             1.48103976427480074590e-1, 6.89767334985100004550e-1, 1.67638483018380384940e0,
             2.05319162663775882187e0, 1.0)
_FAR_NUM = (2.01033439929228813265e-7, 2.71155556874348757815e-5, 1.24266094738807843860e-3,
            2.65321895265761230930e-2, 2.96560571828504891230e-1, 1.78482653991729133580e0,
            5.46378491116411436990e0, 6.65790464350110377720e0)
_FAR_DEN = (2.04426310338993978564e-15, 1.42151175831644588870e-7, 1.84631831751005468180e-5,
            7.86869131145613259100e-4, 1.48753612908506148525e-2, 1.36929880922735805310e-1,
            5.99832206555887937690e-1, 1.0)  # fmt: skip


def _horner(coefficients: tuple[float, ...], x: F64) -> F64:
    out = np.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        out = out * x + c
    return out


def ndtri(p: ArrayLike) -> F64:
    """x with Φ(x) = p, elementwise (float64); ±inf at 0 and 1, NaN outside [0, 1] and for NaN."""
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    out = np.full(p.shape, np.nan)
    central = np.abs(q) <= 0.425
    if central.any():
        qc = q[central]
        r = 0.180625 - qc * qc
        out[central] = qc * _horner(_CENTRAL_NUM, r) / _horner(_CENTRAL_DEN, r)
    tail = ~central & (p > 0.0) & (p < 1.0)
    if tail.any():
        qt = q[tail]
        r = np.sqrt(-np.log(np.where(qt < 0.0, p[tail], 1.0 - p[tail])))
        near = r <= 5.0
        x = np.empty_like(r)
        rn, rf = r[near] - 1.6, r[~near] - 5.0
        x[near] = _horner(_NEAR_NUM, rn) / _horner(_NEAR_DEN, rn)
        x[~near] = _horner(_FAR_NUM, rf) / _horner(_FAR_DEN, rf)
        out[tail] = np.where(qt < 0.0, -x, x)
    out[p == 0.0] = -np.inf
    out[p == 1.0] = np.inf
    return out


def lgamma(x: ArrayLike) -> F64:
    """log |Γ(x)| elementwise (float64), through :func:`math.lgamma` (meant for tables, not per-pixel work)."""
    arr = np.asarray(x, dtype=np.float64)
    flat = np.fromiter((math.lgamma(v) for v in arr.ravel().tolist()), dtype=np.float64, count=arr.size)
    return flat.reshape(arr.shape)
