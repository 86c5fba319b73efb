"""One entry point over every input kind: ``iter_source(path)`` yields ``(file, item, result)``.

``result`` is a :class:`ProteinRecord` or a :class:`ReadError`; an error never stops the
iteration. What a path is decides the reader:

* a folder with ``list.csv`` -> ProteinMPNN's pdb_2021aug02 layout (:mod:`.pdb2021`);
* a foldcomp database (``X`` with ``X.index`` beside it) or ``.fcz`` files (:mod:`.foldcomp`);
* ``*.jsonl`` / ``*.jsonl.gz`` -> CATH-style JSONL (:mod:`.jsonl`);
* any other folder -> every file below it, sorted (hidden files and folders left out: a
  dataset being written beside its --out is never read as input);
* any other file -> a structure file (PDB, mmCIF, PQR, PDBQT; plain or gzipped), told apart
  by content (:mod:`.structure`).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyg_mpnn.errors import UserError
from pyg_mpnn.io.foldcomp import is_foldcomp_db, iter_foldcomp
from pyg_mpnn.io.jsonl import iter_jsonl
from pyg_mpnn.io.pdb2021 import is_pdb2021_root, iter_pdb2021
from pyg_mpnn.io.record import ProteinRecord, ReadError
from pyg_mpnn.io.structure import read_structure

# Files in a folder that are documentation or tables, not structures. Anything else is
# tried as a structure and, if it is not one, reported.
IGNORED_SUFFIXES = {
    ".md",
    ".txt",
    ".tsv",
    ".csv",
    ".json",
    ".py",
    ".npz",
    ".lookup",
    ".index",
    ".dbtype",
    ".source",
}

Result = ProteinRecord | ReadError


def _is_jsonl(path: Path) -> bool:
    return path.name.endswith((".jsonl", ".jsonl.gz"))


def _is_foldcomp(path: Path) -> bool:
    return path.suffix == ".fcz" or is_foldcomp_db(path)


def _with_names(results, file: str) -> Iterator[tuple[str, str, Result]]:
    for i, r in enumerate(results):
        if isinstance(r, ProteinRecord):
            yield file, r.name, r
        else:
            yield file, f"{file}#{i}", r


def _read_one(path: Path) -> tuple[str, str, Result]:
    try:
        return str(path), str(path), read_structure(path)
    except ReadError as e:
        return str(path), str(path), e
    except Exception as e:  # a reader bug must not end a long run either
        return str(path), str(path), ReadError(str(path), f"unexpected {type(e).__name__}: {e}")


def iter_source(
    path: str | Path,
    *,
    pdb2021_options: dict | None = None,
    min_plddt: float | None = None,
    workers: int = 1,
) -> Iterator[tuple[str, str, Result]]:
    """Yield ``(input file, item name, record or ReadError)`` for everything under ``path``.

    ``workers > 1`` parses the structure files of a folder in a process pool (results keep
    the sorted file order)."""
    path = Path(path)
    if path.is_dir():
        if is_pdb2021_root(path):
            yield from _with_names(iter_pdb2021(path, **(pdb2021_options or {})), str(path))
            return
        files = [
            f
            for f in sorted(p for p in path.rglob("*") if p.is_file())
            if f.suffix.lower() not in IGNORED_SUFFIXES
            and not any(part.startswith(".") for part in f.relative_to(path).parts)
        ]
        plain = [f for f in files if not (_is_jsonl(f) or _is_foldcomp(f))]
        for f in files:
            if f not in plain:
                yield from iter_source(f, min_plddt=min_plddt)
        if workers > 1 and len(plain) > 1:
            with mp.get_context("spawn").Pool(workers) as pool:
                yield from pool.imap(_read_one, plain, chunksize=2)
        else:
            for f in plain:
                yield _read_one(f)
        return
    if not path.exists() and not _is_foldcomp(path):
        yield str(path), str(path), ReadError(str(path), "no such file or folder", "missing input")
        return
    if _is_jsonl(path):
        yield from _with_names(iter_jsonl(path), str(path))
    elif _is_foldcomp(path):
        yield from _with_names(iter_foldcomp(path, min_plddt=min_plddt), str(path))
    else:
        yield _read_one(path)


def read_records(path: str | Path, **kwargs) -> list[ProteinRecord]:
    """All readable records under ``path`` (errors raised: for interactive use and CLIs)."""
    out = []
    for _, _, r in iter_source(path, **kwargs):
        if isinstance(r, ReadError):
            raise r
        out.append(r)
    return out


@dataclass
class Tally:
    """What reading ``sources`` gave: the files tried, the items skipped and the proteins
    read. Input that yields no protein is an error (:meth:`no_protein`), which says how many
    files were read and why each item was skipped."""

    sources: list[str]
    files: set[str] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)  # one reason each, naming the item
    proteins: int = 0

    def add(self, file: str, result: Result) -> None:
        if not (isinstance(result, ReadError) and result.kind == "missing input"):
            self.files.add(file)
        if isinstance(result, ReadError):
            self.skipped.append(str(result))
        else:
            self.proteins += 1

    def no_protein(self, shown: int = 4) -> UserError:
        """The error for input that yielded no protein, naming the sources and the reasons."""
        n = len(self.files)
        head = f"no protein in {', '.join(self.sources)}: {n} file{'s' * (n != 1)} read"
        if not self.skipped:
            return UserError(
                f"{head} (give structure files, PDB, mmCIF, PQR or PDBQT, plain or gzipped, "
                "folders of them, CATH-style JSONL or a foldcomp database)"
            )
        why = "; ".join(self.skipped[:shown])
        more = len(self.skipped) - shown
        return UserError(
            f"{head}, {len(self.skipped)} item{'s' * (len(self.skipped) != 1)} skipped "
            f"({why}{f'; and {more} more' if more > 0 else ''})"
        )


def read_all(sources: list[str], **kwargs) -> tuple[list[ProteinRecord], Tally]:
    """Every readable record of ``sources`` and the :class:`Tally` of reading them; a
    :class:`~pyg_mpnn.errors.UserError` when there is none."""
    tally, records = Tally([str(s) for s in sources]), []
    for source in sources:
        for file, _item, result in iter_source(source, **kwargs):
            tally.add(file, result)
            if isinstance(result, ProteinRecord):
                records.append(result)
    if not records:
        raise tally.no_protein()
    return records, tally
