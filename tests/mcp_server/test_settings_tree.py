"""One settings tree per process: the MCP server is built from the tree its entry point loaded, and every
component (scorer, orchestrator, store and index, job backend, tool descriptions) takes its section from it;
nothing below the entry point builds a section of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

import mcp_server.jobs_redis
import quality.scorer
from comfy_quality.config import SectionSettings
from comfy_quality.settings import Settings
from jobqueue.settings import JobsSettings
from mcp_server.lifespan import open_app_state
from mcp_server.server import build_server
from quality.settings import QualitySettings
from refinement.settings import RefinementSettings
from storage import LocalStore, StorageSettings
from tests.mcp_server.conftest import make_settings


class _RecordingScorer:
    made: ClassVar[list[_RecordingScorer]] = []

    def __init__(self, settings: QualitySettings | None = None, **_: Any) -> None:
        self.settings = settings
        _RecordingScorer.made.append(self)

    def score(self, image: bytes, prompt: str | None = None, *, source_name: str | None = None) -> Any:
        raise AssertionError("not scored in this test")


class _RecordingJobs:
    """Stands in for the Redis job backend (no Redis here): records the settings it was given."""

    made: ClassVar[list[JobsSettings]] = []

    def __init__(self, settings: JobsSettings, *, retention_seconds: float = 3600.0) -> None:
        _RecordingJobs.made.append(settings)

    async def __aenter__(self) -> _RecordingJobs:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _tree(tmp_path: Path) -> Settings:
    return Settings(
        env_file=None,
        mcp=make_settings(),
        quality=QualitySettings(
            _env_file=None, offline=True, weights_dir=tmp_path / "weights", device="cpu", max_image_bytes=3_000_000
        ),
        refinement=RefinementSettings(_env_file=None, comfyui_urls=["http://127.0.0.1:9/"], max_attempts=2),
        storage=StorageSettings(
            _env_file=None,
            backend="local",
            local_root=tmp_path / "store",
            spool_dir=tmp_path / "spool",
            index_path=tmp_path / "index.sqlite3",
        ),
        jobs=JobsSettings(_env_file=None, url="redis://127.0.0.1:9/0"),
    )


@pytest.fixture
def constructions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every settings section built from now on (by class name)."""
    built: list[str] = []
    original = SectionSettings.__init__

    def counting(self: SectionSettings, *args: Any, **kwargs: Any) -> None:
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(SectionSettings, "__init__", counting)
    return built


async def test_the_server_takes_every_section_from_the_tree_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, constructions: list[str]
) -> None:
    monkeypatch.setattr(quality.scorer, "Scorer", _RecordingScorer)
    monkeypatch.setattr(mcp_server.jobs_redis, "RedisJobBackend", _RecordingJobs)
    _RecordingScorer.made.clear()
    _RecordingJobs.made.clear()
    tree = _tree(tmp_path)
    constructions.clear()  # the sections given above; from here on nothing may build another

    async with open_app_state(tree) as state:
        server = build_server(tree, state=state)
        scorer = await state.scorer.get(wait_seconds=10)
        assert server is not None and state.tree is tree and state.settings is tree.mcp
        assert isinstance(scorer, _RecordingScorer) and scorer.settings is tree.quality  # the scorer's section
        generator: Any = state.jobs  # the Redis backend, from the tree's jobs section (not the environment)
        assert isinstance(generator, _RecordingJobs) and _RecordingJobs.made == [tree.jobs]
        assert state.sources.file_max_bytes == 3_000_000  # the quality section's image limit
        store: Any = state.store
        assert isinstance(store.store, LocalStore) and store.store.root == (tmp_path / "store").resolve()
        index: Any = state.index
        assert Path(index.index.path) == tmp_path / "index.sqlite3"

    assert constructions == [], f"sections built again below the entry point: {constructions}"


async def test_the_orchestrator_is_built_on_the_trees_refinement_and_storage_sections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, constructions: list[str]
) -> None:
    from mcp_server.lifespan import build_components

    monkeypatch.setattr(quality.scorer, "Scorer", _RecordingScorer)
    _RecordingScorer.made.clear()
    tree = _tree(tmp_path)
    constructions.clear()
    async with build_components(tree) as components:
        orchestrator: Any = components.generator
        assert orchestrator.settings is tree.refinement
        assert isinstance(orchestrator.store, LocalStore) and orchestrator.store.root == (tmp_path / "store").resolve()
        assert [c.base_url for c in orchestrator.comfy.clients] == ["http://127.0.0.1:9"]
        assert "127.0.0.1:9" in components.trusted_hosts
        assert components.max_image_bytes == 3_000_000
        components.scorer_factory()
    assert [s.settings for s in _RecordingScorer.made] == [tree.quality]  # one scorer, on the tree's section
    assert constructions == []


def test_tool_descriptions_render_the_trees_grading(tmp_path: Path) -> None:
    from mcp_server.grade_texts import configured_grading

    tree = _tree(tmp_path)
    assert configured_grading(tree) is tree.quality.composite


def test_a_section_given_alone_becomes_the_mcp_section_of_a_new_tree(constructions: list[str]) -> None:
    from comfy_quality.settings import tree_of

    mcp = make_settings()
    tree = tree_of(mcp, "mcp")
    assert tree.mcp is mcp and tree_of(tree, "mcp") is tree
    with pytest.raises(TypeError, match="mcp settings section"):
        tree_of({"port": 0}, "mcp")  # type: ignore[arg-type]


def test_doctor_checks_the_sections_of_the_tree_it_is_given(tmp_path: Path, constructions: list[str]) -> None:
    from mcp_server.doctor import Settings as DoctorSettings

    tree = _tree(tmp_path)
    constructions.clear()
    checked = DoctorSettings(tree)
    assert (checked.mcp, checked.quality, checked.refinement, checked.storage) == (
        tree.mcp,
        tree.quality,
        tree.refinement,
        tree.storage,
    )
    assert checked.checks == [] and constructions == []
