"""``aim up`` serves from child processes (uvicorn and its workers) that
outlive a terminated ``aim up``. pyg_mpnn.track.aimui starts it as a process-group leader and
stops the whole group: no process of it survives, and its port is free again."""

import socket
import subprocess
import sys
from pathlib import Path

from pyg_mpnn.track import aimui


def test_aim_up_stops_with_all_its_children(tmp_path):
    repo = tmp_path / "aim"
    repo.mkdir()
    subprocess.run(
        [str(Path(sys.executable).with_name("aim")), "init", "--repo", str(repo)],
        check=True,
        capture_output=True,
    )
    with aimui.AimUI(repo, timeout=180) as ui:  # a loaded CI machine starts it slowly
        pgid = ui.proc.pid
        members = aimui.group_members(pgid)
        assert pgid in members and len(members) >= 2  # aim up and its server's processes
        port = int(ui.url.rsplit(":", 1)[1])
    assert ui.proc.poll() is not None
    assert aimui.group_members(pgid) == []  # no child survives
    with socket.socket() as s:  # the port is free again (no listener; TIME_WAIT is fine)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
