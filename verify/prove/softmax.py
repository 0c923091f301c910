"""The attention rule: the exact range of softmax-weighted values over automaton paths.

For one query and one head, key position j holding token v contributes a weight
e_j = exp(score_j) and a value v_j; the head's output coordinate is R = sum e v / sum e
(softmax1: an extra constant 1 in the denominator). Over all paths of a case, R is a
linear-fractional programme over the automaton, solved by Dinkelbach's iteration:

    R <= lam   for every path   <=>   G(lam) = max_paths sum_j e_j (v_j - lam) <= 0

(every e_j > 0), and G is one max-plus programme (`StepLayout.path_max`). Intervals on e_j
and v_j (from rounding, or from earlier layers) stay sound: the maximising e_j is its upper
end where v_j > lam and its lower end elsewhere. The certificate of an upper bound is the
single number lam; `upper_bound_holds` re-checks it, every rounding bounded upwards.

Rounding of the float model: softmax computes e'_j = exp(fl(s_j - max s)), divides by the
rounded sum and multiplies by the value in a rounded matmul. The first two are relative
factors on each e_j (`weights`); the rest is `kappa * max|v|` on the output (`output_slack`).
"""

from __future__ import annotations

import numpy as np

from .automaton import Cases
from .floatmodel import Arithmetic
from .intervals import Interval, decimal_up, down, sum_up, up
from .layers import Ctx, Unsupported
from .layout import StepLayout

#: Largest finite exponent argument before exp overflows, per dtype (softmax1 has no max shift).
EXP_OVERFLOW = {"float32": 88.0, "float64": 709.0, "real": np.inf}
#: Dinkelbach stops when lam moves by less than this (relative); the bound then adds a slack.
CONVERGED = 1e-13
MAX_ITERATIONS = 40
#: Dinkelbach bounds every problem again while more than this share of them still moves (else
#: only the moving ones, copied out: the copy costs more than it saves while most move).
ALL_ROWS = 0.5
#: Significant digits of a certified bound when that many still certify it (a short number
#: in the certificate); else the bound keeps all 17.
SHORT_DIGITS = 9


def weights(scores: Interval, live: np.ndarray, softmax: str, ctx: Ctx) -> tuple[Interval, Interval]:
    """Enclosures of the softmax numerators of each key, up to one common positive factor.

    scores [..., P, V] (keys that cannot occur or are masked have live False). Returns
    (e [..., P, V], d0 [...]): e_j encloses the float exp of key j and d0 the extra
    denominator term (softmax1's 1), both scaled by exp(-m) for a common m, so that every
    ratio is unchanged and nothing overflows in float64.
    """
    ar = ctx.ar
    s_lo = np.where(live, scores.lo, np.inf)
    s_hi = np.where(live, scores.hi, -np.inf)
    m = s_hi.max(axis=(-2, -1), keepdims=True)
    if softmax == "softmax1" and np.any(m > EXP_OVERFLOW[ar.name]):
        raise Unsupported(f"softmax1 scores reach {float(m.max()):.4g}: exp may overflow in {ar.name}")
    shifted = Interval(np.where(live, down(s_lo - m), -np.inf), np.where(live, up(s_hi - m), -np.inf))
    if softmax == "softmax":  # the max-shifted inputs of softmax's exp
        m_lo = np.where(live, scores.lo, -np.inf).max(axis=(-2, -1))
        grid = shift_grid(m_lo, m[..., 0, 0], ar) if not ar.exact else np.zeros(m_lo.shape)
        ctx.note("exp", Interval(np.where(live, shifted.lo, 0.0), np.where(live, shifted.hi, 0.0)),
                 grid=float(grid.min()) if grid.size else 0.0)
    else:  # softmax1 calls torch.exp on the scores themselves
        ctx.note("exp1", Interval(np.where(live, scores.lo, s_hi.max()), np.where(live, scores.hi, s_hi.max())))
    e = ctx.exp(shifted)
    d0 = ctx.exp(Interval(-m[..., 0, 0], -m[..., 0, 0])) if softmax == "softmax1" else Interval.point(np.zeros(m.shape[:-2]))
    if not ar.exact:
        # fl(s_j - m_f) = (s_j - m_f)(1 + d), |d| <= u: a factor exp(+-u |s_j - m_f|) on e_j (softmax
        # only), per key: the float row maximum m_f lies in [s_j, m] (m = max s_hi), so |s_j - m_f| <=
        # m - s_lo_j, small for the keys that carry weight; exp itself: a factor 1 +- K ulps
        rel = ar.ulps(ar.exp_ulps)
        if softmax == "softmax":
            gap = np.where(live, up(m - scores.lo), 0.0)
            shift = ctx.exp(Interval.point(up(ar.u * gap)))
        else:
            shift = Interval.point(np.ones(e.shape))
        f_hi = up(shift.hi * up(1 + rel))
        f_lo = down(down(1 - rel) / shift.hi)
        e = Interval(down(e.lo * f_lo), up(e.hi * f_hi))
    return e, d0


