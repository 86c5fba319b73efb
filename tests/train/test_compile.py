"""``train.compile``: a tiny run under torch.compile (inductor) trains and its losses match the
eager run's; a model that cannot be compiled runs eagerly after a warning."""

import pytest
import torch
from _train_tiny import TINY_MODEL

from pyg_mpnn.train.compiled import Compiled, inductor_works
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer


def _run(data, out, compiled: bool) -> tuple[dict, Trainer]:
    cfg = load_experiment(
        "smoke",
        TINY_MODEL
        + [
            f"data.path={data}",
            "data.max_tokens=300",
            "track.aim=false",
            "train.max_steps=2",
            f"train.compile={str(compiled).lower()}",
        ],
    )
    t = Trainer(cfg, out)
    return t.fit(), t


def test_compiled_run_trains_like_the_eager_one(tiny_dataset, tmp_path):
    error = inductor_works(torch.device("cpu"))
    if error is not None:
        pytest.skip(f"inductor cannot compile on this machine: {error}")
    # eager's random draws inside the compiled graphs: same noise, decoding orders, dropout
    with torch._inductor.config.patch(fallback_random=True):
        eager, _ = _run(tiny_dataset, tmp_path / "eager", False)
        compiled, t = _run(tiny_dataset, tmp_path / "compiled", True)
    assert isinstance(t.net, Compiled) and t.net.failed is None
    assert compiled["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-4)
    assert compiled["valid_loss"] == pytest.approx(eager["valid_loss"], rel=1e-4)


def test_a_failed_compilation_falls_back_to_eager_with_a_warning():
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no C++ compiler")

    torch._dynamo.reset()
    net = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    wrapped = Compiled(net, backend=broken_backend)
    with pytest.warns(UserWarning, match="train.compile: torch.compile failed"):
        out = wrapped(x)
    assert wrapped.failed and "no C++ compiler" in wrapped.failed
    assert torch.equal(out, net(x)) and torch.equal(wrapped(x), net(x))


@pytest.mark.parametrize("recompute", [True, False])
def test_recompute_activations_is_a_config_switch_with_the_same_losses(
    tiny_dataset, tmp_path, recompute
):
    """``train.recompute_activations`` reaches the model; recomputing is exact, so a short run
    gives the same losses either way."""
    cfg = load_experiment(
        "smoke",
        TINY_MODEL
        + [
            f"data.path={tiny_dataset}",
            "data.max_tokens=300",
            "track.aim=false",
            "train.max_steps=2",
            f"train.recompute_activations={str(recompute).lower()}",
        ],
    )
    t = Trainer(cfg, tmp_path / "run")
    assert t.model.recompute_activations is recompute
    result = t.fit()
    reference, _ = _run(tiny_dataset, tmp_path / "default", False)  # default: auto
    assert result["train_loss"] == reference["train_loss"]
    assert result["valid_loss"] == reference["valid_loss"]
