"""Renderers for the data backends: Foldcomp read in place against converted shards
(``benchmarks/foldcomp_backend.py``). Until its result file exists they render a line that
says how to make it, so the docs render (and ``--check`` passes) before the run."""

from __future__ import annotations

from pathlib import Path

from tools.docrender.core import load, num, renderer, table

BACKENDS = {"shards": "shards (converted)", "foldcomp": "Foldcomp in place"}
RUN = (
    "python -m benchmarks.foldcomp_backend --json --repeat 20 --cold drop "
    "--out benchmarks/results/foldcomp_backend.json"
)


def _result(results: Path, file: str) -> dict | None:
    return load(results, file) if (results / file).is_file() else None


def _not_yet(file: str) -> str:
    return (
        f"*Not measured yet: `benchmarks/results/{file}` does not exist. Run `{RUN}` on an idle "
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
