"""Checkpoints: a plain dict of tensors and JSON text, read with `weights_only=True`.

    {"format": "adder-checkpoint", "format_version": 1,
     "spec": "<ModelSpec JSON>", "dtype": "float32",
     "state": {storage key: tensor}, "meta": {name, source, claimed/counted params, hash, seed, ...}}

A storage key is a declared parameter name with "." written "__" (`AdderModel.stored_params`).
The meta records where the file came from (`PROVENANCE`: the adder and torch versions that
wrote it; for a trained model its recipe, seed, step, held-out exact match and the CPU kernels
(AVX2, AVX-512) it trained with; for an imported one the published file's name, format and sha256).

Nothing is ever unpickled into code: a file holding pickled objects is refused with one
line, as is a truncated file or one written by an incompatible version. The weights hash is
checked on the stored bytes *before* the spec is read, so an edited file is refused before
any of its exact values is evaluated (and `scalars` bounds those values, for a file whose
hash was forged too). A file is written whole or not at all (a temporary file renamed into
place), so an interrupted run never leaves half a checkpoint. Loading needs only
`adder.compiler` (no construction code), so a checkpoint is self-contained.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from .files import write_whole
from .errors import CheckpointError
from .ledger import ledger
from .module import AdderModel, dtype_named, place
from .spec import spec_from_text, spec_to_text

FORMAT = "adder-checkpoint"
FORMAT_VERSION = 1
#: Meta entries that say where a checkpoint came from (`adder info` shows those a file has).
PROVENANCE = ("recipe", "seed", "step", "val_exact", "warm_start", "imported_from", "source_format", "source_sha256",
              "adder_version", "torch_version", "cpu_capability")


def adder_version() -> str:
    """The installed adder's version (package metadata), recorded in every checkpoint."""
    try:
        return importlib.metadata.version("adder")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def weights_hash(model: AdderModel) -> str:
    """sha256 over the spec JSON and every parameter's bytes: names the artifact in reports.

    A loaded model hashes the spec text *as stored in its file*, so the hash of a checkpoint
    does not change when a newer adder serialises specs with extra (defaulted) fields.
    """
    return state_hash(_spec_text(model), model.stored_params())


def state_hash(spec_text: str, state: Mapping[str, torch.Tensor]) -> str:
    """The weights hash of a spec text and a state (storage key -> tensor), as a checkpoint stores them."""
    h = hashlib.sha256(spec_text.encode())
    for key, p in sorted(state.items()):
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
        "adder_version": adder_version(),
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
    """Write a checkpoint, whole or not at all. Refuses to overwrite an existing file unless `force`."""
    path = Path(path)
    if path.exists() and not force:
        raise CheckpointError(f"{path} already exists; pass --force to overwrite it")
    if path.parent and not path.parent.exists():
        raise CheckpointError(f"folder {path.parent} does not exist; create it first")
    save_whole(to_checkpoint(model, meta), path)
    return path


def save_whole(obj: object, path: Path) -> None:
    """`torch.save(obj, path)` through a temporary file renamed into place: an interruption (Ctrl-C,
    a full disk) leaves the previous file, never a truncated one."""
    write_whole(path, lambda p: torch.save(obj, p))


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
    for key, kind in (("spec", str), ("state", dict), ("meta", dict), ("dtype", str)):
        if not isinstance(ck.get(key), kind):
            raise CheckpointError(f"{path} is missing its {key!r} entry or it is not a {kind.__name__}; rebuild it")
    if not all(isinstance(t, torch.Tensor) for t in ck["state"].values()):
        raise CheckpointError(f"{path}: its 'state' holds something other than tensors; rebuild it")
    return ck


def from_checkpoint(ck: dict, *, dtype: str | None = None, device: str = "cpu", where: str = "checkpoint") -> AdderModel:
    """The model a checked checkpoint dict (`read`) holds, its spec and weights checked against the
    recorded hash before the spec is read; `dtype`: convert from the stored one."""
    recorded = ck["meta"].get("weights_sha256")
    if recorded and recorded != state_hash(ck["spec"], ck["state"]):
        raise CheckpointError(f"{where}: spec or weights do not match the recorded hash "
                              "(file corrupted or edited by hand)")
    try:
        spec = spec_from_text(ck["spec"])
    except RecursionError:
        raise CheckpointError(f"{where}: its spec is nested too deeply to be a model") from None
    model = AdderModel(spec, dtype=dtype_named(ck["dtype"], CheckpointError), spec_text=ck["spec"])
    load_state(model, ck["state"], where)
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
            if t.dtype != params[k].dtype:
                raise CheckpointError(f"{where}: parameter {k} is stored in {t.dtype}, its spec is in {params[k].dtype}")
            params[k].copy_(t)


def load(path: str | Path, *, dtype: str | None = None, device: str = "cpu") -> AdderModel:
    """Load a checkpoint written by `save` (dtype: keep the stored one unless given)."""
    return from_checkpoint(read(path), dtype=dtype, device=device, where=str(path))
