"""StorageSettings: environment variables, secrets, validation, and the factory's configuration errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from storage.errors import StorageConfigError
from storage.factory import open_store
from storage.s3 import S3Store
from storage.settings import StorageSettings


def test_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "COMFY_QUALITY_STORAGE_BACKEND": "s3",
        "COMFY_QUALITY_STORAGE_S3_ENDPOINT": "https://minio.example.com:9000",
        "COMFY_QUALITY_STORAGE_S3_ACCESS_KEY": "AKIAEXAMPLE",
        "COMFY_QUALITY_STORAGE_S3_SECRET_KEY": "very-secret-value",
        "COMFY_QUALITY_STORAGE_S3_BUCKET": "my-images",
        "COMFY_QUALITY_STORAGE_S3_PRESIGN": "false",
        "COMFY_QUALITY_STORAGE_SPOOL_DIR": str(tmp_path / "spool"),
        "COMFY_QUALITY_STORAGE_INDEX_PATH": "~/idx.sqlite3",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = StorageSettings()
    assert (s.backend, s.s3_bucket, s.s3_presign) == ("s3", "my-images", False)
    assert s.s3_secret_key is not None and s.s3_secret_key.get_secret_value() == "very-secret-value"
    assert s.index_path == Path.home() / "idx.sqlite3"
    for text in (repr(s), str(s), s.model_dump_json()):
        assert "very-secret-value" not in text and "AKIAEXAMPLE" not in text
    store = open_store(s)
    assert isinstance(store, S3Store)
    assert (store.endpoint, store.secure, store.bucket) == ("minio.example.com:9000", True, "my-images")
    assert "very-secret-value" not in repr(store)


def test_aws_variables_are_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "aws-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    s = StorageSettings()
    assert s.s3_access_key is not None and s.s3_access_key.get_secret_value() == "aws-id"
    monkeypatch.setenv("COMFY_QUALITY_STORAGE_S3_ACCESS_KEY", "ours")
    s = StorageSettings()
    assert s.s3_access_key is not None and s.s3_access_key.get_secret_value() == "ours"


def test_defaults_follow_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    s = StorageSettings()
    assert s.local_root == tmp_path / "comfy-quality" / "store"
    assert s.spool_dir == tmp_path / "comfy-quality" / "spool"
    assert s.index_path == tmp_path / "comfy-quality" / "index.sqlite3"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"backend": "ftp"}, "backend"),
        ({"public_base_url": "images.example.com"}, "public_base_url"),
        ({"s3_presign_expiry_seconds": 8 * 24 * 3600}, "s3_presign_expiry_seconds"),
        ({"s3_retries": -1}, "s3_retries"),
    ],
)
def test_invalid_settings(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        StorageSettings(**kwargs)  # type: ignore[arg-type]


def test_s3_configuration_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(StorageConfigError, match="COMFY_QUALITY_STORAGE_S3_ENDPOINT"):
        open_store(StorageSettings(backend="s3", spool_dir=tmp_path))
    with pytest.raises(StorageConfigError, match="bucket"):
        open_store(
            StorageSettings(backend="s3", s3_endpoint="minio:9000", s3_bucket="No_Such!", spool_dir=tmp_path)
        )
    with pytest.raises(StorageConfigError, match="without a path"):
        open_store(StorageSettings(backend="s3", s3_endpoint="http://minio:9000/x", spool_dir=tmp_path))
    with pytest.raises(StorageConfigError, match="both"):
        open_store(
            StorageSettings(backend="s3", s3_endpoint="minio:9000", s3_access_key="a", spool_dir=tmp_path)
        )
    with caplog.at_level(logging.WARNING, logger="storage.s3"):
        open_store(StorageSettings(backend="s3", s3_endpoint="minio:9000", spool_dir=tmp_path))
    assert "anonymous" in caplog.text
