"""The iso-FLOP sweep's arithmetic: budgets, the time plan, the frontier and the power law."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyg_mpnn.sweep import plan as sweep_plan
from pyg_mpnn.sweep.plan import SizeTiming


@given(st.floats(1e6, 1e15), st.floats(1e3, 1e9))
def test_residue_budget_spends_the_flop_budget(flops, fpr):
    r = sweep_plan.residue_budget(flops, fpr)
    assert r * fpr >= flops * (1 - 1e-12)
    assert (r - 1) * fpr < flops


def test_residue_budget_rejects_nonpositive():
    with pytest.raises(ValueError):
        sweep_plan.residue_budget(0, 1e6)
    with pytest.raises(ValueError):
        sweep_plan.residue_budget(1e12, -1)


TIMINGS = [SizeTiming("small", 2e6, 5000.0), SizeTiming("big", 4e7, 2000.0)]


def test_estimate_is_the_sum_of_every_size_time():
    # small: 1e12 / 2e6 = 5e5 residues / 5000 = 100 s; big: 25,000 / 2000 = 12.5 s; +2 x 10 s
    assert sweep_plan.estimate_minutes(TIMINGS, 1e12, 10.0) == pytest.approx(132.5 / 60)


def test_budgets_that_fit_are_unchanged():
    budgets, scale = sweep_plan.fit_budgets([1e12, 2.5e11, 5e11], TIMINGS, max_minutes=10)
    assert budgets == [2.5e11, 5e11, 1e12] and scale == 1.0


@given(st.floats(0.5, 30), st.floats(0, 20))
def test_too_large_budgets_all_shrink_by_one_factor_and_fit(max_minutes, overhead):
    asked = [1e13, 4e13, 2e13]
    try:
        budgets, scale = sweep_plan.fit_budgets(asked, TIMINGS, max_minutes, overhead)
    except ValueError:  # the overhead alone passes the cap: refused, never cut silently
        assert overhead * len(TIMINGS) / 60 >= 0.9 * max_minutes
        return
    ratios = [b / a for b, a in zip(budgets, sorted(asked))]
    assert all(r == pytest.approx(ratios[0]) for r in ratios)  # one factor for every budget
    if scale < 1:
        assert ratios[0] == pytest.approx(scale)
        assert sweep_plan.estimate_minutes(TIMINGS, budgets[-1], overhead) <= max_minutes + 1e-9
    else:
        assert sweep_plan.estimate_minutes(TIMINGS, budgets[-1], overhead) <= max_minutes


def test_loss_at_budgets_takes_the_first_validation_at_or_after_each():
    history = [{"residues": r, "valid_loss": 3.0 - r / 1e4} for r in (900, 2100, 4000)]
    got = sweep_plan.loss_at_budgets(history, [1000, 2100, 5000])
    assert [g and g["residues"] for g in got] == [2100, 2100, None]


def _rows():
    rows = []
    for size, losses in {
        "a": (2.9, 2.8),
        "b": (2.8, 2.6),
        "c": (2.85, 2.7),
        "b-s1": (2.82, 2.61),
    }.items():
        for b, loss in zip((1e12, 2e12), losses):
            rows.append({"size": size, "budget_flops": b, "valid_loss": loss, "reached": True})
    return rows


def test_compute_optimal_gap_and_spread():
    rows = [r for r in _rows() if r["size"] != "b-s1"]
    assert sweep_plan.compute_optimal(rows, 2e12)["size"] == "b"
    assert sweep_plan.size_gap(_rows(), 2e12, exclude={"b-s1"}) == pytest.approx(0.2)
    spread = sweep_plan.seed_spread(_rows(), "b", "b-s1")
    assert spread == {1e12: pytest.approx(0.02), 2e12: pytest.approx(0.01)}


def test_unreached_budget_is_never_optimal():
    rows = _rows() + [{"size": "d", "budget_flops": 2e12, "valid_loss": 1.0, "reached": False}]
    assert sweep_plan.compute_optimal(rows, 2e12)["size"] == "b"


def test_frontier_is_the_lower_envelope():
    pts = [(1, 3.0), (2, 2.5), (2, 2.7), (3, 2.6), (4, 2.4)]
    assert sweep_plan.frontier(pts) == [(1, 3.0), (2, 2.5), (4, 2.4)]


@given(st.floats(1, 100), st.floats(0.01, 0.5))
def test_power_law_fit_recovers_an_exact_law(a, b):
    pts = [(c, a * c**-b) for c in (1e10, 3e10, 1e11, 3e11)]
    fa, fb = sweep_plan.fit_power_law(pts)
    assert fb == pytest.approx(b, rel=1e-6) and fa == pytest.approx(a, rel=1e-5)


def test_no_power_law_without_a_falling_trend():
    assert sweep_plan.fit_power_law([(1e10, 2.0), (1e11, 2.1), (1e12, 2.2)]) is None
    assert sweep_plan.fit_power_law([(1e10, 2.0), (1e11, 1.9)]) is None  # too few points
    assert math.isfinite(sweep_plan.fit_power_law([(1e10, 2.0), (1e11, 1.9), (1e12, 1.85)])[1])


@given(st.floats(-1.5, 1.5), st.floats(0.05, 2.0), st.floats(1.0, 3.0))
def test_optimal_size_is_the_vertex_of_an_exact_parabola(shift, curvature, floor):
    # loss = floor + curvature * (ln N - ln N*)^2, sampled at a ladder that brackets N*
    n_star = 5e4 * math.exp(shift)
    ladder = [1e4, 2e4, 5e4, 1e5, 2.5e5]
    pts = [(n, floor + curvature * math.log(n / n_star) ** 2) for n in ladder]
    best = min(pts, key=lambda p: p[1])[0]
    got = sweep_plan.optimal_size(pts)
    if best in (ladder[0], ladder[-1]):
        assert not got["bracketed"] and got["params_opt"] is None
    else:
        assert got["bracketed"] and got["params_opt"] == pytest.approx(n_star, rel=1e-6)


def test_optimal_size_at_the_ladders_end_is_not_bracketed():
    rising = [(1e4, 2.0), (2e4, 2.1), (5e4, 2.3)]
    falling = [(1e4, 2.3), (2e4, 2.1), (5e4, 2.0)]
    assert sweep_plan.optimal_size(rising) == {
        "bracketed": False,
        "params_opt": None,
        "size_index": 0,
    }
    assert sweep_plan.optimal_size(falling)["size_index"] == 2
    assert not sweep_plan.optimal_size(falling)["bracketed"]
    flat = sweep_plan.optimal_size([(1e4, 2.0), (2e4, 2.0), (5e4, 2.0)])
    assert flat["bracketed"] is False  # the first of equal losses: the smallest size
    assert sweep_plan.optimal_size([])["params_opt"] is None


@given(st.floats(0.1, 1.0), st.floats(1e-3, 10.0))
def test_optimal_size_law_recovers_an_exact_exponent(a, k):
    pts = [(c, k * c**a) for c in (1e11, 3e11, 1e12, 4e12)]
    law = sweep_plan.fit_optimal_size_law(pts)
    assert law["a"] == pytest.approx(a, rel=1e-6) and law["k"] == pytest.approx(k, rel=1e-6)
    assert law["a_se"] == pytest.approx(0, abs=1e-6) and law["budgets"] == 4


def test_optimal_size_law_error_grows_with_scatter_and_needs_two_budgets():
    exact = [(1e11, 1e4), (1e12, 3e4), (1e13, 9e4)]
    noisy = [(1e11, 1e4), (1e12, 4.5e4), (1e13, 9e4)]
    assert (
        sweep_plan.fit_optimal_size_law(noisy)["a_se"]
        > sweep_plan.fit_optimal_size_law(exact)["a_se"]
    )
    two = sweep_plan.fit_optimal_size_law(exact[:2])
    assert two["a_se"] is None and two["a"] == pytest.approx(math.log10(3))
    assert sweep_plan.fit_optimal_size_law(exact[:1]) is None


def test_ties_are_the_sizes_within_the_spread_of_the_optimum():
    rows = _rows()  # at 2e12: a 2.8, b 2.6, c 2.7, b-s1 2.61
    assert sweep_plan.ties_with_optimal(rows, 2e12, 0.11, exclude={"b-s1"}) == ["c"]
    assert sweep_plan.ties_with_optimal(rows, 2e12, 0.05, exclude={"b-s1"}) == []
    assert sorted(sweep_plan.ties_with_optimal(rows, 2e12, 1.0, exclude={"b-s1"})) == ["a", "c"]


def _parabola_rows(n_star: dict, ladder=(1e4, 3e4, 1e5, 3e5), replicate=None) -> list[dict]:
    """Rows of exact iso-FLOP parabolas, optimum ``n_star[budget]``; ``replicate``: a
    ``(size index, name, loss shift per budget)`` second seed of one size."""
    rows = []
    for b, star in n_star.items():
        for i, n in enumerate(ladder):
            loss = 2.0 + 0.1 * math.log(n / star) ** 2
            rows.append({"size": f"s{i}", "params": n, "budget_flops": b, "valid_loss": loss})
            if replicate and replicate[0] == i:
                rep = {**rows[-1], "size": replicate[1]}
                rows.append({**rep, "valid_loss": loss + replicate[2][b]})
    return rows


def test_the_exponent_over_seeds_spans_the_replicates_choices():
    stars = {1e11: 2e4, 1e12: 6e4}  # a = log10(3)
    same = _parabola_rows(stars, replicate=(1, "s1-s1", {1e11: 0.0, 1e12: 0.0}))
    a = sweep_plan.optimal_size_law_over_seeds(same, {"s1-s1": "s1"})
    assert a == pytest.approx([math.log10(3)] * 2, rel=1e-6)
    # the replicate of the size next to the optimum is worse at the larger budget: with it
    # the parabola's vertex moves away from that size, and a with it
    moved = _parabola_rows(stars, replicate=(1, "s1-s1", {1e11: 0.0, 1e12: 0.02}))
    a = sweep_plan.optimal_size_law_over_seeds(moved, {"s1-s1": "s1"})
    assert len(a) == 2 and a[0] == pytest.approx(math.log10(3), rel=1e-6) and a[1] > a[0]
