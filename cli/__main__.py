"""`python -m adder.cli`: the `adder` command."""

from . import main

main()
