"""The local spool: where objects wait while S3 is down, so no generated image is ever lost.

One *entry* per failed write (a whole generation, or one attempt image)::

    <spool_dir>/<ns-time>-<generation_id>-<rand>/manifest.json      bucket, and per object: key, content
                                                                    type, role, user metadata, size, sha256
    <spool_dir>/<ns-time>-<generation_id>-<rand>/objects/<key>      the bytes, under their store key

An entry is written into ``.tmp-<name>`` and renamed into place (fsync'ed first), so after a crash an entry is
either complete or absent (an incomplete ``.tmp-`` folder is removed after an hour). Entries are uploaded in
name (= time) order and removed only after every object of the entry was uploaded and verified. A lock file
(``flock``) keeps two processes sharing a spool folder from flushing it at the same time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from storage import layout
from storage.errors import StorageError, StorageUnavailableError
from storage.store import ObjectWrite

try:  # POSIX only; elsewhere two processes may flush at once: redundant only (uploads are idempotent)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

STALE_TMP_SECONDS = 3600.0


class SpoolCorruptError(StorageError):
    """A spooled object no longer matches its manifest (disk damage or a hand edit)."""


class SpoolObject(BaseModel):
    key: str
    content_type: str
    role: str = Field(description="'image', 'metadata' or 'pointer'")
    meta: dict[str, str] = Field(default_factory=dict)
    size: int
    sha256: str
    md5: str


class SpoolEntry(BaseModel):
    version: int = 1
    name: str
    bucket: str
    generation_id: str | None = None
    created: datetime
    objects: list[SpoolObject]


class Spool:
    """A folder of pending uploads. Thread-safe for adds; flushes are serialised by :meth:`lock`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"Spool({str(self.root)!r})"

    def new_name(self, generation_id: str | None) -> str:
        return f"{time.time_ns():020d}-{generation_id or 'object'}-{uuid.uuid4().hex[:8]}"

    def object_path(self, name: str, key: str) -> Path:
        """Where an object of entry ``name`` lies once the entry is committed."""
        return self.root / name / "objects" / layout.check_key(key)

    def commit(
        self, name: str, bucket: str, generation_id: str | None, objects: list[ObjectWrite]
    ) -> SpoolEntry:
        """Write the entry atomically; raises :class:`StorageUnavailableError` if the disk refuses."""
        entry = SpoolEntry(
            name=name,
            bucket=bucket,
            generation_id=generation_id,
            created=datetime.now(UTC),
            objects=[
                SpoolObject(
                    key=o.key,
                    content_type=o.content_type,
                    role=o.role,
                    meta=o.meta,
                    size=len(o.data),
                    sha256=hashlib.sha256(o.data).hexdigest(),
                    md5=hashlib.md5(o.data, usedforsecurity=False).hexdigest(),
                )
                for o in objects
            ],
        )
        tmp = self.root / f".tmp-{name}"
        try:
            for obj in objects:
                path = tmp / "objects" / layout.check_key(obj.key)
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_synced(path, obj.data)
            _write_synced(tmp / "manifest.json", entry.model_dump_json(indent=1).encode())
            os.rename(tmp, self.root / name)
            _fsync_dir(self.root)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StorageUnavailableError(
                f"S3 is unreachable and the image could not be spooled to {self.root} either ({exc}); "
                "free disk space or set COMFY_QUALITY_STORAGE_SPOOL_DIR to a writable folder"
            ) from exc
        return entry

    def entries(self) -> list[SpoolEntry]:
        """Committed entries, oldest first (entries with an unreadable manifest are logged and left alone)."""
        if not self.root.is_dir():
            return []
        found: list[SpoolEntry] = []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or not path.is_dir():
                continue
            try:
                found.append(SpoolEntry.model_validate_json((path / "manifest.json").read_bytes()))
            except (OSError, ValidationError) as exc:
                log.error("spool entry %s is unreadable (%s); it is kept for inspection", path, exc)
        return found

    def count(self) -> int:
        if not self.root.is_dir():
            return 0
        return sum(1 for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def read(self, entry: SpoolEntry, obj: SpoolObject) -> bytes:
        """The object's bytes, checked against the manifest's SHA-256."""
        try:
            data = self.object_path(entry.name, obj.key).read_bytes()
        except OSError as exc:
            raise SpoolCorruptError(
                f"spooled object {obj.key} of {entry.name} cannot be read ({exc})"
            ) from exc
        if hashlib.sha256(data).hexdigest() != obj.sha256:
            raise SpoolCorruptError(f"spooled object {obj.key} of {entry.name} does not match its checksum")
        return data

    def find(self, key: str) -> tuple[SpoolEntry, SpoolObject] | None:
        """The newest spooled copy of ``key``, if any."""
        for entry in reversed(self.entries()):
            for obj in entry.objects:
                if obj.key == key:
                    return entry, obj
        return None

    def spooled_keys(self) -> set[str]:
        return {obj.key for entry in self.entries() for obj in entry.objects}

    def remove(self, entry: SpoolEntry) -> None:
        """Delete an uploaded entry (renamed away first, so it disappears at once)."""
        path = self.root / entry.name
        trash = self.root / f".done-{entry.name}"
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def quarantine(self, entry: SpoolEntry) -> Path:
        """Move a corrupt entry aside (``.corrupt-<name>``) so it no longer blocks the flush."""
        target = self.root / f".corrupt-{entry.name}"
        os.rename(self.root / entry.name, target)
        log.error("spool entry %s is corrupt: moved to %s for inspection", entry.name, target)
        return target

    def clean_stale(self) -> None:
        """Remove leftovers of crashed writes (``.tmp-``) and deletes (``.done-``)."""
        if not self.root.is_dir():
            return
        now = time.time()
        for path in self.root.iterdir():
            if path.name.startswith(".done-") or (
                path.name.startswith(".tmp-") and now - path.stat().st_mtime > STALE_TMP_SECONDS
            ):
                shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[bool]:
        """Hold the flush lock; yields ``False`` (without waiting) when another process holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover
            yield True
            return
        with open(self.root / ".lock", "a+b") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
