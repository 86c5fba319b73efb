"""Counts of one pytest pass from its log: ``summary.py NAME LOG``.

Reads pytest's final summary line (``12 passed, 3 skipped, 2 warnings in 9.1s``), prints
``NAME: R of T tests ran (P %), S passed, F failed, K skipped`` and writes it beside the log as
``LOG.counts``; exits 1 when the pass has no summary line or a failure. (How many tests a user
without the shared data runs is ``shared_pass.py summary``'s gate, over both passes.)
"""

import re
import sys
from pathlib import Path

name, log = sys.argv[1], Path(sys.argv[2])
lines = [
    l
    for l in log.read_text().splitlines()
    if re.search(r" in [0-9.]+s( \(|$)", l) and re.search(r"\d+ (passed|failed|skipped|error)", l)
]
if not lines:
    print(f"{name}: no pytest summary line in {log}")
    sys.exit(1)
counts = {
    k: int(n)
    for n, k in re.findall(
        r"(\d+) (passed|failed|skipped|errors?|xfailed|"
        r"xpassed|deselected)",
        lines[-1],
    )
}
passed, skipped = counts.get("passed", 0), counts.get("skipped", 0)
failed = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
ran = passed + failed + counts.get("xfailed", 0) + counts.get("xpassed", 0)
total = ran + skipped
percent = 100.0 * ran / total if total else 0.0
text = (
    f"{name}: {ran} of {total} tests ran ({percent:.1f} %), {passed} passed, {failed} "
    f"failed, {skipped} skipped  [{lines[-1].strip()}]"
)
print(text)
log.with_name(log.name + ".counts").write_text(text + "\n")
if failed:
    print(f"{name}: FAILED (failures)")
    sys.exit(1)
