"""Verifier throughput and memory, printed as measured figures (nothing asserted).

    python bench/throughput.py                       # random suite on param40, float32
    python bench/throughput.py --cases 10000000      # a 10^7-case run: time and peak memory
    python bench/throughput.py --official /path/to/AdderBoard/verify.py   # vs the official loop

The official comparison exports param40 with `adder export`, runs AdderBoard's own
verify.py on it (one `add()` call per case), and runs `adder verify --suite adderboard` on
the same checkpoint, in one process run, and prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from adder.cli.heap import keep_freed_memory
from adder.compiler import checkpoint, compile_spec
from adder.constructions import build_spec
from adder.verify.cases import SuiteOptions
from adder.verify.runner import run_suite


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_suite(name: str, cases: int, chunk: int) -> None:
    m = compile_spec(build_spec(name))
    run_suite(m, "random", options=SuiteOptions(n=2000), chunk=chunk)  # warm-up
    before = peak_rss_mb()
    t = time.perf_counter()
    r = run_suite(m, "random", options=SuiteOptions(n=cases // 2), chunk=chunk)
    dt = time.perf_counter() - t
    print(f"{name} random suite: {r.cases:,} cases in {dt:.1f}s = {r.cases / dt:,.0f} verified additions/s "
          f"(chunk {chunk}, {torch.get_num_threads()} threads, {str(m.dtype)}); failed {r.failed}; "
          f"peak RSS {peak_rss_mb():.0f} MB (before the run {before:.0f} MB)")


def versus_official(verify_py: Path) -> None:
    with tempfile.TemporaryDirectory() as d:
        ck = checkpoint.save(compile_spec(build_spec("param40")), Path(d) / "param40.pt")
        sub = Path(d) / "sub.py"
        subprocess.run([sys.executable, "-m", "adder.cli", "export", str(ck), "-o", str(sub)], check=True,
                       capture_output=True)
        t = time.perf_counter()
        off = subprocess.run([sys.executable, str(verify_py), str(sub)], capture_output=True, text=True, cwd=d)
        t_off = time.perf_counter() - t
        line = next((ln for ln in off.stdout.splitlines() if ln.startswith("Results")), off.stdout[-200:])
        t = time.perf_counter()
        r = run_suite(checkpoint.load(ck), "adderboard")
        t_ours = time.perf_counter() - t
    print(f"official verify.py: {line.strip()} in {t_off:.1f}s (including startup)")
    print(f"adder verify --suite adderboard: {r.passed}/{r.cases} in {t_ours:.2f}s")
    print(f"ratio: {t_off / t_ours:,.0f}x")


def profile(name: str, batch: int = 16384, reps: int = 3) -> None:
    """What one teacher-forced pass spends its CPU time on (profiler table), and how much of it is
    the softmax over scores whose exponentials underflow into subnormals (flush_denormal shows it;
    the verifier never flushes: it checks the model as it really runs)."""
    from torch.profiler import profile as torch_profile

    from adder.compiler.decode import teacher_forced

    m = compile_spec(build_spec(name))
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randint(0, 10**10, (batch,), generator=gen) for _ in range(2))
    teacher_forced(m, a, b)
    for flush in (False, True):
        torch.set_flush_denormal(flush)
        t = time.process_time()
        for _ in range(reps):
            teacher_forced(m, a, b)
        dt = (time.process_time() - t) / reps
        print(f"teacher_forced, flush_denormal={flush}: {batch / dt:,.0f} additions per CPU-second")
    torch.set_flush_denormal(False)
    with torch_profile() as prof:
        teacher_forced(m, a, b)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def main() -> None:
    torch.set_num_threads(1)  # two spin-waiting threads on a busy 2-core machine run ~10x slower
    keep_freed_memory()  # as the `adder` command does (cli/heap.py)
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="param40")
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--official", type=Path, help="path to AdderBoard's verify.py")
    ap.add_argument("--profile", action="store_true", help="where a forward pass spends its time")
    args = ap.parse_args()
    if args.profile:
        profile(args.model)
    random_suite(args.model, args.cases, args.chunk)
    if args.official:
        versus_official(args.official)


if __name__ == "__main__":
    main()
