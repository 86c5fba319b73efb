"""Which test files read the shared data, and each test's outcome: a pytest plugin for CI.

With ``PYG_MPNN_TEST_LOG=FILE`` set, a test session writes FILE (JSON) at its end::

    {"shared_files": ["tests/io/test_structure.py", ...],
     "outcomes": {"tests/io/test_jsonl.py::test_roundtrip": "passed", ...}}

A test file is listed when, while one of its tests ran or while it was collected, the process
opened, listed or started a command on a path under the shared data folder (``SHARED_DATA``
or ``../shared``: Python's audit events ``open``, ``os.listdir``, ``os.scandir``,
``glob.glob``, ``subprocess.Popen``), or a test asked for it (``need_shared``, the
``shared_data`` fixture: readers in C open files without an audit event). ``.ci/run`` runs
the suite once with the shared data, then again, with it hidden, only the files listed: every
other file's tests cannot tell the two apart. Without the variable the plugin does nothing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

LOG = os.environ.get("PYG_MPNN_TEST_LOG")
EVENTS = {"open", "os.listdir", "os.scandir", "glob.glob", "subprocess.Popen"}

_current: str | None = None  # the file of the test running or being collected
_shared_files: set[str] = set()
_outcomes: dict[str, str] = {}
_roots: tuple[str, ...] = ()  # the shared folder as given and resolved, each ending in "/"
_rootdir = Path.cwd()  # test files are named relative to pytest's rootdir, as in node ids


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def note_shared_use() -> None:
    """Record that the running test (or the file being collected) uses the shared data."""
    if LOG and _current:
        _shared_files.add(_current)


def _strings(value, depth: int = 0):
    if isinstance(value, (str, bytes, os.PathLike)):
        yield os.fsdecode(value)
    elif isinstance(value, (list, tuple)) and depth < 2:
        for v in value:
            yield from _strings(v, depth + 1)


def _audit(event: str, args: tuple) -> None:
    if event not in EVENTS:
        return
    for text in _strings(args):
        if "shared" in text and os.path.join(os.path.abspath(text), "").startswith(_roots):
            note_shared_use()
            return


def pytest_configure(config) -> None:
    global _roots, _rootdir
    if LOG:
        from testdata import REPO, SHARED_DATA  # here: testdata imports this file

        _rootdir = config.rootpath
        folders = (SHARED_DATA, REPO.parent / "shared")
        _roots = tuple(
            {os.path.join(f(p), "") for p in folders for f in (os.path.abspath, os.path.realpath)}
        )
        sys.addaudithook(_audit)  # an audit hook stays for the whole process


def pytest_collectstart(collector) -> None:
    global _current
    path = getattr(collector, "path", None)
    if path is not None and path.suffix == ".py":
        _current = os.path.relpath(path, _rootdir)


def pytest_collection_modifyitems(items) -> None:
    """The ``shared_data`` fixture is made once per test run: its users are known from their
    signatures."""
    _shared_files.update(
        _file_of(item.nodeid)
        for item in items
        if "shared_data" in getattr(item, "fixturenames", ())
    )


def pytest_collectreport(report) -> None:
    global _current
    _current = None


def pytest_runtest_logstart(nodeid: str, location) -> None:
    global _current
    _current = _file_of(nodeid)


def pytest_runtest_logfinish(nodeid: str, location) -> None:
    global _current
    _current = None


def pytest_runtest_logreport(report) -> None:
    """A test's outcome as pytest's summary counts it: failed, skipped or passed."""
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.skipped and not hasattr(report, "wasxfail"):
        _outcomes.setdefault(report.nodeid, "skipped")
    elif report.when == "call":
        _outcomes.setdefault(report.nodeid, "passed")


def pytest_sessionfinish(session) -> None:
    if LOG:
        out = {"shared_files": sorted(_shared_files), "outcomes": _outcomes}
        Path(LOG).write_text(json.dumps(out, indent=1) + "\n")
