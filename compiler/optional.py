"""Optional dependencies: imported where first needed, refused in one line that names the extra.

Plots (`pip install 'adder[plot]'`) and Ray clusters (`pip install 'adder[ray]'`, train/cluster.py)
are optional. A command that will plot calls `pyplot(...)` before its long work starts, so a
missing matplotlib is reported before a training run or a comparison, not after it; `--ray`
checks for ray the same way.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import AdderError

#: The pip extra that installs each optional module.
EXTRAS = {"matplotlib": "plot", "ray": "ray"}


def require(module: str, purpose: str) -> ModuleType:
    """`module` imported, or an AdderError: what needs it and the install command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise AdderError(f"{purpose} needs {module}: pip install 'adder[{EXTRAS[module]}]'") from None


def pyplot(purpose: str) -> ModuleType:
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    require("matplotlib", purpose).use("Agg")
    return importlib.import_module("matplotlib.pyplot")
