"""The URLs a client gets for stored images are resolved when it asks, from store keys, never cached.

A generation's URLs depend on where its objects are *now*: while S3 is down they wait in the server's local
spool (no URL of the store serves them yet, and the spool's ``file://`` path is server-local and dies at the
flush); after the flush they are in S3 and get the store's URL (public, presigned or endpoint). So the job
result and the index keep *keys*, and every answer (``generate_quality``, ``generation_status``,
``list_generations``) asks a :class:`UrlLocator` for each key at read time:

* a key still in the spool → ``image_url: null`` and ``storage: "pending_upload"``;
* otherwise → the store's URL for it (a fresh presigned URL, so it does not expire while the job is kept) and
  ``storage: "stored"``.

A spool ``file://`` URL is never handed to a client: without a locator (a server built without a store), a
result that was spooled answers ``pending_upload`` with null URLs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from comfy_quality.boundary import recorded_reason
from refinement.api import AttemptSummary, GenerationResult

if TYPE_CHECKING:
    from storage import Store

log = logging.getLogger(__name__)

StorageState = Literal["stored", "pending_upload"]

PENDING_MESSAGE = (
    "the object store is unreachable, so the image waits in the server's spool and is uploaded when the store is "
    "back (storage: pending_upload); image_url is null until then: call generation_status again later"
)


Location = tuple[str | None, bool]
"""(a URL a client can fetch now or None, pending upload)"""


@runtime_checkable
class UrlLocator(Protocol):
    def locate(self, keys: Iterable[str]) -> dict[str, Location]:
        """key → (URL or None, True while the object waits in the spool for upload)."""
        ...


class StoreUrls:
    """:class:`UrlLocator` over a :class:`storage.Store`: one spool scan per call, ``url_for`` for the rest."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def locate(self, keys: Iterable[str]) -> dict[str, Location]:
        wanted = [k for k in dict.fromkeys(keys) if k]
        if not wanted:
            return {}
        pending = self.store.pending_keys()
        out: dict[str, Location] = {}
        for key in wanted:
            if key in pending:
                out[key] = (None, True)
                continue
            try:
                out[key] = (self.store.url_for(key), False)
            except Exception as exc:  # a URL is a courtesy: the answer must not fail for it (a bug is logged)
                reason = recorded_reason(f"URL of {key}", exc, log)
                log.warning("no URL for %s: %s: %s", key, type(exc).__name__, reason)
                out[key] = (None, False)
        return out


def locator_of(candidate: object) -> UrlLocator | None:
    return candidate if isinstance(candidate, UrlLocator) else None


def resolve_result(
    result: GenerationResult, locator: UrlLocator | None
) -> tuple[str | None, str | None, list[AttemptSummary], StorageState | None]:
    """``(image_url, metadata_url, attempts, storage)`` of a finished job, resolved now."""
    attempt_keys = [a.image_key for a in result.attempts if a.image_key]
    keys = [k for k in (result.image_key, result.metadata_key, *attempt_keys) if k]
    if locator is None or not keys:
        if result.storage_status == "spooled":  # never a spool file:// URL to a client
            attempts = [a.model_copy(update={"image_url": None}) for a in result.attempts]
            return None, None, attempts, "pending_upload"
        return result.image_url, result.metadata_url, list(result.attempts), _state(result.storage_status)
    found = locator.locate(keys)

    def url(key: str | None) -> str | None:
        return found.get(key, (None, False))[0] if key else None

    attempts = [a.model_copy(update={"image_url": url(a.image_key)}) if a.image_key else a for a in result.attempts]
    pending = any(found.get(k, (None, False))[1] for k in (result.image_key, result.metadata_key) if k)
    return url(result.image_key), url(result.metadata_key), attempts, "pending_upload" if pending else "stored"


def _state(status: str | None) -> StorageState | None:
    if status is None:
        return None
    return "pending_upload" if status == "spooled" else "stored"
