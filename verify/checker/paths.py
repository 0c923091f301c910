"""Which inputs a certificate leaf covers, and the maximum of a sum over them.

Inputs as paths. Write a + b digit by digit, least significant first: group j holds the pair
(a_j, b_j) and receives the carry c_j (c_0 = 0); it prints s_j = (a_j + b_j + c_j) mod 10 and
passes c_{j+1} = [a_j + b_j + c_j >= 10]; the top digit is s_10 = c_10. Every input is one path
(pair_0, c_0, ..., pair_9, c_9, c_10), and every path one input.

A case is a set of paths: `mask[j, pair, c]` (group j may take `pair` with carry c in) and
`final[c]` (c_10 = c allowed). The certificate's tree is regenerated here from the split rule
(docs/prove.md): the roots of step k fix the query position's token, the printed digit and the
carry out of its group; a "split" node has one child per pair its case allows (ascending), a
"carry" node two children (c_j = 0, 1). Each split partitions its case, and the roots
partition all inputs, so the leaves cover all 10^20 inputs whatever the certificate says.

`Positions` maps each position of step k's sequence to what sits there (a fixed token, a_j,
b_j or a fed-back s_j), from the checkpoint's prompt format.
"""

from __future__ import annotations

import numpy as np

from .reals import U64, sum_upper, upper

GROUPS, PAIRS = 10, 100
A_OF = np.arange(PAIRS) // 10
B_OF = np.arange(PAIRS) % 10
TOTAL = A_OF[:, None] + B_OF[:, None] + np.arange(2)[None, :]  # [pair, carry in]
S_OF = TOTAL % 10
CARRY_OUT = TOTAL >= 10
DIGIT = {"a": np.broadcast_to(A_OF[:, None], (PAIRS, 2)), "b": np.broadcast_to(B_OF[:, None], (PAIRS, 2)), "s": S_OF}


