"""Switches that make the fake server misbehave, and the per-prompt plan drawn from them.

Counters (``validation_error``, ``execution_error``, ``drop_websocket``, ``hang``) apply to that many *next*
prompts and count down as they fire; the step fields say at which sampler step the fault happens (prompts
with no sampler fault when their last node starts). ``step_delay`` and ``previews`` stay until changed.

Set them in-process (``server.misbehave(execution_error=1)``) or, for a subprocess server, with ``POST
/_fake/misbehave`` and the same JSON fields. A restart is an action: ``server.restart(down_for=...)`` or
``POST /_fake/restart {"down_s": ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class Misbehaviour(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    validation_error: int = Field(
        0, ge=0, description="reject the next N prompts with a 400 (sampler steps 0)"
    )
    execution_error: int = Field(0, ge=0, description="the next N prompts raise inside their sampler")
    execution_error_step: int = Field(1, ge=1)
    execution_error_type: str = "torch.OutOfMemoryError"
    execution_error_message: str = "Allocation on device 0 would exceed allowed memory. (out of memory)"
    drop_websocket: int = Field(0, ge=0, description="the next N prompts: close the submitter's sockets")
    drop_websocket_step: int = Field(1, ge=1)
    hang: int = Field(0, ge=0, description="the next N prompts stop at a step until interrupted")
    hang_step: int = Field(1, ge=1)
    step_delay: float = Field(0.0, ge=0, le=60, description="seconds per sampler step (slow steps)")
    previews: bool = Field(False, description="send a JPEG preview with every sampler step")


@dataclass
class Plan:
    """What goes wrong in one prompt (drawn when the worker takes it)."""

    error_step: int | None = None
    error_type: str = ""
    error_message: str = ""
    drop_step: int | None = None
    hang_step: int | None = None
    dropped: bool = False

    @property
    def anything(self) -> bool:
        return self.error_step is not None or self.drop_step is not None or self.hang_step is not None


def draw_plan(m: Misbehaviour) -> Plan:
    plan = Plan()
    if m.execution_error > 0:
        m.execution_error -= 1
        plan.error_step = m.execution_error_step
        plan.error_type = m.execution_error_type
        plan.error_message = m.execution_error_message
    if m.drop_websocket > 0:
        m.drop_websocket -= 1
        plan.drop_step = m.drop_websocket_step
    if m.hang > 0:
        m.hang -= 1
        plan.hang_step = m.hang_step
    return plan
