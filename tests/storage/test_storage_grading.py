"""Ungraded scores in the metadata and the index: best-attempt choice, rejection text, columns, filters, counts,
and the in-place migration of a version-1 index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from storage import Index
from storage.index_query import GenerationFilter, GenerationQuery
from storage.metadata import GenerationMetadata, QualityRecord, RefinementInfo, describe_rejection
from tests.storage.factories import make_metadata, make_quality

REASONS = ["technical not scored (niqe: refused)", "coverage 20% < 50% of the applicable weight"]


def ungraded(q: QualityRecord) -> QualityRecord:
    return q.model_copy(update={"grade": None, "grade_status": "insufficient", "grade_reasons": list(REASONS)})


def with_ungraded(md: GenerationMetadata, numbers: set[int], threshold: float | None) -> GenerationMetadata:
    """The document with attempts ``numbers`` ungraded, best attempt and quality re-derived."""
    attempts = md.refinement.attempts
    for a in attempts:
        if a.attempt in numbers and a.quality is not None:
            a.quality = ungraded(a.quality)
    md.refinement = RefinementInfo.from_attempts(attempts, strategy="progressive", threshold=threshold,
                                                 max_attempts=3)  # fmt: skip
    best = next(a for a in attempts if a.attempt == md.refinement.best_attempt)
    md.quality = best.quality
    return md


def test_a_graded_attempt_is_kept_over_a_higher_ungraded_one():
    md = with_ungraded(make_metadata(attempts=[6.0, 9.5]), {2}, threshold=5.0)
    assert md.refinement.best_attempt == 1 and md.refinement.status == "success"
    assert md.refinement.selection == (
        "attempt 1 (graded) was kept over higher but ungraded composite(s) of attempt(s) 2 (9.50): an ungraded "
        "composite is not a grade"
    )


def test_no_graded_attempt_is_best_effort_even_at_threshold_zero():
    md = with_ungraded(make_metadata(attempts=[6.0, 9.5]), {1, 2}, threshold=0.0)
    assert md.refinement.status == "best_effort" and md.refinement.best_attempt == 2
    assert "no attempt could be graded" in md.refinement.selection
    again = GenerationMetadata.from_json(md.to_json())
    assert again == md and again.quality.grade is None and again.quality.grade_status == "insufficient"


def test_graded_runs_have_no_selection_note():
    md = make_metadata(attempts=[6.0, 7.4])
    assert md.refinement.selection is None and md.quality.grade_status == "graded"


def test_rejection_of_an_ungraded_attempt_says_not_graded():
    text = describe_rejection(ungraded(make_quality(9.5)), 7.0)
    reasons = "; ".join(REASONS)
    assert text == f"not graded ({reasons}): composite 9.50 is not a grade and cannot reach the threshold 7.00"
    assert describe_rejection(ungraded(make_quality(9.5)), None).endswith("composite 9.50 is not a grade")


def test_index_stores_filters_and_counts_ungraded_runs(tmp_path: Path):
    with Index(tmp_path / "i.sqlite3") as idx:
        idx.add(make_metadata(generation_id="graded", attempts=[8.5]))
        idx.add(with_ungraded(make_metadata(generation_id="sliver", attempts=[9.9]), {1}, threshold=7.0))
        idx.add(make_metadata(generation_id="failed", attempts=[None]))
        row = idx.get("sliver")
        assert row.grade is None and row.grade_status == "insufficient" and row.grade_reasons == "; ".join(REASONS)
        assert row.composite == 9.9 and row.status == "best_effort"
        assert idx.get("graded").grade_status == "graded" and idx.get("graded").grade_reasons is None
        assert idx.get("failed").grade_status is None
        attempt = idx.attempts("sliver")[0]
        assert attempt.grade is None and attempt.grade_status == "insufficient"
        dist = idx.grade_distribution()
        assert dist.counts["A"] == 1 and dist.not_graded == 1 and dist.ungraded == 1 and dist.total == 3
        ids = lambda q: [r.generation_id for r in idx.query(q).items]  # noqa: E731
        assert ids(GenerationQuery(graded=False)) == ["sliver"]
        assert ids(GenerationQuery(graded=True)) == ["graded"]
        assert ids(GenerationQuery(grades=["A"])) == ["graded"]  # a null grade never matches a letter
        assert idx.count(GenerationFilter(grades=["A", "B", "C", "D", "F"])) == 1
        high = GenerationQuery(ranges={"composite": {"min": 8.0}})
        assert ids(high) == ["graded"]  # 9.9 ungraded is not "a composite of at least 8"


def test_a_version_1_index_is_migrated_in_place(tmp_path: Path):
    path = tmp_path / "i.sqlite3"
    with Index(path) as idx:
        idx.add(make_metadata(generation_id="old", attempts=[7.0]))
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP INDEX gen_stats;"
        "ALTER TABLE generations DROP COLUMN grade_status; ALTER TABLE generations DROP COLUMN grade_reasons;"
        "ALTER TABLE attempts DROP COLUMN grade_status; ALTER TABLE attempts DROP COLUMN grade_reasons;"
        "UPDATE index_meta SET value = '1' WHERE key = 'schema_version';"
    )
    conn.close()
    with Index(path) as idx:
        assert not idx.recreated and idx.count() == 1
        assert idx.get("old").grade == "B" and idx.get("old").grade_status == "graded"
        assert idx.attempts("old")[0].grade_status == "graded"
        assert idx.grade_distribution().counts["B"] == 1
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM index_meta WHERE key = 'schema_version'").fetchone() == ("2",)
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'gen_stats'").fetchone() == (1,)
    conn.close()
