"""`python -m adder`: the `adder` command."""

from .cli import main

main()
