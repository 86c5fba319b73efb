"""One metrics.csv reader for ``track.plot`` and ``diagnose``: a killed run's torn last line and
a header written again are tolerated, and both tools read the same rows."""

import json
import math

from pyg_mpnn.diagnose.series import read_files
from pyg_mpnn.track.metrics import read_metrics
from pyg_mpnn.track.plot import main as plot_main


def test_one_tolerant_reader_for_plot_and_diagnose(baseline_run, tmp_path, capsys):
    whole = read_metrics(baseline_run)
    assert whole and all(isinstance(r["step"], int) and isinstance(r["epoch"], int) for r in whole)
    assert all(isinstance(r["value"], float) and r["wall_s"] >= 0 for r in whole)
    lines = (baseline_run / "metrics.csv").read_text().splitlines(keepends=True)
    run = tmp_path / "run"
    run.mkdir()
    # a header written again, then a row cut short by a kill (no newline)
    (run / "metrics.csv").write_text("".join(lines) + lines[0] + lines[-1][:-12])
    rows = read_metrics(run)
    assert json.dumps(rows) == json.dumps(whole)  # NaN-safe comparison
    assert json.dumps(read_files(run).rows) == json.dumps(rows)  # diagnose reads the same

    assert plot_main([str(run), "--out", str(tmp_path / "fig"), "--prefix", "t"]) == 0
    for name in ("t_curves.png", "t_layers.png"):
        assert (tmp_path / "fig" / name).stat().st_size > 10_000
    summary = json.loads(capsys.readouterr().out)
    assert summary["finite"] is all(math.isfinite(r["value"]) for r in whole)
    assert summary["last_layer_values"]  # per-layer values read through the same rows
