"""benchmarks.fresh_clone --reanalyse: a stored sweep's summary computed again from its rows,
the measurement untouched; a file without a sweep is one line and exit 2."""

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import fresh_clone

RESULT = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "fresh_clone.json"


def test_reanalysis_keeps_the_measurement_and_recomputes_the_summary(tmp_path):
    stored = tmp_path / "fresh_clone.json"
    shutil.copyfile(RESULT, stored)
    before = json.loads(stored.read_text())
    mangled = {**before}
    mangled["scale_sweep"] = {**before["scale_sweep"], "summary": {"power_law": {"kept": 1}}}
    stored.write_text(json.dumps(mangled))
    assert fresh_clone.main(["--json", "--reanalyse", str(stored), "--out", str(stored)]) == 0
    after = json.loads(stored.read_text())
    assert after["scale_sweep"]["rows"] == before["scale_sweep"]["rows"]
    assert after["make_run"] == before["make_run"] and after["machine"] == before["machine"]
    summary, old = after["scale_sweep"]["summary"], before["scale_sweep"]["summary"]
    assert summary["power_law"] == {"kept": 1}  # needs the histories: kept as stored
    assert summary["budgets"] == old["budgets"]
    assert "--reanalyse" in after["analysis"]["command"]
    law = summary["optimal_size_law"]
    if law:  # the seed range holds the fit that uses every size's own seed
        assert law["a_over_seeds"]["min"] <= law["a"] <= law["a_over_seeds"]["max"]


def test_reanalysing_a_file_without_a_sweep_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"installs": []}))
    with pytest.raises(SystemExit) as e:
        fresh_clone.main(["--reanalyse", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "x.json" in err[0]
