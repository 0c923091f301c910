"""Every registered construction: builds, counts what it claims, survives a checkpoint round
trip bit-for-bit, and adds a sample of the official cases (the full suite: slow tests)."""

import pytest
import torch

from adder.compiler import checkpoint, compile_spec, ledger
from adder.compiler.decode import add, teacher_forced
from adder.constructions import REGISTRY, build_spec

from conftest import as_tensors, official_cases, official_correct

NAMES = sorted(REGISTRY)
# Counted differs from the board's figure, explained in the construction's docstring.
COUNT_DIFFERS = {"wonderfall27": 26, "jacobli99_93p": 92}
# Official 10,010-case accuracy each original publishes (all of them: 100%).
PUBLISHED_OFFICIAL = {name: 10_010 for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_count_matches_the_published_claim(compiled, name):
    led = ledger(compiled(name))
    assert led.adderboard == COUNT_DIFFERS.get(name, REGISTRY[name].claimed_params)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_is_bit_identical(compiled, name, tmp_path):
    m = compiled(name)
    path = checkpoint.save(m, tmp_path / f"{name}.pt")
    back = checkpoint.load(path)
    assert back.dtype == m.dtype and ledger(back).adderboard == ledger(m).adderboard
    fmt = m.spec.format
    gen = torch.Generator().manual_seed(7)
    a, b = (torch.randint(0, 10**10, (64,), generator=gen) for _ in range(2))
    tokens = torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], dim=1)
    with torch.no_grad():
        assert torch.equal(m(tokens), back(tokens))
    assert checkpoint.weights_hash(back) == checkpoint.weights_hash(m)


@pytest.mark.parametrize("name", NAMES)
def test_official_sample(compiled, name):
    """80 official cases teacher-forced, 12 of them also by greedy decoding."""
    m = compiled(name)
    pairs = official_cases(70)
    a, b = as_tensors(pairs)
    assert bool(teacher_forced(m, a, b).correct.all())
    few = pairs[:6] + pairs[-6:]
    assert add(m, [x for x, _ in few], [y for _, y in few]) == [x + y for x, y in few]


def test_every_construction_builds_fresh_and_is_registered_with_a_source():
    for name in NAMES:
        e = REGISTRY[name]
        assert e.source.startswith("https://") and e.author and e.summary
        assert compile_spec(build_spec(name)).spec.name == name


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_full_official_suite_equals_the_published_figure(compiled, name):
    assert official_correct(compiled(name)) == PUBLISHED_OFFICIAL[name]
