"""Storage settings, read from ``COMFY_QUALITY_STORAGE_*`` environment variables or the ``.env`` file (see
storage/README.md; the rules shared by every section are :mod:`comfy_quality.config`'s).

Secrets are :class:`pydantic.SecretStr`: they never show in ``repr``, logs or ``model_dump_json``.
The S3 keys fall back to the usual ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from comfy_quality.config import ENV_PREFIX as PROJECT_PREFIX
from comfy_quality.config import Flag, SectionSettings

ENV_PREFIX = f"{PROJECT_PREFIX}STORAGE_"


def data_home() -> Path:
    """``$XDG_DATA_HOME/comfy-quality`` (``~/.local/share/comfy-quality`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "comfy-quality"


def _secret(name: str, fallback: str) -> AliasChoices:
    return AliasChoices(f"{ENV_PREFIX}{name}", fallback)


class StorageSettings(SectionSettings):
    """Where images, metadata and the index live."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    backend: Literal["local", "s3"] = Field("local", description="'local' (a folder) or 's3' (MinIO / S3)")
    local_root: Path = Field(default_factory=lambda: data_home() / "store", description="local store folder")
    public_base_url: str | None = Field(
        None,
        description="URL prefix under which keys are served (e.g. 'https://cdn.example.com/images' or "
        "'http://minio:9000/bucket'); when set, stored URLs are <public_base_url>/<key>",
    )
    s3_endpoint: str | None = Field(None, description="'host:port' or 'http(s)://host:port' of MinIO / S3")
    s3_access_key: SecretStr | None = Field(
        None, validation_alias=_secret("S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
    )
    s3_secret_key: SecretStr | None = Field(
        None, validation_alias=_secret("S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY")
    )
    s3_bucket: str = Field("comfy-quality", description="bucket (created if missing)")
    s3_secure: Flag = Field(False, description="use HTTPS (an 'https://' endpoint implies it)")
    s3_region: str = Field("us-east-1", description="S3 region (MinIO accepts any)")
    s3_presign: Flag = Field(True, description="give presigned GET URLs (when no public_base_url is set)")
    s3_presign_expiry_seconds: int = Field(7 * 24 * 3600, ge=1, le=7 * 24 * 3600, description="≤ 7 days")
    s3_retries: int = Field(3, ge=0, le=20, description="retries of a transient S3 error before spooling")
    s3_backoff_seconds: float = Field(0.5, ge=0, description="first retry delay (doubles each retry)")
    s3_backoff_max_seconds: float = Field(8.0, ge=0, description="longest retry delay")
    s3_timeout_seconds: float = Field(10.0, gt=0, description="connect and read timeout of one S3 request")
    spool_dir: Path = Field(
        default_factory=lambda: data_home() / "spool",
        description="where images wait when S3 is down (survives restarts)",
    )
    spool_flush_interval_seconds: float = Field(
        30.0, gt=0, description="how often the background flusher retries uploading the spool"
    )
    index_path: Path = Field(
        default_factory=lambda: data_home() / "index.sqlite3", description="SQLite index of the metadata"
    )

    @field_validator("local_root", "spool_dir", "index_path")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if "://" not in value:
            raise ValueError(
                f"public_base_url {value!r} must be an absolute URL such as 'https://host/prefix'"
            )
        return value
