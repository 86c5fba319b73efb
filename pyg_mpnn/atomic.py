"""Atomic file writes: a kill mid-write never leaves a half-written file behind."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def free_space(path: str | os.PathLike) -> str:
    """Free space of the filesystem holding ``path`` (or its nearest existing parent), e.g.
    ``"12.3 MiB free"``; ``""`` when it cannot be read."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return f"{shutil.disk_usage(p).free / 2**20:.1f} MiB free"
    except OSError:
        return ""


def write_error(path: str | os.PathLike, e: OSError) -> OSError:
    """An ``OSError`` like ``e`` whose message names ``path`` and the free space there."""
    free = free_space(Path(path).parent)
    why = e.strerror or str(e)
    return OSError(
        e.errno, f"cannot write {path}: {why}" + (f" ({free} there)" if free else ""), str(path)
    )


def error_text(e: OSError) -> str:
    """``e``'s message naming its file once: ``"cannot write F: why"`` as :func:`write_error`
    puts it, else ``"F: why"`` (no errno)."""
    if e.filename and str(e.filename) in (e.strerror or ""):
        return e.strerror
    return f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a temporary file in the same folder, flush and ``fsync`` it, then
    ``os.replace`` it over ``path`` (atomic on POSIX) and ``fsync`` the folder. On any error
    the temporary file is removed and ``path`` keeps its previous content; an ``OSError``
    (e.g. ``ENOSPC``: the disk is full) is raised again with ``path`` and the free space named."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise write_error(path, e) from e
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some filesystems cannot fsync a directory
        pass
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` of ``text`` (UTF-8)."""
    return atomic_write(path, lambda f: f.write(text.encode()))


def save_figure(fig, path: str | os.PathLike, **kwargs) -> Path:
    """``fig.savefig(path, **kwargs)`` through :func:`atomic_write` (the format from the
    suffix): a killed or failed save never leaves a partial image under ``path``."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, **kwargs))


def csv_text(rows: list[dict], columns) -> str:
    """``rows`` as CSV text with a header (keys outside ``columns`` ignored)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
