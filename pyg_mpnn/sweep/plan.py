"""The arithmetic of an iso-FLOP scale sweep: budgets, the time plan, the frontier, the fit.

A size's residue budget at a FLOP budget ``C`` is ``C / flops_per_residue`` (forward + backward
FLOPs of one training residue, counted by ``FlopCounterMode``), so every size of one budget has
spent the same training compute. One run per size trains to the largest budget and is
validated when it crosses each smaller one (the Noam schedule does not anneal towards an end,
so a run read at ``C`` is a run that was given ``C``, up to the last batch).

The time plan never cuts sizes unevenly: when the estimate from a short timing of every size
exceeds the sweep's ``max_minutes``, *every* budget is scaled by one factor (and the sweep says
so). All functions here are pure, so the arithmetic is tested without training anything.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SizeTiming:
    """What a short timing of one size measured (``flops_per_residue`` also sets its budgets)."""

    name: str
    flops_per_residue: float
    residues_per_s: float


def residue_budget(flops: float, flops_per_residue: float) -> int:
    """Training residues that spend ``flops`` at ``flops_per_residue`` (rounded up)."""
    if flops <= 0 or flops_per_residue <= 0:
        raise ValueError(f"budget {flops} and FLOPs per residue {flops_per_residue} must be > 0")
    return int(math.ceil(flops / flops_per_residue))


def estimate_minutes(timings: list[SizeTiming], max_flops: float, overhead_s: float) -> float:
    """Wall minutes to train every timed size to ``max_flops`` plus a per-run ``overhead_s``
    (validations, model set-up)."""
    seconds = sum(
        residue_budget(max_flops, t.flops_per_residue) / t.residues_per_s for t in timings
    )
    return (seconds + overhead_s * len(timings)) / 60


def fit_budgets(
    budgets: list[float],
    timings: list[SizeTiming],
    max_minutes: float | None,
    overhead_s: float = 0.0,
    margin: float = 0.9,
) -> tuple[list[float], float]:
    """``(budgets, scale)``: the FLOP budgets, all scaled by one factor ``scale <= 1`` when the
    estimate would pass ``max_minutes`` (aiming at ``margin`` of it), else unchanged."""
    budgets = sorted(float(b) for b in budgets)
    if not max_minutes:
        return budgets, 1.0
    estimate = estimate_minutes(timings, budgets[-1], overhead_s)
    if estimate <= max_minutes:
        return budgets, 1.0
    train_min = estimate - overhead_s * len(timings) / 60
    room = margin * max_minutes - overhead_s * len(timings) / 60
    if room <= 0:
        raise ValueError(
            f"max_minutes={max_minutes} leaves no time to train after "
            f"{len(timings)} runs' overhead of {overhead_s:.0f} s each"
        )
    scale = room / train_min
    return [b * scale for b in budgets], scale


def loss_at_budgets(history: list[dict], budget_residues: list[int]) -> list[dict | None]:
    """For each residue budget, the first validation at or after it (``None``: not reached)."""
    out = []
    for r in budget_residues:
        after = [h for h in history if h["residues"] >= r]
        out.append(min(after, key=lambda h: h["residues"]) if after else None)
    return out


def compute_optimal(rows: list[dict], budget: float) -> dict | None:
    """The row of lowest validation loss among complete rows at FLOP ``budget``."""
    at = [
        r
        for r in rows
        if r["budget_flops"] == budget and r["valid_loss"] is not None and r.get("reached", True)
    ]
    return min(at, key=lambda r: r["valid_loss"]) if at else None


def frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Lower envelope of ``(flops, loss)`` points: each point kept if no point with fewer or
    equal FLOPs has a lower loss."""
    out, best = [], math.inf
    for f, loss in sorted(points):
        if loss < best:
            out.append((f, loss))
            best = loss
    return out


def _line_fit(pts: list[tuple[float, float]]) -> tuple[float, float, float, float] | None:
    """Least-squares ``y = intercept + slope * x``: ``(slope, intercept, sxx, residual)``, or
    ``None`` when every ``x`` is the same."""
    n = len(pts)
    mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in pts) / sxx
    residual = sum((y - my - slope * (x - mx)) ** 2 for x, y in pts)
    return slope, my - slope * mx, sxx, residual


