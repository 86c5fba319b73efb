"""The tracked docs, results, experiment files and code speak of pyg_mpnn and its users only:
no absolute machine path (a result records paths relative to the repository or as
``../shared/...``, :func:`benchmarks.common.shown_path`) and no word about how the work behind
them was organised (who ran what, in which numbered round, for which tracker issue)."""

import codecs
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# a path rooted in a user's or a machine's own folders; a URL (``https://host/home/...``),
# a relative path (``runs/tmp/x``) and the system paths the product documents (``/proc/...``,
# ``/usr/lib/...``, ``/dev/shm``) do not match: the root must start the path
ROOTS = r"work|tmp|home|root|Users|mnt|media|scratch|private|var/folders|var/tmp|opt/[\w.-]+/runs"
ABSOLUTE_PATH = re.compile(rf"(?<![\w.~/:-])/(?:{ROOTS})(?=[/`'\"\s),;]|$)")

# how the work was organised. "session" alone is also pytest's fixture scope and a Unix
# process session, so only the phrases that count sessions (or hand them a GPU) are flagged.
# The words (who did the work, who aided, who led, what scheduled it, the sitting it happened in)
# are kept ROT13-encoded in the samples below, so that this file does not itself say them.
WHO, AIDE, LOCK = (codecs.decode(w, "rot13") for w in ("ntrag", "urycre", "frzncuber"))
CHIEF, SITTING = (codecs.decode(w, "rot13") for w in ("yrnq", "frffvba"))
ORGANISATION = re.compile(
    rf"\b{WHO}s?\b"
    rf"|\b{AIDE} (?:sessions?|{WHO}s?)\b|\b{AIDE}s held\b"
    rf"|\b{LOCK}s?\b"
    r"|\bissues?[\s-]+#?\d+\b|\bissue #\d+|\bthe issue(?:'s)?\b"
    r"|\bthe lead(?:'s)?\b(?! time)"
    r"|\b(?:first|second|third|fourth|fifth|sixth|seventh|earlier|later|previous|next|this|that"
    r"|each|every|no|any|other|a) sessions?(?:'s)?\b(?! fixture| scope)"
    r"|\bsessions? (?:had|has|was lent|were lent|is lent)\b"
    r"|\bnumbered attempts?\b|\bworktrees?\b",
    re.I,
)


def tracked(*patterns: str) -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "--", *patterns],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [REPO / line for line in out.splitlines() if (REPO / line).is_file()]


DOCS_AND_RESULTS = (
    "*.md",
    "benchmarks/results/*.json",
    "benchmarks/results/*.csv",
    "experiments/*.yaml",
)
PRODUCT_TEXT = DOCS_AND_RESULTS + ("*.py", "*.yaml", "*.toml", "Makefile")


def hits(paths: list[Path], pattern: re.Pattern) -> list[str]:
    found = []
    for path in paths:
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for m in pattern.finditer(line):
                found.append(f"{path.relative_to(REPO)}:{i}: {m[0]!r} in {line.strip()[:120]}")
    return found


def test_no_absolute_machine_path_in_docs_or_results():
    found = hits(tracked(*DOCS_AND_RESULTS), ABSOLUTE_PATH)
    assert not found, "\n".join(found)


def test_no_word_about_how_the_work_was_organised():
    # this file names the words it looks for
    paths = [p for p in tracked(*PRODUCT_TEXT) if p != Path(__file__).resolve()]
    found = hits(paths, ORGANISATION)
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        '"data": "/mnt/shared/data/structures"',
        "see `/tmp`-style scripts",
        "python -m x --out /home/me/runs/a",
        "C:/Users/me is not, /Users/me/x is",
        '"/root/.cache/torch"',
    ],
)
def test_absolute_paths_are_caught(line):
    assert ABSOLUTE_PATH.search(line)


@pytest.mark.parametrize(
    "line",
    [
        "https://example.org/home/index.html",
        "echo 3 > /proc/sys/vm/drop_caches",
        "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
        "runs/tmp/metrics.csv and ../shared/data/scratch/x",
        "/dev/shm is a tmpfs",
        "~/scratch/x is the user's own",
    ],
)
def test_product_paths_pass(line):
    assert not ABSOLUTE_PATH.search(line)


@pytest.mark.parametrize(
    "line",
    [
        f"the machine was shared with other {WHO}s' jobs",
        f"Fifth {SITTING} (2026-12-01), nothing else running",
        f"no {SITTING} had a GPU",
        f"the {CHIEF}'s shell",
        "as issue 8's diagnostics read them",
        "Defect 2 of issue #18",
        "The issue-16 fp32 target on this CPU",
        "an order of magnitude is the gap the issue names",
        f"{AIDE}s held off by a {LOCK}",
    ],
)
def test_organisation_words_are_caught(line):
    assert ORGANISATION.search(line)


@pytest.mark.parametrize(
    "line",
    [
        "Helpers of the command-line tests",
        "our rank helper's order",
        '@pytest.fixture(scope="session")',
        "made once per session in a temporary folder",
        "the session fixture `reference`",
        "starts `aim up` in a new session, the leader of its own process group",
        "a lead time of 3 s; the leading dimension",
        "see https://github.com/pyg-team/pytorch_geometric/issues/9012",
    ],
)
def test_product_words_pass(line):
    assert not ORGANISATION.search(line)
