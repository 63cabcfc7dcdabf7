"""The one place that turns storage settings into a store: :func:`open_store`.

It imports the implementations (:mod:`storage.local`, and :mod:`storage.s3` only when the S3 backend is asked
for, so a local user never loads the minio client); they import :mod:`storage.store` and never this module, so
the store modules form no import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.errors import StorageConfigError
from storage.store import Store

if TYPE_CHECKING:
    from storage.settings import StorageSettings


def open_store(settings: StorageSettings | None = None) -> Store:
    """The store the settings describe (``StorageSettings()`` reads the environment)."""
    from storage.settings import StorageSettings

    settings = settings or StorageSettings()
    if settings.backend == "local":
        from storage.local import LocalStore

        return LocalStore(settings.local_root, public_base_url=settings.public_base_url)
    if settings.backend == "s3":
        from storage.s3 import S3Store

        return S3Store.from_settings(settings)
    raise StorageConfigError(f"unknown storage backend {settings.backend!r}: use 'local' or 's3'")