def shift_grid(m_lo: np.ndarray, m_hi: np.ndarray, ar: Arithmetic) -> np.ndarray:
    """Per row, a power of two q > 0 of which every float fl(s_j - m) is a multiple, given
    that the row's float maximum score m lies in [m_lo, m_hi] (0: none, where that interval
    reaches 0).

    Let 2^E <= |m| and q = max(2^E u, eta). Every float with |x| >= 2^(E-1) is a multiple of
    q, so if |s_j| >= 2^(E-1), d = s_j - m is a multiple of q, and so is fl(d) (it is d itself
    when |d| < 2^E, else a float of ulp >= q). If |s_j| < 2^(E-1), |d| > 2^(E-1) and fl(d),
    by monotone rounding, is a float of magnitude >= 2^(E-1): a multiple of q again. So
    softmax's exp only meets 0 and non-zero multiples of q, and the exhaustive library check
    enumerates only those (below 2^(E-1), 2^23 of them instead of ~10^9 float32 values)."""
    mag = np.where((m_lo > 0) | (m_hi < 0), np.minimum(np.abs(m_lo), np.abs(m_hi)), 0.0)
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(mag > 0, mag, 1.0)))
    # log2 of a float64 may round up across a power of two: step E down once if 2^E > mag
    e = np.where(np.exp2(e) > mag, e - 1, e)
    return np.where(mag > 0, np.maximum(np.exp2(e) * ar.u, ar.eta), 0.0)


def output_slack(vmax: np.ndarray, n_keys: int, ar: Arithmetic, mixed: np.ndarray | None = None) -> np.ndarray:
    """Rounding of normalise-and-mix: |out - R| <= kappa * sum_j p_j |v_j| + underflow terms,
    where p_j = fl(e_j * fl(1 / fl(sum e))) (or e_j / fl(1 + sum e)) and out = fl(sum p_j v_j):
    each p_j is within a factor (1 + zeta) of its exact value and the sum adds gamma. `mixed`
    bounds sum_j p_j |v_j| where known tighter than max|v| (`joint.py`: one dominant key)."""
    if ar.exact:
        return np.zeros_like(vmax)
    g = ar.gamma(n_keys + 1)
    zeta = (1 + ar.u) ** 2 / (1 - g) - 1
    kappa = (1 + zeta) * (1 + g) - 1
    mixed = vmax if mixed is None else np.minimum(mixed, vmax)
    return up(up(kappa * 1.0000001) * mixed + 8 * (n_keys + 1) * (ar.exp_ulps + 1) * ar.eta * (vmax + 1))


def _terms(lam: np.ndarray, e: Interval, v_hi: np.ndarray) -> np.ndarray:
    """Upper bound of max_{e in box} e (v - lam) per key [N, P, V] (0 for dead keys)."""
    diff = up(v_hi - lam[:, None, None])
    return up(np.where(diff >= 0, e.hi, e.lo) * diff)


def g_upper(lam: np.ndarray, e: Interval, v_hi: np.ndarray, d0: Interval, layout: StepLayout, cases: Cases,
            want_path: bool = False, allowed: np.ndarray | None = None):
    """Rigorous upper bound of G(lam) = max over paths of sum_j e_j (v_j - lam) - lam d0.

    With `allowed` [N, P, V] the maximum is relaxed to every position choosing any allowed
    token on its own (a superset of the paths, so still an upper bound): no dynamic
    programme, used where the automaton's coupling is not needed (inner layers, whose
    dominant keys are fixed by enumeration). With `want_path` also returns the maximising
    tokens [N, P] and, exact mode only, the path (pairs, carries)."""
    terms = _terms(lam, e, v_hi)
    d0_term = np.where(-lam >= 0, up(d0.hi * -lam), up(d0.lo * -lam))
    if allowed is not None:
        t = np.where(allowed, terms, -np.inf)
        best = t.max(-1)  # [N, P]
        empty = ~np.isfinite(best).all(1)  # a position no input fills: the case is empty
        g = np.where(empty, -np.inf, up(d0_term + sum_up(np.where(empty[:, None], 0.0, best), 1)))
        return (g, t.argmax(-1), None) if want_path else g
    out = layout.path_max(terms, cases, want_path)
    best = out[0] if want_path else out
    g = up(d0_term + best)
    return (g, layout.tokens_of(*out[1]), out[1]) if want_path else g


