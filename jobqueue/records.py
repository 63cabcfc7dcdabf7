"""Job records in Redis: what any MCP replica reads and any worker writes.

The queue itself (delivery, acknowledgement, redelivery after a worker dies, de-duplication by key, the
cancellation signal to the worker that runs a job) is docket's (:mod:`jobqueue.queue`). docket keeps an
execution state of its own (scheduled / running / completed, with a ``current/total/message`` progress), but a
generation job needs more than that — the request, the orchestrator's staged progress (attempt *k* of *n*,
sampler step), the result, the number of deliveries, a cancel request that survives the worker, the journal of
rendered images — so those live in a hash per job that this module owns, next to docket's keys:

    <name>:cq:job:<id>             hash: request, state, progress, result, error, deliveries, worker, …
    <name>:cq:job:<id>:runs        hash: workflow sha256 → images already rendered (the resume journal)
    <name>:cq:job:<id>:events      pub/sub channel: progress and state changes (waiting replicas listen)
    <name>:cq:jobs                 sorted set: job ids by submission time (list_generations' running jobs)
    <name>:cq:request:<request id> string: the job a client request id created (idempotent submission)

State changes that race (a replica cancelling while a worker claims or finishes) are single Lua scripts.
Finished jobs expire ``retention`` seconds after they end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from refinement.api import FINAL_STATES, GenerationRequest, GenerationResult, JobState, ProgressUpdate


class JobRecord(BaseModel):
    """One job as Redis holds it (and as the tools read it: the attribute names match the in-process job)."""

    id: str
    request: GenerationRequest
    created_at: datetime
    state: JobState = "queued"
    started: float | None = None
    finished: float | None = None
    result: GenerationResult | None = None
    error: str | None = None
    last: ProgressUpdate | None = None
    deliveries: int = 0
    worker: str | None = None
    cancel_requested: bool = False
    retention_seconds: float = 3600.0
    request_id: str | None = None
    notes: list[str] = Field(default_factory=list)

    @property
    def is_done(self) -> bool:
        return self.state in FINAL_STATES

    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.time()
        return max(0.0, end - self.created_at.timestamp())

    # -- hash encoding ----------------------------------------------------------------------------------
    def to_hash(self) -> dict[str, str]:
        fields: dict[str, str] = {
            "id": self.id,
            "request": self.request.model_dump_json(),
            "created_at": self.created_at.isoformat(),
            "state": self.state,
            "deliveries": str(self.deliveries),
            "cancel": "1" if self.cancel_requested else "0",
            "retention": repr(float(self.retention_seconds)),
        }
        optional: dict[str, str | None] = {
            "started": None if self.started is None else repr(self.started),
            "finished": None if self.finished is None else repr(self.finished),
            "result": self.result.model_dump_json() if self.result else None,
            "error": self.error,
            "last": self.last.model_dump_json() if self.last else None,
            "worker": self.worker,
            "request_id": self.request_id,
            "notes": json.dumps(self.notes) if self.notes else None,
        }
        fields.update({k: v for k, v in optional.items() if v is not None})
        return fields

    @classmethod
    def from_hash(cls, raw: Mapping[bytes | str, bytes | str]) -> JobRecord:
        h = {_s(k): _s(v) for k, v in raw.items()}

        def num(name: str) -> float | None:
            return float(h[name]) if h.get(name) else None

        return cls(
            id=h["id"],
            request=GenerationRequest.model_validate_json(h["request"]),
            created_at=datetime.fromisoformat(h["created_at"]),
            state=h.get("state", "queued"),
            started=num("started"),
            finished=num("finished"),
            result=GenerationResult.model_validate_json(h["result"]) if h.get("result") else None,
            error=h.get("error") or None,
            last=ProgressUpdate.model_validate_json(h["last"]) if h.get("last") else None,
            deliveries=int(h.get("deliveries") or 0),
            worker=h.get("worker") or None,
            cancel_requested=h.get("cancel") == "1",
            retention_seconds=float(h.get("retention") or 3600.0),
            request_id=h.get("request_id") or None,
            notes=json.loads(h["notes"]) if h.get("notes") else [],
        )


class JobEvent(BaseModel):
    """A message on a job's events channel: a progress update, or the job's new (final) state."""

    type: Literal["progress", "state"]
    update: ProgressUpdate | None = None
    state: JobState | None = None


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def now_utc() -> datetime:
    return datetime.now(UTC)


# -- Lua: state transitions that must not race -------------------------------------------------------------
_FINAL = "local final = {success=true, best_effort=true, failed=true, cancelled=true}\n"

SUBMIT_LUA = """
-- KEYS: job hash, jobs zset, request-id key ('' when none)   ARGV: job id, created score, then field/value pairs
if KEYS[3] ~= '' then
  local existing = redis.call('GET', KEYS[3])
  if existing then return {'existing', existing} end
  redis.call('SET', KEYS[3], ARGV[1])
