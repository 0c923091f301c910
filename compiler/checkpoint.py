"""Checkpoints: a plain dict of tensors and JSON text, read with `weights_only=True`.

    {"format": "adder-checkpoint", "format_version": 1,
     "spec": "<ModelSpec JSON>", "dtype": "float32",
     "state": {storage key: tensor}, "meta": {name, source, claimed/counted params, hash, seed, ...}}

A storage key is a declared parameter name with "." written "__" (`AdderModel.stored_params`).

Nothing is ever unpickled into code: a file holding pickled objects is refused with one
line, as is a truncated file or one written by an incompatible version. Loading needs only
`adder.compiler` (no construction code), so a checkpoint is self-contained.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import torch

from .errors import CheckpointError
from .ledger import ledger
from .module import AdderModel, dtype_named, place
from .spec import spec_from_text, spec_to_text

FORMAT = "adder-checkpoint"
FORMAT_VERSION = 1


def weights_hash(model: AdderModel) -> str:
    """sha256 over the spec JSON and every parameter's bytes: names the artifact in reports.

    A loaded model hashes the spec text *as stored in its file*, so the hash of a checkpoint
    does not change when a newer adder serialises specs with extra (defaulted) fields.
    """
    h = hashlib.sha256(_spec_text(model).encode())
    for key, p in sorted(model.stored_params().items()):
        t = p.detach().to("cpu").contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _spec_text(model: AdderModel) -> str:
    """The spec as the checkpoint stores it: the text it was read from, if it was read from one."""
    return model.spec_text or spec_to_text(model.spec)


def to_checkpoint(model: AdderModel, meta: dict | None = None) -> dict:
    """The checkpoint dict of `model` (see the module docstring); `meta` adds to its metadata."""
    led = ledger(model)
    spec = model.spec
    info = {
        "name": spec.name,
        "author": spec.meta.get("author", ""),
        "source": spec.meta.get("source", ""),
        "claimed_params": spec.meta.get("claimed_params"),
        "counted_params": led.adderboard,
        "strict_params": led.strict,
        "dtype": str(model.dtype).replace("torch.", ""),
        "weights_sha256": weights_hash(model),
        "torch_version": str(torch.__version__),
    }
    info.update(meta or {})
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": _spec_text(model),
        "dtype": info["dtype"],
        "state": {k: p.detach().to("cpu").clone() for k, p in model.stored_params().items()},
        "meta": info,
    }


def save(model: AdderModel, path: str | Path, *, force: bool = False, meta: dict | None = None) -> Path:
    """Write a checkpoint. Refuses to overwrite an existing file unless `force`."""
    path = Path(path)
    if path.exists() and not force:
        raise CheckpointError(f"{path} already exists; pass --force to overwrite it")
    if path.parent and not path.parent.exists():
        raise CheckpointError(f"folder {path.parent} does not exist; create it first")
    torch.save(to_checkpoint(model, meta), path)
    return path


def read(path: str | Path) -> dict:
    """Read and check a checkpoint dict without building the model."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; build one with `adder build NAME -o {path}`")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is truncated, corrupt or not a torch checkpoint (not a torch zip archive); "
                              "rebuild it")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower() and "weights_only" not in str(e).lower():
            raise CheckpointError(f"{path} is corrupt or not a torch checkpoint; rebuild it") from None
        raise CheckpointError(f"{path} holds pickled Python objects, not just tensors; adder refuses to "
                              "unpickle code. Rebuild it with `adder build` or `adder train`") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(f"{path} is truncated or not a torch checkpoint ({str(e).splitlines()[0][:80]}); "
                              "rebuild it") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not an adder checkpoint (no 'format: {FORMAT}')")
    if ck.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {ck.get('format_version')!r}; "
                              f"this adder reads version {FORMAT_VERSION}. Rebuild it with this version")
    for key in ("spec", "state", "meta", "dtype"):
        if key not in ck:
            raise CheckpointError(f"{path} is missing its {key!r} entry; rebuild it")
    return ck


def from_checkpoint(ck: dict, *, dtype: str | None = None, device: str = "cpu", where: str = "checkpoint") -> AdderModel:
    """The model a checked checkpoint dict (`read`) holds, its weights checked against the
    recorded hash; `dtype`: convert from the stored one."""
    model = AdderModel(spec_from_text(ck["spec"]), dtype=dtype_named(ck["dtype"], CheckpointError),
                       spec_text=ck["spec"])
    load_state(model, ck["state"], where)
    recorded = ck["meta"].get("weights_sha256")
    if recorded and recorded != weights_hash(model):
        raise CheckpointError(f"{where}: weights do not match the recorded hash (file corrupted or edited by hand)")
    if dtype is not None and dtype != ck["dtype"]:
        model = model.to(dtype_named(dtype, CheckpointError))
    return place(model, device)


def load_state(model: AdderModel, state: dict, where: str = "checkpoint") -> None:
    """Copy a checkpoint's `state` into `model`; CheckpointError unless its keys and shapes are the model's."""
    params = model.stored_params()
    if set(state) != set(params):
        raise CheckpointError(f"{where}: parameters {sorted(set(state) ^ set(params))} do not match its spec")
    with torch.no_grad():
        for k, t in state.items():
            if tuple(t.shape) != tuple(params[k].shape):
                raise CheckpointError(f"{where}: parameter {k} has shape {list(t.shape)}, spec says {list(params[k].shape)}")
            params[k].copy_(t)


def load(path: str | Path, *, dtype: str | None = None, device: str = "cpu") -> AdderModel:
    """Load a checkpoint written by `save` (dtype: keep the stored one unless given)."""
    return from_checkpoint(read(path), dtype=dtype, device=device, where=str(path))
