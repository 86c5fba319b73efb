"""Random bytes and random text, named as ``.pdb``, ``.cif``, ``.jsonl``, ``.pt`` or ``.gz``,
given to ``prepare``, ``evaluate``, ``design`` (as structures) and ``export`` (as weights):
always exit status 2 with one ``error:`` line naming the file, never a traceback, and nothing
written."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from _clitools import run, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SUFFIXES = [".pdb", ".cif", ".jsonl", ".pt", ".gz", ".pdb.gz", ".jsonl.gz"]
CONTENT = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=3000).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.lists(  # lines that look a little like a structure or a JSONL record
        st.sampled_from(["ATOM", "HETATM", "data_x", "loop_", "_atom_site.id", "{", '{"seq"']),
        max_size=30,
    ).map(lambda words: "\n".join(words).encode()),
)
COMMANDS = {
    "prepare": lambda f: [f, "--out", "DS", "--no-progress"],
    "evaluate": lambda f: ["--data", f, "--no-progress"],
    "design": lambda f: [f, "--out", "o.fa", "--no-progress"],
    "export": lambda f: [f, "--out", "x.pt"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=CONTENT, suffix=st.sampled_from(SUFFIXES))
def test_random_files_are_refused_in_one_line(capsys, monkeypatch, command, content, suffix):
    folder = Path(tempfile.mkdtemp())
    try:
        monkeypatch.chdir(folder)
        name = f"input{suffix}"
        (folder / name).write_bytes(content)
        before = snapshot(folder)
        status, out, err = run(capsys, command, *COMMANDS[command](name))
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert status == 2 and "Traceback" not in err, err
        assert len(lines) == 1 and name in lines[0], err
        assert out == "" and snapshot(folder) == before
    finally:
        shutil.rmtree(folder)
