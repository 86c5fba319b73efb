"""benchmarks/precision_parity.py (the same-seed fp32 against bf16 run that decides whether bf16
becomes the default on CPUs with native bf16) runs in its tiny mode and writes its verdict."""


def test_tiny_run_compares_both_precisions_at_equal_steps(tiny_benchmark):
    res = tiny_benchmark("precision_parity")
    fp32, bf16 = res["arms"]["fp32"], res["arms"]["bf16"]
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16")
    assert fp32["steps"] == bf16["steps"] == 4
    assert [p["step"] for p in fp32["curve"]] == [p["step"] for p in bf16["curve"]] == [2, 4]
    # same seed and batches: the same residues seen; only the arithmetic differs
    assert [p["residues"] for p in fp32["curve"]] == [p["residues"] for p in bf16["curve"]]
    assert fp32["valid_ppl"] != bf16["valid_ppl"]
    last = bf16["valid_ppl"] / fp32["valid_ppl"] - 1
    assert res["last_rel_diff"] == round(last, 5)
    assert res["within_1pct"] is (abs(res["last_rel_diff"]) <= 0.01)


def test_fast_is_bf16_where_native_else_fp32():
    import torch

    from pyg_mpnn.train.precision import native_bf16, pick_precision

    cpu = torch.device("cpu")
    assert pick_precision("fast", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    assert pick_precision("auto", cpu) == "fp32"  # the default stays fp32 until parity is shown
