"""dashboard: a read-only web dashboard over the stored generations (gallery, a generation's attempts, charts).

    from dashboard import build_app, DashboardSettings
    app = build_app(DashboardSettings())            # a Starlette app; mountable under a prefix

``python -m dashboard`` serves it on 127.0.0.1; ``python -m dashboard rebuild-index`` fills the index from the
store. See dashboard/README.md.
"""

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
