"""Exhaustive checks of the library-function assumptions, over the inputs that occur.

The error model assumes torch's float32 exp (inside softmax, and torch.exp for softmax1),
rsqrt, silu and gelu are accurate to `LIBRARY_ULPS` ulps (silu and gelu with an absolute
allowance besides, `floatmodel.py`). The proof records the input range each
function meets; this module evaluates the function on *every* float32 in that range, in
chunks, against float64 references (whose own error, ~2^-29 float32 ulps, is negligible)
and reports the worst error found. Softmax is checked as the proof uses it: on rows [x, 0],
its output must lie within the bound the error model predicts. Gelu is checked on both of
torch's code paths (a vectorised erf on contiguous runs, std::erf on the rest of a row and on
strided tensors), since a model's tensor meets both.

Results depend on the torch build and the CPU's vector unit (AVX2 and AVX-512 kernels
differ), so they are cached per (torch version, machine, CPU capability) in
`$XDG_CACHE_HOME/adder/libm.json`: a range checked once is not checked again. Float64
cannot be enumerated (2^64 inputs); for float64 models the check samples 2^22 points of
the range and the verdict says so, unless the certificate checker listed every input the
function can meet (`points`: softmax's exp where the scores are fixed floats), in any format:
then exactly those are evaluated, and the check is exhaustive.

Softmax's exp also meets -inf, from every masked key; the proof takes those keys' weights to be
exactly 0, so every "exp" check also evaluates softmax([-inf, 0]) and asks for [0, 1] exactly.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...compiler.module import ACTIVATIONS
from .floatmodel import ACT_ABS, GELU_X_ULPS, LIBRARY_ULPS
from .rigorous import gelu_longdouble

#: Inputs per batch. Small enough that each temporary (~0.5 MB) stays in the allocator's reused heap:
#: at 2^20 every temporary was a fresh mmap, and page faults took more system time than the
#: arithmetic took user time (GELU on 2^24 inputs: 0.85 s sys, 0.78 s user; at 2^16: 0.00 s sys).
CHUNK = 1 << 16
#: Bumped whenever an error measure changes, so that cached results are not reused.
MEASURES_VERSION = 2
SAMPLES_FLOAT64 = 1 << 22
#: Fewer for functions whose float64 reference is computed in arb, point by point (~8 us each).
SAMPLES_FLOAT64_ARB = 1 << 18


@dataclass
class LibmCheck:
    fn: str
    lo: float
    hi: float
    inputs: int
    worst_ulps: float
    exhaustive: bool
    grid: float = 0.0  # > 0: only the multiples of `grid` can occur, and only those were checked
    listed: bool = False  # the inputs were the proof's own list of every one that can occur

    @property
    def holds(self) -> bool:
        return self.worst_ulps <= LIBRARY_ULPS

    def describe(self) -> str:
        if self.fn == "softmax_zero":
            return (f"softmax_zero: every float32 shift in [{self.lo:.6g}, {self.hi:.6g}] ({self.inputs:,} inputs) gets "
                    f"softmax weight exactly 0 beside a row maximum of weight exactly 1: "
                    f"{'holds' if self.holds else 'VIOLATED'}")
        if self.listed:
            return (f"{self.fn}: each of the {self.inputs:,} inputs it can meet, listed by the certificate check "
                    f"(in [{self.lo:.6g}, {self.hi:.6g}]): worst {self.worst_ulps:.3f} ulp (assumed <= {LIBRARY_ULPS:g})")
        how = "every float32 of" if self.exhaustive else "a random sample of"
        which = f" that are multiples of {self.grid:.3g} (all a max-shifted float score can be)" if self.grid > 0 else ""
        beyond = f" beyond {GELU_X_ULPS:g} u|x|" if self.fn == "gelu" else ""
        return (f"{self.fn}: {how} {self.inputs:,} inputs in [{self.lo:.6g}, {self.hi:.6g}]{which}: worst "
                f"{self.worst_ulps:.3f} ulp{beyond} (assumed <= {LIBRARY_ULPS:g})")

    def to_json(self) -> dict:
        return {"fn": self.fn, "lo": self.lo, "hi": self.hi, "grid": self.grid, "inputs": self.inputs,
                "worst_ulps": self.worst_ulps, "exhaustive": self.exhaustive, "listed": self.listed, "holds": self.holds}


def _cache_path() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "adder" / "libm.json"


def _machine_key() -> str:
    cap = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
    return f"torch {torch.__version__} / {platform.machine()} / {cap} / measures v{MEASURES_VERSION}"


def float32_range(lo: float, hi: float):
    """Every float32 x with lo <= x <= hi, ascending, in chunks (numpy float32 arrays)."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    lo32 = lo32 if lo32 >= lo else np.nextafter(lo32, np.float32(np.inf))
    hi32 = hi32 if hi32 <= hi else np.nextafter(hi32, np.float32(-np.inf))
    if lo32 > hi32:
        return
    bits = lambda x: int(np.array(abs(x), np.float32).view(np.uint32))  # noqa: E731
    if lo32 < 0:  # negative part, from -|lo| up to min(hi, -0): magnitudes from |lo| down
        top, bottom = bits(lo32), (bits(hi32) if hi32 < 0 else 0)
        for start in range(top, bottom - 1, -CHUNK):
            stop = max(bottom, start - CHUNK + 1)
            yield -np.arange(start, stop - 1, -1, dtype=np.uint32).view(np.float32)
    if hi32 >= 0:
        first = bits(lo32) if lo32 >= 0 else 1
        for start in range(first, bits(hi32) + 1, CHUNK):
            yield np.arange(start, min(bits(hi32) + 1, start + CHUNK), dtype=np.uint32).view(np.float32)


