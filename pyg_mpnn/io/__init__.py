"""Readers of protein structures into one :class:`ProteinRecord`, and
:func:`to_data` from a record to a PyG ``Data``."""

from pyg_mpnn.io.jsonl import iter_jsonl, read_jsonl, write_jsonl
from pyg_mpnn.io.record import ProteinRecord, ReadError, to_data
from pyg_mpnn.io.sources import iter_source, read_records
from pyg_mpnn.io.structure import read_structure

__all__ = [
    "ProteinRecord",
    "ReadError",
    "iter_jsonl",
    "iter_source",
    "read_jsonl",
    "read_records",
    "read_structure",
    "to_data",
    "write_jsonl",
]