def fit_power_law(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares fit of ``loss = a * flops ** -b`` in log-log space; ``(a, b)``, or ``None``
    with fewer than 3 points or a non-decreasing trend (no power law to fit)."""
    pts = [(math.log(f), math.log(loss)) for f, loss in points if f > 0 and loss > 0]
    fit = _line_fit(pts) if len(pts) >= 3 else None
    if fit is None or fit[0] >= 0:
        return None
    return math.exp(fit[1]), -fit[0]


def seed_spread(rows: list[dict], size: str, replicate: str) -> dict[float, float]:
    """``{budget: |valid_loss(size) - valid_loss(replicate)|}`` over budgets both reached."""

    def by_budget(name):
        return {
            r["budget_flops"]: r["valid_loss"]
            for r in rows
            if r["size"] == name and r["valid_loss"] is not None and r.get("reached", True)
        }

    a, b = by_budget(size), by_budget(replicate)
    return {c: abs(a[c] - b[c]) for c in sorted(set(a) & set(b))}


def optimal_size(points: list[tuple[float, float]]) -> dict:
    """Where one budget's iso-FLOP profile has its minimum. ``points``: ``(params, loss)`` of
    every size at the budget. The lowest-loss size is *bracketed* when the ladder has a smaller
    and a larger size; then ``params_opt`` is the vertex of the parabola through it and its two
    neighbours in ``log(params)`` (inside their range, since the middle one is lowest), else
    ``None``: the optimum may lie beyond the ladder."""
    pts = sorted((n, loss) for n, loss in points if n > 0 and loss is not None)
    if not pts:
        return {"bracketed": False, "params_opt": None, "size_index": None}
    i = min(range(len(pts)), key=lambda j: pts[j][1])
    if not 0 < i < len(pts) - 1:
        return {"bracketed": False, "params_opt": None, "size_index": i}
    (x0, y0), (x1, y1), (x2, y2) = [(math.log(n), loss) for n, loss in pts[i - 1 : i + 2]]
    den = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
    if den == 0:  # three equal losses: no curvature, the middle size stands
        return {"bracketed": True, "params_opt": pts[i][0], "size_index": i}
    num = (x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)
    return {"bracketed": True, "params_opt": math.exp(x1 - 0.5 * num / den), "size_index": i}


def fit_optimal_size_law(points: list[tuple[float, float]]) -> dict | None:
    """Least-squares ``N_opt = k * C^a`` in log-log space over ``(budget, params_opt)``;
    ``{a, a_se, k, budgets}``, ``a_se`` the standard error of ``a`` (``None`` with two
    budgets: no residual left to estimate it). ``None`` with fewer than two budgets."""
    pts = [(math.log(c), math.log(n)) for c, n in points if c > 0 and n and n > 0]
    fit = _line_fit(pts) if len(pts) >= 2 else None
    if fit is None:
        return None
    a, intercept, sxx, residual = fit
    se = math.sqrt(residual / (len(pts) - 2) / sxx) if len(pts) > 2 else None
    return {"a": a, "a_se": se, "k": math.exp(intercept), "budgets": len(pts)}


def optimal_size_law_over_seeds(rows: list[dict], reps: dict[str, str]) -> list[float]:
    """The exponent ``a`` of ``N_opt = k C^a`` refitted with each replicated size's losses
    taken from either of its seeds (``reps``: ``{replicate: size}``): one ``a`` per choice of
    seeds that brackets at least two budgets. Its range is how far seed noise moves ``a``."""
    options = [[None, rep] for rep in reps]  # None: the size's own seed
    losses = {
        (r["size"], r["budget_flops"]): r["valid_loss"]
        for r in rows
        if r.get("reached", True) and r["valid_loss"] is not None
    }
    exponents = []
    for choice in itertools.product(*options):
        swap = {reps[rep]: rep for rep in choice if rep}
        points = []
        for b in sorted({r["budget_flops"] for r in rows}):
            at = [
                (r["params"], losses.get((swap.get(r["size"], r["size"]), b)))
                for r in rows
                if r["budget_flops"] == b and r["size"] not in reps and r.get("reached", True)
            ]
            optimum = optimal_size(at)
            if optimum["bracketed"]:
                points.append((b, optimum["params_opt"]))
        law = fit_optimal_size_law(points)
        if law:
            exponents.append(law["a"])
    return exponents


def _losses_at(rows: list[dict], budget: float, exclude=frozenset()) -> dict[str, float]:
    """``{size: valid_loss}`` of the complete rows at FLOP ``budget``, ``exclude`` left out."""
    return {
        r["size"]: r["valid_loss"]
        for r in rows
        if r["budget_flops"] == budget
        and r["valid_loss"] is not None
        and r.get("reached", True)
        and r["size"] not in exclude
    }


def ties_with_optimal(rows: list[dict], budget: float, spread: float, exclude=frozenset()):
    """Sizes other than the compute-optimal one whose loss at ``budget`` is within ``spread``
    (the seed-to-seed spread) of it: at this budget they cannot be told apart."""
    at = _losses_at(rows, budget, exclude)
    if not at:
        return []
    best = min(at, key=at.get)
    return [s for s, loss in at.items() if s != best and loss - at[best] <= spread]


def size_gap(rows: list[dict], budget: float, exclude: set[str] = frozenset()) -> float | None:
    """Best-to-worst validation-loss gap between sizes at ``budget`` (replicates excluded)."""
    losses = list(_losses_at(rows, budget, exclude).values())
    return max(losses) - min(losses) if len(losses) >= 2 else None


# -- ablations: FLOP matching and seed statistics -----------------------------------------------
def solve_increasing(f, target: float, start: int, lo: int = 1, max_evals: int = 40):
    """``(x, f(x), evaluations)``: the integer ``x >= lo`` whose ``f(x)`` is nearest ``target``
    in ratio, for ``f`` increasing in ``x`` (a width's FLOPs per residue: about quadratic).

    Starts at ``start``; each guess scales ``x`` by ``sqrt(target / f(x))`` (exact for a pure
    quadratic), kept strictly inside the bracket found so far; it stops once two neighbouring
    integers bracket ``target`` (or ``lo`` is already above it). ``evaluations`` is
    ``{x: f(x)}`` of every call."""
    if target <= 0:
        raise ValueError(f"target {target} must be > 0")
    vals: dict[int, float] = {}

    def value(x: int) -> float:
        if x not in vals:
            vals[x] = float(f(x))
        return vals[x]

    x = max(lo, int(start))
    for _ in range(max_evals):
        v = value(x)
        below = max((k for k in vals if vals[k] <= target), default=None)
        above = min((k for k in vals if vals[k] >= target), default=None)
        if below is not None and above is not None and above - below <= 1:
            break
        if above == lo:  # even the smallest value costs more than the target
            break
        guess = max(lo, round(x * math.sqrt(target / v)))
        if below is not None:
            guess = max(guess, below + 1)
        if above is not None:
            guess = min(guess, above - 1)
        if guess == x:
            guess = x + 1 if v < target else x - 1
        x = guess
    best = min(vals, key=lambda k: abs(vals[k] / target - 1))
    return best, vals[best], dict(sorted(vals.items()))


def spread(values: list[float]) -> dict:
    """``{mean, sd, min, max, n, values}`` of ``values`` (``sd``: sample standard deviation,
    0 for one value); empty when there are none."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return {"n": 0, "values": []}
    mean = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return {
        "mean": mean,
        "sd": sd,
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
        "values": vals,
    }


def seed_summary(rows: list[dict], metrics: tuple[str, ...]) -> dict:
    """Per point (in first-seen order): the :func:`spread` of each metric over its seeds; and
    ``comparison``: the best point by mean validation loss against each other point — the gap
    of the means, whether their seed ranges overlap, and on how many of their common seeds the
    best was better (the same seed is the same data order)."""
    points: dict[str, list[dict]] = {}
    for r in rows:
        points.setdefault(r["point"], []).append(r)
    out = {
        "points": {
            p: {
                "seeds": [r.get("seed") for r in rs],
                **{m: spread([r.get(m) for r in rs]) for m in metrics},
            }
            for p, rs in points.items()
        }
    }
    losses = {p: spread([r.get("valid_loss") for r in rs]) for p, rs in points.items()}
    scored = {p: s for p, s in losses.items() if s["n"]}
    ppl = {p: spread([r.get("valid_ppl") for r in rs]) for p, rs in points.items()}
    if len(scored) < 2:
        out["comparison"] = None
        return out
    best = min(scored, key=lambda p: scored[p]["mean"])
    by_seed = {p: {r.get("seed"): r["valid_loss"] for r in rs} for p, rs in points.items()}
    others = []
    for p in scored:
        if p == best:
            continue
        common = [s for s in by_seed[best] if s in by_seed[p]]
        others.append(
            {
                "point": p,
                "loss_gap": scored[p]["mean"] - scored[best]["mean"],
                "ppl_gap": ppl[p]["mean"] - ppl[best]["mean"],
                "ranges_overlap": scored[p]["min"] <= scored[best]["max"],
                "best_wins": sum(by_seed[best][s] < by_seed[p][s] for s in common),
                "common_seeds": len(common),
            }
        )
    out["comparison"] = {"best": best, "others": others}
    return out
