"""studies/noise_control.py and studies/layer_norms.py in their tiny modes (real short runs
on the embedded data, one thread: seconds): the JSON docs/monitoring.md renders from, and what
it must show -- the noise module's gradient grows with its std, the pre-LN terms are not the
post-LN ~1."""

import json

import pytest

from studies import layer_norms, noise_control
from tools import render_docs


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    out = tmp_path_factory.mktemp("noise_control") / "noise_control.json"
    assert noise_control.main(["--tiny", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def norms(tmp_path_factory):
    out = tmp_path_factory.mktemp("layer_norms") / "layer_norms.json"
    assert layer_norms.main(["--tiny", "--out", str(out)]) == 0
    return out


def test_noise_control_arms_and_the_gradient_of_noise_grows_with_its_std(noise):
    r = json.loads(noise.read_text())
    arms = r["settings"]["4"]
    assert set(arms) == set(noise_control.ARMS)
    assert r["machine"]["threads"] == 1 and "command" in r
    for arm, entry in arms.items():
        run = entry["runs"][0]
        assert run["steps"] == 4 and run["valid_loss"] > 0
        assert "--exp noise_module" in entry["command"]
        assert ("noise" in run["grad_rms"]) == (arm != "no module")
    g = {arm: e["runs"][0]["grad_rms"]["noise"] for arm, e in arms.items() if "std" in arm}
    assert g["std 1"] > 10 * g["std 0.01"]  # grad W = sum g z^T: proportional to std


def test_layer_norms_json_has_pre_and_post_ln_per_layer(norms):
    r = json.loads(norms.read_text())
    assert r["steps"] == [1, 2, 4] and r["table_steps"] == [1, 2, 4]
    enc = r["layers"]["encoder.0"]
    for key in ("node", "edge", "node_message", "node_residual", "node_ffn", "edge_residual"):
        assert set(enc[key]) == {"1", "2", "4"}, key
    assert all(0.8 < v < 1.2 for v in enc["node"].values())  # post-LN: ~1
    assert all(v > 1.5 for v in enc["node_message"].values())  # sum of 16 messages: not ~1
    assert "weight" in r["layers"]["W_out"] and "update_ratio" in r["layers"]["decoder.2"]


def test_the_monitoring_renderers_read_them(noise, norms):
    results = noise.parent
    (results / norms.name).write_text(norms.read_text())
    assert "1 thread" in render_docs.render_one(f"run_machine:{noise.name}", results, "t")
    rows = render_docs.render_one(f"noise_control_table:{noise.name}:4", results, "t").splitlines()
    assert len(rows) == 2 + 3
    pre = render_docs.render_one(f"layer_norms_prenorm:{norms.name}", results, "t").splitlines()
    assert len(pre) == 2 + 6 and pre[2].startswith("| `encoder.0` |")
    par = render_docs.render_one(f"layer_norms_params:{norms.name}", results, "t").splitlines()
    assert len(par) == 2 + 10 and " → " in par[-1]  # 3 embeddings, 3 + 3 layers, head
