"""The job queue's exception tree.

Every message says what went wrong and what to do; the worker and the CLIs show ``str(err)`` as is.

    JobQueueError
    ├── JobQueueConfigError   settings that cannot work (no or a bad COMFY_QUALITY_JOBS_URL); also a SettingsError
    └── RescoreSourceError    a re-scoring source that cannot be read (no such folder, no bucket, no images)
"""

from __future__ import annotations

from comfy_quality.errors import ComfyQualityError, SettingsError


class JobQueueError(ComfyQualityError):
    """Base class of every error raised by :mod:`jobqueue`."""


class JobQueueConfigError(JobQueueError, SettingsError):
    """The job queue settings cannot work as given."""


class RescoreSourceError(JobQueueError, ValueError):
    """A folder or ``s3://`` source to re-score that cannot be used; ``ValueError`` too, as callers caught before."""
