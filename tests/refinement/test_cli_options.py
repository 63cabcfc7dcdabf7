"""``python -m refinement generate``'s request options are GenerationRequest's fields: names, types, choices,
defaults, bounds and help come from the model (no ComfyUI needed: only the parser and the request are built)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from pydantic import Field, ValidationError

from refinement import cli
from refinement.api import CALLER_SET_FIELDS, GenerationRequest, LoraRequest


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["generate"]._actions}


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["generate", *argv])


def test_every_request_field_is_an_option_with_the_models_help():
    options = _options(cli.build_parser())
    for name, info in GenerationRequest.model_fields.items():
        if name in CALLER_SET_FIELDS:
            assert name not in options
            continue
        assert info.description and info.description in (options[name].help or ""), name
    assert options["prompt"].required and not options["steps"].required
    assert options["retry_strategy"].choices == ("progressive", "seed_search", "prompt_enhance", "adaptive",
                                                 "best_of_n")  # fmt: skip
    assert "1 ≤ x ≤ 10" in (options["max_attempts"].help or "") and "default: 3" in (options["max_attempts"].help or "")
    assert "at most 8" in (options["loras"].help or "")


def test_options_left_out_take_the_models_defaults():
    request = cli.request_of(parse("--prompt", "a fox"))
    assert request == GenerationRequest(prompt="a fox", source="cli")


def test_given_options_aliases_and_repeated_loras_reach_the_request():
    request = cli.request_of(parse(
        "--prompt", "a fox", "--negative", "blur", "--best-of", "6", "--retry-strategy", "best_of_n", "--seed", "5",
        "--cfg", "4.5", "--sampler", "euler", "--lora", "a.safetensors:0.5", "--lora", "b.safetensors",
        "--quality-threshold", "8",
    ))  # fmt: skip
    assert (request.negative_prompt, request.best_of_n, request.retry_strategy) == ("blur", 6, "best_of_n")
    assert (request.seed, request.cfg, request.sampler, request.quality_threshold) == (5, 4.5, "euler", 8.0)
    assert request.loras == [LoraRequest(name="a.safetensors", strength_model=0.5, strength_clip=0.5),
                             LoraRequest(name="b.safetensors")]  # fmt: skip
    assert cli.request_of(parse("--prompt", "x", "--max-attempts", "5", "--quality-score")).max_attempts == 1


@pytest.mark.parametrize(
    ("argv", "field"),
    [(("--max-attempts", "0"), "max_attempts"), (("--width", "5000"), "width"), (("--best-of-n", "1"), "best_of_n")],
)
def test_out_of_bounds_values_are_refused_by_the_model(argv, field):
    with pytest.raises(ValidationError) as caught:
        cli.request_of(parse("--prompt", "x", *argv))
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_usage_error_exit_code_for_a_bound(capsys):
    assert cli.main(["generate", "--prompt", "x", "--steps", "0"]) == cli.EXIT_USAGE
    assert "steps" in capsys.readouterr().err


class Extended(GenerationRequest):
    denoise: float = Field(1.0, ge=0, le=1, description="how much of the first image to redraw")


def test_a_field_added_to_the_model_becomes_an_option_with_no_second_edit(monkeypatch):
    monkeypatch.setattr(cli, "GenerationRequest", Extended)
    options = _options(cli.build_parser())
    assert options["denoise"].help == "how much of the first image to redraw (0 ≤ x ≤ 1; default: 1.0)"
    request = cli.request_of(parse("--prompt", "x", "--denoise", "0.4"))
    assert isinstance(request, Extended) and request.denoise == 0.4
    with pytest.raises(ValidationError):
        cli.request_of(parse("--prompt", "x", "--denoise", "3"))


class Unsupported(GenerationRequest):
    extras: dict[str, Any] = Field(default_factory=dict)


def test_a_field_the_command_line_cannot_express_fails_loudly(monkeypatch):
    monkeypatch.setattr(cli, "GenerationRequest", Unsupported)
    with pytest.raises(TypeError, match="extras"):
        cli.build_parser()
