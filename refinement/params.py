"""Generation parameters: what a caller (or a retry strategy) may change in a workflow.

Every field is optional: ``None`` means "keep what the workflow has". :func:`refinement.workflows.patch`
writes the set fields into the right nodes; :func:`refinement.workflows.describe` reads them back as a
:class:`GenerationParams` with the workflow's values.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SEED_MAX = 2**64 - 1
#: ComfyUI core's sampler and scheduler names (0.3.64); custom node packs may add more, so these are advisory.
CORE_SAMPLERS: tuple[str, ...] = (
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
    "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde",
    "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2",
)  # fmt: skip
CORE_SCHEDULERS: tuple[str, ...] = (
    "simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal", "linear_quadratic",
    "kl_optimal",
)  # fmt: skip


class LoraSpec(BaseModel):
    """One LoRA: the file name as the server lists it, and its strengths."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=512)
    strength_model: float = Field(1.0, ge=-100.0, le=100.0)
    strength_clip: float = Field(1.0, ge=-100.0, le=100.0)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value.strip() != value or ".." in value.split("/"):
            raise ValueError(f"LoRA name {value!r} must be a plain file name as ComfyUI lists it")
        return value


class GenerationParams(BaseModel):
    """Parameters to patch into a workflow (``None``: leave the workflow's value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str | None = Field(None, max_length=20_000)
    negative_prompt: str | None = Field(None, max_length=20_000)
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    steps: int | None = Field(None, ge=1, le=10_000)
    cfg: float | None = Field(None, ge=0.0, le=100.0)
    guidance: float | None = Field(None, ge=0.0, le=100.0, description="Flux guidance (FluxGuidance node)")
    sampler: str | None = Field(None, min_length=1, max_length=100)
    scheduler: str | None = Field(None, min_length=1, max_length=100)
    width: int | None = Field(None, ge=64, le=16384, description="pixels, a multiple of 8")
    height: int | None = Field(None, ge=64, le=16384, description="pixels, a multiple of 8")
    batch_size: int | None = Field(None, ge=1, le=64)
    denoise: float | None = Field(None, ge=0.0, le=1.0)
    loras: list[LoraSpec] | None = None

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int | None) -> int | None:
        if value is not None and value % 8:
            raise ValueError(
                f"{value} is not a multiple of 8 (latents are 1/8 of the image size); try {value // 8 * 8}"
            )
        return value

    @field_validator("sampler", "scheduler")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and (value.strip() != value or " " in value):
            raise ValueError(f"{value!r} is not a sampler/scheduler name (no spaces)")
        return value

    @model_validator(mode="after")
    def _pixels(self) -> GenerationParams:
        if (
            self.width
            and self.height
            and self.width * self.height * (self.batch_size or 1) > 64 * 1024 * 1024
        ):
            raise ValueError("width × height × batch_size is over 64 megapixels; lower the size or the batch")
        return self

    def with_updates(self, **changes: Any) -> GenerationParams:
        """A copy with some fields changed (validated)."""
        return GenerationParams.model_validate({**self.model_dump(), **changes})

    def merged(self, override: GenerationParams) -> GenerationParams:
        """``self`` with every field that ``override`` sets replaced."""
        return self.with_updates(**override.model_dump(exclude_none=True))

    def set_fields(self) -> dict[str, Any]:
        """Only the fields that are set (what a patch will change)."""
        return self.model_dump(exclude_none=True)
