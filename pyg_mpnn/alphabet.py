"""ProteinMPNN's 21-letter alphabet and residue-name mapping."""

ALPHABET = "ACDEFGHIKLMNPQRSTVWYX"
AA_TO_INDEX = {a: i for i, a in enumerate(ALPHABET)}
UNKNOWN = AA_TO_INDEX["X"]
NUM_LETTERS = len(ALPHABET)

THREE_TO_ONE = {
    "ALA": "A",
    "CYS": "C",
    "ASP": "D",
    "GLU": "E",
    "PHE": "F",
    "GLY": "G",
    "HIS": "H",
    "ILE": "I",
    "LYS": "K",
    "LEU": "L",
    "MET": "M",
    "ASN": "N",
    "PRO": "P",
    "GLN": "Q",
    "ARG": "R",
    "SER": "S",
    "THR": "T",
    "VAL": "V",
    "TRP": "W",
    "TYR": "Y",
}

# Modified residues with a standard parent (a common subset of the PDB's
# _pdbx_struct_mod_residue / MODRES records). Anything else becomes X.
MODIFIED_TO_PARENT = {
    "MSE": "MET",
    "MLY": "LYS",
    "M3L": "LYS",
    "MLZ": "LYS",
    "KCX": "LYS",
    "LLP": "LYS",
    "SEP": "SER",
    "TPO": "THR",
    "PTR": "TYR",
    "CSO": "CYS",
    "CSD": "CYS",
    "CME": "CYS",
    "CSS": "CYS",
    "CAS": "CYS",
    "OCS": "CYS",
    "SMC": "CYS",
    "CSX": "CYS",
    "HYP": "PRO",
    "MEN": "ASN",
    "FME": "MET",
    "PCA": "GLU",
    "HIC": "HIS",
    "NEP": "HIS",
    "HIP": "HIS",
    "TYS": "TYR",
    "SEC": "CYS",
    "AGM": "ARG",
    "ALY": "LYS",
    "DAL": "ALA",
    "ABA": "ALA",
    "AIB": "ALA",
    "NLE": "LEU",
    "MHS": "HIS",
    "GL3": "GLY",
    "SAC": "SER",
    "TRQ": "TRP",
    "HSD": "HIS",
    "HSE": "HIS",
    "HSP": "HIS",
    "HID": "HIS",
    "HIE": "HIS",
    "CYX": "CYS",
    "CYM": "CYS",
    "ASH": "ASP",
    "GLH": "GLU",
    "LYN": "LYS",
}


def residue_letter(resname: str) -> str:
    """One-letter code for a residue name: standard, parent of a modified one, or X."""
    name = resname.strip().upper()
    if name in THREE_TO_ONE:
        return THREE_TO_ONE[name]
    parent = MODIFIED_TO_PARENT.get(name)
    return THREE_TO_ONE[parent] if parent else "X"


def encode(seq: str):
    """Sequence string -> list of alphabet indices (unknown letters -> X)."""
    return [AA_TO_INDEX.get(a, UNKNOWN) for a in seq.upper()]


def decode(indices) -> str:
    return "".join(ALPHABET[int(i)] for i in indices)
