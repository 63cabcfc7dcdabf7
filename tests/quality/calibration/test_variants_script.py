"""bench/calibration_variants.py, the script behind README's "measured, not shipped" figures: its scoring formula
is the shipped model's, and its counting and pairing helpers do what the figures say (no fitting here)."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from quality.calibration import fit as F
from quality.calibration.evaluate import composite_of
from quality.calibration.fit import Record
from quality.calibration.model import DAMAGE_HEAD, RANKING_HEAD, load_default

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "calibration_variants.py"


@pytest.fixture(scope="module")
def variants():
    spec = importlib.util.spec_from_file_location("calibration_variants", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def predictions():
    """Raw predictions spanning the scale: human MOS 0.5–5, severity 0–1.2, ranking -4 to 3."""
    rng = np.random.default_rng(0)
    n = 400
    return {"technical": rng.uniform(0.5, 5.0, n), "detail": rng.uniform(0.5, 5.0, n),
            DAMAGE_HEAD: rng.uniform(0.0, 1.2, n), RANKING_HEAD: rng.uniform(-4.0, 3.0, n)}  # fmt: skip


def test_the_shipped_variant_is_the_models_own_formula(variants, predictions):
    model = load_default()
    got = variants.variant_scores(model, predictions, variants.Variant("shipped"))
    expected = model.scores_of(predictions)
    for dim in ("technical", "detail"):
        np.testing.assert_allclose(got[dim], expected[dim], rtol=0, atol=1e-12)
    for i in range(0, 400, 37):  # the composite is the product's own (technical 0.30, detail 0.20, the rest n/a)
        composite, _ = composite_of({"technical": float(got["technical"][i]), "detail": float(got["detail"][i])})
        assert got["composite"][i] == pytest.approx(composite)


def test_a_variant_changes_only_what_it_names(variants, predictions):
    model = load_default()
    shipped = variants.variant_scores(model, predictions, variants.Variant("shipped"))
    assert model.severity_cap == F.INTEGRITY_CAP
    uncapped = variants.variant_scores(model, predictions, variants.Variant("no cap", cap=math.inf))
    below = predictions[DAMAGE_HEAD] <= F.INTEGRITY_CAP
    assert below.any() and not below.all()
    assert np.array_equal(uncapped["technical"][below], shipped["technical"][below])
    assert (uncapped["technical"][~below] < shipped["technical"][~below]).all()  # a larger penalty above the cap
    steeper = variants.variant_scores(model, predictions, variants.Variant("slope", slope=1.0))
    knee = predictions[RANKING_HEAD] < -1.0
    assert np.array_equal(steeper["technical"][~knee], shipped["technical"][~knee])
    assert (steeper["technical"][knee] < shipped["technical"][knee]).all()
    # exactly slope points per unit below the knee, where neither score is inside the soft floor or ceiling
    linear = knee & (steeper["technical"] > 1.0) & (shipped["technical"] < 9.0)
    assert linear.sum() > 10
    r = predictions[RANKING_HEAD][linear]
    np.testing.assert_allclose(steeper["technical"][linear], shipped["technical"][linear] + (r + 1.0), atol=1e-9)


def test_falling_counts_strict_steps_of_scored_ladders_only(variants):
    ladders = np.array([[5.0, 4.0, 3.0], [5.0, 5.0, 3.0], [np.nan, 1.0, 0.0], [1.0, 2.0, 0.5]])
    share, strict, total = variants.falling(ladders)
    assert (strict, total) == (1, 3)  # the ladder with a missing score is not counted; a tie does not fall
    assert share == pytest.approx(4 / 6)


def test_group_pairs_are_ordered_within_prompt_and_generator_only(variants):
    recs = [Record("a", "", 4.0, "g1", prompt="cat"), Record("b", "", 3.0, "g1", prompt="cat"),
            Record("c", "", 3.8, "g1", prompt="cat"), Record("d", "", 1.0, "g2", prompt="cat"),
            Record("e", "", 2.0, "g1", prompt="dog")]  # fmt: skip
    better, worse = variants.group_pairs(recs, np.arange(5))
    # a > b and c > b differ by >= 0.5; a vs c (0.2) is too close; d and e have no partner in their group
    assert sorted(zip(better.tolist(), worse.tolist(), strict=True)) == [(0, 1), (2, 1)]
    better, worse = variants.group_pairs(recs, np.array([0, 2, 3, 4]))  # b outside the training part
    assert len(better) == len(worse) == 0
