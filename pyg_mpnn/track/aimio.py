"""Reading an Aim repo written by :class:`pyg_mpnn.track.tracker.Tracker` from Python.

Aim 3.x indexes a run's metadata in a background thread of ``aim up``; until then
``Repo.get_run`` does not see it. :func:`index_run` does that indexing in-process (the same
steps as Aim's ``RepoIndexManager.index``), so tests and ``diagnose`` can query a repo that
no server has opened.
"""

from __future__ import annotations

from pathlib import Path

from aim import Repo


def index_run(repo_path: str | Path, run_hash: str) -> None:
    repo = Repo.from_path(str(repo_path))
    index = repo._get_index_tree("meta", 0).view(())
    tree = repo.request_tree("meta", run_hash, read_only=True, skip_read_optimization=True)
    tree.subtree("meta").subtree("chunks").subtree(run_hash).finalize(index=index)


def open_runs(repo_path: str | Path) -> list:
    """Every run of the repo (indexed first), read-only."""
    hashes = Repo.from_path(str(repo_path)).list_all_runs()
    for h in hashes:
        index_run(repo_path, h)
    repo = Repo(str(repo_path))
    return [repo.get_run(h) for h in hashes]
