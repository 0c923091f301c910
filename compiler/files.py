"""Writing what a user owns: whole or not at all, through links, with one-line errors.

Every file adder writes (checkpoints, reports, certificates, exported sources, run folders'
files) goes through `write_whole`:

* a regular file is written beside its final name and renamed into place, so Ctrl-C or a
  full disk leaves the old file or none, never a truncated one;
* a symbolic link is written through: its target gets the data, the link stays a link
  (`--json link.json --force` must not replace the link with a plain file);
* a special file (a terminal, /dev/stdout, a pipe) is written directly: it cannot be renamed
  over, and replacing it is never what was meant;
* an OS error (a read-only file system, a full disk, no permission) is an `OutputError`, one
  line naming the file and the reason.

`check_writable` is the same question asked before any long work: it creates and removes a
probe file in the folder, because `os.access` says yes to root on a read-only mount.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import AdderError


class OutputError(AdderError):
    """An output file that cannot be written."""


def destination(path: Path) -> Path:
    """Where writing `path` lands: a symbolic link's final target, else `path` itself."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _special(path: Path) -> bool:
    try:
        return path.exists() and not stat.S_ISREG(path.stat().st_mode) and not path.is_dir()
    except OSError:
        return False


def check_writable(path: Path, force: bool) -> None:
    """Refuse, before any long work, an output file that exists (without `force`), is a folder,
    or whose folder cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    if path.exists() and not force:
        raise OutputError(f"{path} already exists; pass --force to overwrite it")
    if _special(path):
        return  # written in place (a terminal, a pipe): nothing to create beside it
    target = destination(path)
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {target.parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=target.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"cannot write {path}: folder {target.parent} is not writable ({e.strerror})") from None


def write_whole(path: Path, data: bytes | str | Callable[[Path], None]) -> Path:
    """Write `data` (bytes, text, or a function that writes a given path) to `path`, whole or not
    at all (see the module docstring); returns `path`."""
    path = Path(path)
    try:
        if _special(path):
            _put(path, data)
            return path
        target = destination(path)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            _put(tmp, data)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def json_text(data: Any) -> str:
    """`data` as JSON text that any parser reads: a non-finite float becomes the string "nan", "inf" or "-inf"."""
    return json.dumps(_finite(data), indent=1)


def write_json(path: Path, data: Any) -> Path:
    """`data` as JSON (`json_text`) in `path`, whole or not at all."""
    return write_whole(path, json_text(data) + "\n")


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _put(path: Path, data: bytes | str | Callable[[Path], None]) -> None:
    if callable(data):
        data(path)
    elif isinstance(data, str):
        with open(path, "w", encoding="utf-8") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
