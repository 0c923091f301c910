"""`adder compare`: routing summaries checked on models whose routing is known by construction."""

import json
import random

import pytest
import torch

from adder.compiler import compile_spec
from adder.compiler.digits import carries_in, longest_chain
from adder.constructions import build_spec
from adder.verify.compare import (CLASSES, POSITION_ONLY_STD, carry_balanced_pairs, compare, digit_class_map,
                                  routing_rows)

from test_cli import adder


@pytest.fixture(scope="module")
def p40_vs_q87():
    return compare(compile_spec(build_spec("param40")), compile_spec(build_spec("qwen87")), probes=300, seed=3)


def test_param40_each_digit_attends_to_its_pair(p40_vs_q87):
    """param40's query for digit i is turned so that it lands on a_i and b_i (19 apart, same phase)."""
    (key, r), = p40_vs_q87.a.routing.items()
    ai, bi = CLASSES.index("a_i"), CLASSES.index("b_i")
    for i in range(10):
        mass = torch.tensor(r["mean"][i])
        assert mass[ai] + mass[bi] > 0.85, (i, mass)
        assert set(mass.topk(2).indices.tolist()) == {ai, bi}
    assert p40_vs_q87.a.position_only[key] < POSITION_ONLY_STD  # position decides, not content


def test_qwen87_layer0_fetches_the_previous_pair(p40_vs_q87):
    r = p40_vs_q87.b.routing
    for head, cls in (("l0.attn.h0", "a_i-1"), ("l0.attn.h1", "b_i-1"), ("l1.attn.h0", "a_i"), ("l1.attn.h1", "b_i")):
        for i in range(1, 10):
            assert r[head]["mean"][i][CLASSES.index(cls)] > 0.95, (head, i)
    carry_stage = next(s for s in p40_vs_q87.b.probes if s["stage"] == "l0.mlp")
    assert carry_stage["carry_acc_per_dim"][3] > 0.99  # the `carry` slot holds the carry on its own


def test_routing_rows_name_each_heads_favourite_class(p40_vs_q87):
    rows = {(r.model, r.head): r for r in routing_rows(p40_vs_q87)}
    assert set(rows) == {("param40", k) for k in p40_vs_q87.a.routing} | {("qwen87", k) for k in p40_vs_q87.b.routing}
    assert rows["qwen87", "l1.attn.h0"].top_class == "a_i" and rows["qwen87", "l1.attn.h0"].mass > 0.95
    assert rows["qwen87", "l0.attn.h1"].top_class == "b_i-1"
    assert rows["param40", next(iter(p40_vs_q87.a.routing))].top_class in ("a_i", "b_i")  # it splits a_i / b_i


def test_class_map_follows_the_prompt_format():
    fmt = build_spec("param40").format
    cmap = digit_class_map(fmt, 3)  # query predicting digit 3
    assert len(cmap) == fmt.prompt_len + 3
    assert CLASSES[int(cmap[1 + 3])] == "a_i" and CLASSES[int(cmap[20 + 3])] == "b_i"
    assert CLASSES[int(cmap[1 + 2])] == "a_i-1" and CLASSES[int(cmap[0])] == "sep"
    assert CLASSES[int(cmap[fmt.prompt_len + 2])] == "out_prev" and CLASSES[int(cmap[fmt.prompt_len])] == "out_earlier"
    msb = build_spec("tinyadder36").format  # MSB-first: the last digit token of `a` is a_0
    cmap = digit_class_map(msb, 10)  # MSB-first answer token 10 is digit 0
    assert CLASSES[int(cmap[10])] == "a_i"


def test_carries_and_chains_match_schoolbook_addition():
    rng = random.Random(0)
    pairs = [(rng.randint(0, 10**10 - 1), rng.randint(0, 10**10 - 1)) for _ in range(300)] + [(9_999_999_999, 1), (0, 0)]
    a, b = torch.tensor([x for x, _ in pairs]), torch.tensor([y for _, y in pairs])
    c, chains = carries_in(a, b), longest_chain(a, b)
    for n, (x, y) in enumerate(pairs):
        carry, run, best = 0, 0, 0
        for i in range(11):
            assert c[n, i] == carry
            s = (x // 10**i % 10) + (y // 10**i % 10) + carry
            carry = int(s >= 10)
            if i < 10:
                run = run + 1 if carry else 0
                best = max(best, run)
        assert chains[n] == best


def test_carry_balanced_pairs_draw_each_class_a_third_of_the_time():
    a, b = carry_balanced_pairs(6000, seed=1)
    da, db = (a[:, None] // 10 ** torch.arange(10)) % 10, (b[:, None] // 10 ** torch.arange(10)) % 10
    s = da + db
    for frac in ((s >= 10).double().mean(), (s == 9).double().mean(), (s <= 8).double().mean()):
        assert abs(float(frac) - 1 / 3) < 0.02
    assert int(longest_chain(a, b).max()) == 10  # long chains do appear


def test_cli_compare_writes_plots_report_and_numbers(tmp_path):
    out = tmp_path / "cmp"
    r = adder("compare", "param40", "qwen87", "--out", out, "--probes", "200")
    assert r.returncode == 0, r.stderr
    assert "routes by position only" in r.stdout
    names = {p.name for p in out.iterdir()}
    assert {"report.html", "comparison.json", "probes.png", "margins.png"} <= names
    assert sum(n.startswith("routing_") for n in names) == 2
    data = json.loads((out / "comparison.json").read_text())
    assert data["seed"] == 0 and data["a"]["ledger"]["adderboard"] == 40 and data["b"]["ledger"]["adderboard"] == 87
    assert "data:image/png;base64," in (out / "report.html").read_text()
    bad = adder("compare", "param40", "nope")
    assert bad.returncode == 2 and "unknown construction" in bad.stderr and "Traceback" not in bad.stderr
