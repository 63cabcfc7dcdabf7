"""How S3 errors are classified (retry or not, missing or not) and explained to people."""

from __future__ import annotations

import urllib3
from minio.error import InvalidResponseError, S3Error, ServerError

from storage.errors import UploadVerificationError

TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "OperationAborted",
        "XMinioServerNotInitialized",
    }
)
__all__ = ["UploadVerificationError", "describe_error", "is_not_found", "is_transient"]

NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"})


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the network or the server had a passing problem."""
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | UploadVerificationError):
        return True
    if isinstance(exc, ServerError):
        return True
    if isinstance(exc, InvalidResponseError):
        return exc._code >= 500 if hasattr(exc, "_code") else True
    if isinstance(exc, S3Error):
        return exc.code in TRANSIENT_CODES or exc.response.status >= 500
    return False


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, S3Error) and exc.code in NOT_FOUND_CODES


def describe_error(exc: BaseException, where: str, bucket: str) -> str:
    """A message that says what failed and what to do (``where``: e.g. 'S3 at http://host:9000')."""
    if isinstance(exc, S3Error):
        if exc.code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return (
                f"{where} rejected the credentials ({exc.code}); "
                "check COMFY_QUALITY_STORAGE_S3_ACCESS_KEY and COMFY_QUALITY_STORAGE_S3_SECRET_KEY"
            )
        if exc.code == "AccessDenied":
            return (
                f"{where} denied access to bucket {bucket!r}: check "
                "COMFY_QUALITY_STORAGE_S3_ACCESS_KEY and COMFY_QUALITY_STORAGE_S3_SECRET_KEY, "
                "and that this key may read and write the bucket"
            )
        return f"{where} answered {exc.code}: {exc.message}"
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return (
            f"cannot reach {where} ({type(exc).__name__}); "
            "start the server or fix COMFY_QUALITY_STORAGE_S3_ENDPOINT"
        )
    return f"{where} failed: {type(exc).__name__}: {exc}"
