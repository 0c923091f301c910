"""adder: compile, train and verify tiny transformers that add two 10-digit integers.

`from adder import dsl` gives the construction DSL in one import (it lives in
`adder.constructions.dsl` and loads on first use, so `import adder` stays cheap).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "dsl":
        import importlib

        return importlib.import_module(".constructions.dsl", __name__)
    raise AttributeError(f"module 'adder' has no attribute {name!r}")
