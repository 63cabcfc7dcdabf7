"""Key layout, key safety, object URL parsing and image facts."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from storage import layout
from storage.errors import InvalidKeyError, InvalidObjectURLError
from storage.layout import ObjectRef, parse_object_url
from tests.storage.factories import make_image

TS = datetime(2026, 3, 9, 23, 30, tzinfo=UTC)


def test_key_layout() -> None:
    assert layout.best_key("g1", TS, "png") == "generations/2026/03/09/g1/best.png"
    assert layout.attempt_key("g1", TS, 2, "jpg") == "generations/2026/03/09/g1/attempt-2.jpg"
    assert layout.metadata_key("g1", TS) == "generations/2026/03/09/g1/metadata.json"
    assert layout.pointer_key("g1") == "ids/g1.json"
    assert layout.is_metadata_key("generations/2026/03/09/g1/metadata.json")
    assert not layout.is_metadata_key("ids/g1.json")
    # the folder is the UTC date, whatever the timestamp's zone
    tokyo = TS.astimezone(timezone(timedelta(hours=9)))
    assert layout.metadata_key("g1", tokyo) == "generations/2026/03/09/g1/metadata.json"


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "a/\x00", "x" * 1025])
def test_unsafe_keys_are_rejected(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        layout.check_key(key)


@pytest.mark.parametrize("gid", ["", "../x", "a/b", ".hidden", "a b", "x" * 129])
def test_unsafe_generation_ids_are_rejected(gid: str) -> None:
    with pytest.raises(InvalidKeyError, match="generation id"):
        layout.best_key(gid, TS, "png")
    with pytest.raises(InvalidKeyError):
        layout.attempt_key("ok", TS, 0, "png")


@pytest.mark.parametrize(
    ("url", "endpoint", "expected"),
    [
        ("s3://images/generations/a/best.png", None, ObjectRef("images", "generations/a/best.png")),
        ("s3://images/a%20b/c.png", None, ObjectRef("images", "a b/c.png")),
        ("http://127.0.0.1:9000/images/x/y.png", None, ObjectRef("images", "x/y.png")),
        (
            "http://127.0.0.1:9000/images/x/y.png?X-Amz-Signature=abc",
            "127.0.0.1:9000",
            ObjectRef("images", "x/y.png"),
        ),
        ("http://127.0.0.1:9000/images/x/y.png", "http://127.0.0.1:9000", ObjectRef("images", "x/y.png")),
        ("https://s3.example.com/images/k.png", "https://s3.example.com", ObjectRef("images", "k.png")),
        ("https://s3.example.com:443/images/k.png", "s3.example.com:443", ObjectRef("images", "k.png")),
        ("http://images.minio.local:9000/k/v.png", "minio.local:9000", ObjectRef("images", "k/v.png")),
    ],
)
def test_parse_object_url(url: str, endpoint: str | None, expected: ObjectRef) -> None:
    assert parse_object_url(url, endpoint=endpoint) == expected
    assert expected.uri == f"s3://{expected.bucket}/{expected.key}"


@pytest.mark.parametrize(
    ("url", "endpoint", "message"),
    [
        (
            "http://evil.example.com/images/x.png",
            "127.0.0.1:9000",
            "does not point at the configured S3 endpoint",
        ),
        (
            "http://127.0.0.1:9001/images/x.png",
            "127.0.0.1:9000",
            "does not point at the configured S3 endpoint",
        ),
        ("s3://images", None, "names no object"),
        ("s3:///key.png", None, "names no object"),
        ("http://127.0.0.1:9000/images/", None, "names no object"),
        ("ftp://host/images/x.png", None, "expected s3://bucket/key"),
        ("s3://images/a/../../etc/passwd", None, "unusable key"),
        ("/etc/passwd", None, "expected s3://bucket/key"),
    ],
)
def test_parse_object_url_errors(url: str, endpoint: str | None, message: str) -> None:
    with pytest.raises(InvalidObjectURLError, match=message):
        parse_object_url(url, endpoint=endpoint)


def test_normalize_endpoint() -> None:
    assert layout.normalize_endpoint("http://minio:9000") == ("minio:9000", False)
    assert layout.normalize_endpoint("https://minio:9000/") == ("minio:9000", True)
    assert layout.normalize_endpoint("minio:9000", secure=True) == ("minio:9000", True)
    with pytest.raises(InvalidObjectURLError):
        layout.normalize_endpoint("http://minio:9000/bucket")


@pytest.mark.parametrize(
    ("fmt", "ext", "ctype"),
    [("PNG", "png", "image/png"), ("JPEG", "jpg", "image/jpeg"), ("WEBP", "webp", "image/webp")],
)
def test_image_facts(fmt: str, ext: str, ctype: str) -> None:
    data = make_image(3, (40, 20), fmt)
    facts = layout.image_facts(data)
    assert (facts.ext, facts.content_type, facts.width, facts.height) == (ext, ctype, 40, 20)
    assert facts.size_bytes == len(data) and facts.sha256 == hashlib.sha256(data).hexdigest()


def test_image_facts_of_unknown_bytes() -> None:
    facts = layout.image_facts(b"not an image at all")
    assert (facts.format, facts.content_type, facts.ext, facts.width) == (
        None,
        "application/octet-stream",
        "bin",
        None,
    )
    assert layout.image_facts(b"???", "image/png").ext == "png"
