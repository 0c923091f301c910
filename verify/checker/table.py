"""The table rule: one-hot attention makes an answer step a finite table, evaluated exactly.

Many hand-coded one-layer models route attention by position alone, with scores so far apart
that every softmax is one-hot *in float32*: a key whose score lies ZERO_GAP or more below the
row's best gets exp(fl(s_j - max)) = 0 exactly, the best one exp(0) = 1, so the row's weights
are exactly [0, .., 1, .., 0] and the head's output is exactly the value vector of the one key
it reads (0 * v = 0 and x + 0 = x in any order, fused or not). That is the rule's one
library assumption, checked on every float32 shift that can occur (`libm` "softmax_zero").

Then, at answer step k, the logits are a function of the tokens at the query position and at
the positions the heads read. Those tokens depend on the operand digits of a short window of
digit groups (and the carry into it), so the step is a table of at most 2 * 100^w rows, and
each row is bounded in `tight.py`'s float32 boxes (`row_bound.py`): nearly exact, where the case split of the
main rule must bound sums of 10^20 inputs with the general float error model. A step is
proven when every row's margin bound is positive; the certificate names the positions read
(`{"table": {"heads": [p, ...]}}`) and this module re-derives everything else.

Conditions (`not_applicable` says which one fails): float32; one attention layer, the first
block, with softmax; only MLP blocks after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...compiler.spec import MLP, Attention
from .bounds import Rejected, Rules, heads
from .inner import embedding
from .paths import GROUPS, Positions
from .reals import Box, exp_box, lower, upper
from .row_bound import evaluate

#: A key this far (or further) below its row's best score gets softmax weight exactly 0.
ZERO_GAP = 110.0
#: Most rows a table may have (2 * 100^w for a window of w digit groups).
MAX_ROWS = 2_000_000
#: Keys within this of a head's best guaranteed score are read (their tokens are table columns).
NEAR_GAP = 8.0
#: Most keys one head may read.
MAX_KEYS = 3
#: Heaviest tail (the exp weights, summed, of the keys between NEAR_GAP and ZERO_GAP below the best).
MAX_TAIL = 1e-3


def not_applicable(rules: Rules) -> str | None:
    """Why the table rule cannot apply to this model (None: it can be tried)."""
    spec = rules.spec
    if rules.fl.name != "float32":
        return "the table rule is for float32 models"
    kinds = [isinstance(b.layer, Attention) for b in spec.blocks]
    if sum(kinds) != 1 or not kinds[0]:
        return "the table rule needs one attention layer, the first block"
    if not all(isinstance(b.layer, MLP) for b in spec.blocks[1:]):
        return "the table rule needs only MLP blocks after the attention"
    if spec.blocks[0].layer.softmax != "softmax":
        return "the table rule needs a softmax attention"
    return None


@dataclass
class Reading:
    """What the heads read at one step (`read_positions`): the key positions of each head, and
    the tail of keys each does not read but whose weight is not exactly 0 (`tails`)."""

    heads: list[list[int]]
    rho: np.ndarray  # [V, H] the tail's exp weights summed, per query token
    tail_values: Box  # [H, vd] the range of the tail's value vectors


@dataclass
class Table:
    """One step's table: each row's query token, tokens read by the heads, target and margin bound."""

    heads: list[list[int]]  # the key positions each head reads
    tokens: np.ndarray  # [M, 1 + K]: the query token, then the token at each position read (`read_union`)
    target: np.ndarray  # [M] the token the step must print
    margin: np.ndarray  # [M] lower bound of the float32 margin
    example: np.ndarray  # [M, 2] an input (a, b) of each row


def _scores(r: Rules, pos: Positions):
    """The general rule's scores at the step's query position, one row per query token it can
    hold: (heads, most [R, H, P] the greatest score at each position, floor [R, H] the best
    guaranteed score: the greatest of the least scores of the positions)."""
    att = r.spec.blocks[0].layer
    x = embedding(r, pos)
    keys = r.norm(x, r.spec.blocks[0].norm)
    q_tok = np.flatnonzero(pos.can_hold(x.shape[1])[pos.t])
    hd = heads(r, att, keys, keys[pos.t][q_tok], np.full(len(q_tok), pos.t), pos)
    least = np.where(hd.live, hd.s.lo, np.inf).min(-1)
    most = np.where(hd.live, hd.s.hi, -np.inf).max(-1)
    floor = np.where(np.isfinite(least), least, -np.inf).max(-1)
    return hd, most, floor


def read_positions(r: Rules, pos: Positions) -> tuple[Reading | None, str]:
    """The key positions each head reads at step pos.k: those scoring within NEAR_GAP of the
    best guaranteed score at some query token. Every key ZERO_GAP or more below gets softmax
    weight exactly 0; the ones between (the tail) weights of at most e^-NEAR_GAP each, bounded
    together (`tails`). One position and no tail: the head's output is exactly that key's value
    vector. Otherwise its softmax over them is bounded in `_mix`. More than MAX_KEYS positions, a
    tail heavier than MAX_TAIL, or several positions whose scores need RoPE, ALiBi or a bias
    table: (None, why not)."""
    att = r.spec.blocks[0].layer
    hd, most, floor = _scores(r, pos)
    out = []
    for h in range(att.n_heads):
        near = np.flatnonzero((most[:, h] > floor[:, h, None] - NEAR_GAP).any(0))
        if len(near) > MAX_KEYS or not np.isfinite(floor[:, h]).all():
            return None, (f"head {h}'s softmax is not sparse in float32: {len(near)} keys score within "
                          f"{NEAR_GAP:g} of its best (at most {MAX_KEYS} can be read)")
        if len(near) > 1 and (att.rope is not None or att.alibi is not None or att.bias is not None):
            return None, f"head {h} reads {len(near)} keys, whose scores need RoPE, ALiBi or a bias: no tight rule yet"
        out.append([int(p) for p in near])
    rho, tail_values = tails(r, pos, out, hd, most, floor)
    if (rho > MAX_TAIL).any():
        h = int(np.argmax(rho.max(0)))
        return None, (f"head {h}'s softmax is not sparse in float32: the keys it does not read weigh up to "
                      f"{float(rho.max()):.3g} together")
    note_shifts(r, hd.s, hd.live)
    return Reading(out, rho, tail_values), ""


def tails(r: Rules, pos: Positions, reads: list[list[int]], hd, most: np.ndarray, floor: np.ndarray
          ) -> tuple[np.ndarray, Box]:
    """The keys each head does not read but whose weight is not exactly 0 (scores within ZERO_GAP
    of the best): rho [V, H], an upper bound of their exp weights summed (relative to exp(0) at
    the row maximum, which is at least the best guaranteed score), per query token; and the
    range of their value vectors, [H, vd]. exp(fl(s_j - m)) <= exp(most_j - floor) times the
    shift's rounding exp(u |s_j - m|) and exp's ulps, plus its subnormal error. hd, most, floor:
    `_scores`'."""
    att = r.spec.blocks[0].layer
    V = hd.v.shape[-1]
    q_tok = np.flatnonzero(pos.can_hold(V)[pos.t])
    rho = np.zeros((V, att.n_heads))
    lo = np.full((att.n_heads, att.vd), np.inf)
    hi = np.full((att.n_heads, att.vd), -np.inf)
    fl = r.fl
    for h, ps in enumerate(reads):
        rest = np.ones(most.shape[-1], bool)
        rest[ps] = False
        rest &= (most[:, h] > floor[:, h, None] - ZERO_GAP).any(0)
        if not rest.any():
            continue
        seen = rest[None] & np.isfinite(most[:, h])  # [R, P]: a key there, in this row
        gap = upper(np.where(seen, most[:, h] - floor[:, h, None], -ZERO_GAP))  # elsewhere: any value, unused
        grow = upper(1 + upper(fl.u * upper(-gap.clip(max=0)))) * upper(1 + 2 * fl.ulps * fl.u)
        e = exp_box(Box(gap, gap)).hi
        rho[q_tok, h] = upper(upper(np.where(seen, e * grow, 0.0).sum(-1) * (1 + 1e-12)) + rest.sum() * fl.ulps * fl.eta)
        live = hd.live[:, h][:, rest].any(0)  # [P', V]
        vals = hd.v[h][:, rest]  # [vd, P', V]
        lo[h] = np.where(live[None], vals.lo, np.inf).min((-2, -1))
        hi[h] = np.where(live[None], vals.hi, -np.inf).max((-2, -1))
    return rho, Box(np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0))


