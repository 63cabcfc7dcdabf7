"""Distributed jobs: generation jobs and gallery re-scoring on Redis through docket (``pydocket``).

* :mod:`jobqueue.settings` — ``COMFY_QUALITY_JOBS_*`` (``COMFY_QUALITY_JOBS_URL`` turns the distributed backend on).
* :mod:`jobqueue.records` — job records, progress and the resume journal in Redis (what docket does not keep).
* :mod:`jobqueue.queue` — the docket (queue) both sides open.
* :mod:`jobqueue.worker` — ``comfy-quality-worker``: runs queued jobs on its ComfyUI servers.
* :mod:`jobqueue.journal` — resuming a redelivered job from the images already rendered.
* :mod:`jobqueue.rescore` — ``python -m quality score DIR|s3://...`` split into chunks that workers score.

Why docket, and what it does for us: ``docs/jobs.md``.
"""
