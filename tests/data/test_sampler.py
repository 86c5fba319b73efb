"""Token-budget batch sampler: budget, determinism, coverage, sharding, resume."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_mpnn.data.sampler import TokenBudgetBatchSampler

lengths_st = st.lists(st.integers(1, 600), min_size=1, max_size=200)


@settings(max_examples=60, deadline=None)
@given(
    lengths=lengths_st,
    budget=st.integers(50, 3000),
    seed=st.integers(0, 99),
    epoch=st.integers(0, 5),
)
def test_budget_and_every_item_once(lengths, budget, seed, epoch):
    s = TokenBudgetBatchSampler(lengths, budget, seed=seed)
    s.set_epoch(epoch)
    batches = list(s)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # none lost, none repeated
    for b in batches:
        tokens = sum(lengths[i] for i in b)
        assert tokens <= budget or len(b) == 1  # an oversized protein rides alone
    s2 = TokenBudgetBatchSampler(lengths, budget, seed=seed)
    s2.set_epoch(epoch)
    assert list(s2) == batches  # deterministic from seed and epoch


@settings(max_examples=60, deadline=None)
@given(
    lengths=lengths_st,
    budget=st.integers(50, 3000),
    replicas=st.integers(1, 4),
    seed=st.integers(0, 99),
)
def test_ranks_disjoint_cover_and_equal_steps(lengths, budget, replicas, seed):
    per_rank = []
    for r in range(replicas):
        s = TokenBudgetBatchSampler(lengths, budget, seed=seed, num_replicas=replicas, rank=r)
        per_rank.append(list(s))
    flat = [i for batches in per_rank for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    if len(lengths) >= replicas:
        assert len({len(b) for b in per_rank}) == 1  # same number of steps on every rank


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 300), min_size=1, max_size=120),
    n_clusters=st.integers(1, 30),
    seed=st.integers(0, 99),
)
def test_one_member_per_cluster(lengths, n_clusters, seed):
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, n_clusters, len(lengths))
    s = TokenBudgetBatchSampler(lengths, 1000, clusters=clusters, seed=seed)
    picked = [i for b in s for i in b]
    assert sorted(clusters[picked].tolist()) == sorted(set(clusters.tolist()))


def test_cluster_members_vary_across_epochs():
    clusters = np.repeat(np.arange(10), 20)
    s = TokenBudgetBatchSampler(np.full(200, 50), 500, clusters=clusters, seed=1)
    e0 = sorted(i for b in s for i in b)
    s.set_epoch(1)
    e1 = sorted(i for b in s for i in b)
    assert e0 != e1


def test_length_bucketing_reduces_spread():
    rng = np.random.default_rng(0)
    lengths = rng.integers(30, 800, 500)
    s = TokenBudgetBatchSampler(lengths, 4000, seed=0)
    spread = np.mean([np.ptp(lengths[b]) for b in s if len(b) > 1])
    assert spread < 0.25 * np.ptp(lengths)


@settings(max_examples=30, deadline=None)
@given(lengths=lengths_st, seed=st.integers(0, 99), stop=st.integers(0, 30))
def test_resume_mid_epoch(lengths, seed, stop):
    s = TokenBudgetBatchSampler(lengths, 800, seed=seed)
    s.set_epoch(3)
    full = list(s)
    s = TokenBudgetBatchSampler(lengths, 800, seed=seed)
    s.set_epoch(3)
    it = iter(s)
    head = [next(it) for _ in range(min(stop, len(full)))]
    state = s.state_dict()
    resumed = TokenBudgetBatchSampler(lengths, 800, seed=seed)
    resumed.load_state_dict(state)
    assert head + list(resumed) == full
