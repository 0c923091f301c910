"""Where each digit sits in the sequence at one answer step.

At answer step k the module reads the prompt and the k answer tokens already produced, and
its logits at the last position t = prompt_len + k - 1 decide sum token k. Each position
holds a fixed token, a digit of a or b, or a fed-back sum digit; `StepLayout` maps positions
to automaton groups (`automaton.py`), so per-position quantities (attention weights, values)
become per-group weights of a dynamic programme. Everything here is read off the prompt
format, which is data in the checkpoint: nothing assumes a particular model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...compiler.digits import BASE
from ...compiler.formats import PromptFormat
from .automaton import GROUPS, PAIRS, ROLE_DIGIT, Cases, best_paths, live_transitions
from .intervals import U64, sum_up, up

#: Rows of `StepLayout.group_weights` gathered at a time: each row's gathered copy is 2,000 x k
#: float64 (k <= 3 here, ~48 KB), so 64 rows stay a few MB. A whole batch at once made temporaries of
#: hundreds of MB whose page faults cost a certificate check more system time than the sums cost.
GATHER_ROWS = 64


@dataclass(frozen=True)
class Slot:
    kind: str  # "fixed" | "a" | "b" | "s"
    group: int = -1  # digit index j (s: 0..10)
    token: int = -1  # fixed token id


class StepLayout:
    """Positions 0..t of answer step k, and how to turn per-(position, token) terms into
    per-group automaton weights."""

    def __init__(self, fmt: PromptFormat, vocab: int, k: int):
        self.fmt, self.vocab, self.k = fmt, vocab, k
        slots: list[Slot] = []
        for item in fmt.prompt:
            if isinstance(item, int):
                slots.append(Slot("fixed", token=item))
            else:
                role, order = item
                groups = range(fmt.digits) if order == "lsb" else range(fmt.digits - 1, -1, -1)
                slots += [Slot(role, j) for j in groups]
        digit_of_out = {out: j for j, out in enumerate(fmt.digit_order())}
        slots += [Slot("s", digit_of_out[i]) for i in range(k)]
        self.slots = slots
        self.t = len(slots) - 1
        self.target_group = digit_of_out[k]
        self.tokens = np.asarray(fmt.digit_tokens)

        # valid[p, v]: token v can sit at position p
        self.valid = np.zeros((len(slots), vocab), bool)
        for p, s in enumerate(slots):
            if s.kind == "fixed":
                self.valid[p, s.token] = True
            elif s.group == GROUPS:
                self.valid[p, self.tokens[:2]] = True
            else:
                self.valid[p, self.tokens] = True
        # gather[j, r, pair, c]: flat index (p * vocab + token) of the r-th position of group j
        P = len(slots)
        self._pad = P * vocab
        members = [[p for p, s in enumerate(slots) if s.kind != "fixed" and s.group == j] for j in range(GROUPS)]
        width = max(1, max(len(m) for m in members))
        gather = np.full((GROUPS, width, PAIRS, 2), self._pad, np.int64)
        for j, ps in enumerate(members):
            for r, p in enumerate(ps):
                digit = ROLE_DIGIT[slots[p].kind]
                gather[j, r] = p * vocab + self.tokens[digit]
        self._gather = gather
        fixed = [(p, s.token) for p, s in enumerate(slots) if s.kind == "fixed"]
        self._fixed = tuple(np.array(c, np.int64).reshape(-1) for c in zip(*fixed)) if fixed else None  # (positions, tokens)
        self._top = [p for p, s in enumerate(slots) if s.kind == "s" and s.group == GROUPS]

    @property
    def n_pos(self) -> int:
        return len(self.slots)

    @property
    def query(self) -> Slot:
        return self.slots[self.t]

    def path_max(self, terms: np.ndarray, cases: Cases, want_path: bool = False):
        """An upper bound [N] of the largest sum_p terms[n, p, token at p] over each case's inputs
        (terms [N, P, V] float64), -inf for a case without inputs; with `want_path` also a maximising
        path (pairs, carries), as `best_paths` gives it.

        The sums are taken in plain float64 (a group's few terms, then the max-plus programme), and
        their rounding is bounded once per row: an input's computed sum adds its P terms in some
        tree, so it lies within gamma_P sum_p |terms[p, token]| <= 2 P u A of their exact sum
        (Higham, Thm 4.4), with A = sum_p max over the tokens p can hold of |terms[p, token]|. The
        programme's maxima are exact and fl(x + w) does not decrease as x grows, so it returns the
        largest computed sum exactly; that plus 2 P u A, rounded up, bounds the largest exact one.
        One slack per row, where a rounding step per addition cost a third of a two-layer proof."""
        const, w, top = self.group_weights(terms)
        out = best_paths(w, top, cases, want_path)
        best = out[0] if want_path else out
        with np.errstate(invalid="ignore"):
            absmax = np.where(self.valid, np.abs(terms), 0.0).max(-1)  # [N, P]
            slack = up(2 * (self.n_pos + 1) * U64 * sum_up(absmax, -1))
            bound = np.where(np.isneginf(best), -np.inf, up(const + best + slack))
        return (bound, out[1]) if want_path else bound

    def group_weights(self, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """terms [N, P, V] -> (constant [N], weights [N, 10, 100, 2], top [N, 2]): the fixed
        positions' sum, each group's few terms summed, and the s_10 position's term, in plain
        float64 (`path_max` bounds the rounding). Rows are independent; they are gathered
        GATHER_ROWS at a time (the same numbers, without a temporary of hundreds of MB)."""
        n = terms.shape[0]
        if n > GATHER_ROWS:
            parts = [self.group_weights(terms[i:i + GATHER_ROWS]) for i in range(0, n, GATHER_ROWS)]
            return tuple(np.concatenate(part) for part in zip(*parts))
        flat = np.concatenate([terms.reshape(n, -1), np.zeros((n, 1))], 1)
        weights = flat[:, self._gather[:, 0]]
        for r in range(1, self._gather.shape[1]):  # a group's few terms (the padding adds 0)
            weights += flat[:, self._gather[:, r]]
        const = terms[:, self._fixed[0], self._fixed[1]].sum(1) if self._fixed is not None else np.zeros(n)
        top = np.zeros((n, 2))
        for p in self._top:
            top = top + terms[:, p][:, self.tokens[:2]]  # at most one such position
        return const, weights, top

    def tokens_of(self, pairs: np.ndarray, carries: np.ndarray) -> np.ndarray:
        """Token at every position for concrete paths: pairs [N, 10], carries [N, 11] -> [N, P]."""
        a, b = pairs // BASE, pairs % BASE
        s = np.concatenate([(a + b + carries[:, :GROUPS]) % BASE, carries[:, GROUPS:]], 1)
        out = np.empty((pairs.shape[0], self.n_pos), np.int64)
        for p, sl in enumerate(self.slots):
            if sl.kind == "fixed":
                out[:, p] = sl.token
            else:
                out[:, p] = self.tokens[{"a": a, "b": b, "s": s}[sl.kind][:, sl.group]]
        return out

    def digit_of(self, token: np.ndarray) -> np.ndarray:
        """The digit each token id stands for."""
        token = np.atleast_1d(token)
        if np.all(np.diff(self.tokens) > 0):
            return np.searchsorted(self.tokens, token)
        return np.array([list(self.tokens).index(t) for t in token])

    def with_tokens(self, cases: Cases, pos: np.ndarray, tok: np.ndarray) -> Cases:
        """Case n constrained to token tok[n, i] at position pos[n, i] for every i (pos -1 and
        fixed positions: no constraint). pos, tok [N, m]."""
        mask, final = cases.mask.copy(), cases.final.copy()
        for p in np.unique(pos):
            if p < 0 or self.slots[p].kind == "fixed":
                continue
            n, i = np.nonzero(pos == p)
            sl, digit = self.slots[p], self.digit_of(tok[n, i])
            if sl.group == GROUPS:
                final[n] &= np.arange(2)[None, :] == digit[:, None]
            else:
                mask[n, sl.group] &= ROLE_DIGIT[sl.kind][None] == digit[:, None, None]
        return Cases(mask, final)

    def allowed_tokens(self, cases: Cases) -> np.ndarray:
        """[N, P, V]: the tokens each position can hold in some input of the case (each
        position on its own: a superset of the case's token sequences)."""
        live, final = live_transitions(cases)
        out = np.zeros((len(cases), self.n_pos, self.vocab), bool)
        for p, sl in enumerate(self.slots):
            if sl.kind == "fixed":
                out[:, p, sl.token] = True
            elif sl.group == GROUPS:
                out[:, p, self.tokens[:2]] = final
            else:
                role = ROLE_DIGIT[sl.kind]
                for d in range(BASE):
                    out[:, p, self.tokens[d]] = (live[:, sl.group] & (role == d)[None]).any((1, 2))
        return out

    def fix_token(self, cases: Cases, p: int, token: np.ndarray) -> Cases:
        """Constrain the token at position p (a digit slot) to `token` [N]."""
        token = np.atleast_1d(token)
        return self.with_tokens(cases, np.full((len(cases), 1), p), np.broadcast_to(token, (len(cases),))[:, None])
