"""The dashboard's exception tree.

Every message says what went wrong and what to do; the web app shows ``str(err)`` (escaped) to the user.

    DashboardError
    ├── DashboardConfigError   settings that cannot work (e.g. a public bind without a token)
    ├── BadRequestError        a query parameter the dashboard cannot use (names the parameter)
    ├── NotFoundError          no such generation, attempt or image
    └── ImageError             an image exists but cannot be served or thumbnailed (not an image, too large)

Errors of the storage layer (:class:`storage.StorageError`) are mapped to these at the web boundary.
"""

from __future__ import annotations


class DashboardError(Exception):
    """Base class of every error raised by :mod:`dashboard`."""

    status_code = 500


class DashboardConfigError(DashboardError):
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


class ImageError(DashboardError):
    """An image cannot be served or thumbnailed."""

    status_code = 422