class Positions:
    """Step k's positions 0..t: ("fixed", token) or (role, group) with role a, b or s (group 10: s_10)."""

    def __init__(self, fmt, k: int):
        slots = []
        for item in fmt.prompt:
            if isinstance(item, int):
                slots.append(("fixed", item))
            else:
                role, order = item
                slots += [(role, j) for j in (range(fmt.digits) if order == "lsb" else reversed(range(fmt.digits)))]
        printed = fmt.digit_order()  # printed[i]: the digit group the i-th answer token writes
        slots += [("s", printed[i]) for i in range(k)]
        self.k, self.slots, self.t, self.target_group = k, slots, len(slots) - 1, printed[k]
        self.tokens = np.asarray(fmt.digit_tokens)

    def can_hold(self, vocab: int) -> np.ndarray:
        """[P, V]: token v can sit at position p in some input."""
        ok = np.zeros((len(self.slots), vocab), bool)
        for p, (kind, x) in enumerate(self.slots):
            if kind == "fixed":
                ok[p, x] = True
            else:
                ok[p, self.tokens[:2] if x == GROUPS else self.tokens] = True
        return ok

    def constrain(self, mask: np.ndarray, final: np.ndarray, p: int, token: int) -> tuple[np.ndarray, np.ndarray]:
        """The case (mask, final) with token `token` at position p (a fixed position: unchanged;
        a token no input puts there: a case without inputs)."""
        kind, x = self.slots[p]
        if kind == "fixed":
            return mask, final & (token == x)
        if token not in self.tokens:
            return mask, final & False
        d = list(self.tokens).index(token)
        if x == GROUPS:
            return mask, final & (np.arange(2) == d)
        mask = mask.copy()
        mask[x] &= DIGIT[kind] == d
        return mask, final

    def allowed_tokens(self, masks: np.ndarray, finals: np.ndarray, vocab: int) -> np.ndarray:
        """[N, P, V]: the tokens each position holds in some input of each case (each position on
        its own), from the transitions that lie on a path."""
        live, final = live_transitions(masks, finals)
        out = np.zeros((len(masks), len(self.slots), vocab), bool)
        for p, (kind, x) in enumerate(self.slots):
            if kind == "fixed":
                out[:, p, x] = True
            elif x == GROUPS:
                out[:, p, self.tokens[:2]] = final
            else:
                for d in range(10):
                    out[:, p, self.tokens[d]] = (live[:, x] & (DIGIT[kind] == d)).any((1, 2))
        return out

    def max_sum(self, terms: np.ndarray, masks: np.ndarray, finals: np.ndarray) -> np.ndarray:
        """An upper bound [N] of max over each case's inputs of sum_p terms[n, p, token at p]
        (terms [N, P, V], masks [N, 10, 100, 2], finals [N, 2]); -inf for a case without inputs.

        The sums are plain float64: the fixed positions' terms, each group's, then the max-plus
        programme over the carry (`max_over_paths`). Its maxima are exact, and an addition
        rounded to nearest never decreases as its left operand grows, so it returns exactly the
        largest of the inputs' computed sums. Each input's computed sum adds its P terms in some
        tree, so it lies within gamma_P sum_p |term| <= 2 P u A of the exact sum (Higham, Thm
        4.4), with A = sum_p of the largest |terms[p, v]| over the tokens v that p can hold. That
        slack is added once, rounded up."""
        fixed, groups, top = self.group_sums(terms)
        best = max_over_paths(groups, top, masks, finals)
        held = self.can_hold(terms.shape[-1])
        with np.errstate(invalid="ignore"):
            largest = np.where(held, np.abs(terms), 0.0).max(-1)  # [N, P]
            slack = upper(2 * (len(self.slots) + 1) * U64 * sum_upper(largest))
            return np.where(best == -np.inf, -np.inf, upper(upper(fixed + best) + slack))

    def group_sums(self, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """terms [N, P, V] -> the per-path sum split by automaton group, in plain float64 (`max_sum`
        bounds the rounding): (fixed [N], groups [N, 10, 100, 2], top [N, 2]); top[c] is the s_10
        position's term."""
        n = terms.shape[0]
        fixed = np.zeros(n)
        groups = np.zeros((n, GROUPS, PAIRS, 2))
        top = np.zeros((n, 2))
        for p, (kind, x) in enumerate(self.slots):
            if kind == "fixed":
                fixed += terms[:, p, x]
            elif x == GROUPS:
                top += terms[:, p, self.tokens[:2]]
            else:
                groups[:, x] += terms[:, p, self.tokens[DIGIT[kind]]]
        return fixed, groups, top


def everything() -> tuple[np.ndarray, np.ndarray]:
    return np.ones((GROUPS, PAIRS, 2), bool), np.ones(2, bool)


def roots(pos: Positions) -> list[tuple[np.ndarray, np.ndarray, int, int, str]]:
    """Step k's root cases, in the certificate's order: (mask, final, query token, target token, label)."""
    kind, x = pos.slots[pos.t]
    if kind == "fixed":
        queries = [x]
    else:
        queries = list(pos.tokens[:2] if x == GROUPS else pos.tokens)
    j = pos.target_group
    out = []
    for qt in queries:
        for y in (range(2) if j == GROUPS else range(10)):
            for c in ([None] if j == GROUPS else [0, 1]):
                mask, final = everything()
                if kind != "fixed":
                    d = list(pos.tokens).index(qt)
                    if x == GROUPS:
                        final = final & (np.arange(2) == d)
                    else:
                        mask[x] &= DIGIT[kind] == d
                if j == GROUPS:
                    final = final & (np.arange(2) == y)
                else:
                    mask[j] &= S_OF == y
                    mask[j] &= CARRY_OUT == bool(c)
                label = f"query={int(qt)} y={y}" + ("" if c is None else f" carry_out={c}")
                out.append((mask, final, int(qt), int(pos.tokens[y]), label))
    return out


def pair_children(mask: np.ndarray, j: int) -> list[tuple[int, np.ndarray]]:
    """Split on group j: (pair, child mask) for each pair the case allows, ascending."""
    kids = []
    for pair in np.flatnonzero(mask[j].any(1)):
        m = mask.copy()
        keep = np.zeros((PAIRS, 1), bool)
        keep[pair] = True
        m[j] &= keep
        kids.append((int(pair), m))
    return kids


def carry_children(mask: np.ndarray, j: int) -> list[np.ndarray]:
    """Split on the carry into group j: c_j = 0, then c_j = 1."""
    kids = []
    for c in (0, 1):
        m = mask.copy()
        m[j] &= np.arange(2)[None, :] == c
        kids.append(m)
    return kids


def has_input(mask: np.ndarray, final: np.ndarray) -> np.ndarray:
    """Whether some path satisfies each case (forward reachability of the carry states); mask
    [..., 10, 100, 2] and final [..., 2] -> bool [...]."""
    reach = np.zeros(mask.shape[:-3] + (2,), bool)
    reach[..., 0] = True
    for j in range(GROUPS):
        step = mask[..., j, :, :] & reach[..., None, :]  # [..., pair, carry in]
        reach = np.stack([(step & (CARRY_OUT == c)).any((-2, -1)) for c in (False, True)], -1)
    return (reach & final).any(-1)


def live_transitions(masks: np.ndarray, finals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The transitions [N, 10, 100, 2] and final carries [N, 2] that lie on some path of each case:
    reachable from c_0 = 0 going forward and reaching an allowed c_10 going back."""
    n = len(masks)
    fwd = [np.zeros((n, 2), bool)]
    fwd[0][:, 0] = True
    for j in range(GROUPS):
        m = masks[:, j] & fwd[j][:, None, :]
        fwd.append(np.stack([(m & (CARRY_OUT == c)).any((1, 2)) for c in (False, True)], 1))
    final = finals & fwd[GROUPS]
    live = np.zeros(masks.shape, bool)
    back = final
    for j in range(GROUPS - 1, -1, -1):
        live[:, j] = masks[:, j] & fwd[j][:, None, :] & np.where(CARRY_OUT[None], back[:, None, None, 1], back[:, None, None, 0])
        back = live[:, j].any(1)
    return live, final


def max_over_paths(groups: np.ndarray, top: np.ndarray, mask: np.ndarray, final: np.ndarray) -> np.ndarray:
    """max over each case's paths of sum_j groups[n, j, pair_j, c_j] + top[n, c_10], each path's sum
    as float64 computes it (a bound only with `Positions.max_sum`'s slack).

    groups [N, 10, 100, 2], top [N, 2], mask [N, 10, 100, 2], final [N, 2]; -inf for a case
    without paths. A max-plus programme over the carry: the maxima are exact."""
    n = groups.shape[0]
    best = np.full((n, 2), -np.inf)
    best[:, 0] = 0.0
    for j in range(GROUPS):
        with np.errstate(invalid="ignore"):
            cand = np.where(mask[:, j], best[:, None, :] + groups[:, j], -np.inf)  # [N, pair, c in]
        best = np.stack([np.where(CARRY_OUT == c, cand, -np.inf).reshape(n, -1).max(1) for c in (False, True)], 1)
    return np.where(final, best + top, -np.inf).max(1)
