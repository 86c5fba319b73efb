"""A tracked run's series, from the files beside it (``metrics.csv``, ``histograms.jsonl``,
``run.json``) or, given an Aim run hash, from the Aim repo.

Rows are dicts ``{step, name, subset, layer, stack, kind, part, value}`` (strings empty when
absent; rows from the files, read by :func:`pyg_mpnn.track.metrics.read_metrics`, also hold
``epoch`` and ``wall_s``); non-finite values are kept (``float('nan')``): the CSV has them, Aim
does not (the tracker only sends finite values to Aim), so finding (f) needs the files.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from aim import Repo

from pyg_mpnn.errors import UserError
from pyg_mpnn.track.aimio import index_run
from pyg_mpnn.track.metrics import read_metrics
from pyg_mpnn.track.tracker import CONTEXT_KEYS


@dataclass
class RunSeries:
    rows: list[dict]
    hists: list[dict] = field(default_factory=list)
    run_dir: Path | None = None
    aim_repo: str | None = None
    aim_hash: str | None = None
    source: str = "files"
    config: dict = field(default_factory=dict)  # the run's experiment config (run.json / Aim)
    blocks: list = field(default_factory=list)  # [[layer, stack], ...] in model order
    frozen: list = field(default_factory=list)  # layers frozen by configuration

    def series(self, name: str, **ctx) -> tuple[list[int], list[float]]:
        """Sorted steps and values of one series (the last value of a re-written step)."""
        last = {}
        for r in self.rows:
            if r["name"] == name and all(r.get(k, "") == v for k, v in ctx.items()):
                last[r["step"]] = r["value"]
        steps = sorted(last)
        return steps, [last[s] for s in steps]

    def frozen_by_config(self) -> list[str]:
        """Layers the run froze on purpose (``model.freeze``): not trained, not a finding."""
        return list(self.frozen)

    def layers(self) -> list[str]:
        """Tracked layers in the model's block order (as the run recorded it; layers it did not
        record, in the order they were first tracked)."""
        order = {b[0]: i for i, b in enumerate(self.blocks)}
        seen = dict.fromkeys(r["layer"] for r in self.rows if r["layer"])
        return sorted(seen, key=lambda layer: order.get(layer, len(order)))

    def stack(self, layer: str) -> str:
        for b in self.blocks:
            if b[0] == layer:
                return b[1]
        for r in self.rows:
            if r["layer"] == layer and r["stack"]:
                return r["stack"]
        return ""

    def layer_series(self, kind: str, name: str = "norm", part: str = "") -> dict:
        """``{layer: (steps, values)}`` for one kind (and activation part)."""
        out = {}
        for layer in self.layers():
            ctx = {"layer": layer, "kind": kind}
            if part:
                ctx["part"] = part
            s, v = self.series(name, **ctx)
            if s:
                out[layer] = (s, v)
        return out

    def loss(self) -> tuple[list[int], list[float]]:
        s, v = self.series("loss", subset="train")
        return s, v

    def gradient_hists(self) -> dict:
        """``{layer: [(step, range, counts), ...]}`` of gradient histograms."""
        out = defaultdict(list)
        for h in self.hists:
            if h.get("kind") == "gradient" and h.get("name", "hist") == "hist":
                out[h["layer"]].append((h["step"], h["range"], h["counts"]))
        return {k: sorted(v, key=lambda x: x[0]) for k, v in out.items()}


def read_files(run_dir: str | Path) -> RunSeries:
    run_dir = Path(run_dir)
    try:
        rows = read_metrics(run_dir)
    except (csv.Error, UnicodeDecodeError) as e:
        raise UserError(f"{run_dir / 'metrics.csv'}: not a metrics file a run wrote ({e})") from e
    hists = []
    hp = run_dir / "histograms.jsonl"
    if hp.exists():
        for line in hp.read_text().splitlines():
            with suppress(ValueError):  # a line cut short by a killed run
                hists.append(json.loads(line))
    info = {}
    if (run_dir / "run.json").exists():
        try:
            info = json.loads((run_dir / "run.json").read_text())
        except (UnicodeDecodeError, ValueError) as e:
            raise UserError(f"{run_dir / 'run.json'}: not valid JSON ({e})") from e
        if not isinstance(info, dict):
            raise UserError(f"{run_dir / 'run.json'}: not a run's record (a JSON mapping)")
    return RunSeries(
        rows,
        hists,
        run_dir,
        info.get("aim_repo"),
        info.get("aim_run_hash"),
        config=info.get("config") or {},
        blocks=info.get("blocks") or [],
        frozen=info.get("frozen_layers") or [],
    )


def read_aim(repo: str | Path, run_hash: str) -> RunSeries:
    """Scalars of one Aim run (non-finite values are absent in Aim; the gradient histograms of
    the ridge plots come from ``histograms.jsonl``, which :func:`load` uses when it lies beside
    the repo)."""
    index_run(repo, run_hash)
    run = Repo(str(repo)).get_run(run_hash)
    if run is None:
        raise KeyError(f"no run {run_hash} in {repo}")
    rows, hists = [], []
    for seq in run.metrics():
        ctx = seq.context.to_dict()
        steps, cols = seq.data.numpy()  # steps, [values, epochs, timestamps]
        vals = cols[0]
        for s, v in zip(steps, vals):
            rows.append(
                {
                    "step": int(s),
                    "name": seq.name,
                    "value": float(v),
                    **{k: str(ctx.get(k, "")) for k in CONTEXT_KEYS},
                }
            )
    try:
        config = run["hparams"]
    except KeyError:
        config = {}
    attrs = {}
    for key in ("blocks", "frozen_layers"):
        with suppress(KeyError):
            attrs[key] = list(run[key])
    return RunSeries(
        rows,
        hists,
        None,
        str(repo),
        run_hash,
        source="aim",
        config=config if isinstance(config, dict) else {},
        blocks=attrs.get("blocks", []),
        frozen=attrs.get("frozen_layers", []),
    )


def find_aim_run(run_hash: str, search: list[Path]) -> str | None:
    """The Aim repo (under ``search``) that holds ``run_hash``."""
    for root in search:
        if not root.exists():
            continue
        for aim_dir in [root] + sorted(p.parent for p in root.rglob(".aim")):
            if (aim_dir / ".aim" / "meta" / "chunks" / run_hash).exists() or (
                aim_dir / ".aim" / "seqs" / "chunks" / run_hash
            ).exists():
                return str(aim_dir)
    return None


def load(run: str, repo: str | None = None) -> RunSeries:
    """A run folder (with ``metrics.csv``), or an Aim run hash (``repo`` or searched under
    ``runs/``)."""
    p = Path(run)
    if p.is_dir() and (p / "metrics.csv").exists():
        return read_files(p)
    if p.exists():
        what = "a folder without metrics.csv" if p.is_dir() else "a file"
        raise UserError(f"{run}: {what}; give a run folder (it has metrics.csv) or an Aim run hash")
    if repo is not None and not Path(repo).is_dir():
        raise UserError(f"--repo {repo}: no such folder")
    repo = repo or find_aim_run(run, [Path("runs")])
    if repo is None:
        raise UserError(
            f"{run}: no such run folder, nor an Aim run hash found under runs/ (give --repo)"
        )
    try:
        rs = read_aim(repo, run)
    except KeyError as e:
        raise UserError(f"{e.args[0]}; give a run folder or a hash of that repo") from None
    parent = Path(repo).parent  # <run>/aim: the files are beside it
    if (parent / "metrics.csv").exists():
        files = read_files(parent)
        if files.aim_hash == run:
            return files
    return rs
