"""NaN loss or gradients: the step is skipped (no update, out of the epoch's metrics) and
counted; ``train.max_bad_steps`` in a row stop the run with a message that points at
``python -m pyg_mpnn.diagnose``."""

import math

from _faults import faults, losses, train

from pyg_mpnn.train.checkpoint import load_checked


def _adam_steps(state) -> int:
    return int(next(iter(state["optimizer"]["state"].values()))["step"])


def test_nan_loss_skipped_then_k_in_a_row_stop_the_run(fault_data, tmp_path):
    run = tmp_path / "run"
    p = train(
        fault_data,
        run,
        sets=["inject.nan_step=[3,6,7,8]", "inject.nan_layer=encoder.0", "train.max_bad_steps=3"],
        expect=1,
    )
    assert "step 3: non-finite loss (nan)" in p.stderr and "(1 in a row" in p.stderr
    err = p.stderr.strip().splitlines()
    assert "error: 3 training steps in a row (steps 6-8) had a non-finite loss" in p.stderr
    assert err[-1].strip() == f"python -m pyg_mpnn.diagnose {run}"  # what to run next
    assert "Traceback" not in p.stderr
    events = faults(run)
    assert [e["step"] for e in events if e["kind"] == "bad_step"] == [3, 6, 7]
    # step 3 was skipped: 4 steps taken, 3 Adam updates; its NaN stays out of the meters
    s4 = load_checked(run / "checkpoints" / "step_00000004.pt")
    assert _adam_steps(s4) == 3 and s4["faults"]["total"] == 1
    assert math.isfinite(s4["meters"]["nll_sum"])
    s6 = load_checked(run / "checkpoints" / "step_00000006.pt")
    assert _adam_steps(s6) == 4 and s6["faults"]["in_a_row"] == 1
    loss = losses(run)
    assert math.isnan(float(loss[3])) and math.isfinite(float(loss[5]))  # tracked as it was
    assert max(loss) == 7  # the step that stopped the run did not finish


def test_nan_gradient_with_finite_loss_is_skipped(fault_data, tmp_path):
    run = tmp_path / "run"
    p = train(
        fault_data,
        run,
        sets=[
            "inject.nan_step=2",
            "inject.nan_layer=decoder.0",
            "inject.nan_in=backward",
            "train.max_steps=4",
        ],
    )
    assert "step 2: non-finite loss" in p.stderr and "gradient norm (nan)" in p.stderr
    assert math.isfinite(float(losses(run)[2]))  # the loss itself was finite
    s4 = load_checked(run / "checkpoints" / "step_00000004.pt")
    assert _adam_steps(s4) == 3 and s4["faults"] == {"in_a_row": 0, "total": 1, "first": None}
