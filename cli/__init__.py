"""The `adder` command line: one file per command (parse, one library call, render with rich).

This file holds the typer app, the table of commands, `adder --version` and `main()`. Errors a
user can cause (`AdderError`) print as one red line and exit with status 2; `--debug` (or
ADDER_DEBUG=1) shows the traceback instead. Ctrl-C exits with INTERRUPTED_EXIT (the long
commands catch it themselves first, to keep what they did).
"""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from ..compiler.errors import AdderError
from . import add, board, build, compare, export, import_, info, prove, train, verify
from . import list as list_
from .common import INTERRUPTED_EXIT, console, err_console
from .heap import keep_freed_memory

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Compile, train and verify tiny transformers that add two 10-digit integers.")


def _print_version(value: bool) -> None:
    if value:
        from ..compiler.checkpoint import adder_version

        console.print(f"adder {adder_version()}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print adder's version and exit.")) -> None:
    """Compile, train and verify tiny transformers that add two 10-digit integers."""


app.command("list")(list_.run)
app.command("build")(build.run)
app.command("info")(info.run)
app.command("add", context_settings={"ignore_unknown_options": True})(add.run)  # "-5" is an addend, not an option
app.command("export")(export.run)
app.command("verify")(verify.run)
app.command("prove")(prove.run)
app.command("train")(train.run)
app.command("compare")(compare.run)
app.command("import")(import_.run)
app.command("board")(board.run)


def main() -> None:
    keep_freed_memory()  # batched passes reuse their freed tensors' pages (cli/heap.py)
    debug = "--debug" in sys.argv or os.environ.get("ADDER_DEBUG") == "1"
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except AdderError as e:
        if debug:
            raise
        err_console.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as e:
        code = getattr(e, "exit_code", None)
        sys.exit(code if code is not None else getattr(e, "code", 0))
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        sys.exit(INTERRUPTED_EXIT)
    except Exception as e:
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # a click usage error: one line + usage hint
            e.show()
            sys.exit(e.exit_code)
        if type(e).__name__ == "Abort":
            sys.exit(1)
        raise
