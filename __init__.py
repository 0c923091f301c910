"""adder: compile, train and verify tiny transformers that add two 10-digit integers."""

__version__ = "0.1.0"
