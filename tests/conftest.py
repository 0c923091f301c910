"""Shared fixtures: compiled constructions (built once per session) and the official cases."""

import pytest
import torch


def official_cases(n_random: int = 10_000) -> list[tuple[int, int]]:
    """AdderBoard's qualification cases (edge cases, then Random(2025) pairs)."""
    from adder.verify.cases import official_pairs

    return official_pairs(n=n_random)


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
