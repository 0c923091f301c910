"""The construction DSL in one import: `from adder import dsl`.

Everything a construction file writes with (docs/dsl.md walks through it):

* the builder `Construction` and its block options: `rms`, `layernorm`, `rope`, `rotation`,
  `linear`;
* tensor expressions: `eye`, `zeros`, `ones`, `stack`, `cat`, `reshape`, `place`, `index`,
  `cos`, `sin`, `fn`, `matmul`, `const`;
* the prompt format `PromptFormat`, the IR `ModelSpec` and its JSON (`spec_to_json`,
  `spec_from_json`);
* `register`, the decorator the library's constructions use (a construction file or a
  plugin registers with it too);
* `compile_spec` (a spec to the PyTorch module) and `add` (a model's sums, by greedy
  decoding), to try what was built.

It is a module of its own, not part of `import adder`, so that importing the package stays
cheap; exact constants come from sympy (`from sympy import Rational, pi, sqrt, ...`).
"""

from ..compiler.decode import add
from ..compiler.builder import Construction, layernorm, linear, rms, rope, rotation
from ..compiler.expr import cat, const, cos, eye, fn, index, matmul, ones, place, reshape, sin, stack, zeros
from ..compiler.formats import PromptFormat
from ..compiler.module import compile_spec
from ..compiler.spec import ModelSpec, spec_from_json, spec_to_json
from .registry import register

__all__ = ["Construction", "ModelSpec", "PromptFormat", "add", "cat", "compile_spec", "const", "cos", "eye", "fn",
           "index", "layernorm", "linear", "matmul", "ones", "place", "register", "reshape", "rms", "rope",
           "rotation", "sin", "spec_from_json", "spec_to_json", "stack", "zeros"]
