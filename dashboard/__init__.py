"""dashboard: a read-only web dashboard over the stored generations (gallery, a generation's attempts, charts).

    from dashboard import build_app, DashboardSettings
    app = build_app(DashboardSettings())            # a Starlette app; mountable under a prefix

``python -m dashboard`` serves it on 127.0.0.1; ``python -m dashboard rebuild-index`` fills the index from the
store. See dashboard/README.md.
"""

# The public names are loaded on first use (PEP 562): importing one submodule (say the settings, for the
# unknown-variable check of another entry point) must not pull in the server and its web stack.
from __future__ import annotations

from typing import TYPE_CHECKING

from comfy_quality.lazy import lazy_exports

if TYPE_CHECKING:
    from dashboard.app import build_app
    from dashboard.errors import (
        BadRequestError,
        DashboardConfigError,
        DashboardError,
        DashboardImageError,
        ImageError,
        NotFoundError,
    )
    from dashboard.settings import DashboardSettings
    from dashboard.state import DashboardState

_LAZY = {
    "build_app": "dashboard.app",
    "BadRequestError": "dashboard.errors",
    "DashboardConfigError": "dashboard.errors",
    "DashboardError": "dashboard.errors",
    "DashboardImageError": "dashboard.errors",
    "ImageError": "dashboard.errors",
    "NotFoundError": "dashboard.errors",
    "DashboardSettings": "dashboard.settings",
    "DashboardState": "dashboard.state",
}

__all__ = [
    "BadRequestError",
    "DashboardConfigError",
    "DashboardError",
    "DashboardImageError",
    "DashboardSettings",
    "DashboardState",
    "ImageError",
    "NotFoundError",
    "build_app",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
