"""One attempt-image check for every store: the base class validates and lays out, the backends only write."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.local import LocalStore
from storage.s3 import S3Store
from storage.store import StoreBase, attempt_image_write
from tests.storage.factories import make_image, make_metadata
from tests.storage.test_storage_spool import unreachable_store


def test_no_backend_redefines_the_check() -> None:
    # the check lives in StoreBase.put_attempt_image; a backend overriding it would bypass it
    for cls in (LocalStore, S3Store):
        assert cls.put_attempt_image is StoreBase.put_attempt_image, cls.__name__
        assert cls._write_attempt_image is not StoreBase._write_attempt_image, cls.__name__


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_an_empty_attempt_image_is_refused_alike_and_nothing_is_written(backend: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store") if backend == "local" else unreachable_store(tmp_path / "spool")
    md = make_metadata(attempts=[4.0, 8.0])
    async with store:
        with pytest.raises(Exception, match=r"attempt 2's image is empty \(0 bytes\)") as early:
            await store.put_attempt_image(md.generation_id, md.timestamp, 2, b"")
        with pytest.raises(Exception, match=r"attempt 2's image is empty \(0 bytes\)") as late:
            await store.put_generation(make_image(1), md, attempt_images={1: make_image(2), 2: b""})
    assert type(early.value) is type(late.value)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [], f"{backend}: a refused image left files behind: {written}"


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_an_early_attempt_image_gets_the_key_put_generation_gives_it(backend: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store") if backend == "local" else unreachable_store(tmp_path / "spool")
    md = make_metadata(attempts=[4.0, 8.0])
    async with store:
        early = await store.put_attempt_image(md.generation_id, md.timestamp, 1, make_image(9))
        stored = await store.put_generation(make_image(10), md, attempt_images={1: make_image(9)})
    expected = attempt_image_write(md.generation_id, md.timestamp, 1, make_image(9))
    assert early.key == expected.key == stored.metadata.refinement.attempts[0].image_key
    assert early.status == ("stored" if backend == "local" else "spooled")
