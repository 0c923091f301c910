"""Python files read, never run: what a `.py` target is is decided from its syntax tree.

Both the target resolver (is this file a submission or a construction file?) and the
black-box runner (does this submission define what AdderBoard calls?) ask before any of
the file's code runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .errors import AdderError


def read_python(path: Path) -> ast.Module:
    """The syntax tree of a Python file (the file does not run), or a one-line error if it is not Python."""
    try:
        return ast.parse(path.read_text(), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError) as e:  # ValueError: null bytes in the source
        raise AdderError(f"{path} is not valid Python ({type(e).__name__}: {e}); fix the file") from None


def top_level_names(tree: ast.Module) -> set[str]:
    """The functions and variables a module defines at top level."""
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    names |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    # `from helpers import build`: defined by an import (which may fail: running the file shows how)
    return names | {(a.asname or a.name).split(".")[0] for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                    for a in n.names}
