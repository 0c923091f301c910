"""Shared fixtures: compiled constructions (built once per session), the official cases, and
one torch thread for the test modules that ask for it. The test process keeps freed memory for
reuse, as the `adder` command does (`cli/heap.py`)."""

import pytest
import torch

from adder.cli.heap import keep_freed_memory
from adder.verify.cases import OFFICIAL_RANDOM, official_pairs

keep_freed_memory()


def official_cases(n_random: int = OFFICIAL_RANDOM) -> list[tuple[int, int]]:
    """AdderBoard's qualification cases (edge cases, then Random(2025) pairs)."""
    return official_pairs(n=n_random)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module (`pytestmark = pytest.mark.usefixtures("one_thread")`):
    on a shared 2-core machine, two spin-waiting threads run ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CORE = ["param40", "tinyadder36", "qwen87", "zcbtrak6", "lokimorty10", "wonderfall27"]


@pytest.fixture(scope="session")
def compiled():
    from adder.compiler import compile_spec
    from adder.constructions import build_spec

    cache = {}

    def get(name, dtype=None):
        if (name, dtype) not in cache:
            cache[name, dtype] = compile_spec(build_spec(name), dtype=dtype)
        return cache[name, dtype]

    return get


def as_tensors(pairs):
    return (torch.tensor([a for a, _ in pairs], dtype=torch.long), torch.tensor([b for _, b in pairs], dtype=torch.long))


def official_correct(model, chunk: int = 2000) -> int:
    """How many of the official 10,010 cases `model` adds right (teacher-forced, in chunks)."""
    from adder.compiler.decode import teacher_forced

    a, b = as_tensors(official_cases())
    return sum(int(teacher_forced(model, a[i:i + chunk], b[i:i + chunk]).correct.sum()) for i in range(0, len(a), chunk))
