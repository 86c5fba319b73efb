"""Data at scale: compact records, memory-mapped index, old folders refused, cluster sampling,
exact resume, coverage across ranks and workers, corrupted shards, AlphaFold DB shards,
and a training step of the real model from shards. Structures come from ``tests/fixtures``;
the AlphaFold DB shards from its Foldcomp database ``tests/fixtures/afdb``. Resume, coverage,
corruption and training run on both backends: shards, and that database read in place
(``inplace``, clustered by a member/representative TSV)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from testdata import AFDB, fixture_structures, structure

from pyg_mpnn.data.codec import decode_record, encode_record
from pyg_mpnn.data.dataset import ProteinDataset
from pyg_mpnn.data.loader import make_loader
from pyg_mpnn.data.prepare import prepare
from pyg_mpnn.data.sampler import TokenBudgetBatchSampler, member_weights
from pyg_mpnn.data.store import FORMAT, ShardError
from pyg_mpnn.data.synthetic import tile_index
from pyg_mpnn.io.sources import read_records
from pyg_mpnn.io.structure import structure_name
from pyg_mpnn.nn.model import ProteinMPNN
from pyg_mpnn.train.loss import training_loss

# The real structures of tests/fixtures, one file per entry (27 entries, 3,543 residues):
# multi-chain, NMR, insertion codes, missing atoms, blank chain ids, CA-only (reported, not
# kept); PDB, mmCIF, PQR, PDBQT.
FILES = list({structure_name(p.name): p.name for p in reversed(fixture_structures())}.values())


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """Real structures prepared into a format 2 folder, 3 records per shard."""
    assert len(FILES) == 27
    out = tmp_path_factory.mktemp("shards")
    prepare([str(structure(f)) for f in FILES], out, shard_size=3, progress=False)
    return out


def index_in_place(db_dir: Path, out: Path) -> Path:
    """``db_dir``'s ``afdb_sample`` indexed in place, clustered three entries a cluster by a TSV
    whose members are bare accessions and representatives AFDB names."""
    names = [
        ln.split("\t")[1] for ln in (db_dir / "afdb_sample.lookup").read_text().split("\n") if ln
    ]
    tsv = db_dir / "clusters.tsv"
    tsv.write_text(
        "".join(f"{n.split('-')[1]}\t{names[i // 3 * 3]}\n" for i, n in enumerate(names))
    )
    prepare(
        [str(db_dir / "afdb_sample")], out, foldcomp_in_place=True, clusters=tsv, progress=False
    )
    return out


def in_place_copy(dst: Path) -> Path:
    """A copy of the Foldcomp database beside ``dst``, indexed in place at ``dst`` (tests
    that damage the database damage their own copy)."""
    db = Path(shutil.copytree(AFDB, dst.with_name(dst.name + "_db")))
    return index_in_place(db, dst)


def copy_dataset(root: Path, dst: Path) -> Path:
    """A copy of a dataset folder at ``dst``, with its own database when read in place."""
    if json.loads((root / "meta.json").read_text()).get("backend") != "foldcomp":
        return Path(shutil.copytree(root, dst))
    return in_place_copy(dst)


@pytest.fixture(scope="module")
def inplace(tmp_path_factory) -> Path:
    pytest.importorskip("foldcomp")
    return in_place_copy(tmp_path_factory.mktemp("inplace") / "ds")


@pytest.fixture(scope="module")
def afdb(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("afdb")
    prepare([str(AFDB / "afdb_sample")], out, min_plddt=70.0, shard_size=4, progress=False)
    return out


@pytest.mark.parametrize(
    "file_name",
    [
        "biotite__1igy.cif.gz",
        "proteinmpnn__3HTN.pdb.gz",
        "mdanalysistests__cobrotoxin_dry_neutral_0.pdb",
    ],
)
def test_codec_roundtrip_and_size(file_name):
    recs = read_records(structure(file_name))
    for rec in recs:
        blob = encode_record(rec)
        back = decode_record(blob)
        assert back.name == rec.name and back.seq == rec.seq
        assert back.chain_ids == rec.chain_ids and (back.designed == rec.designed).all()
        assert (back.chain_index == rec.chain_index).all()
        assert back.residue_ids == rec.residue_ids
        ok = np.isfinite(rec.coords)
        assert (np.isfinite(back.coords) == ok).all()  # missing atoms stay missing
        d = np.linalg.norm(rec.coords - rec.coords[:, 1][ok.all((1, 2))].mean(0), axis=-1)
        err = np.abs(back.coords - rec.coords)[ok].reshape(-1)
        assert (err <= np.repeat(d[ok.all(-1)], 3) * 2**-11 + 1e-4).all()  # float16 bound
        assert len(blob) < 28 * rec.num_residues + 2000  # 27 bytes a residue + header


def test_index_memory_mapped_and_splits_contiguous(shards):
    meta = json.loads((shards / "meta.json").read_text())
    assert meta["format"] == FORMAT
    full = ProteinDataset(shards)
    assert isinstance(full.lengths, np.memmap) and isinstance(full.clusters, np.memmap)
    total = 0
    for split in ("train", "valid", "test"):
        ds = ProteinDataset(shards, split)
        lo, hi = meta["split_ranges"][split]
        assert len(ds) == hi - lo
        total += len(ds)
        for i in range(len(ds)):
            rec = ds.record(i)
            assert rec.name == ds.names[i] and rec.num_residues == ds.lengths[i]
    assert total == len(full) == meta["records"]
    assert (np.diff(full.clusters[:]) >= 0).sum() >= 0  # readable
    # Rows are sorted by (split, cluster) so a split's clusters are contiguous runs.
    split = np.load(shards / "index.npz")["split"]
    assert (np.diff(split) >= 0).all()


def test_old_or_incomplete_folder_names_the_fix(tmp_path):
    """A folder of an older format (format 1 is no longer read), or one whose prepare was cut
    before ``meta.json``, fails naming the folder and the command that remakes it."""
    out = tmp_path / "ds"
    prepare([str(structure("proteinmpnn__6MRR.pdb"))], out, progress=False)
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "format": "pyg_mpnn.shards/1"}))
    with pytest.raises(ValueError, match=r"'pyg_mpnn.shards/1'.*prepare it again") as caught:
        ProteinDataset(out)
    assert str(out) in str(caught.value)
    (out / "meta.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"no meta.json.*pyg_mpnn.data.prepare") as caught:
        ProteinDataset(out)
    assert str(out) in str(caught.value)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=60),
    seed=st.integers(0, 99),
    weighting=st.sampled_from(["uniform", "length"]),
    sort=st.booleans(),
)
def test_one_member_per_cluster_with_weights(sizes, seed, weighting, sort):
    clusters = np.repeat(np.arange(len(sizes)), sizes)
    if not sort:
        clusters = np.random.default_rng(seed).permutation(clusters)
    lengths = np.random.default_rng(seed + 1).integers(1, 400, len(clusters))
    s = TokenBudgetBatchSampler(
        lengths, 800, clusters=clusters, cluster_weights=weighting, seed=seed
    )
    picked = [i for b in s for i in b]
    assert sorted(clusters[picked].tolist()) == list(range(len(sizes)))


def test_member_weighting_frequencies():
    n = 20_000  # clusters of two members: weights 1 and 3, then 0 and 1
    clusters = np.repeat(np.arange(n), 2)
    w = np.tile([1.0, 3.0], n)
    s = TokenBudgetBatchSampler(np.full(2 * n, 10), 10_000, clusters=clusters, cluster_weights=w)
    second = np.mean([i % 2 for b in s for i in b])
    assert abs(second - 0.75) < 0.02
    s = TokenBudgetBatchSampler(
        np.full(2 * n, 10), 10_000, clusters=clusters, cluster_weights=np.tile([0.0, 1.0], n)
    )
    assert all(i % 2 == 1 for b in s for i in b)
    pl = member_weights("plddt", plddt=np.array([np.nan, 50.0]))
    assert pl.tolist() == [100.0, 50.0]


def _names(batch):
    return list(batch.name)


BACKENDS = pytest.mark.parametrize("backend", ["shards", "inplace"])


@BACKENDS
def test_exact_resume_with_workers(request, backend):
    ds = ProteinDataset(request.getfixturevalue(backend))

    def loader():
        s = TokenBudgetBatchSampler(ds.lengths, 700, clusters=None, seed=3)
        return make_loader(ds, s, num_workers=2)

    ref = loader()
    epochs = [[_names(b) for b in ref] for _ in range(2)]  # two epochs, different orders
    assert epochs[0] != epochs[1] and len(epochs[0]) >= 4
    run = loader()
    it = iter(run)
    seen = [_names(next(it)) for _ in range(3)]  # workers have prefetched further by now
    state = run.state_dict()
    assert state["consumed"] == 3 and state["epoch"] == 0
    del it
    resumed = loader()
    resumed.load_state_dict(json.loads(json.dumps(state)))
    rest = [_names(b) for b in resumed]
    assert seen + rest == epochs[0]
    assert [_names(b) for b in resumed] == epochs[1]  # and the next epoch as the reference


def _tag_worker(data):
    info = torch.utils.data.get_worker_info()
    data.worker = -1 if info is None else info.id
    return data


@BACKENDS
@pytest.mark.parametrize("use_clusters", [False, True])
def test_every_sample_once_across_ranks_and_workers(request, backend, use_clusters):
    ds = ProteinDataset(request.getfixturevalue(backend), transform=_tag_worker)
    clusters = ds.clusters if use_clusters else None
    loaded = []  # (rank, worker, item name)
    steps = set()
    for rank in range(2):
        s = TokenBudgetBatchSampler(
            ds.lengths, 600, clusters=clusters, seed=5, num_replicas=2, rank=rank
        )
        batches = list(make_loader(ds, s, num_workers=2))
        steps.add(len(batches))
        loaded += [(rank, int(w), n) for b in batches for w, n in zip(b.worker, b.name)]
    names = [n for _, _, n in loaded]
    assert len(names) == len(set(names))  # nothing loaded twice, by any rank or worker
    assert {w for _, w, _ in loaded} == {0, 1}  # both workers of each rank did work
    assert len(steps) == 1  # ranks run the same number of steps
    if use_clusters:
        cl = dict(zip(ds.names, ds.clusters.tolist()))
        assert sorted(cl[n] for n in names) == sorted(set(ds.clusters.tolist()))
    else:
        assert sorted(names) == sorted(ds.names)


@BACKENDS
def test_corrupted_shard_named_and_rest_continues(request, backend, tmp_path):
    root = copy_dataset(request.getfixturevalue(backend), tmp_path / "ds")
    ds = ProteinDataset(root)
    bad = ds.shard_path(0)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a record
    bad.write_bytes(bytes(data))
    in_bad = {ds.names[i] for i in range(len(ds)) if ds.shard_path(i) == bad}
    with pytest.raises(ShardError, match=str(bad.name)) as e:
        for i in range(len(ds)):
            if ds.shard_path(i) == bad:
                ds[i]
    assert "checksum mismatch" in str(e.value) and str(bad) in str(e.value)
    s = TokenBudgetBatchSampler(ds.lengths, 1, seed=0)  # one protein per batch
    loader = make_loader(ds, s, num_workers=2, skip_errors=True)
    with pytest.warns(RuntimeWarning, match=bad.name):
        got = [n for b in loader for n in b.name]
    assert len(loader.errors) == 1 and str(bad) in loader.errors[0][1]
    broken = {ds.names[i] for i in range(len(ds)) if _corrupt(ds, i)}
    assert len(broken) == 1 and broken <= in_bad  # the flipped byte breaks one record
    assert sorted(got) == sorted(set(ds.names) - broken)  # every other protein arrives
    # Raise mode: the error names the shard, and iterating on continues with the next batch.
    s2 = TokenBudgetBatchSampler(ds.lengths, 1, seed=0)
    it = iter(make_loader(ds, s2, num_workers=2))
    delivered, errors = 0, []
    while True:
        try:
            next(it)
            delivered += 1
        except StopIteration:
            break
        except ShardError as err:
            errors.append(str(err))
    assert delivered == len(got) and len(errors) == 1 and str(bad) in errors[0]


def _corrupt(ds, i) -> bool:
    try:
        ds.record(i)
        return False
    except ShardError:
        return True


@BACKENDS
def test_truncated_shard_message(request, backend, tmp_path):
    root = copy_dataset(request.getfixturevalue(backend), tmp_path / "ds")
    ds = ProteinDataset(root)
    last = max(range(len(ds)), key=lambda i: (int(ds._shard[i]), int(ds._offset[i])))
    path = ds.shard_path(last)
    path.write_bytes(path.read_bytes()[:-10])
    kind = "shard" if backend == "shards" else "database"
    with pytest.raises(ShardError, match=f"{path}: record .* truncated {kind}"):
        ds.record(last)


def test_afdb_foldcomp_to_shards_with_plddt_filter(afdb):
    foldcomp = pytest.importorskip("foldcomp")
    means = {}
    with foldcomp.open(str(AFDB / "afdb_sample")) as db:
        for name, pdb in db:  # pLDDT is the B-factor column of the PDB text
            ca = [
                float(line[60:66])
                for line in pdb.splitlines()
                if line.startswith("ATOM") and line[12:16] == " CA "
            ]
            means[name] = float(np.mean(ca))
    ds = ProteinDataset(afdb)
    kept = {ds.names[i]: float(ds.plddt[i]) for i in range(len(ds))}
    assert set(kept) == {n for n, m in means.items() if m >= 70.0}
    assert 0 < len(kept) < len(means)  # the filter did something on this database
    for name, mean in kept.items():
        assert abs(mean - means[name]) < 0.2  # float16 per residue, then averaged
    summary = json.loads((afdb / "summary.json").read_text())
    assert summary["skipped"].get("low pLDDT") == len(means) - len(kept)
    rec = ds.record(0)
    assert rec.plddt is not None and rec.num_residues == ds.lengths[0]


def test_synthetic_index_opens_without_reading_payloads(shards, tmp_path):
    meta = tile_index(shards, tmp_path / "big", 200_000, seed=1)
    assert meta["records"] == 200_000
    ds = ProteinDataset(tmp_path / "big", "train")
    assert isinstance(ds.lengths, np.memmap) and len(ds) == np.diff(meta["split_ranges"]["train"])
    i = len(ds) - 1
    rec = ds.record(i)
    assert rec.num_residues == ds.lengths[i] and ds.names[i].startswith("syn")
    s = TokenBudgetBatchSampler(ds.lengths, 10_000, clusters=ds.clusters, seed=0)
    picked = np.concatenate([np.asarray(b) for b in s])
    assert len(np.unique(ds.clusters[picked])) == len(picked) == len(np.unique(ds.clusters))


@pytest.mark.parametrize("source", ["shards", "afdb", "inplace"])
def test_model_trains_from_shards(request, source):
    torch.manual_seed(0)
    model = ProteinMPNN(
        hidden_dim=32, num_encoder_layers=1, num_decoder_layers=1, k_neighbors=16, augment_eps=0.1
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for root in (request.getfixturevalue(source),):
        ds = ProteinDataset(root)
        s = TokenBudgetBatchSampler(ds.lengths, 3000, clusters=ds.clusters, seed=0)
        for step, batch in enumerate(make_loader(ds, s, num_workers=1)):
            log_probs = model(batch)
            loss = training_loss(log_probs, batch.seq, batch.mask & batch.design_mask, 0.1, "mean")
            opt.zero_grad()
            loss.backward()
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)
            opt.step()
            if step == 1:
                break


@pytest.mark.parametrize("n,replicas", [(5, 3), (4, 3), (7, 4), (2, 3)])
def test_even_out_terminates_with_single_protein_batches(n, replicas):
    lengths = [900] * n  # every protein fills a batch on its own
    per_rank = [
        list(TokenBudgetBatchSampler(lengths, 1000, seed=0, num_replicas=replicas, rank=r))
        for r in range(replicas)
    ]
    flat = sorted(i for batches in per_rank for b in batches for i in b)
    assert flat == list(range(n))
    if n >= replicas:
        assert len({len(b) for b in per_rank}) == 1
