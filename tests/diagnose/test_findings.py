"""diagnose on real short CPU runs: the noise module gets finding (a), its baseline none, an
injected NaN finding (f) at the right layer and step; the CLI writes the report and figures and
logs them to the run's Aim repo."""

import json

from _diag_runs import NAN_LAYER, NAN_STEP
from aim import Repo
from aim.storage.context import Context

from pyg_mpnn.diagnose.__main__ import main
from pyg_mpnn.diagnose.findings import Thresholds, diagnose
from pyg_mpnn.diagnose.series import load, read_aim, read_files


def test_noise_module_gets_finding_a_on_exactly_that_module(noise_run):
    found = diagnose(read_files(noise_run))
    assert [(f.code, f.layers) for f in found] == [("a", ["noise"])], found
    assert found[0].data["ratio"] >= 10


def test_baseline_of_the_same_length_gets_no_findings(baseline_run, noise_run):
    steps = lambda d: max(r["step"] for r in read_files(d).rows)
    assert steps(baseline_run) == steps(noise_run)
    assert diagnose(read_files(baseline_run)) == []


def test_injected_nan_gives_finding_f_with_layer_and_step(nan_run):
    found = [f for f in diagnose(read_files(nan_run)) if f.code == "f"]
    assert len(found) == 1
    f = found[0]
    assert f.layers == [NAN_LAYER] and f.data["step"] == NAN_STEP and f.steps[0] == NAN_STEP
    assert f.data["kind"] == "activation"


def test_cli_writes_report_figures_and_logs_to_aim(baseline_run, capsys):
    assert main([str(baseline_run), "--grad-gap", "12"]) == 0
    out = capsys.readouterr().out
    assert "No findings" in out and "| `grad_gap` | 12 |" in out  # thresholds printed
    report = (baseline_run / "report.md").read_text()
    assert "No findings" in report
    for name in ("layers", "ridge", "loss"):
        png = baseline_run / f"diagnose_{name}.png"
        assert png.stat().st_size > 10_000
    saved = json.loads((baseline_run / "findings.json").read_text())
    assert saved["findings"] == [] and saved["thresholds"]["grad_gap"] == 12
    # the same Aim run now holds the figures (read back through Aim's own API)
    info = json.loads((baseline_run / "run.json").read_text())
    run = Repo(info["aim_repo"]).get_run(info["aim_run_hash"])
    for name in ("layers", "ridge", "loss"):
        seq = run.get_image_sequence("diagnose", Context({"figure": name}))
        assert seq is not None and len(seq.data.items_list()[0]) == 1
    assert run["diagnose"]["findings"] == []


def test_aim_hash_reads_the_same_series(baseline_run):
    info = json.loads((baseline_run / "run.json").read_text())
    rs = read_aim(info["aim_repo"], info["aim_run_hash"])
    files = read_files(baseline_run)
    key = lambda r: (r["step"], r["name"], r["layer"], r["kind"], r["part"])
    aim_rows = {key(r): r["value"] for r in rs.rows}
    for r in files.rows:
        if r["name"] == "norm":
            assert abs(aim_rows[key(r)] - r["value"]) <= 1e-6 * max(1.0, abs(r["value"]))
    assert diagnose(rs) == []
    assert load(info["aim_run_hash"], info["aim_repo"]).run_dir == baseline_run


def test_thresholds_change_the_verdict(baseline_run):
    strict = Thresholds(update_target=1.0, update_factor=2.0)  # every ratio is "too low" now
    codes = {f.code for f in diagnose(read_files(baseline_run), strict)}
    assert codes == {"b"}
