"""Server settings, from arguments, environment variables (prefix ``COMFY_QUALITY_MCP_``) or a ``.env`` file.

The scorer's own settings (weights folder, device, offline mode…) are :class:`quality.settings.QualitySettings`
(prefix ``COMFY_QUALITY_``); the table in the README lists both. List values take commas
(``COMFY_QUALITY_MCP_ROOTS=/data/images,/home/me/Pictures``) or JSON; sizes are bytes (``33554432`` or
``32MiB``). The rules shared by every section are :mod:`comfy_quality.config`'s.

Secrets (``auth_token``) are :class:`pydantic.SecretStr`: they print as ``**********`` and never reach a tool
result or a log line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from comfy_quality.config import ENV_PREFIX, ByteCount, Flag, PathList, SectionSettings, StrList
from mcp_server.hostpatterns import parse_host_pattern
from serving import is_loopback_host

Transport = Literal["stdio", "sse", "http"]


class McpSettings(SectionSettings):
    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}MCP_")

    # -- transport ----------------------------------------------------------------------------------------
    transport: Transport = Field("stdio", description="stdio (default), sse or http (streamable HTTP)")
    host: str = Field("127.0.0.1", description="HTTP bind address; anything but loopback needs auth_token")
    port: int = Field(8765, ge=0, le=65535, description="HTTP port (0: any free port, logged at start)")
    auth_token: SecretStr | None = Field(
        None, description="bearer token HTTP clients must send (required for a non-loopback bind)"
    )
    allowed_hosts: StrList = Field(
        default_factory=list,
        description="extra Host header values accepted over HTTP (DNS-rebinding protection), e.g. 'myhost:*'",
    )
    allowed_origins: StrList = Field(
        default_factory=list, description="extra Origin header values accepted over HTTP, e.g. 'https://app:*'"
    )
    http_path: str = Field("/mcp", description="streamable HTTP endpoint path")
    sse_path: str = Field("/sse", description="SSE endpoint path (messages go to /messages/)")
    stateless_http: Flag = Field(
        False,
        description="streamable HTTP without sessions: every request stands alone, so replicas behind a load "
        "balancer need no sticky routing (with COMFY_QUALITY_JOBS_URL, jobs are shared by all replicas)",
    )
    dashboard: Flag = Field(
        True, description="serve the quality dashboard at /dashboard next to the SSE / streamable HTTP endpoint"
    )

    # -- input safety -------------------------------------------------------------------------------------
    roots: PathList = Field(
        default_factory=list, description="folders whose images score_image may read; none: local paths refused"
    )
    url_allowlist: StrList = Field(
        default_factory=list,
        description="hosts score_image may download from: 'example.com', '*.example.com', 'host:8080', or '*'",
    )
    allow_private_networks: Flag = Field(
        False, description="allow downloads from private/loopback addresses (link-local and metadata: never)"
    )
    download_max_bytes: ByteCount = Field(32 * 1024 * 1024, gt=0, description="largest image download")
    download_timeout_seconds: float = Field(20.0, gt=0, le=600, description="whole download, redirects included")
    max_redirects: int = Field(3, ge=0, le=10)
    base64_max_bytes: ByteCount = Field(16 * 1024 * 1024, gt=0, description="largest decoded base64 / data: image")
    s3_buckets: StrList = Field(
        default_factory=list,
        description="buckets s3:// images may be read from; none: only the object store's own bucket",
    )
    allow_hardlinks: Flag = Field(
        False, description="read files under the roots that have several hard links (one may lead outside)"
    )
    workflow_roots: PathList = Field(
        default_factory=list,
        description="folders whose workflow files generate_quality(workflow=...) may name; none: templates and "
        "inline JSON only",
    )
    workflow_max_bytes: ByteCount = Field(4 * 1024 * 1024, gt=0, description="largest workflow (file or inline JSON)")

    # -- concurrency --------------------------------------------------------------------------------------
    score_concurrency: int = Field(2, ge=1, le=64, description="images scored at once")
    score_queue: int = Field(16, ge=0, le=10_000, description="score calls that may wait; more get 'busy'")
    generation_concurrency: int = Field(1, ge=1, le=64, description="generations run at once")
    generation_queue: int = Field(4, ge=0, le=1000, description="generations that may wait; more get 'busy'")

    # -- jobs ---------------------------------------------------------------------------------------------
    default_wait_seconds: float = Field(20.0, ge=0, description="how long generate_quality waits by default")
    max_wait_seconds: float = Field(25.0, ge=0, le=3600, description="longest wait any call may ask for")
    job_retention_seconds: float = Field(3600.0, gt=0, description="finished jobs stay queryable this long")
    max_jobs_kept: int = Field(200, ge=1, description="finished jobs kept at most (oldest dropped first)")

    # -- results ------------------------------------------------------------------------------------------
    preview: Flag = Field(True, description="attach a small JPEG preview of generated images")
    preview_max_bytes: ByteCount = Field(100_000, ge=2_000, le=100_000, description="preview size bound (base64 bytes)")
    preview_max_side: int = Field(384, ge=32, le=1024, description="preview long side in pixels")

    # -- wiring and logging -------------------------------------------------------------------------------
    components: str | None = Field(
        None,
        description="'module:function' building the server's components (generator, store, index) instead "
        "of the built-in wiring; see mcp_server.lifespan",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("url_allowlist", mode="after")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if pattern.strip() != "*":
                parse_host_pattern(pattern)  # ValueError names the problem
        return value

    @field_validator("roots", "workflow_roots", mode="after")
    @classmethod
    def _expand_roots(cls, value: list[Path]) -> list[Path]:
        return [p.expanduser() for p in value]

    @field_validator("http_path", "sse_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must start with '/': {value!r}")
        return value

    @model_validator(mode="after")
    def _waits(self) -> McpSettings:
        if self.default_wait_seconds > self.max_wait_seconds:
            raise ValueError(
                f"default_wait_seconds ({self.default_wait_seconds}) exceeds max_wait_seconds ({self.max_wait_seconds})"
            )
        return self

    def token(self) -> str | None:
        """The bearer token, or None (an empty value counts as none)."""
        if self.auth_token is None:
            return None
        value = self.auth_token.get_secret_value().strip()
        return value or None

    def check_serving(self) -> None:
        """Refuse settings that would expose the server unprotected (called before an HTTP transport starts)."""
        if self.transport != "stdio" and not is_loopback_host(self.host) and self.token() is None:
            from mcp_server.errors import McpServerConfigError  # the MCP SDK's error types: not for every settings read

            raise McpServerConfigError(
                f"binding to {self.host!r} (not loopback) requires a bearer token: set "
                "COMFY_QUALITY_MCP_AUTH_TOKEN (a long random string, e.g. `openssl rand -hex 32`) and configure "
                "your MCP client to send 'Authorization: Bearer <token>'; or bind to 127.0.0.1"
            )
