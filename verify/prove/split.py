"""The case split: how the 10^20 inputs of one answer step are divided into cases.

Shared by the search and the certificate checker, so that the checker regenerates every
case itself and coverage never rests on the certificate's word.

Roots. At step k, fix the token the query position holds (when it is a digit), the target
digit y = s_j (j the digit step k writes) and, for j < 10, the carry out of group j. The
carry-out split matters: without it the a_j + b_j + c_j = y and y + 10 branches share one
attention box and the bound cannot separate them (PROVE.md). Roots with no input are kept:
they are proven vacuously.

Children. A case that is not proven may be split on one digit group: one child per digit
pair (a_j, b_j) that the case still allows, in increasing order; or on the carry into a
group: two children, c_j = 0 and c_j = 1 (a child the case rules out holds no input and is
proven vacuously). A carry split is the cheap one: it separates exactly what the fed-back
sum digit leaves ambiguous (s_{j-1} alone does not say whether a_{j-1} + b_{j-1} wrapped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .automaton import GROUPS, Cases
from .layout import StepLayout


@dataclass
class Roots:
    cases: Cases
    query_token: np.ndarray  # [N] token at the query position
    target: np.ndarray  # [N] token id the step must print
    labels: list[str]


def root_cases(layout: StepLayout) -> Roots:
    q = layout.query
    tokens = layout.tokens
    if q.kind == "fixed":
        q_opts = [q.token]
    elif q.group == GROUPS:
        q_opts = list(tokens[:2])
    else:
        q_opts = list(tokens)
    j = layout.target_group
    y_opts = range(2) if j == GROUPS else range(10)
    c_opts = [None] if j == GROUPS else [0, 1]
    combos = [(qt, y, c) for qt in q_opts for y in y_opts for c in c_opts]
    n = len(combos)
    cases = Cases.everything(n)
    if q.kind != "fixed":
        cases = layout.fix_token(cases, layout.t, np.array([c[0] for c in combos]))
    cases = cases.fix_digit("s", j, np.array([c[1] for c in combos]))
    if j != GROUPS:
        cases = cases.fix_carry_out(j, np.array([c[2] for c in combos]))
    labels = [f"query={int(qt)} y={y}" + ("" if c is None else f" carry_out={c}") for qt, y, c in combos]
    return Roots(cases, np.array([c[0] for c in combos]), tokens[np.array([c[1] for c in combos])], labels)


def carry_children(cases: Cases, index: int, group: int) -> Cases:
    """Split case `index` on the carry into `group`: children c = 0 and c = 1."""
    return cases.take([index, index]).fix_carry_in(group, np.arange(2))


def children(cases: Cases, index: int, group: int) -> tuple[Cases, np.ndarray]:
    """Split case `index` on `group`: one child per allowed pair. Returns (children, pairs)."""
    pairs = np.flatnonzero(cases.free_pairs(group)[index])
    kids = cases.take(np.full(len(pairs), index)).fix_pair(group, pairs)
    return kids, pairs
