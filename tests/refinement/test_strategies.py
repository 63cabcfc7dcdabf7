import pytest

from refinement.strategies import (
    BOOSTERS,
    MAX_STEPS,
    NEGATIVE_BOOSTERS,
    Outcome,
    Plan,
    next_seed,
    plan_attempt,
    weakest_dimension,
)

BASE = Plan(prompt="a red fox in the snow", negative_prompt=None, seed=1234, steps=30, cfg=7.0)
FLUX = Plan(prompt="a red fox", negative_prompt="", seed=5, steps=25, cfg=1.0, guidance=3.5, family="flux")


def dims(technical=7.0, aesthetic=7.0, prompt_adherence=7.0, detail=7.0):
    return {"technical": technical, "aesthetic": aesthetic, "prompt_adherence": prompt_adherence, "detail": detail}


def test_first_attempt_is_the_base_plan_for_every_strategy():
    for strategy in ("progressive", "seed_search", "prompt_enhance", "best_of_n"):
        assert plan_attempt(strategy, 1, BASE) == BASE


def test_progressive_follows_the_design_ladder_and_keeps_the_seed():
    plans = [plan_attempt("progressive", k, BASE) for k in (1, 2, 3, 4)]
    assert [p.steps for p in plans] == [30, 50, 80, 112]
    assert [p.cfg for p in plans] == [7.0, 7.5, 8.0, 8.5]
    assert {p.seed for p in plans} == {1234}
    assert "steps 30 → 50" in plans[1].changes[0]
    assert plan_attempt("progressive", 9, BASE).steps == MAX_STEPS


def test_progressive_scales_a_user_step_count_and_never_goes_below_it():
    base = Plan(prompt="p", negative_prompt=None, seed=1, steps=20, cfg=5.0)
    assert [plan_attempt("progressive", k, base).steps for k in (1, 2, 3)] == [20, 33, 53]
    assert plan_attempt("progressive", 2, base).cfg == 5.5


def test_progressive_on_flux_raises_guidance_not_cfg():
    plan = plan_attempt("progressive", 3, FLUX)
    assert plan.cfg == 1.0 and plan.guidance == 4.5 and plan.steps > FLUX.steps


def test_seed_search_changes_only_the_seed_deterministically():
    seeds = [plan_attempt("seed_search", k, BASE).seed for k in range(1, 6)]
    assert len(set(seeds)) == 5 and seeds[0] == 1234
    assert seeds == [next_seed(1234, k) for k in range(1, 6)]
    p = plan_attempt("seed_search", 2, BASE)
    assert (p.steps, p.cfg, p.prompt) == (BASE.steps, BASE.cfg, BASE.prompt)
    assert all(0 <= s < 2**32 for s in seeds)


def test_prompt_enhance_appends_different_boosters_and_negative_defects():
    p2, p3 = plan_attempt("prompt_enhance", 2, BASE), plan_attempt("prompt_enhance", 3, BASE)
    assert p2.prompt.startswith(BASE.prompt) and BOOSTERS[0] in p2.prompt and BOOSTERS[1] in p3.prompt
    assert p2.negative_prompt == NEGATIVE_BOOSTERS and p2.seed == BASE.seed
    existing = plan_attempt("prompt_enhance", 2, Plan("x", "ugly", 1, 30, 7.0))
    assert existing.negative_prompt == f"ugly, {NEGATIVE_BOOSTERS}"


@pytest.mark.parametrize(
    ("weak", "check"),
    [
        ("technical", lambda p: p.steps == 45 and p.seed == BASE.seed),
        ("detail", lambda p: p.steps == 45),
        ("prompt_adherence", lambda p: p.cfg == 8.0 and p.prompt == f"({BASE.prompt}:1.20)"),
        ("aesthetic", lambda p: p.seed != BASE.seed and p.steps == BASE.steps),
    ],
)
def test_adaptive_pulls_the_lever_of_the_weakest_dimension(weak, check):
    history = [Outcome(BASE, 5.0, dims(**{weak: 2.0}))]
    plan = plan_attempt("adaptive", 2, BASE, history)
    assert check(plan), plan
    assert weak in plan.changes[0]


def test_adaptive_switches_lever_when_the_last_change_did_not_help():
    second = plan_attempt("adaptive", 2, BASE, [Outcome(BASE, 5.0, dims(detail=3.0))])
    assert second.lever == "steps"
    history = [Outcome(BASE, 5.0, dims(detail=3.0)), Outcome(second, 5.1, dims(detail=2.9))]
    third = plan_attempt("adaptive", 3, BASE, history)
    assert third.lever == "seed" and "did not improve" in third.changes[0]
    helped = [Outcome(BASE, 5.0, dims(detail=3.0)), Outcome(second, 5.5, dims(detail=4.0))]
    assert plan_attempt("adaptive", 3, BASE, helped).steps == 68  # kept pulling steps


def test_adaptive_after_a_failed_attempt_tries_a_new_seed():
    plan = plan_attempt("adaptive", 2, BASE, [Outcome(BASE, None, None)])
    assert plan.seed != BASE.seed and "failed" in plan.changes[0]


def test_adaptive_on_flux_raises_guidance():
    plan = plan_attempt("adaptive", 2, FLUX, [Outcome(FLUX, 5.0, dims(prompt_adherence=1.0))])
    assert plan.guidance == 4.0 and plan.cfg == 1.0


def test_adaptive_with_steps_at_the_cap_changes_seed():
    capped = Plan("p", None, 1, MAX_STEPS, 7.0)
    plan = plan_attempt("adaptive", 2, capped, [Outcome(capped, 4.0, dims(technical=1.0))])
    assert plan.lever == "seed" and "cap" in plan.changes[0]


def test_best_of_n_uses_a_fresh_seed_per_batch():
    base = Plan("p", None, 10, 30, 7.0, batch_size=4)
    assert plan_attempt("best_of_n", 2, base).seed != 10 and plan_attempt("best_of_n", 2, base).batch_size == 4


def test_errors_and_helpers():
    with pytest.raises(ValueError):
        plan_attempt("progressive", 0, BASE)
    with pytest.raises(ValueError):
        plan_attempt("adaptive", 2, BASE, [])
    with pytest.raises(ValueError):
        plan_attempt("nope", 2, BASE)  # type: ignore[arg-type]
    assert weakest_dimension({"a": None, "b": 3.0, "c": 1.0}) == "c"
    assert weakest_dimension({"a": None}) is None
