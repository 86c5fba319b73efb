"""Renderers for the data backends: Foldcomp read in place against converted shards
(``benchmarks/foldcomp_backend.py``), and the loader at 214M index rows
(``benchmarks/data_scale_rows.py``). Until its result file exists they render a line that
says how to make it, so the docs render (and ``--check`` passes) before the run."""

from __future__ import annotations

from pathlib import Path

from tools.docrender.core import load, num, renderer, table

BACKENDS = {"shards": "shards (converted)", "foldcomp": "Foldcomp in place"}
RUN = (
    "python -m benchmarks.foldcomp_backend --json --repeat 20 --cold drop "
    "--out benchmarks/results/foldcomp_backend.json"
)
RUN_ROWS = (
    "python -m benchmarks.data_scale_rows --json --rows 214000000 --clusters 2300000,52000000 "
    "--ranks 8 --work SCRATCH --out benchmarks/results/data_scale_214m.json"
)


def _result(results: Path, file: str) -> dict | None:
    return load(results, file) if (results / file).is_file() else None


def _not_yet(file: str, run: str = RUN) -> str:
    return (
        f"*Not measured yet: `benchmarks/results/{file}` does not exist. Run `{run}` on an idle "
        "machine, then `python -m tools.render_docs`.*"
    )


def _rate(x) -> str:
    return "—" if x is None else num(x)


@renderer("foldcomp_backend_table")
def render_foldcomp_backend_table(results: Path, file: str) -> str:
    """Per database and backend: disk, decoding, conversion, the loader, workers to feed."""
    data = _result(results, file)
    if data is None:
        return _not_yet(file)
    rows = []
    for name, db in data["databases"].items():
        feed = data["workers_to_feed"][name]
        for backend, label in BACKENDS.items():
            loader = db["loader"][backend]
            rows.append(
                [
                    f"`{name}` ({db['entries']:,} entries)",
                    label,
                    f"{db['bytes_per_residue'][backend]:.1f}",
                    f"{db['decode_us_per_residue'][backend]:.2f}",
                    f"{db['prepare'][backend]['entries_per_s_per_core']:,.0f}",
                    _rate(loader["first_epoch"]["batches_per_s"]),
                    _rate(loader["later_epochs"]["batches_per_s"]),
                    f"{feed[backend]['for_step']} / {feed[backend]['for_0.3_s']}",
                ]
            )
    header = [
        "database",
        "backend",
        "bytes / residue",
        "decode µs / residue",
        "`prepare` entries/s per core",
        "batches/s, first epoch",
        "batches/s, later epochs",
        "workers to feed a step / 0.3 s",
    ]
    loader = next(iter(data["databases"].values()))["loader"]["shards"]
    step = data["gpu_step"]
    cold = loader["cold"]["method"]
    note = (
        f"Before the first epoch: {cold or 'nothing (the page cache may be warm)'}. "
        f"{data['settings']['workers']} workers, {data['settings']['max_tokens']:,}-token "
        f"batches. GPU step: {step['seconds']:.2f} s, from {step['source']}."
    )
    return table(header, ["---", "---", *["---:"] * 6], rows) + "\n\n" + note


@renderer("foldcomp_backend_projection")
def render_foldcomp_backend_projection(results: Path, file: str) -> str:
    """The projection to the AlphaFold DB's size, labelled as one."""
    data = _result(results, file)
    if data is None:
        return _not_yet(file)
    p = data["projection"]
    rows = [
        [
            label,
            f"{p[backend]['tb_on_disk']:.2f}",
            f"{p[backend]['hours_to_prepare']:,.2f}",
            f"{p[backend]['tb_read']:.2f}",
            p[backend]["note"],
        ]
        for backend, label in BACKENDS.items()
    ]
    header = [
        "backend",
        "TB on disk",
        f"hours to prepare on {p['cores']} cores",
        "TB read",
        "note",
    ]
    caption = f"**{p['label'][0].upper()}{p['label'][1:]}.**"
    return caption + "\n\n" + table(header, ["---", "---:", "---:", "---:", "---"], rows)


def _mem(m: dict) -> str:
    return f"{m['rss_mb']:,.0f} / {m['uss_mb']:,.0f}"


def _one_rank_row(st: dict) -> list:
    r = st["one_rank"]
    worker = max(r["workers"], key=lambda w: w["uss_mb"]) if r["workers"] else None
    return [
        f"{st['clusters']:,} (largest {st['cluster_size_max']:,})",
        f"{st['index_gb']:.1f} ({st['index_bytes_per_row']:.0f} B/row)",
        f"{r['open_s']:.2f}",
        f"**{r['first_batch_s']:.2f}**",
        f"{r['epoch_plan_s']:,.1f} / {r['next_epoch_plan_s']:,.1f}",
        f"{r['first_batch_of_next_epoch_s']:.2f}",
        f"{_mem(r['main_after_first_batch'])}; {_mem(r['main_with_two_plans'])}",
        "—" if worker is None else _mem(worker),
        f"**{num(r['batches_per_s'])}**",
        "yes" if r["resumed_tail_exact"] else "**no**",
    ]


def _ranks_row(st: dict) -> list:
    k = st["ranks"]
    ranks = k["ranks"]
    plan = [r["after"]["uss_mb"] - r["before"]["uss_mb"] for r in ranks]
    return [
        f"{st['clusters']:,}",
        str(k["world"]),
        f"{ranks[0]['steps']:,}" + ("" if k["equal_steps"] else " (**unequal**)"),
        f"{max(r['plan_s'] for r in ranks):,.1f}",
        f"{max(r['after']['uss_mb'] for r in ranks):,.0f}",
        f"{max(plan):,.0f}",
        "yes" if k["each_cluster_once"] and k["each_item_once"] else "**no**",
    ]


@renderer("data_scale_rows_table")
def render_data_scale_rows_table(results: Path, file: str) -> str:
    """Per cluster structure at 214M rows: one rank's loader, then the ranks' plans."""
    data = _result(results, file)
    if data is None:
        return _not_yet(file, RUN_ROWS)
    header = [
        "clusters",
        "index GB",
        "open s",
        "first batch s",
        "epoch plan s (background) / next epoch",
        "first batch of the next epoch s",
        "main RSS / USS MB: first batch; two plans",
        "worker RSS / USS MB",
        "batches/s",
        "resume exact",
    ]
    one = table(header, ["---:"] * 9 + ["---"], [_one_rank_row(s) for s in data["structures"]])
    with_ranks = [s for s in data["structures"] if "ranks" in s]
    note = (
        f"{data['rows']:,} rows, {data['workers']} workers, {data['max_tokens']:,}-token "
        f"batches, blocks of {data['block_rows']:,} rows."
    )
    if not with_ranks:
        return one + "\n\n" + note
    header = [
        "clusters",
        "ranks",
        "steps per rank",
        "plan s (slowest rank)",
        "USS MB (largest rank)",
        "of which the plan",
        "each cluster once",
    ]
    ranks = table(header, ["---:"] * 6 + ["---"], [_ranks_row(s) for s in with_ranks])
    return one + "\n\n" + ranks + "\n\n" + note
