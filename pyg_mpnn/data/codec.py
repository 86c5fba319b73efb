"""Compact binary encoding of one :class:`ProteinRecord` (the payload of format 2 shards).

A record is one self-contained blob::

    b"PMR2"                       magic
    uint32 header_bytes           little endian
    header                        zlib-compressed JSON: name, n, centre, chain_ids, designed,
                                  residue_ids, has_plddt, meta[, coord_dtype]
    uint8   seq[n]                index into ProteinMPNN's alphabet ``ACDEFGHIKLMNPQRSTVWYX``
    uint16  chain_index[n]
    float16 coords[n, 4, 3]       backbone N, CA, C, O minus ``centre`` (the mean CA); NaN = missing
                                  (float32 when the header says ``"coord_dtype": "f4"``)
    float16 plddt[n]              only when ``has_plddt``

27 bytes per residue (29 with pLDDT) against 48 for float32 coordinates alone. float16 keeps
11 significant bits: a value ``v`` relative to the centre is rounded by at most
``2**(floor(log2 |v|) - 11)`` (:func:`coord_error`): 0.031 A at 100 A, 0.125 A at 500 A,
0.25 A at 1,000 A. A record is stored in float16 only while every coordinate is within
:data:`F16_LIMIT` = 128 A of the centre, so float16 records are exact to :data:`MAX_ERROR` =
1/32 A (far below the 0.2 A backbone noise of training); a larger record (an assembly, a
coordinate far out) is stored in float32 (``"coord_dtype": "f4"``, 51 bytes a residue; off by
at most 3e-5 A at 1,000 A). Blobs without ``coord_dtype`` (all those written before) read as
float16. Integrity is checked by the CRC32 stored in the index, not inside the blob.
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

from pyg_mpnn.alphabet import ALPHABET
from pyg_mpnn.io.record import ProteinRecord
from pyg_mpnn.utils import jsonable

MAGIC = b"PMR2"
MAX_ERROR = 2.0**-5  # A: the largest rounding error of a stored coordinate in float16
F16_LIMIT = 128.0  # A from the centre: float16 keeps MAX_ERROR below this, float32 beyond
MAX_ABS_COORD = 9999.0  # A: the PDB format's ceiling (9999.999), a writer's overflow value
_LUT = np.full(256, ALPHABET.index("X"), np.uint8)
for _i, _a in enumerate(ALPHABET):
    _LUT[ord(_a)] = _i
_ALPHA = np.frombuffer(ALPHABET.encode(), np.uint8)


def coord_error(distance: float, dtype=np.float16) -> float:
    """The largest rounding error (A) of a coordinate ``distance`` A from the centre stored in
    ``dtype`` (half a unit in the last place): ``coord_error(1000) == 0.25``."""
    exponent = np.frexp(abs(float(distance)))[1] - 1  # floor(log2 |d|), exactly
    return 2.0 ** (exponent - np.finfo(dtype).nmant - 1)


def encode_record(record: ProteinRecord) -> bytes:
    """The blob of ``record`` (see the module docstring); float32 coordinates when some
    coordinate lies :data:`F16_LIMIT` or more from the centre."""
    n = record.num_residues
    ca = record.coords[:, 1]
    ok = (np.abs(ca) < MAX_ABS_COORD).all(axis=1)  # finite, and no far outlier moves the centre
    centre = ca[ok].mean(axis=0).astype(np.float64) if ok.any() else np.zeros(3)
    rel = record.coords - centre.astype(np.float32)
    finite = rel[np.isfinite(rel)]
    wide = finite.size > 0 and np.abs(finite).max() >= F16_LIMIT
    rel = rel.astype("<f4" if wide else "<f2")
    has_plddt = record.plddt is not None
    header = {
        "name": record.name,
        "n": n,
        "centre": [float(c) for c in centre],
        "chain_ids": list(record.chain_ids),
        "designed": record.designed.astype(int).tolist(),
        "residue_ids": list(record.residue_ids) if record.residue_ids else None,
        "has_plddt": has_plddt,
        "meta": jsonable(record.meta),
    }
    if wide:
        header["coord_dtype"] = "f4"
    head = zlib.compress(json.dumps(header, default=str, separators=(",", ":")).encode(), 6)
    seq = _LUT[np.frombuffer(record.seq.encode("ascii", "replace"), np.uint8)]
    parts = [
        MAGIC,
        struct.pack("<I", len(head)),
        head,
        seq.tobytes(),
        record.chain_index.astype("<u2").tobytes(),
        rel.tobytes(),
    ]
    if has_plddt:
        parts.append(np.asarray(record.plddt, "<f2").tobytes())
    return b"".join(parts)


def decode_record(blob: bytes | memoryview) -> ProteinRecord:
    """Inverse of :func:`encode_record` (coordinates back in float32, absolute frame)."""
    blob = memoryview(blob)
    if bytes(blob[:4]) != MAGIC:
        raise ValueError(f"not a pyg_mpnn record (magic {bytes(blob[:4])!r})")
    (hlen,) = struct.unpack("<I", blob[4:8])
    header = json.loads(zlib.decompress(blob[8 : 8 + hlen]))
    n = header["n"]
    pos = 8 + hlen
    seq = np.frombuffer(blob, np.uint8, n, pos)
    pos += n
    chain = np.frombuffer(blob, "<u2", n, pos)
    pos += 2 * n
    dtype = np.dtype("<" + header.get("coord_dtype", "f2"))
    rel = np.frombuffer(blob, dtype, n * 12, pos)
    pos += 12 * dtype.itemsize * n
    plddt = None
    if header["has_plddt"]:
        plddt = np.frombuffer(blob, "<f2", n, pos).astype(np.float32)
        pos += 2 * n
    if pos != len(blob):
        raise ValueError(f"record {header['name']}: {len(blob)} bytes, layout needs {pos}")
    coords = rel.astype(np.float32).reshape(n, 4, 3) + np.asarray(header["centre"], np.float32)
    return ProteinRecord(
        name=header["name"],
        seq=_ALPHA[seq].tobytes().decode(),
        coords=coords,
        chain_index=chain.astype(np.int64),
        chain_ids=header["chain_ids"],
        designed=np.asarray(header["designed"], bool),
        residue_ids=header["residue_ids"],
        plddt=plddt,
        meta=header["meta"],
    )
