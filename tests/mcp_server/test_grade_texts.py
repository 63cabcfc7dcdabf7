"""The MCP tool descriptions explain the grades with the server's configured thresholds and coverage."""

from __future__ import annotations

import pytest

from mcp_server import tools
from mcp_server.grade_texts import configured_grading, describe
from quality.composite import CompositeConfig
from quality.settings import QualitySettings
from tests.mcp_server.conftest import components_for, connect

CUSTOM = CompositeConfig(grades={"A": 9.0, "B": 7.5, "C": 5.5, "D": 2.0}, min_graded_coverage=0.6)


def test_tool_descriptions_are_rendered_with_no_placeholder_left() -> None:
    for text in (tools.SCORE_IMAGE_DESCRIPTION, tools.GENERATE_DESCRIPTION):
        rendered = describe(text, CUSTOM)
        assert "{grades}" not in rendered and "{threshold}" not in rendered
        assert "A ≥ 9 excellent, B ≥ 7.5 good" in rendered and "A ≥ 8" not in rendered
        assert "less than 60 % of the weight" in rendered
    generate = describe(tools.GENERATE_DESCRIPTION, CUSTOM)
    assert "The default threshold 7 asks for grade C or better; above 9 (grade A)" in generate
    assert "asks for grade B or better; above 8 (grade A)" in describe(tools.GENERATE_DESCRIPTION)


@pytest.mark.parametrize(
    ("grades", "expected"), [(None, "A ≥ 8 excellent"), ('{"A": 9.5, "B": 7, "C": 5, "D": 3}', "A ≥ 9.5 excellent")]
)
async def test_the_server_explains_the_grades_it_is_configured_with(
    monkeypatch, offline_scorer, settings, grades, expected
) -> None:
    if grades is not None:
        monkeypatch.setenv("COMFY_QUALITY_GRADES_JSON", grades)
    assert configured_grading() == QualitySettings().composite
    async with connect(settings, components_for(offline_scorer)) as (client, _):
        listed = {t.name: t for t in (await client.list_tools()).tools}
    assert expected in (listed["score_image"].description or "")
    assert expected in (listed["generate_quality"].description or "")


def test_invalid_scorer_settings_leave_the_default_texts(monkeypatch) -> None:
    monkeypatch.setenv("COMFY_QUALITY_GRADES_JSON", '{"A": 1, "B": 2, "C": 3, "D": 4}')  # not decreasing
    assert configured_grading() == CompositeConfig()
