"""CI's second pass (the suite without the shared data) runs only the test files that read it:
the first pass records them (``tests/_shared_audit.py``) and ``.ci/shared_pass.py`` lists
them and counts the whole suite from both passes."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from testdata import REPO

SHARED_PASS = REPO / ".ci" / "shared_pass.py"

TESTS = {
    "conftest.py": """
        import os, pytest
        from pathlib import Path

        @pytest.fixture(scope="session")
        def shared_data():
            return Path(os.environ["PYG_MPNN_SHARED_DATA"])
    """,
    "test_opens.py": """
        import os
        def test_opens():
            open(os.path.join(os.environ["PYG_MPNN_SHARED_DATA"], "x.txt")).read()
    """,
    "test_asks.py": """
        from testdata import need_shared
        def test_asks():
            assert need_shared("x.txt").name == "x.txt"  # asked for, never opened here
    """,
    "test_collects.py": """
        import os, pytest
        NAMES = sorted(os.listdir(os.environ["PYG_MPNN_SHARED_DATA"]))
        @pytest.mark.parametrize("name", NAMES)
        def test_collects(name):
            assert name
    """,
    "test_fixture.py": """
        def test_fixture(shared_data):
            assert shared_data.name == "shared"
    """,
    "test_runs_command.py": """
        import os, subprocess, sys
        def test_runs_command():
            path = os.path.join(os.environ["PYG_MPNN_SHARED_DATA"], "x.txt")
            subprocess.run([sys.executable, "-c", "import sys; open(sys.argv[1])", path], check=True)
    """,
    "test_plain.py": """
        import pytest
        def test_plain(tmp_path):
            (tmp_path / "y.txt").write_text("y")
            assert (tmp_path / "y.txt").read_text() == "y"
        def test_skips():
            pytest.skip("no reason")
        def test_fails():
            assert False
    """,
}


def run_suite(root: Path) -> dict:
    for name, text in TESTS.items():
        (root / name).write_text(textwrap.dedent(text))
    (root / "shared").mkdir()
    (root / "shared" / "x.txt").write_text("x")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "tests"),
        "PYG_MPNN_SHARED_DATA": str(root / "shared"),
        "PYG_MPNN_TEST_LOG": str(root / "log.json"),
        "PYTEST_ADDOPTS": "",
    }
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "_shared_audit", "--rootdir", str(root)]
    proc = subprocess.run(
        [*cmd, "-c", os.devnull, str(root)], cwd=root, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]  # test_fails
    return json.loads((root / "log.json").read_text())


def test_first_pass_lists_the_files_that_read_the_shared_data(tmp_path):
    log = run_suite(tmp_path)
    assert log["shared_files"] == [
        "test_asks.py",
        "test_collects.py",
        "test_fixture.py",
        "test_opens.py",
        "test_runs_command.py",
    ]
    assert log["outcomes"]["test_plain.py::test_plain"] == "passed"
    assert log["outcomes"]["test_plain.py::test_skips"] == "skipped"
    assert log["outcomes"]["test_plain.py::test_fails"] == "failed"
    assert log["outcomes"]["test_collects.py::test_collects[x.txt]"] == "passed"


def shared_pass(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SHARED_PASS), *args], cwd=root, capture_output=True, text=True
    )


def test_second_pass_files_and_whole_suite_counts(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_read.py").write_text("def test_a(): pass\n")
    (tests / "test_named.py").write_text("from testdata import need_shared\n")
    (tests / "test_other.py").write_text("def test_b(): pass\n")
    first = {
        "shared_files": ["tests/test_read.py", "tests/test_gone.py"],
        "outcomes": {
            "tests/test_read.py::test_a": "passed",
            "tests/test_named.py::test_c": "passed",
            "tests/test_other.py::test_b": "passed",
            "tests/test_other.py::test_d": "skipped",
        },
    }
    (tmp_path / "with.json").write_text(json.dumps(first))
    files = shared_pass(tmp_path, "files", "with.json")
    assert files.stdout.split() == ["tests/test_named.py", "tests/test_read.py"]

    second = {"shared_files": [], "outcomes": {"tests/test_read.py::test_a": "skipped"}}
    (tmp_path / "without.json").write_text(json.dumps(second))
    # test_other's 2 from the first pass + test_read's 1 from the second: 1 of 3 ran
    ok = shared_pass(tmp_path, "summary", "with.json", "without.json", "30")
    assert ok.returncode == 0 and "1 of 3 tests ran (33.3 %)" in ok.stdout, ok.stdout
    too_few = shared_pass(tmp_path, "summary", "with.json", "without.json", "75")
    assert too_few.returncode == 1 and "too few ran" in too_few.stdout

    second["outcomes"]["tests/test_named.py::test_c"] = "failed"
    (tmp_path / "without.json").write_text(json.dumps(second))
    failed = shared_pass(tmp_path, "summary", "with.json", "without.json", "0")
    assert failed.returncode == 1 and "failures" in failed.stdout