def upper_bound_holds(lam: np.ndarray, e: Interval, v_hi: np.ndarray, d0: Interval, layout: StepLayout,
                      cases: Cases, allowed: np.ndarray | None = None) -> np.ndarray:
    """True where `lam` is a proven upper bound of the head output over the case's paths."""
    return g_upper(lam, e, v_hi, d0, layout, cases, allowed=allowed) <= 0


def dinkelbach(e: Interval, v_hi: np.ndarray, d0: Interval, layout: StepLayout, cases: Cases,
               allowed: np.ndarray | None = None):
    """Search: the maximum of sum e v / (d0 + sum e) over paths and e in its box.

    Returns (lam [N], paths): lam is a certified upper bound (checked with `upper_bound_holds`;
    NaN where certification failed) and paths the last maximising path of each problem
    (a concrete worst-case input: the prover's counterexample candidates; None when relaxed).
    """
    n = e.shape[0]
    vmax = np.abs(v_hi).max((1, 2))
    lam = np.zeros(n)
    done = np.zeros(n, bool)
    paths = None

    def rows(idx):  # the problems idx (all of them, uncopied, when idx is None)
        if idx is None:
            return e, v_hi, d0, cases, allowed
        return (e[idx], v_hi[idx], d0[idx], cases.take(idx), None if allowed is None else allowed[idx])

    for it in range(MAX_ITERATIONS):
        active = ~done
        if not active.any():
            break
        # the problems still moving are bounded again; while they are most, all are (no copies)
        idx = None if active.mean() > ALL_ROWS else np.flatnonzero(active)
        at = np.arange(n) if idx is None else idx
        e_, v_, d0_, cases_, allowed_ = rows(idx)
        g, tokens, path = g_upper(lam[at], e_, v_, d0_, layout, cases_, want_path=True, allowed=allowed_)
        upd = active[at]  # of the rows bounded, the ones that move on
        if path is not None:
            if paths is None:
                paths = path
            else:
                for dst, src in zip(paths, path):
                    dst[at[upd]] = src[upd]
        r = np.arange(len(at))[:, None]
        cols = np.arange(layout.n_pos)[None, :]
        vh = v_[r, cols, tokens]
        ech = np.where(vh >= lam[at][:, None], e_.hi[r, cols, tokens], e_.lo[r, cols, tokens])
        dch = np.where(lam[at] <= 0, d0_.hi, d0_.lo)
        num, den = (ech * vh).sum(1), ech.sum(1) + dch
        with np.errstate(invalid="ignore", divide="ignore"):
            new = num / den
        new = np.where(np.isfinite(new), new, lam[at])
        if it == 0:  # lam_0: the ratio of a first feasible path (any path is a lower bound)
            lam = new
            continue
        moved = new > lam[at] + CONVERGED * (np.abs(lam[at]) + vmax[at] + 1e-300)
        stop = ~moved | (g <= 0)
        done[at[upd]] = stop[upd]
        lam[at[upd]] = np.where(stop, lam[at], new)[upd]
    cert = lam.copy()
    ok = np.zeros(n, bool)
    for slack in (1e-12, 1e-10, 1e-8, 1e-6):
        exact = up(cert + slack * (np.abs(cert) + vmax + 1e-300))
        for trial in (decimal_up(exact, SHORT_DIGITS), exact):  # the short bound first: it is a little looser
            if ok.all():
                break
            idx = None if ok.mean() < 1 - ALL_ROWS else np.flatnonzero(~ok)
            at = np.arange(n) if idx is None else idx
            e_, v_, d0_, cases_, allowed_ = rows(idx)
            holds = upper_bound_holds(trial[at], e_, v_, d0_, layout, cases_, allowed_) & ~ok[at]
            cert[at] = np.where(holds, trial[at], cert[at])
            ok[at] |= holds
        if ok.all():
            break
    return np.where(ok, cert, np.nan), paths
