"""The bad inputs every command-line test draws from, made once per session in a temporary
folder: a missing path, empty and text files named as structures, an empty folder, weights
files that are random bytes, truncated, JSON, a folder or of another architecture, a dataset
folder, a non-dataset folder and a tracked run with a single step."""

import csv
import json
import random

import pytest
import torch
from _clitools import MRR, REPO, ZNG

from pyg_mpnn.data.prepare import prepare
from pyg_mpnn.nn.weights import original_path
from pyg_mpnn.track.tracker import CSV_FIELDS


@pytest.fixture(scope="session")
def bad(tmp_path_factory):
    b = tmp_path_factory.mktemp("bad")
    rng = random.Random(0)
    (b / "random.pt").write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    (b / "empty.pdb").write_bytes(b"")
    (b / "text.pdb").write_text("not a structure: just some words\n")
    (b / "text.cif").write_text("data_\n_only a header\n")
    (b / "empty_dir").mkdir()
    (b / "weights.json").write_text(json.dumps({"model": "not weights"}))
    (b / "weights_dir").mkdir()
    released = open(original_path("original:v_48_020"), "rb").read()
    (b / "truncated.pt").write_bytes(released[: len(released) // 3])
    sd = torch.load(original_path("original:v_48_020"), weights_only=True)["model_state_dict"]
    sd["W_e.weight"] = torch.zeros(128, 100)  # another edge-feature width: does not fit
    torch.save({"model_state_dict": sd}, b / "other_arch.pt")
    torch.save({"step": 3, "optimizer": {}}, b / "no_model.pt")
    prepare([str(ZNG), str(MRR)], b / "dataset", progress=False)
    (b / "notes").mkdir()
    (b / "notes" / "todo.txt").write_text("my notes")
    (b / "a_file").write_text("x")
    (b / "broken.yaml").write_text("model: [1, 2\n")
    (b / "noise_run").mkdir()
    (b / "noise_run" / "metrics.csv").write_bytes(bytes(rng.randrange(256) for _ in range(999)))
    (b / "bad_json_run").mkdir()
    (b / "bad_json_run" / "metrics.csv").write_text(",".join(CSV_FIELDS) + "\n")
    (b / "bad_json_run" / "run.json").write_text("{not json")
    run = b / "one_step_run"
    run.mkdir()
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerow({"step": 1, "epoch": 0, "wall_s": 0.5, "name": "loss", "subset": "train"})
    return b


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty current folder: a command's default outputs would land here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


CACHES = {".git", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache", ".venv"}


def source_tree_files() -> set[str]:
    """Every file under the repository, caches of git, Python and the tools left out."""
    return {
        str(p.relative_to(REPO))
        for p in REPO.rglob("*")
        if p.is_file() and not CACHES & set(p.relative_to(REPO).parts)
    }


@pytest.fixture(autouse=True, scope="module")
def nothing_written_under_the_source_tree():
    """No command of these tests writes under the source tree (none points --out there)."""
    before = source_tree_files()
    yield
    assert source_tree_files() - before == set()
