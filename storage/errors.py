"""The storage package's exception tree.

Every message says what went wrong *and what to do about it*; callers show ``str(err)`` as is.

    StorageError (comfy_quality.errors.ComfyQualityError)
    ├── MetadataError            a metadata document is not valid (corrupt JSON, wrong types, unknown version)
    ├── ObjectNotFoundError      no image / metadata under that key or generation id
    ├── InvalidKeyError          a key or generation id that is not safe to store under
    ├── InvalidObjectURLError    a URL that names no object of this store (parse_object_url, read_url)
    ├── ObjectTooLargeError      an object over the size the caller accepts
    ├── StorageConfigError       settings that cannot work (missing credentials, bad endpoint); a SettingsError
    ├── StorageUnavailableError  the backend cannot be reached *and* the image could not be spooled either
    ├── StorageIndexError        the SQLite index cannot be opened, migrated or queried
    ├── EmptyImageError          an image of 0 bytes given to store (nothing to store); also a ValueError
    ├── UploadVerificationError  S3 acknowledged a write whose ETag or size differs (retried; storage.s3_errors)
    └── SpoolCorruptError        a spooled object that no longer matches its manifest (storage.spool)
"""

from __future__ import annotations

from comfy_quality.errors import ComfyQualityError, SettingsError


class StorageError(ComfyQualityError):
    """Base class of every error raised by :mod:`storage`."""


class MetadataError(StorageError):
    """A metadata document cannot be read as :class:`storage.metadata.GenerationMetadata`."""


class ObjectNotFoundError(StorageError):
    """No object (image or metadata) exists under the requested key or generation id."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class InvalidKeyError(StorageError):
    """A key or generation id that would escape the store or is otherwise unsafe."""


class InvalidObjectURLError(StorageError):
    """A URL that does not name an object this store can read."""


class ObjectTooLargeError(StorageError):
    """The object is larger than the limit the caller set."""


class StorageConfigError(StorageError, SettingsError):
    """The storage settings cannot work as given."""


class StorageUnavailableError(StorageError):
    """The backend is unreachable and the fallback (the local spool) failed as well."""


class StorageIndexError(StorageError):
    """The SQLite index cannot be opened, migrated or queried."""


class EmptyImageError(StorageError, ValueError):
    """An image of 0 bytes was given to store. ``ValueError`` too: it is an argument the caller got wrong."""


class UploadVerificationError(StorageError):
    """The server acknowledged a write whose ETag and size do not match what was sent (retried)."""
