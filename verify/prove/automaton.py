"""The carry automaton: which token sequences a proof must cover, and dynamic programmes over them.

Write the addends' digits as groups g_j = (a_j, b_j) for j = 0..9 (least significant first).
With c_0 = 0, s_j = (a_j + b_j + c_j) mod 10 and c_{j+1} = [a_j + b_j + c_j >= 10], and the
top digit s_10 = c_10. Every valid prompt-plus-answer sequence is a path of this two-state
automaton, and every path is one input (a, b): 10^20 paths in all.

A *case* restricts the transitions: `mask[j, pair, c]` says whether group j may take digit
pair `pair = 10 a_j + b_j` with carry c into it, and `final[c]` whether c_10 = c is allowed.
Every constraint the prover uses (a fed-back digit, the target digit, a carry, a fixed pair)
is such a mask, so a case is always a set of automaton paths and never a box of digits.

`best_paths` is a max-plus (Viterbi) programme over 10 groups x 2 carry states x 200
transitions: the maximum over all paths of a sum of per-group weights, each path's sum as
float64 computes it (`StepLayout.path_max` bounds that rounding, to make it rigorous).
`count_paths` counts a case's inputs.
"""

from __future__ import annotations

import numpy as np

from ...compiler.digits import BASE, DIGIT_PAIRS, DIGITS

GROUPS = DIGITS  # digit groups (a_j, b_j); group 10 is the top sum digit s_10 = c_10
PAIRS = DIGIT_PAIRS  # pair = BASE * a_j + b_j
PAIR_A = np.arange(PAIRS) // BASE
PAIR_B = np.arange(PAIRS) % BASE
TOTAL = PAIR_A[:, None] + PAIR_B[:, None] + np.arange(2)[None, :]  # [pair, carry in]
SUM_DIGIT = TOTAL % BASE
CARRY_OUT = (TOTAL >= BASE).astype(np.int64)
ROLE_DIGIT = {"a": np.broadcast_to(PAIR_A[:, None], (PAIRS, 2)),
              "b": np.broadcast_to(PAIR_B[:, None], (PAIRS, 2)),
              "s": SUM_DIGIT}


class Cases:
    """A batch of cases: mask [N, 10, 100, 2] and final [N, 2] (booleans).

    `take` returns a lazy selection (rows of the same arrays), so that many problems can
    share one case without copying its 2,000 mask entries.
    """

    def __init__(self, mask: np.ndarray, final: np.ndarray, index: np.ndarray | None = None):
        self._mask, self._final, self._index = mask, final, index

    @classmethod
    def everything(cls, n: int = 1) -> "Cases":
        return cls(np.ones((n, GROUPS, PAIRS, 2), bool), np.ones((n, 2), bool))

    def __len__(self) -> int:
        return self._mask.shape[0] if self._index is None else len(self._index)

    @property
    def mask(self) -> np.ndarray:
        return self._mask if self._index is None else self._mask[self._index]

    @property
    def final(self) -> np.ndarray:
        return self._final if self._index is None else self._final[self._index]

    def group(self, j: int) -> np.ndarray:
        """[N, 100, 2]: the transitions group j may take."""
        return self._mask[:, j] if self._index is None else self._mask[self._index, j]

    def take(self, idx) -> "Cases":
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        return Cases(self._mask, self._final, idx if self._index is None else self._index[idx])

    def copy(self) -> "Cases":
        return Cases(self.mask.copy(), self.final.copy())

    def fix_digit(self, role: str, group: int, digit: np.ndarray) -> "Cases":
        """Constrain a_j, b_j or s_j (group 10: s_10 = c_10) to `digit` [N] per case."""
        out = self.copy()
        digit = np.asarray(digit)
        if group == GROUPS:
            out._final &= np.arange(2)[None, :] == digit[:, None]
        else:
            out._mask[:, group] &= ROLE_DIGIT[role][None] == digit[:, None, None]
        return out

    def fix_carry_out(self, group: int, carry: np.ndarray) -> "Cases":
        out = self.copy()
        out._mask[:, group] &= CARRY_OUT[None] == np.asarray(carry)[:, None, None]
        return out

    def fix_carry_in(self, group: int, carry: np.ndarray) -> "Cases":
        """Constrain c_group, the carry into group `group` (= the carry out of group - 1)."""
        out = self.copy()
        out._mask[:, group] &= np.arange(2)[None, None, :] == np.asarray(carry)[:, None, None]
        return out

    def free_carries(self, group: int) -> np.ndarray:
        """[N, 2]: the carries into group `group` the case still allows."""
        return self.group(group).any(1)

    def fix_pair(self, group: int, pair: np.ndarray) -> "Cases":
        out = self.copy()
        out._mask[:, group] &= (np.arange(PAIRS)[None, :] == np.asarray(pair)[:, None])[:, :, None]
        return out

    def contains(self, pairs: np.ndarray, carries: np.ndarray) -> np.ndarray:
        """[N]: whether each case holds the one input given by its path (pairs [10], carries [11])."""
        ok = self.final[:, carries[GROUPS]].copy()
        for j in range(GROUPS):
            ok &= self.group(j)[:, pairs[j], carries[j]]
        return ok

    def free_pairs(self, group: int) -> np.ndarray:
        """[N, 100]: the pairs group `group` may still take."""
        return self.group(group).any(-1)