end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return {'created', ARGV[1]}
"""

CLAIM_LUA = (
    _FINAL
    + """
-- KEYS: job hash   ARGV: worker, now, max deliveries, exhausted message
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', '0'} end
local state = redis.call('HGET', KEYS[1], 'state')
if final[state] then return {'final', state} end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'error', 'cancelled on request', 'finished', ARGV[2])
  return {'cancelled', '0'}
end
local n = redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
if n > tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'state', 'failed', 'error', ARGV[4], 'finished', ARGV[2])
  return {'exhausted', tostring(n)}
end
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1])
if redis.call('HEXISTS', KEYS[1], 'started') == 0 then redis.call('HSET', KEYS[1], 'started', ARGV[2]) end
local out = {'run', tostring(n)}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields do out[#out + 1] = fields[i] end
return out
"""
)

CANCEL_LUA = (
    _FINAL
    + """
-- KEYS: job hash   ARGV: now
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local state = redis.call('HGET', KEYS[1], 'state')
if final[state] then return state end
redis.call('HSET', KEYS[1], 'cancel', '1')
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'error', 'cancelled on request', 'finished', ARGV[1])
  return 'cancelled'
end
return 'requested'
"""
)

FINISH_LUA = """
-- KEYS: job hash, runs hash, request-id key ('' when none), events channel
-- ARGV: retention seconds, final-state event, then field/value pairs
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
local ttl = math.max(1, math.floor(tonumber(ARGV[1])))
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
if KEYS[3] ~= '' then redis.call('EXPIRE', KEYS[3], ttl) end
redis.call('PUBLISH', KEYS[4], ARGV[2])
return 1
"""


class JobKeys:
    """Redis key names of one deployment (``name`` = ``COMFY_QUALITY_JOBS_NAME``)."""

    def __init__(self, name: str) -> None:
        self.base = f"{name}:cq"

    def job(self, job_id: str) -> str:
        return f"{self.base}:job:{job_id}"

    def runs(self, job_id: str) -> str:
        return f"{self.base}:job:{job_id}:runs"

    def events(self, job_id: str) -> str:
        return f"{self.base}:job:{job_id}:events"

    @property
    def jobs(self) -> str:
        return f"{self.base}:jobs"

    def request(self, request_id: str) -> str:
        return f"{self.base}:request:{request_id}"

    # re-scoring runs (see jobqueue.rescore)
    def score_run(self, run_id: str) -> str:
        return f"{self.base}:score:{run_id}"

    def score_chunk(self, run_id: str, chunk: int) -> str:
        return f"{self.base}:score:{run_id}:chunk:{chunk}"


class JobStore:
    """Reads and writes job records (both sides use it; the replica adds submit/cancel, the worker claim/finish)."""

    def __init__(self, redis: Redis, name: str) -> None:
        self.redis = redis
        self.keys = JobKeys(name)
        self._submit = redis.register_script(SUBMIT_LUA)
        self._claim = redis.register_script(CLAIM_LUA)
        self._cancel = redis.register_script(CANCEL_LUA)
        self._finish = redis.register_script(FINISH_LUA)

    async def load(self, job_id: str) -> JobRecord | None:
        raw = await self.redis.hgetall(self.keys.job(job_id))
        return JobRecord.from_hash(raw) if raw else None

    async def create(self, record: JobRecord) -> tuple[bool, str]:
        """Store a new job; with a request id already used, nothing is written and ``(False, that job's id)``."""
        pairs = [x for kv in record.to_hash().items() for x in kv]
        request_key = self.keys.request(record.request_id) if record.request_id else ""
        status, job_id = await self._submit(
            keys=[self.keys.job(record.id), self.keys.jobs, request_key],
            args=[record.id, record.created_at.timestamp(), *pairs],
        )
        return _s(status) == "created", _s(job_id)

    async def forget(self, record: JobRecord) -> None:
        """Remove a job that could not be queued (best effort)."""
        keys = [self.keys.job(record.id)]
        if record.request_id:
            keys.append(self.keys.request(record.request_id))
        await self.redis.delete(*keys)
        await self.redis.zrem(self.keys.jobs, record.id)

    async def claim(self, job_id: str, worker: str, max_deliveries: int) -> tuple[str, str, JobRecord | None]:
        """A worker takes the job: ``("run", deliveries, record)``, or why not (``missing``, ``final``,
        ``cancelled``, ``exhausted``: the last two end the job)."""
        message = (
            f"the job was started {max_deliveries} time(s) and each time its worker stopped before finishing "
            "(killed, out of memory or lost); images made so far are stored"
        )
        reply = await self._claim(
            keys=[self.keys.job(job_id)], args=[worker, repr(time.time()), max_deliveries, message]
        )
        status, detail, fields = _s(reply[0]), _s(reply[1]), reply[2:]
        record = JobRecord.from_hash(dict(zip(fields[::2], fields[1::2], strict=True))) if fields else None
        return status, detail, record

    async def request_cancel(self, job_id: str) -> str:
        return _s(await self._cancel(keys=[self.keys.job(job_id)], args=[repr(time.time())]))

    async def update(self, job_id: str, **fields: str) -> None:
        await self.redis.hset(self.keys.job(job_id), mapping=fields)  # type: ignore[arg-type]

    async def finish(self, record: JobRecord) -> None:
        """Write the final state and announce it; the counters and the cancel flag are left as Redis has them."""
        fields = {k: v for k, v in record.to_hash().items() if k not in ("cancel", "deliveries")}
        pairs = [x for kv in fields.items() for x in kv]
        request_key = self.keys.request(record.request_id) if record.request_id else ""
        event = JobEvent(type="state", state=record.state).model_dump_json()
        await self._finish(
            keys=[self.keys.job(record.id), self.keys.runs(record.id), request_key, self.keys.events(record.id)],
            args=[record.retention_seconds, event, *pairs],
        )

    async def publish(self, job_id: str, event: JobEvent) -> None:
        await self.redis.publish(self.keys.events(job_id), event.model_dump_json())

    async def recent_ids(self, limit: int) -> list[str]:
        ids = await self.redis.zrevrange(self.keys.jobs, 0, limit - 1)
        return [_s(x) for x in ids if isinstance(x, bytes | str)]

    async def load_many(self, job_ids: list[str]) -> list[JobRecord]:
        if not job_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(self.keys.job(job_id))
            raws = await pipe.execute()
        out: list[JobRecord] = []
        gone: list[str] = []
        for job_id, raw in zip(job_ids, raws, strict=True):
            if raw:
                out.append(JobRecord.from_hash(raw))
            else:
                gone.append(job_id)
        if gone:  # expired records: drop them from the index too
            await self.redis.zrem(self.keys.jobs, *gone)
        return out
