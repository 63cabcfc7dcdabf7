"""Dashboard settings, from arguments, ``COMFY_QUALITY_DASHBOARD_*`` environment variables or the ``.env`` file
(the rules shared by every section are :mod:`comfy_quality.config`'s).

Sizes are bytes (``COMFY_QUALITY_DASHBOARD_MAX_IMAGE_BYTES=67108864`` or ``64MiB``), like every size setting.
The MiB variables of earlier versions (``COMFY_QUALITY_DASHBOARD_MAX_IMAGE_MB``,
``COMFY_QUALITY_DASHBOARD_THUMBNAIL_CACHE_MAX_MB``) are still accepted: they set the byte value (×1048576),
unless the ``*_BYTES`` variable is set too.

Where the generations live (folder or S3, the index file) is :class:`storage.StorageSettings`
(``COMFY_QUALITY_STORAGE_*``), nested here as ``storage``. The token is a :class:`pydantic.SecretStr`: it never
shows in ``repr`` or logs.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from pathlib import Path
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from comfy_quality.config import ENV_PREFIX as PROJECT_PREFIX
from comfy_quality.config import ByteCount, Flag, SectionSettings, StrList
from dashboard.errors import DashboardConfigError
from serving import is_loopback_host
from storage.settings import StorageSettings, data_home

ENV_PREFIX = f"{PROJECT_PREFIX}DASHBOARD_"
MIB = 2**20
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


class DashboardSettings(SectionSettings):
    """How the dashboard is served and what it reads."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)
    nested_sections: ClassVar[tuple[str, ...]] = ("storage",)

    host: str = Field("127.0.0.1", description="bind address; anything but loopback needs a token (or the flag)")
    port: int = Field(8766, ge=0, le=65535, description="port (0: any free port, logged at start)")
    token: SecretStr | None = Field(
        None,
        description="access token: sent as 'Authorization: Bearer <token>' or opened once as ?token=<token> "
        "(then kept in a cookie); required for a non-loopback bind",
    )
    allow_unauthenticated_remote: Flag = Field(
        False,
        description="serve a non-loopback bind without a token (only behind a proxy that authenticates)",
    )
    allowed_hosts: StrList = Field(
        default_factory=list,
        description="extra Host header values accepted (DNS-rebinding protection), e.g. 'dash.example.com'; "
        "'*' accepts any",
    )
    timezone: str | None = Field(
        None, description="IANA zone for dates shown and date filters ('today'); default: the machine's zone"
    )
    page_size: int = Field(48, ge=1, le=200, description="generations per gallery page")
    thumbnail_size: int = Field(320, ge=64, le=1024, description="longest side of gallery thumbnails (pixels)")
    thumbnail_cache_dir: Path = Field(
        default_factory=lambda: data_home() / "dashboard-thumbnails", description="thumbnail disk cache"
    )
    thumbnail_cache_max_bytes: ByteCount = Field(256 * MIB, gt=0, description="size bound of the thumbnail cache")
    max_image_bytes: ByteCount = Field(64 * MIB, gt=0, description="largest image served or thumbnailed")
    thumbnail_cache_max_mb: float | None = Field(
        None, gt=0, description="deprecated: thumbnail_cache_max_bytes in MiB (still accepted)"
    )
    max_image_mb: float | None = Field(None, gt=0, description="deprecated: max_image_bytes in MiB (still accepted)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    storage: StorageSettings = Field(default_factory=StorageSettings, description="COMFY_QUALITY_STORAGE_*")

    @model_validator(mode="after")
    def _mib_aliases(self) -> DashboardSettings:
        """The MiB settings of earlier versions set the byte ones (the byte ones win when both are given)."""
        if self.max_image_mb is not None and "max_image_bytes" not in self.model_fields_set:
            self.max_image_bytes = int(self.max_image_mb * MIB)
        if self.thumbnail_cache_max_mb is not None and "thumbnail_cache_max_bytes" not in self.model_fields_set:
            self.thumbnail_cache_max_bytes = int(self.thumbnail_cache_max_mb * MIB)
        return self

    @field_validator("thumbnail_cache_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None or not value.strip() or value.strip().lower() == "local":
            return None
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as 'Europe/Paris'") from exc
        return value.strip()

    def token_value(self) -> str | None:
        """The token, or None (an empty value counts as none)."""
        if self.token is None:
            return None
        value = self.token.get_secret_value().strip()
        return value or None

    def zone(self) -> tzinfo:
        """The configured zone, else the machine's current local zone."""
        if self.timezone:
            return ZoneInfo(self.timezone)
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local

    def check_serving(self) -> None:
        """Refuse to expose the dashboard without protection (called before serving)."""
        if is_loopback_host(self.host) or self.token_value() or self.allow_unauthenticated_remote:
            return
        raise DashboardConfigError(
            f"binding the dashboard to {self.host!r} (not loopback) requires a token: set "
            "COMFY_QUALITY_DASHBOARD_TOKEN (e.g. `openssl rand -hex 32`) and open the dashboard once as "
            "http://HOST:PORT/?token=<token>; or pass --allow-unauthenticated-remote if a proxy in front "
            "authenticates; or bind to 127.0.0.1"
        )

    def host_patterns(self) -> list[str] | None:
        """Host header names accepted, or None when any host is (a wildcard bind protected by a token)."""
        extra = [h.strip().lower() for h in self.allowed_hosts if h.strip()]
        if "*" in extra:
            return None
        names = ["127.0.0.1", "localhost", "::1", *extra]
        host = self.host.strip("[]").lower()
        if host in WILDCARD_HOSTS:
            if not extra and (self.token_value() or self.allow_unauthenticated_remote):
                return None
        elif host not in names:
            names.append(host)
        return names
