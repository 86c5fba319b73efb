"""The second CI pass, the suite without the shared data, from the first pass's test log.

``shared_pass.py files WITH.json``: the test files to run again with the shared data hidden,
one per line: those the first pass saw reading it (``tests/_shared_audit.py`` writes
WITH.json), and every test file whose source names it (``need_shared``, ``shared_data``,
``SHARED_...``, ``_nn_data``) whether or not it read it this time.

``shared_pass.py summary WITH.json WITHOUT.json MIN_RAN_PERCENT``: the whole suite as a user
without the shared data runs it: the first pass's outcomes of the files not run again (they
never read the shared data, so the two passes are alike there) and the second pass's outcomes.
Prints ``without-shared (whole suite): R of T tests ran (P %) ...`` and exits 1 on a failure
or when fewer than MIN_RAN_PERCENT of the tests ran.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

NAMES_SHARED = re.compile(r"need_shared|shared_data|SHARED_[A-Z]|_nn_data")


def rerun_files(with_log: Path) -> list[str]:
    seen = set(json.loads(with_log.read_text())["shared_files"])
    named = {str(p) for p in Path("tests").rglob("test_*.py") if NAMES_SHARED.search(p.read_text())}
    return sorted(f for f in seen | named if Path(f).is_file())


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def summary(with_log: Path, without_log: Path, min_percent: float) -> int:
    first = json.loads(with_log.read_text())["outcomes"]
    second = json.loads(without_log.read_text())["outcomes"]
    rerun = set(rerun_files(with_log))
    kept = {k: v for k, v in first.items() if file_of(k) not in rerun}
    counts = Counter(kept.values()) + Counter(second.values())
    total = sum(counts.values())
    ran = counts["passed"] + counts["failed"]
    percent = 100.0 * ran / total if total else 0.0
    print(
        f"without-shared (whole suite): {ran} of {total} tests ran ({percent:.1f} %), "
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped: "
        f"{len(kept)} tests of the first pass in files that do not read the shared data, "
        f"{len(second)} run again without it in {len(rerun)} files"
    )
    if counts["failed"] or percent < min_percent:
        print(f"without-shared: FAILED ({'failures' if counts['failed'] else 'too few ran'})")
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["files"]:
        print("\n".join(rerun_files(Path(sys.argv[2]))))
    elif sys.argv[1:2] == ["summary"]:
        sys.exit(summary(Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])))
    else:
        sys.exit(__doc__)
