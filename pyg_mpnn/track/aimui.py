"""Start and stop the Aim UI (``aim up``) without leaking its web server.

``aim up`` serves the UI from child processes (a uvicorn server and its workers). Stopping
``aim up`` alone (``terminate()``, or ``kill PID``) leaves them running: about 400 MB and a
bound port. So :func:`start` runs ``aim up`` in a new session, the leader of its own process
group (``start_new_session=True``), and :func:`stop` signals the whole group
(``os.killpg``): SIGTERM, then SIGKILL for whatever is left after ``timeout`` seconds.
The shell equivalent is ``setsid aim up ... &`` then ``kill -- -PGID`` (docs/monitoring.md).

    with AimUI("runs/base/r1/aim") as ui:
        print(ui.url)   # http://127.0.0.1:43800
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid`` (Linux ``/proc``)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(d.name))
    return pids


def start(
    repo: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int | None = None,
    log=subprocess.DEVNULL,
) -> subprocess.Popen:
    """``aim up --repo REPO`` as the leader of a new process group (see :func:`stop`)."""
    aim = Path(sys.executable).with_name("aim")
    cmd = [
        str(aim) if aim.exists() else "aim",
        "up",
        "--repo",
        str(repo),
        "--host",
        host,
        "--port",
        str(port or free_port()),
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    proc.url = f"http://{host}:{cmd[-1]}"
    return proc


def wait_ready(proc: subprocess.Popen, timeout: float = 90.0) -> str:
    """Wait until the UI answers; its URL. ``RuntimeError`` if it exits or times out."""
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{proc.url}/api/projects/", timeout=2)
            return proc.url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"aim up exited with status {proc.returncode}") from None
            if time.time() > deadline:
                raise RuntimeError(
                    f"aim up did not answer at {proc.url} in {timeout:g} s"
                ) from None
            time.sleep(0.5)


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop ``aim up`` and every process of its group: SIGTERM, SIGKILL after ``timeout``."""
    pgid = proc.pid  # start() made it a group leader
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.time() + wait
        while time.time() < deadline:
            if proc.poll() is not None and not group_members(pgid):
                break
            time.sleep(0.1)
        else:
            continue
        break
    if proc.poll() is None:
        proc.wait()


class AimUI:
    """``with AimUI(repo) as ui:`` — ``aim up`` running (``ui.url``), stopped with its whole
    process group on exit."""

    def __init__(
        self,
        repo: str | os.PathLike,
        host: str = "127.0.0.1",
        port: int | None = None,
        timeout: float = 90.0,
    ):
        self.repo, self.host, self.port, self.timeout = repo, host, port, timeout
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> AimUI:
        self.proc = start(self.repo, self.host, self.port)
        try:
            self.url = wait_ready(self.proc, self.timeout)
        except BaseException:
            stop(self.proc)
            raise
        return self

    def __exit__(self, *exc) -> None:
        stop(self.proc)
