"""The dashboard's exception tree.

Every message says what went wrong and what to do; the web app shows ``str(err)`` (escaped) to the user.

    DashboardError (comfy_quality.errors.ComfyQualityError)
    ├── DashboardConfigError   settings that cannot work (e.g. a public bind without a token); a SettingsError
    ├── BadRequestError        a query parameter the dashboard cannot use (names the parameter)
    ├── NotFoundError          no such generation, attempt or image
    └── DashboardImageError    an image exists but cannot be served or thumbnailed (not an image, too large)

Errors of the storage layer (:class:`storage.StorageError`) are mapped to these at the web boundary.
``ImageError`` is the former name of :class:`DashboardImageError` (kept as an alias; ``quality.errors.ImageError``
is the scorer's).
"""

from __future__ import annotations

from comfy_quality.errors import ComfyQualityError, SettingsError


class DashboardError(ComfyQualityError):
    """Base class of every error raised by :mod:`dashboard`."""

    status_code = 500


class DashboardConfigError(DashboardError, SettingsError):
    """The dashboard settings cannot work as given."""


class BadRequestError(DashboardError):
    """A request parameter is not valid."""

    status_code = 400

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class NotFoundError(DashboardError):
    """The requested generation, attempt or image does not exist."""

    status_code = 404


class DashboardImageError(DashboardError):
    """An image cannot be served or thumbnailed."""

    status_code = 422


ImageError = DashboardImageError
"""The former name of :class:`DashboardImageError` (``dashboard.ImageError``), kept for callers."""