def note_shifts(r: Rules, s: Box, live: np.ndarray) -> None:
    """Record the shifts fl(s_j - max) softmax meets, for the exact-zero check of exp."""
    top = np.where(live, s.hi, -np.inf).max((-2, -1))  # [R, H]
    low = np.where(live, s.lo, np.inf).min((-2, -1))
    r.note("softmax_zero", lower(lower(low - top) * (1 + r.fl.u)), -ZERO_GAP)


def checked_heads(r: Rules, pos: Positions, claimed) -> Reading:
    """The certificate's head positions, re-derived (Rejected if they differ or fail)."""
    found, why = read_positions(r, pos)
    if found is None:
        raise Rejected(f"step {pos.k}: {why}")
    if claimed != found.heads:
        raise Rejected(f"step {pos.k}: the certificate's head positions {claimed} are not the ones read ({found.heads})")
    return found


def read_union(reads: list[list[int]]) -> list[int]:
    """The positions some head reads, in order: the table's columns after the query token."""
    return sorted({p for ps in reads for p in ps})


def rows(pos: Positions, read: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query token, tokens read) an input can show at this step, with its target and one
    input (a, b) showing it: the operand digits of the window of groups the positions and the
    target depend on, and the carry into it, enumerated (a row per distinct token tuple).
    Raises Rejected when one token tuple needs two different answers (the rule cannot tell its
    inputs apart: where no head has a tail the model is then wrong on one of them) or the window
    is too wide."""
    need = [pos.t] + list(read)
    groups = {pos.target_group} | {g for kind, g in (pos.slots[p] for p in need) if kind != "fixed"}
    lo, hi = min(groups), min(max(groups), GROUPS - 1)
    w = max(0, hi - lo + 1)
    carries = 2 if lo > 0 else 1
    if carries * 100 ** w > MAX_ROWS:
        raise Rejected(f"step {pos.k}: the positions read span {w} digit groups, too many rows to enumerate")
    grid = np.indices((carries,) + (10,) * (2 * w)).reshape(1 + 2 * w, -1)
    cin, a_d, b_d = grid[0], grid[1:1 + w], grid[1 + w:]
    digits = {"a": {}, "b": {}, "s": {}}
    c = cin
    for i in range(w):
        g = lo + i
        total = a_d[i] + b_d[i] + c
        digits["a"][g], digits["b"][g], digits["s"][g] = a_d[i], b_d[i], total % 10
        c = total // 10
    digits["s"][hi + 1] = c  # s_10 is the last carry; s_g beyond the window is not read
    tokens = pos.tokens
    cols = []
    for p in need:
        kind, g = pos.slots[p]
        cols.append(np.full(len(cin), g) if kind == "fixed" else tokens[digits[kind][g]])
    target = tokens[digits["s"][pos.target_group]]
    # one input per row: the window's digits, and 9 + 9 below it when a carry comes in
    a = sum(a_d[i].astype(np.int64) * 10 ** (lo + i) for i in range(w)) + cin * 9 * 10 ** max(lo - 1, 0)
    b = sum(b_d[i].astype(np.int64) * 10 ** (lo + i) for i in range(w)) + cin * 9 * 10 ** max(lo - 1, 0)
    tup = np.stack(cols, 1)
    keyed = np.concatenate([tup, target[:, None]], 1)
    _, first = np.unique(keyed, axis=0, return_index=True)
    uniq, inv = np.unique(tup[first], axis=0, return_inverse=True)
    if len(uniq) != len(first):
        j = int(np.flatnonzero(np.bincount(inv.reshape(-1)) > 1)[0])
        raise Rejected(f"step {pos.k}: the tokens read {uniq[j].tolist()} occur with two different answers, which "
                       "the table rule cannot tell apart")
    return tup[first], target[first], np.stack([a[first], b[first]], 1)


def table(r: Rules, pos: Positions, reading: Reading) -> Table:
    read = read_union(reading.heads)
    tup, target, example = rows(pos, read)
    column = {p: 1 + i for i, p in enumerate(read)}
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # infinities and NaN are handled
        margin = evaluate(r, pos, reading.heads, column, tup, target, (reading.rho, reading.tail_values))
    return Table(reading.heads, tup, target, margin, example)


def check_table_step(r: Rules, pos: Positions, record) -> int:
    """Re-verify a step the certificate proves by the table rule; returns its number of rows."""
    if not isinstance(record, dict) or not isinstance(record.get("heads"), list):
        raise Rejected(f"step {pos.k}: malformed table record")
    why = not_applicable(r)
    if why:
        raise Rejected(f"step {pos.k}: {why}")
    t = table(r, pos, checked_heads(r, pos, record["heads"]))
    bad = np.flatnonzero(~(t.margin > 0))
    if len(bad):
        i = bad[0]
        raise Rejected(f"step {pos.k}: table row (query token, tokens read) {t.tokens[i].tolist()}: the margin bound "
                       f"{t.margin[i]:.3g} is not positive")
    return len(t.margin)
