"""``auto`` for ``train.threads``, ``train.recompute_activations`` and ``train.compile``: the
choices from made-up machine facts, and the trainer's start-up lines naming each choice."""

import pytest
from _train_tiny import TINY_MODEL

from pyg_mpnn.train import auto
from pyg_mpnn.train.auto import Facts
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.schema import ConfigError
from pyg_mpnn.train.trainer import Trainer

# 4 cores with 2 hyper-threads each: logical CPUs 0-3 and 4-7 share cores 0-3
HT = {cpu: ("0", str(cpu % 4)) for cpu in range(8)}


def test_threads_are_the_physical_cores_available():
    c = auto.choose_threads(Facts("cpu", 1e4, affinity=tuple(range(8)), core_of=HT))
    assert c.value == 4 and "4 physical cores of 8 CPUs" in c.reason
    pinned = Facts("cpu", 1e4, affinity=(0, 4, 1), core_of=HT)  # 3 CPUs on 2 cores
    assert auto.choose_threads(pinned).value == 2
    no_topology = Facts("cpu", 1e4, affinity=(0, 1, 2))
    assert auto.choose_threads(no_topology).value == 3


def test_threads_follow_quota_cap_processes_and_omp():
    many = tuple(range(128))
    assert auto.choose_threads(Facts("cpu", None, affinity=many)).value == auto.MAX_THREADS
    quota = auto.choose_threads(Facts("cpu", None, affinity=many, cpu_quota=2.5))
    assert quota.value == 3 and "quota 2.5" in quota.reason
    shared = Facts("cpu", None, affinity=tuple(range(8)), core_of=HT, local_processes=2)
    assert auto.choose_threads(shared).value == 2
    assert auto.choose_threads(Facts("cpu", None, affinity=many, omp_threads=1)).value == 1


def test_recompute_only_when_keep_all_does_not_fit_comfortably():
    need = auto.step_memory_mib(10_000, 128, 48, 6, keep_all=True, precision="fp32")
    assert need == pytest.approx(11_650)  # the measured 1.165 MiB per residue
    roomy = auto.choose_recompute(Facts("cpu", free_mib=64 * 1024, cpu_amx=True), need)
    assert roomy.value is False
    assert roomy.line() == (
        "train.recompute_activations: auto -> false (keep-all needs ~11 GB of 64 GB free)"
    )
    tight = auto.choose_recompute(Facts("cuda", free_mib=16 * 1024), need)
    assert tight.value is True and "would need ~11 GB of 16 GB free" in tight.reason
    assert auto.choose_recompute(Facts("cpu", free_mib=None, cpu_amx=True), need).value is True
    # without AMX a CPU recomputes whatever the memory: the faster step on those measured
    plain = auto.choose_recompute(Facts("cpu", free_mib=640 * 1024), need)
    assert plain.value is True and "without AMX" in plain.reason
    assert auto.choose_recompute(Facts("cuda", free_mib=640 * 1024), need).value is False
    smaller = auto.step_memory_mib(10_000, 128, 48, 6, keep_all=True, precision="bf16")
    assert smaller < need  # bf16 keeps less: the same 16 GB then hold everything
    assert auto.choose_recompute(Facts("cuda", 16 * 1024), smaller).value is False


def test_compile_needs_a_long_run_memory_and_inductor():
    gpu = Facts("cuda", free_mib=70 * 1024)
    works = lambda: None
    assert auto.choose_compile(gpu, 12_000, 5000, None, works).value is True
    assert auto.choose_compile(gpu, 12_000, 50, None, works).value is False
    assert auto.choose_compile(gpu, 12_000, None, 5.0, works).value is False
    assert auto.choose_compile(gpu, 60_000, 5000, None, works).value is False  # memory
    broken = auto.choose_compile(gpu, 12_000, 5000, None, lambda: "no Triton")
    assert broken.value is False and "no Triton" in broken.reason
    never = lambda: pytest.fail("inductor tried for a short run")
    assert auto.choose_compile(gpu, 12_000, 10, None, never).value is False
    cpu = auto.choose_compile(Facts("cpu", free_mib=640 * 1024), 12_000, 10**6, None, never)
    assert cpu.value is False and "cpu: compiling costs minutes" in cpu.reason


def test_auto_is_accepted_only_for_these_keys():
    cfg = load_experiment("base")
    assert (cfg.train.threads, cfg.train.recompute_activations, cfg.train.compile) == (
        "auto",
        "auto",
        "auto",
    )
    with pytest.raises(ConfigError, match="train.max_bad_steps"):
        load_experiment("base", ["train.max_bad_steps=auto"])


def test_the_trainer_logs_each_choice(tiny_dataset, tmp_path, capsys):
    sets = [s for s in TINY_MODEL if not s.startswith("train.threads")]
    cfg = load_experiment(
        "smoke",
        sets + [f"data.path={tiny_dataset}", "data.max_tokens=300", "track.aim=false"],
    )
    t = Trainer(cfg, tmp_path)
    err = capsys.readouterr().err
    assert "train.threads: auto -> " in err
    amx = auto.machine_facts(t.device).cpu_amx  # recompute on a CPU without AMX
    line = "auto -> false (keep-all needs ~" if amx else "auto -> true (a CPU without AMX"
    assert f"train.recompute_activations: {line}" in err
    assert "train.compile: auto -> false (cpu: compiling costs minutes and 1.8x the memory)" in err
    assert t.model.recompute_activations is not amx and t.net is t.model
    assert {c.key for c in t.auto_choices} == {
        "train.threads",
        "train.recompute_activations",
        "train.compile",
    }