def count_paths(cases: Cases) -> np.ndarray:
    """Number of inputs (a, b) in each case (float64: exact below 2^53, close above)."""
    n = len(cases)
    v = np.zeros((n, 2))
    v[:, 0] = 1.0
    for j in range(GROUPS):
        m = cases.group(j).astype(np.float64)  # [N, 100, 2]
        flow = m * v[:, None, :]
        v = np.stack([(flow * (CARRY_OUT == c)).sum((1, 2)) for c in (0, 1)], 1)
    return (v * cases.final).sum(1)


def live_transitions(cases: Cases) -> tuple[np.ndarray, np.ndarray]:
    """The transitions and final carries that lie on at least one path of each case:
    (mask [N, 10, 100, 2], final [N, 2]). A constraint on a few groups is consistent with a
    case only if each constrained group keeps a live transition (necessary, not sufficient)."""
    n = len(cases)
    fwd = [np.zeros((n, 2), bool)]
    fwd[0][:, 0] = True
    for j in range(GROUPS):
        m = cases.group(j) & fwd[j][:, None, :]
        fwd.append(np.stack([(m & (CARRY_OUT == c)).any((1, 2)) for c in (0, 1)], 1))
    final = cases.final & fwd[GROUPS]
    back = final
    live = np.zeros((n, GROUPS, PAIRS, 2), bool)
    for j in range(GROUPS - 1, -1, -1):
        live[:, j] = cases.group(j) & fwd[j][:, None, :] & back[:, CARRY_OUT]
        back = np.stack([live[:, j, :, c].any(1) for c in (0, 1)], 1)
    return live, final


#: Per carry out c, the flat (pair, carry in) indices that produce it, in order.
_INTO = [np.flatnonzero(CARRY_OUT.ravel() == c) for c in (0, 1)]


def best_paths(weights: np.ndarray, top: np.ndarray, cases: Cases, want_path: bool = False):
    """max over the paths of each case of sum_j weights[j, pair_j, c_j] + top[c_10].

    weights [N, 10, 100, 2], top [N, 2] (float64, -inf where impossible). Returns [N] the
    largest of the paths' sums as computed (additions rounded to nearest, maxima exact: not a
    bound by itself, see `StepLayout.path_max`) and, with `want_path`, the maximising path as
    (pairs [N, 10], carries [N, 11]). A case with no path gets -inf.
    """
    n = weights.shape[0]
    v = np.full((n, 2), -np.inf)
    v[:, 0] = 0.0
    arg = np.zeros((n, GROUPS, 2), np.int64)
    for j in range(GROUPS):
        with np.errstate(invalid="ignore"):
            cand = v[:, None, :] + weights[:, j]  # [N, 100, 2]
        allowed = cases.group(j)
        if not allowed.all():  # most groups are free in most cases: nothing to mask
            cand = np.where(allowed, cand, -np.inf)
        cand = cand.reshape(n, -1)
        new = np.empty((n, 2))
        for c in (0, 1):
            sub = cand[:, _INTO[c]]  # the (pair, carry in) that carry c out
            new[:, c] = sub.max(1)
            if want_path:
                arg[:, j, c] = _INTO[c][sub.argmax(1)]
        v = new
    total = np.where(cases.final, v + top, -np.inf)
    best = total.max(1)
    if not want_path:
        return best
    pairs = np.zeros((n, GROUPS), np.int64)
    carries = np.zeros((n, GROUPS + 1), np.int64)
    carries[:, GROUPS] = total.argmax(1)
    rows = np.arange(n)
    for j in range(GROUPS - 1, -1, -1):
        flat = arg[rows, j, carries[:, j + 1]]
        pairs[:, j], carries[:, j] = flat // 2, flat % 2
    return best, (pairs, carries)


def path_of(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """The automaton path of one input: digit pairs [10] and carries c_0..c_10 [11]."""
    da = np.array([(a // BASE**j) % BASE for j in range(GROUPS)])
    db = np.array([(b // BASE**j) % BASE for j in range(GROUPS)])
    carries = np.zeros(GROUPS + 1, np.int64)
    for j in range(GROUPS):
        carries[j + 1] = int(da[j] + db[j] + carries[j] >= BASE)
    return da * BASE + db, carries


def path_addends(pairs: np.ndarray) -> tuple[list[int], list[int]]:
    """Digit pairs [N, 10] (least significant first) -> the addends a, b as Python ints."""
    powers = [BASE**j for j in range(GROUPS)]
    a = [sum(int(p) // BASE * w for p, w in zip(row, powers)) for row in pairs]
    b = [sum(int(p) % BASE * w for p, w in zip(row, powers)) for row in pairs]
    return a, b
