"""MinIO / S3 store on the ``minio`` SDK, with a local spool so no generated image is ever lost.

Writes: images first, then ``metadata.json``, then the ``ids/`` pointer; each object is retried with
exponential backoff on transient errors (connection refused, timeouts, 5xx, SlowDown) and verified (ETag =
MD5 of the bytes, or the stored size). If any write of a generation fails, the whole generation goes to the
:class:`storage.spool.Spool` and ``put_generation`` returns ``status='spooled'`` with a ``file://`` URL. For
the next ``spool_flush_interval_seconds`` new writes go straight to the spool (no waiting on a dead server);
a background flusher (and :meth:`S3Store.flush_spool`) uploads spooled entries, re-renders their metadata
with ``status='stored'`` and the S3 URLs, verifies, then deletes the entry, and tells flush listeners.

URLs: ``<public_base_url>/<key>`` if configured, else a presigned GET URL (``presign``, the default), else
the path-style endpoint URL ``http(s)://endpoint/bucket/key`` (fetchable only if the bucket allows it).
Object user metadata: ``x-amz-meta-generation-id``, ``-kind`` (best/attempt/metadata/pointer), ``-attempt``,
``-grade``, ``-composite``, ``-schema-version``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import check_bucket_name
from pydantic import SecretStr

from storage import layout
from storage.errors import (
    EmptyImageError,
    InvalidObjectURLError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    StorageConfigError,
    StorageUnavailableError,
)
from storage.metadata import Backend, GenerationMetadata
from storage.s3_errors import UploadVerificationError, describe_error, is_not_found, is_transient
from storage.spool import Spool, SpoolCorruptError, SpoolEntry
from storage.store import (
    AttemptImage,
    FlushReport,
    GenerationPlan,
    ObjectWrite,
    StoreBase,
    StoredObject,
    StoreHealth,
    expiry_time,
    finish,
    notify,
    parse_pointer,
    plan_generation,
)

if TYPE_CHECKING:
    from storage.settings import StorageSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class S3Store(StoreBase):
    """Images and metadata in an S3 bucket (MinIO, SeaweedFS, AWS...), spooled locally while it is down."""

    backend: Backend = "s3"

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        spool_dir: Path | str,
        access_key: SecretStr | str | None = None,
        secret_key: SecretStr | str | None = None,
        secure: bool = False,
        region: str = "us-east-1",
        presign: bool = True,
        presign_expiry: timedelta = timedelta(days=7),
        public_base_url: str | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        timeout: float = 10.0,
        flush_interval: float = 30.0,
    ) -> None:
        super().__init__()
        try:
            self.endpoint, self.secure = layout.normalize_endpoint(endpoint, secure=secure)
            check_bucket_name(bucket)
        except (InvalidObjectURLError, ValueError) as exc:
            raise StorageConfigError(f"S3 settings are not usable: {exc}") from exc
        self.bucket = bucket
        self.presign = presign
        self.presign_expiry = presign_expiry
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.retries, self.backoff, self.backoff_max = retries, backoff, backoff_max
        self.flush_interval = flush_interval
        self.spool = Spool(spool_dir)
        access = access_key.get_secret_value() if isinstance(access_key, SecretStr) else access_key
        secret = secret_key.get_secret_value() if isinstance(secret_key, SecretStr) else secret_key
        if bool(access) != bool(secret):
            raise StorageConfigError("set both the S3 access key and the secret key, or neither (anonymous)")
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=urllib3.Retry(total=0, redirect=0),  # we retry ourselves, with backoff, then spool
            maxsize=16,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        )
        self._client = Minio(
            self.endpoint,
            access_key=access,
            secret_key=secret,
            secure=self.secure,
            region=region,
            http_client=http,
        )
        self._bucket_ready = False
        self._skip_until = 0.0  # monotonic time before which writes go straight to the spool
        self._last_error: str | None = None
        self._flush_lock: asyncio.Lock | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None

    @classmethod
    def from_settings(cls, settings: StorageSettings) -> S3Store:
        if not settings.s3_endpoint:
            raise StorageConfigError(
                "the s3 backend needs an endpoint: set COMFY_QUALITY_STORAGE_S3_ENDPOINT (e.g. minio:9000)"
            )
        if settings.s3_access_key is None:
            log.warning(
                "no S3 credentials configured: using anonymous access (writes will likely be refused)"
            )
        return cls(
            endpoint=settings.s3_endpoint,
            bucket=settings.s3_bucket,
            spool_dir=settings.spool_dir,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
            presign=settings.s3_presign,
            presign_expiry=timedelta(seconds=settings.s3_presign_expiry_seconds),
            public_base_url=settings.public_base_url,
            retries=settings.s3_retries,
            backoff=settings.s3_backoff_seconds,
            backoff_max=settings.s3_backoff_max_seconds,
            timeout=settings.s3_timeout_seconds,
            flush_interval=settings.spool_flush_interval_seconds,
        )

    def __repr__(self) -> str:
        return f"S3Store(endpoint={self.endpoint!r}, bucket={self.bucket!r}, spool={str(self.spool.root)!r})"

    @property
    def client(self) -> Minio:
        """The underlying ``minio`` client (for tests and admin tasks)."""
        return self._client

    # -- error handling ------------------------------------------------------------------------------------
    def describe(self, exc: BaseException) -> str:
        """A message that says what failed and what to do."""
        return describe_error(
            exc, f"S3 at {'https' if self.secure else 'http'}://{self.endpoint}", self.bucket
        )

    def _retrying(self, fn: Callable[[], T], *, retries: int | None = None) -> T:
        """Run ``fn`` (in a worker thread), retrying transient errors with exponential backoff."""
        retries = self.retries if retries is None else retries
        delay = self.backoff
        for attempt in range(retries + 1):
            try:
                return fn()
            except Exception as exc:
                if attempt == retries or not is_transient(exc):
                    raise
                log.info(
                    "S3 %s (attempt %d/%d); retrying in %.2fs",
                    type(exc).__name__,
                    attempt + 1,
                    retries + 1,
                    delay,
                )
                time.sleep(min(delay, self.backoff_max))
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    # -- URLs ----------------------------------------------------------------------------------------------
    def url_for(self, key: str, *, presigned: bool | None = None, expires: timedelta | None = None) -> str:
        return self._url(key, presigned=presigned, expires=expires)[0]

    def _url(
        self, key: str, *, presigned: bool | None = None, expires: timedelta | None = None
    ) -> tuple[str, datetime | None]:
        layout.check_key(key)
        if presigned is None and self.public_base_url:
            return f"{self.public_base_url}/{layout.quote_key(key)}", None
        if self.presign if presigned is None else presigned:
            lifetime = expires or self.presign_expiry
            return self._client.presigned_get_object(self.bucket, key, expires=lifetime), expiry_time(
                lifetime
            )
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.endpoint}/{self.bucket}/{layout.quote_key(key)}", None

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # -- writing -------------------------------------------------------------------------------------------
    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        if not self._retrying(lambda: self._client.bucket_exists(self.bucket)):
            try:
                self._retrying(lambda: self._client.make_bucket(self.bucket))
                log.info("created bucket %s on %s", self.bucket, self.endpoint)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        self._bucket_ready = True

    def _matches(self, bucket: str, obj: ObjectWrite, etag: str | None) -> bool:
        if etag and etag.strip('"') == hashlib.md5(obj.data, usedforsecurity=False).hexdigest():
            return True
        stat = self._client.stat_object(bucket, obj.key)
        return stat.size == len(obj.data)

    def _put_verified(self, bucket: str, obj: ObjectWrite) -> None:
        result = self._client.put_object(
            bucket,
            obj.key,
            io.BytesIO(obj.data),
            len(obj.data),
            content_type=obj.content_type,
            metadata=dict[str, str | list[str] | tuple[str]](obj.meta),
        )
        if not self._matches(bucket, obj, result.etag):
            raise UploadVerificationError(f"{obj.key}: the stored object does not match the bytes sent")

    def _already_there(self, bucket: str, obj: ObjectWrite) -> bool:
        try:
            stat = self._client.stat_object(bucket, obj.key)
        except S3Error as exc:
            if is_not_found(exc):
                return False
            raise
        md5 = hashlib.md5(obj.data, usedforsecurity=False).hexdigest()
        return stat.size == len(obj.data) and (stat.etag or "").strip('"') == md5

    def _upload(self, bucket: str, objects: list[ObjectWrite], *, skip_existing: bool = False) -> None:
        if bucket == self.bucket:
            self._ensure_bucket()
        for obj in objects:
            if (
                skip_existing
                and obj.role == "image"
                and self._retrying(partial(self._already_there, bucket, obj))
            ):
                continue
            self._retrying(partial(self._put_verified, bucket, obj))

    def _spooled_url(self, name: str) -> Callable[[str], tuple[str, datetime | None]]:
        return lambda key: (self.spool.object_path(name, key).as_uri(), None)

    def _mark_down(self, exc: BaseException) -> None:
        self._last_error = self.describe(exc)
        self._skip_until = time.monotonic() + self.flush_interval
        log.warning("%s: spooling to %s until it is back", self._last_error, self.spool.root)

    async def put_generation(
        self,
        image_bytes: bytes | None,
        metadata: GenerationMetadata,
        *,
        content_type: str | None = None,
        attempt_images: Mapping[int, bytes] | None = None,
    ) -> StoredObject:
        self._ensure_flusher()
        plan = plan_generation(image_bytes, metadata, content_type, attempt_images)
        if time.monotonic() >= self._skip_until:
            md, objects = finish(
                plan, backend="s3", status="stored", bucket=self.bucket, uri=self._uri, url=self._url
            )
            try:
                await asyncio.to_thread(self._upload, self.bucket, objects)
                return self._stored(plan, md, "stored")
            except Exception as exc:  # whatever went wrong, the image must not be lost: spool it
                self._mark_down(exc)
        return await self._spool_generation(plan)

    async def _spool_generation(self, plan: GenerationPlan) -> StoredObject:
        gid = plan.metadata.generation_id
        name = self.spool.new_name(gid)
        md, objects = finish(
            plan,
            backend="s3",
            status="spooled",
            bucket=self.bucket,
            uri=self._uri,
            url=self._spooled_url(name),
        )
        await asyncio.to_thread(self.spool.commit, name, self.bucket, gid, objects)
        log.info("generation %s spooled as %s", gid, name)
        return self._stored(plan, md, "spooled")

    @staticmethod
    def _stored(plan: GenerationPlan, md: GenerationMetadata, status: str) -> StoredObject:
        return StoredObject(
            generation_id=md.generation_id,
            status="spooled" if status == "spooled" else "stored",
            key=plan.best_key,
            metadata_key=plan.metadata_key,
            url=md.storage.url if md.storage else None,
            metadata=md,
        )

    async def put_attempt_image(
        self,
        generation_id: str,
        timestamp: datetime,
        attempt: int,
        image_bytes: bytes,
        *,
        content_type: str | None = None,
    ) -> AttemptImage:
        self._ensure_flusher()
        if not image_bytes:
            raise EmptyImageError(f"attempt {attempt}'s image is empty (0 bytes): nothing to store")
        facts = layout.image_facts(image_bytes, content_type)
        key = layout.attempt_key(generation_id, timestamp, attempt, facts.ext)
        meta = {"generation-id": generation_id, "kind": "attempt", "attempt": str(attempt)}
        obj = ObjectWrite(key, image_bytes, facts.content_type, "image", meta)
        if time.monotonic() >= self._skip_until:
            try:
                await asyncio.to_thread(self._upload, self.bucket, [obj])
                return AttemptImage(attempt=attempt, key=key, url=self.url_for(key), status="stored")
            except Exception as exc:
                self._mark_down(exc)
        name = self.spool.new_name(generation_id)
        await asyncio.to_thread(self.spool.commit, name, self.bucket, generation_id, [obj])
        return AttemptImage(
            attempt=attempt, key=key, url=self.spool.object_path(name, key).as_uri(), status="spooled"
        )

    # -- the spool -----------------------------------------------------------------------------------------
    def _flush_entry(self, entry: SpoolEntry) -> GenerationMetadata | None:
        objects: list[ObjectWrite] = []
        final: GenerationMetadata | None = None
        for item in entry.objects:
            data = self.spool.read(entry, item)
            if item.role == "metadata":
                final = GenerationMetadata.from_json(data, source=f"spooled {item.key}")
                if final.storage is not None:
                    final.storage.status = "stored"
                    if final.storage.key:
                        final.storage.url, final.storage.url_expires_at = self._url(final.storage.key)
                for record in final.refinement.attempts:
                    if record.image_key:
                        record.image_url = self._url(record.image_key)[0]
                data = final.to_json()
            objects.append(ObjectWrite(item.key, data, item.content_type, item.role, item.meta))
        self._upload(entry.bucket, objects, skip_existing=True)
        self.spool.remove(entry)
        return final

    def _flush_all(self) -> tuple[FlushReport, list[GenerationMetadata]]:
        report, flushed = FlushReport(), list[GenerationMetadata]()
        with self.spool.lock() as held:
            if not held:
                report.remaining = self.spool.count()
                return report, flushed
            self.spool.clean_stale()
            for entry in self.spool.entries():
                try:
                    md = self._flush_entry(entry)
                except SpoolCorruptError as exc:
                    report.failed[entry.name] = str(exc)
                    self.spool.quarantine(entry)
                    continue
                except Exception as exc:
                    report.failed[entry.name] = self.describe(exc)
                    if is_transient(exc):
                        break  # the server is down: the other entries would fail the same way
                    continue
                report.uploaded.append(entry.name)
                if md is not None:
                    flushed.append(md)
            report.remaining = self.spool.count()
        return report, flushed

    def pending_keys(self) -> set[str]:
        """Keys waiting in the spool (written while S3 was down, not uploaded yet). Readers must not hand out
        a URL for them: a presigned or public URL would name an object not in S3 yet, and the spool's ``file://``
        URL is server-local and dies at the flush. Reads the spool's manifests (small JSON files)."""
        return self.spool.spooled_keys()

    async def flush_spool(self) -> FlushReport:
        """Upload every spooled entry now (idempotent); entries are deleted only after a verified upload."""
        self._ensure_flusher()
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:
            report, flushed = await asyncio.to_thread(self._flush_all)
        if report.uploaded:
            log.info("uploaded %d spooled entr(y/ies), %d remain", len(report.uploaded), report.remaining)
        if report.ok:
            self._skip_until, self._last_error = 0.0, None
        else:
            self._last_error = next(iter(report.failed.values()))
        for md in flushed:
            await notify(self._listeners, md)
        return report

    def _ensure_flusher(self) -> None:
        loop = asyncio.get_running_loop()
        if self._flusher is not None and not self._flusher.done() and self._flusher.get_loop() is loop:
            return
        self._flush_lock = asyncio.Lock()
        self._closing = asyncio.Event()
        self._flusher = loop.create_task(self._flush_loop(self._closing), name="s3-spool-flusher")

    async def _flush_loop(self, closing: asyncio.Event) -> None:
        delay = self.flush_interval
        while not closing.is_set():
            try:
                await asyncio.wait_for(closing.wait(), timeout=delay)
                return
            except TimeoutError:
                pass
            if await asyncio.to_thread(self.spool.count) == 0:
                delay = self.flush_interval
                continue
            try:
                report = await self.flush_spool()
            except Exception:
                log.exception("spool flush failed")
                report = FlushReport(failed={"*": "unexpected error"})
            delay = self.flush_interval if report.ok else min(delay * 2, self.flush_interval * 8)

    async def aclose(self) -> None:
        """Stop the background flusher (spooled entries stay on disk for the next start)."""
        if self._closing is not None:
            self._closing.set()
        if self._flusher is not None and not self._flusher.done():
            try:
                if self._flusher.get_loop() is asyncio.get_running_loop():
                    await self._flusher
            except asyncio.CancelledError:
                pass
        self._flusher = None

    async def __aenter__(self) -> S3Store:
        self._ensure_flusher()
        return self

    # -- reading -------------------------------------------------------------------------------------------
    def _get(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes:
        if bucket == self.bucket and (found := self.spool.find(key)) is not None:
            return self.spool.read(*found)
        try:
            if max_bytes is not None:
                size = self._retrying(lambda: self._client.stat_object(bucket, key)).size or 0
                if size > max_bytes:
                    raise ObjectTooLargeError(
                        f"s3://{bucket}/{key} has {size} bytes, over the limit of {max_bytes}"
                    )
            response = self._retrying(lambda: self._client.get_object(bucket, key))
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()
        except (S3Error, ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, OSError) as exc:
            if is_not_found(exc):
                raise ObjectNotFoundError(f"no object s3://{bucket}/{key}", key=key) from exc
            raise StorageUnavailableError(f"cannot read s3://{bucket}/{key}: {self.describe(exc)}") from exc

    async def get_image(self, key: str) -> bytes:
        return await asyncio.to_thread(self._get, self.bucket, layout.check_key(key))

    async def read_url(self, url: str, *, max_bytes: int | None = None) -> bytes:
        if self.public_base_url and url.startswith(self.public_base_url + "/"):
            ref = layout.ObjectRef(
                self.bucket, layout.check_key(url[len(self.public_base_url) + 1 :].split("?")[0])
            )
        else:
            ref = layout.parse_object_url(url, endpoint=self.endpoint, secure=self.secure)
        return await asyncio.to_thread(self._get, ref.bucket, ref.key, max_bytes)

    async def get_metadata(self, ref: str) -> GenerationMetadata:
        if "/" in ref:
            key = layout.check_key(ref)
        else:
            pointer = await asyncio.to_thread(self._get, self.bucket, layout.pointer_key(ref))
            try:
                key = parse_pointer(pointer)
            except (ValueError, KeyError) as exc:
                raise ObjectNotFoundError(
                    f"the pointer of generation {ref!r} is damaged ({exc})", key=ref
                ) from exc
        data = await asyncio.to_thread(self._get, self.bucket, key)
        return GenerationMetadata.from_json(data, source=f"s3://{self.bucket}/{key}")

    def _list_keys(self, prefix: str) -> list[str]:
        try:
            listed = {
                o.object_name
                for o in self._client.list_objects(self.bucket, prefix=prefix, recursive=True)
                if o.object_name and layout.is_metadata_key(o.object_name)
            }
        except (S3Error, ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, OSError) as exc:
            if not is_not_found(exc):
                raise StorageUnavailableError(
                    f"cannot list s3://{self.bucket}/{prefix}: {self.describe(exc)}"
                ) from exc
            listed = set()
        spooled = {k for k in self.spool.spooled_keys() if layout.is_metadata_key(k) and k.startswith(prefix)}
        return sorted(listed | spooled)

    async def list_metadata_keys(self, prefix: str | None = None) -> AsyncIterator[str]:
        for key in await asyncio.to_thread(self._list_keys, prefix or layout.GENERATIONS_PREFIX):
            yield key

    async def health(self) -> StoreHealth:
        self._ensure_flusher()
        location = f"{self.endpoint}/{self.bucket}"
        spooled = await asyncio.to_thread(self.spool.count)
        try:
            exists = await asyncio.to_thread(
                self._retrying, lambda: self._client.bucket_exists(self.bucket), retries=0
            )
        except Exception as exc:
            return StoreHealth(
                backend="s3", ok=False, location=location, spooled=spooled, detail=self.describe(exc)
            )
        self._skip_until = 0.0
        detail = (
            "bucket reachable" if exists else "server reachable; the bucket is created on the first write"
        )
        if spooled:
            detail += f"; {spooled} spooled entr(y/ies) wait for upload"
        return StoreHealth(backend="s3", ok=True, location=location, spooled=spooled, detail=detail)
