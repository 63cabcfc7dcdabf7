"""Settings of the distributed job backend and its workers (``COMFY_QUALITY_JOBS_*`` environment variables or
the ``.env`` file; the rules shared by every section are :mod:`comfy_quality.config`'s).

* ``COMFY_QUALITY_JOBS_URL`` (none): ``redis://host:6379/0`` (or ``rediss://``, ``redis://user:pw@host``). Unset:
  the MCP server runs generations in its own process (the embedded default; no Redis needed).
* ``COMFY_QUALITY_JOBS_NAME`` (``comfy-quality``): the queue's name; several deployments can share one Redis.
* ``COMFY_QUALITY_JOBS_MAX_DELIVERIES`` (``3``): a job whose worker died this many times is marked failed.
* ``COMFY_QUALITY_JOBS_REDELIVERY_SECONDS`` (``30``): how long a job whose worker stopped answering stays
  claimed before another worker takes it over (running workers renew their claim 4 times per period, so a long
  generation is never taken away from a live worker).
* ``COMFY_QUALITY_JOBS_PER_SERVER_CONCURRENCY`` (``1``): jobs one worker runs at once per ComfyUI server it
  drives (the worker takes ``servers × this`` jobs from the queue at most).
* ``COMFY_QUALITY_JOBS_WORKER_NAME`` (host#pid): the worker's name in job records and logs.
* ``COMFY_QUALITY_JOBS_SCORE_CHUNK`` (``32``): images per chunk of a distributed re-scoring.
* ``COMFY_QUALITY_JOBS_WORKER_COMPONENTS`` (built-in): ``module:function`` yielding the worker's components.
* ``COMFY_QUALITY_JOBS_LOG_LEVEL`` (``INFO``): the worker's log level (``--log-level`` wins).

Retention of finished jobs is the MCP server's ``COMFY_QUALITY_MCP_JOB_RETENTION_SECONDS``: the replica that
accepts a job writes it into the job record, and the worker that finishes the job sets the record's expiry.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from comfy_quality.config import ENV_PREFIX as PROJECT_PREFIX
from comfy_quality.config import SectionSettings
from jobqueue.errors import JobQueueConfigError

ENV_PREFIX = f"{PROJECT_PREFIX}JOBS_"


class JobsSettings(SectionSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    url: SecretStr | None = Field(None, description="redis://host:6379/0; unset: in-process jobs (no Redis)")
    name: str = Field("comfy-quality", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    max_deliveries: int = Field(3, ge=1, le=100, description="deliveries of one job before it is marked failed")
    redelivery_seconds: float = Field(30.0, gt=0, le=3600, description="a dead worker's job is taken over after")
    per_server_concurrency: int = Field(1, ge=1, le=64, description="jobs at once per ComfyUI server per worker")
    worker_name: str | None = Field(None, max_length=200)
    score_chunk: int = Field(32, ge=1, le=10_000, description="images per re-scoring chunk")
    worker_components: str | None = Field(
        None, description="'module:function' yielding WorkerComponents (custom scorer / pool / store)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="the worker's log level")

    @field_validator("url", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in ("redis", "rediss", "unix"):
                raise ValueError("COMFY_QUALITY_JOBS_URL must be a redis://, rediss:// or unix:// URL")
        return value

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def redis_url(self) -> str:
        if self.url is None:
            raise JobQueueConfigError("COMFY_QUALITY_JOBS_URL is not set: set it to the Redis URL (redis://host:6379/0)")
        return self.url.get_secret_value()

    def display_url(self) -> str:
        """The URL without its password (for logs and error messages)."""
        return redact_redis_url(self.redis_url()) if self.url is not None else "(not set)"


def redact_redis_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return urlunsplit(parts._replace(query=""))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"***@{host}", query=""))


def wants_workers(items: Sequence[str], local: bool, settings: JobsSettings | None = None) -> bool:
    """``python -m quality score`` hands the work to the workers for an ``s3://`` source, or for one folder when
    ``COMFY_QUALITY_JOBS_URL`` is set (environment or ``.env``, like every setting; unless ``--local``)."""
    if any(item.startswith("s3://") for item in items):
        return True
    if local or len(items) != 1 or not Path(items[0]).is_dir():
        return False
    if settings is None:
        try:
            settings = JobsSettings()
        except ValueError:  # set but invalid: the workers' path names the problem (cli_score)
            return True
    return settings.enabled