_U = {torch.float32: 2.0**-24, torch.float64: 2.0**-53}
_ETA = {torch.float32: 2.0**-149, torch.float64: 2.0**-1074}


def _ulp(ref: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
    """Spacing of the format `dt` at |ref| (ref in the reference precision)."""
    r = ref.abs().to(dt)
    return (torch.nextafter(r, torch.tensor(float("inf"), dtype=dt)) - r).to(ref.dtype)


def _run(x: np.ndarray, model_fn, ref_fn, measure) -> float:
    """Worst value of `measure(got, ref, dtype, x=x)` over x, with got = model_fn(x) in x's dtype
    (got may hold several results per input, stacked in front: [R, N])."""
    t = torch.from_numpy(x)
    with torch.no_grad():
        got = model_fn(t)
    if t.dtype == torch.float32:
        return float(measure(got.double(), ref_fn(t.double(), torch), torch.float32, x=t.double()).max())
    ref = ref_fn(x.astype(np.longdouble), np)
    return float(measure_np(got.numpy().astype(np.longdouble), ref, measure, x).max())


def measure_np(got, ref, measure, x=None):
    return measure(torch.from_numpy(got.astype(np.float64)), torch.from_numpy(ref.astype(np.float64)), torch.float64,
                   exact_diff=torch.from_numpy((got - ref).astype(np.float64)),
                   x=None if x is None else torch.from_numpy(np.asarray(x, np.float64)))


def _ulps(got, ref, dt, exact_diff=None, x=None):
    diff = (got - ref) if exact_diff is None else exact_diff
    return diff.abs() / torch.clamp(_ulp(ref, dt), min=_ETA[dt])


def _softmax_excess(got, ref, dt, exact_diff=None, x=None):
    """p0 of softmax([x, 0]) must lie within ref (1 +- (4K u + 4u)): the K this needs."""
    u = _U[dt]
    diff = (got - ref) if exact_diff is None else exact_diff
    allowed = ref * (4 * u)
    excess = diff.abs_().sub_(allowed).sub_(2 * _ETA[dt]).clamp_(min=0)
    if not bool(excess.any()):  # the usual case: one pass fewer
        return excess
    return excess / allowed.add_(_ETA[dt])


def _silu_k(got, ref, dt, exact_diff=None, x=None):
    """|err| <= K (2u |y| + eta) + ACT_ABS: the K this needs."""
    diff = (got - ref) if exact_diff is None else exact_diff
    floor = ACT_ABS["float32" if dt == torch.float32 else "float64"]
    return torch.clamp(diff.abs() - floor, min=0) / (2 * _U[dt] * ref.abs() + _ETA[dt])


def _gelu_k(got, ref, dt, exact_diff=None, x=None):
    """|err| <= K (2u |y| + eta) + GELU_X_ULPS u |x|: the K this needs."""
    diff = (got - ref) if exact_diff is None else exact_diff
    allowed = GELU_X_ULPS * _U[dt] * x.abs()
    return torch.clamp(diff.abs() - allowed, min=0) / (2 * _U[dt] * ref.abs() + _ETA[dt])


def _softmax_model(t):
    rows = torch.zeros(len(t), 2, dtype=t.dtype)
    torch.clamp(t, max=0, out=rows[:, 0])
    return F.softmax(rows, dim=-1)[:, 0]


def _softmax_ref(r, lib):
    e = lib.exp(lib.minimum(r, r * 0) if lib is np else torch.clamp(r, max=0))
    return e / (1 + e)


def _silu_ref(r, lib):
    with np.errstate(over="ignore"):  # exp(-r) overflows for r below about -709: r / inf is silu's limit, -0
        return r / (1 + lib.exp(-r))


def _gelu_model(t):
    """torch's gelu on both of its code paths: [vectorised (contiguous), scalar (strided)]."""
    strided = torch.stack([t, t], 1)[:, 0]
    return torch.stack([ACTIVATIONS["gelu"](t), ACTIVATIONS["gelu"](strided)])


def _gelu_ref(r, lib):
    """x/2 erfc(-x/sqrt 2): float64 torch for float32 inputs; for float64 inputs (longdouble r)
    arb balls (`rigorous.gelu_longdouble`)."""
    if lib is torch:
        return r / 2 * torch.special.erfc(-r * 0.7071067811865476)
    return gelu_longdouble(r.astype(np.float64))


#: The exact-zero check's two row layouts (`_zero_model`): [0, -inf, 30 shifts] and [0, 15 x -inf,
#: 15 shifts]: each shift once in whole vectors (32 = 2 x 16 = 4 x 8 lanes) and once in a row's
#: tail (lanes 16-30 of an AVX-512 row: the partial vector, as the rows [x, 0] of "exp" meet it).
ZERO_ROWS = ((2, 30), (16, 15))


def _zero_model(t):
    """torch's softmax over rows of shifts x (at least ZERO_GAP below the row's best, 0) in both
    layouts of ZERO_ROWS: per x, its weights plus |1 - the weight of its rows' 0|, which the table
    rule needs to be exactly 0."""
    n = len(t)
    bad = torch.zeros_like(t)
    for lead, width in ZERO_ROWS:
        x = torch.cat([t, t.new_full(((-n) % width,), -torch.inf)]).view(-1, width)
        head = torch.full((len(x), lead), -torch.inf, dtype=t.dtype)
        head[:, 0] = 0
        p = F.softmax(torch.cat([head, x], 1), dim=-1)
        bad += p[:, lead:].reshape(-1)[:n] + (1 - p[:, :1]).abs().expand(-1, width).reshape(-1)[:n]
    return bad


def _exactly_zero(got, ref, dt, exact_diff=None, x=None):
    """0 where the check's result is exactly 0, else infinitely many ulps."""
    return torch.where(got == 0, 0.0, torch.inf)


def _check(model_fn, ref_fn, measure):
    return lambda x: _run(x, model_fn, ref_fn, measure)


#: "exp": softmax's exp (max-shifted inputs); "exp1": torch.exp (softmax1's unshifted scores)
CHECKS = {"exp": _check(_softmax_model, _softmax_ref, _softmax_excess),
          "exp1": _check(torch.exp, lambda r, lib: lib.exp(r), _ulps),
          "rsqrt": _check(torch.rsqrt, lambda r, lib: 1 / lib.sqrt(r), _ulps),
          "silu": _check(ACTIVATIONS["silu"], _silu_ref, _silu_k),
          "silu_mlx": _check(ACTIVATIONS["silu_mlx"], _silu_ref, _silu_k),
          "gelu": _check(_gelu_model, _gelu_ref, _gelu_k),
          "softmax_zero": _check(_zero_model, lambda r, lib: r * 0, _exactly_zero)}
#: Functions whose float64 reference is computed in arb: fewer float64 samples.
ARB_REFERENCE = {"gelu"}


def masked_weight_is_zero(dtype: str) -> bool:
    """Whether softmax gives a masked key (score -inf) weight exactly 0 beside a finite score."""
    p = F.softmax(torch.tensor([[-torch.inf, 0.0]], dtype=getattr(torch, dtype)), dim=-1)
    return bool(p[0, 0] == 0 and p[0, 1] == 1)


def check_range(fn: str, lo: float, hi: float, dtype: str = "float32", use_cache: bool = True,
                grid: float = 0.0, points: np.ndarray | None = None) -> LibmCheck:
    """Worst error of `fn` over [lo, hi] (float32: every input; float64: a sample); with
    `grid` > 0 (a power of two), only its multiples, the only inputs the proof showed occur;
    with `points`, exactly those inputs (every one the proof showed can occur)."""
    got = _check_inputs(fn, lo, hi, dtype, use_cache, grid, points)
    if fn == "exp" and not masked_weight_is_zero(dtype):
        got.worst_ulps = float("inf")
    return got


def _check_inputs(fn: str, lo: float, hi: float, dtype: str, use_cache: bool, grid: float,
                  points: np.ndarray | None) -> LibmCheck:
    if points is not None:
        x = np.asarray(points, np.float32 if dtype == "float32" else np.float64)
        x = x[np.isfinite(x)]
        worst = float(np.max([CHECKS[fn](x[i:i + CHUNK]) for i in range(0, len(x), CHUNK)], initial=0.0))
        return LibmCheck(fn, lo, hi, len(x), worst, True, listed=True)
    if grid > 0:
        u = 2.0**-24 if dtype == "float32" else 2.0**-53
        edge = grid / u / 2  # 2^(E-1): from here on every float is a multiple of the grid
        got = [check_range(fn, a, b, dtype, use_cache) for a, b in ((lo, min(hi, -edge)), (max(lo, edge), hi))
               if a <= b]
        if dtype == "float32":  # below the edge: k * grid, k < 2^23, each exact in float32
            err = CHECKS[fn]
            for s in range(0, 1 << 23, CHUNK):
                k = np.arange(s, min(s + CHUNK, 1 << 23), dtype=np.float64) * grid
                x = np.concatenate([-k[::-1], k])
                x = x[(x >= lo) & (x <= hi)].astype(np.float32)
                if len(x):
                    got.append(LibmCheck(fn, lo, hi, len(x), err(x), True))
        else:
            got.append(check_range(fn, max(lo, -edge), min(hi, edge), dtype, use_cache))
        return LibmCheck(fn, lo, hi, sum(g.inputs for g in got), max((g.worst_ulps for g in got), default=0.0),
                         all(g.exhaustive for g in got), grid)
    key = f"{_machine_key()} / {fn}"
    path = _cache_path()
    cache = {}
    if use_cache:
        try:
            cache = json.loads(path.read_text())
        except (OSError, ValueError):
            cache = {}
    err = CHECKS[fn]
    if dtype == "float32":
        # check only what no cached range covers; the result is the worst over all parts
        todo, worst, n = [(lo, hi)], 0.0, 0
        for entry in cache.get(key, []):
            rest = []
            for a, b in todo:
                if b < entry["lo"] or a > entry["hi"]:
                    rest.append((a, b))
                    continue
                worst, n = max(worst, entry["worst_ulps"]), n + entry["inputs"]
                if a < entry["lo"]:
                    rest.append((a, float(np.nextafter(np.float32(entry["lo"]), np.float32(-np.inf)))))
                if b > entry["hi"]:
                    rest.append((float(np.nextafter(np.float32(entry["hi"]), np.float32(np.inf))), b))
            todo = rest
        for a, b in todo:
            part_worst, part_n = 0.0, 0
            for chunk in float32_range(a, b):
                if len(chunk):
                    part_worst = max(part_worst, err(chunk))
                    part_n += len(chunk)
            worst, n = max(worst, part_worst), n + part_n
            cache.setdefault(key, []).append({"lo": a, "hi": b, "inputs": part_n, "worst_ulps": part_worst})
        if use_cache and todo:
            _save(path, cache)
        return LibmCheck(fn, lo, hi, n, worst, True)
    # float64: 2^64 inputs cannot be enumerated; sample the range (endpoints included). The sample
    # is fixed by its seed, size and range, so its result is cached under all three.
    n = SAMPLES_FLOAT64_ARB if fn in ARB_REFERENCE else SAMPLES_FLOAT64
    sample = f"{key} / float64 / {n} samples of [{lo!r}, {hi!r}], seed 0"
    if sample not in cache:
        rng = np.random.default_rng(0)
        x = np.concatenate([[lo, hi], rng.uniform(lo, hi, n)]).astype(np.float64)
        cache[sample] = {"inputs": len(x), "worst_ulps": err(x)}
        if use_cache:
            _save(path, cache)
    return LibmCheck(fn, lo, hi, cache[sample]["inputs"], cache[sample]["worst_ulps"], False)


def _save(path: Path, cache: dict) -> None:
    """Write the cache (a cache that cannot be written is only a slower next run)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache))
    except OSError:
        pass
