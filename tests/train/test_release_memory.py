"""jemalloc's free pages are returned to the system when the trainer asks (``train.release_memory_every``).

With its decay off, jemalloc keeps every page a freed tensor held and merges neighbouring free
extents only when it returns them, so a run whose tensor sizes keep changing grows
(docs/reliability.md). :func:`pyg_mpnn.allocator.release_free_memory` purges them; the
trainer calls it every N steps, after each validation and at each epoch's end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from _train_tiny import TINY_MODEL

from pyg_mpnn import allocator
from pyg_mpnn.allocator import MALLOC_CONF, find_jemalloc
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer

# tensors of changing sizes, freed; jemalloc's held-free bytes before and after the release
_PROBE = textwrap.dedent(
    """
    import json, torch
    from pyg_mpnn import allocator
    kept = [torch.ones(n * 131072) for n in range(8, 48)]  # 4 to 24 MB each
    del kept
    before = allocator.heap_stats().free, allocator.rss_bytes()
    released = allocator.release_free_memory()
    after = allocator.heap_stats().free, allocator.rss_bytes()
    print(json.dumps(dict(active=allocator.active(), released=released, before=before, after=after)))
    """
)


@pytest.mark.skipif(find_jemalloc() is None, reason="no libjemalloc (apt install libjemalloc2)")
def test_release_returns_jemallocs_free_pages():
    env = {**os.environ, "LD_PRELOAD": find_jemalloc(), "MALLOC_CONF": MALLOC_CONF}
    run = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    r = json.loads(run.stdout.splitlines()[-1])
    assert r["active"] == "jemalloc" and r["released"] is True
    (free_before, rss_before), (free_after, rss_after) = r["before"], r["after"]
    assert free_before > 400e6, f"jemalloc kept only {free_before / 1e6:.0f} MB free"
    assert free_after < 0.1 * free_before, (free_before, free_after)
    assert rss_before - rss_after > 0.8 * (free_before - free_after)


def test_release_is_a_no_op_on_glibc():
    if allocator.active() != "system":
        pytest.skip("the test process itself runs on jemalloc")
    assert allocator.release_free_memory() is False


def test_trainer_releases_every_n_steps_and_after_validation(tiny_dataset, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "release_free_memory", lambda: calls.append(t.step) or True)
    sets = [f"data.path={tiny_dataset}", "data.max_tokens=300", "track.aim=false"]
    every = ["train.release_memory_every=3", "train.valid_every_steps=2"]
    cfg = load_experiment("smoke", TINY_MODEL + sets + ["train.max_steps=7", *every])
    t = Trainer(cfg, tmp_path)
    per_epoch = len(t.data.sampler)
    t.fit()
    # after each validation (every 2nd step), every 3rd step, each epoch's end and the run's end
    due = {s for s in range(1, 8) if s % 2 == 0 or s % 3 == 0 or s % per_epoch == 0 or s == 7}
    assert 1 not in due and sorted(calls) == sorted(due), (calls, per_epoch)
    assert len(calls) == len(set(calls)), calls  # once a step at most

    calls.clear()
    off = ["train.max_steps=4", "train.release_memory_every=0", "train.valid_every_steps=2"]
    t = Trainer(load_experiment("smoke", TINY_MODEL + sets + off), tmp_path / "off")
    t.fit()
    assert calls == []
