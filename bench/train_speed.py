"""Training speed: `adder.train` vs a plain hand-written PyTorch loop of the same model.

    python bench/train_speed.py [--recipe micro57|qwen3-d3] [--steps 1500] [--threads 1]
    python bench/train_speed.py --all [--steps 300]     # steps/s of every recipe, through train()
    python bench/train_speed.py --population [--sizes 1,8,32,64] [--steps 200] [--device cpu]

Both sides use the same batches (`adder.train.data.training_batch`), AdamW, LR schedule and
gradient clipping; the plain side is an ordinary nn.Module with its parameters written out
by hand (no expression trees; the Qwen3 one uses torch's rms_norm and fused attention). Prints steps/s of each and the overhead ratio
(plain steps/s / recipe steps/s). The recipe side is timed through `train()` itself with one
evaluation at the end, so the ratio includes what the trainer adds (CSV row, checkpoints).

`--population` times `train_population` (S seeds as one batched computation in one process,
`--threads` threads) against one single-thread `train()` run alone and against the same seeds
as separate single-thread processes, `--jobs` at a time (how `adder train --seeds 1-S --jobs N`
runs them): seed-steps/s of each, per thread of the population and per process. Every side
includes setup and one evaluation of 1,000 pairs, as the recipe side above does.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from adder.train import data
from adder.train.loop import lr_at, train
from adder.train.population import train_population
from adder.train.recipes import get_recipe
from adder.train.recipes.micro import SPIRAL_AMP, SPIRAL_SLOPE


class PlainMicro57(nn.Module):
    """micro57 written directly in PyTorch: d=5 = 2 token + 3 position dims, 57 parameters."""

    def __init__(self):
        super().__init__()
        self.A, self.start, self.stride = (nn.Parameter(torch.tensor(v)) for v in (2.5, -1.2, 0.29))
        self.eq, self.top = nn.Parameter(torch.randn(1, 3) * 0.02), nn.Parameter(torch.randn(1, 3) * 0.02)
        self.norm_w = nn.Parameter(torch.ones(5))
        self.qk = nn.Parameter(nn.init.xavier_uniform_(torch.empty(4, 3)))
        self.phase = nn.Parameter(torch.zeros(()))
        self.head = nn.Parameter(nn.init.xavier_uniform_(torch.empty(2, 5)))
        self.out_a = nn.Parameter(torch.rand(5, 1) * 2 - 1)
        self.out_b = nn.Parameter(torch.zeros(1, 5))
        self.fc1 = nn.Parameter(nn.init.xavier_uniform_(torch.empty(2, 5)))
        i = torch.arange(10, dtype=torch.float32)
        amp = float(SPIRAL_AMP)
        spiral = torch.stack([amp * torch.cos(2 * math.pi * i / 10), amp * torch.sin(2 * math.pi * i / 10),
                              float(SPIRAL_SLOPE) * i], 1)
        self.register_buffer("spiral", spiral.float())

    def norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.norm_w

    def forward(self, tokens):  # [B, T] -> logits [B, T, 10]
        T = tokens.shape[1]
        ang = self.start + torch.arange(10, dtype=torch.float32) * self.stride
        tok = torch.stack([self.A * torch.cos(ang), self.A * torch.sin(ang)], 1)  # [10, 2]
        z = torch.zeros(1, 3)
        pos = torch.cat([self.spiral, z, self.spiral, self.eq, self.spiral, self.top, z])[:T]  # [T, 3]
        h = torch.cat([tok[tokens], pos.expand(tokens.shape[0], T, 3)], -1)  # [B, T, 5]
        x = self.norm(h)
        k = x[..., 2:] @ self.qk.T  # [B, T, 4]
        c, s = torch.cos(self.phase), torch.sin(self.phase)
        q = torch.stack([k[..., 0::2] * c - k[..., 1::2] * s, k[..., 0::2] * s + k[..., 1::2] * c], -1).flatten(-2)
        scores = (q @ k.transpose(1, 2)) / 2
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        v = x[..., :2] @ self.head  # [B, T, 5]
        h = h + (scores.softmax(-1) @ v) @ self.out_a @ self.out_b
        h = h + F.gelu(self.norm(h) @ self.fc1.T) @ self.head
        return self.norm(h) @ self.head.T @ tok.T


class PlainQwen3D3(nn.Module):
    """qwen3-d3 written directly in PyTorch: Qwen3 d=3, one head of 4 on one KV head, 122 parameters."""

    def __init__(self, d: int = 3, hd: int = 4, ff: int = 3):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(10, d) / math.sqrt(d))
        self.q, self.k, self.v = (nn.Linear(d, hd, bias=False) for _ in range(3))
        self.o = nn.Linear(hd, d, bias=False)
        self.gate, self.up, self.down = nn.Linear(d, ff, bias=False), nn.Linear(d, ff, bias=False), nn.Linear(ff, d, bias=False)
        self.n1, self.n2, self.nf = (nn.Parameter(torch.ones(d)) for _ in range(3))
        self.qn, self.kn = nn.Parameter(torch.ones(hd)), nn.Parameter(torch.ones(hd))
        inv = 3.0 ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)  # theta 3
        ang = torch.arange(64, dtype=torch.float32)[:, None] * inv[None, :]
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())

    def rope(self, x):  # half rotation
        T, h = x.shape[1], x.shape[-1] // 2
        c, s = self.cos[:T], self.sin[:T]
        return torch.cat([x[..., :h] * c - x[..., h:] * s, x[..., h:] * c + x[..., :h] * s], -1)

    def forward(self, tokens):
        x = self.embed[tokens]
        h = F.rms_norm(x, (x.shape[-1],), self.n1, 1e-6)
        q = self.rope(F.rms_norm(self.q(h), (4,), self.qn, 1e-6))
        k = self.rope(F.rms_norm(self.k(h), (4,), self.kn, 1e-6))
        x = x + self.o(F.scaled_dot_product_attention(q, k, self.v(h), is_causal=True))
        h = F.rms_norm(x, (x.shape[-1],), self.n2, 1e-6)
        x = x + self.down(F.silu(self.gate(h)) * self.up(h))
        return F.rms_norm(x, (x.shape[-1],), self.nf, 1e-6) @ self.embed.T


#: Default steps per run: of the plain-loop comparison (and --all), and of each --population run.
COMPARISON_STEPS, POPULATION_STEPS = 1500, 200

PLAIN = {"micro57": (PlainMicro57, 57), "qwen3-d3": (PlainQwen3D3, 122)}


def plain_loop(steps: int, hyper, seed: int = 0, name: str = "micro57") -> float:
    torch.manual_seed(seed)
    model, fmt = PLAIN[name][0](), get_recipe(name).build().format
    opt = torch.optim.AdamW(model.parameters(), lr=hyper.lr, weight_decay=hyper.weight_decay)
    phases, gen = data.parse_curriculum(hyper.curriculum), torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, hyper)
        a, b = data.hyper_batch(hyper, step, hyper.batch, phases, gen)
        ans = fmt.answer(a, b)
        logits = model(torch.cat([fmt.encode(a, b), ans[:, :-1]], 1))[:, -fmt.out_digits:]
        loss = F.cross_entropy(logits.reshape(-1, 10), ans.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hyper.clip)
        opt.step()
    return steps / (time.perf_counter() - t0)


def recipe_loop(steps: int, hyper, seed: int = 0, name: str = "micro57") -> float:
    with tempfile.TemporaryDirectory() as d:
        h = replace(hyper, steps=steps, eval_every=steps, eval_pairs=1000)
        t0 = time.perf_counter()
        train(get_recipe(name), seed=seed, out=Path(d), hyper=h, force=True)
        return steps / (time.perf_counter() - t0)


def population_loop(size: int, steps: int, hyper, name: str = "micro57", device: str = "cpu") -> float:
    """Seed-steps/s of one population of `size` seeds (0..size-1) through `train_population`, setup included."""
    with tempfile.TemporaryDirectory() as d:
        h = replace(hyper, steps=steps, eval_every=steps, eval_pairs=1000)
        t0 = time.perf_counter()
        train_population(get_recipe(name), list(range(size)), Path(d), h, device=device, force=True)
        return size * steps / (time.perf_counter() - t0)


def _one_process(barrier, results, steps: int, hyper, seed: int, name: str) -> None:
    torch.set_num_threads(1)
    barrier.wait()  # every process starts its run together: their rates add up
    results.put(recipe_loop(steps, hyper, seed=seed, name=name))


def separate_processes(n: int, steps: int, hyper, name: str = "micro57") -> float:
    """Seed-steps/s of `n` single-thread `train()` processes running at once, one seed each."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_one_process, args=(barrier, results, steps, hyper, seed, name)) for seed in range(n)]
    for p in procs:
        p.start()
    rates = [results.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


def population_against_processes(sizes: list[int], steps: int, rounds: int, threads: int, jobs: int,
                                 name: str, device: str) -> None:
    """Seed-steps/s of populations of each size against one single-thread run alone and against
    the same seeds as single-thread processes, `jobs` at a time. The sides alternate, round by
    round, so that a change in the machine's load touches each; best round of each."""
    hyper = get_recipe(name).hyper
    print(f"{name}, batch {hyper.batch}, {steps} steps, best of {rounds} rounds; population: one process, "
          f"{threads} thread(s), {device}; processes: one thread each, up to {jobs} at a time")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    print(f"{'S':>4}{'population':>12}{'per thread':>12}{'one run':>10}{'processes':>11}{'at once':>9}"
          f"{'per process':>13}{'population per thread / one run':>33}")
    for size in sizes:
        running = min(size, jobs)
        pop, one, many = [], [], []
        for _ in range(rounds):
            pop.append(population_loop(size, steps, hyper, name, device))
            one.append(separate_processes(1, steps, hyper, name))
            many.append(separate_processes(running, steps, hyper, name) if running > 1 else one[-1])
        p, o, m = max(pop), max(one), max(many)
        print(f"{size:>4}{p:>12.1f}{p / threads:>12.1f}{o:>10.1f}{m:>11.1f}{running:>9}{m / running:>13.1f}"
              f"{p / threads / o:>32.2f}x", flush=True)
    print(f"machine: load average {os.getloadavg()[0]:.2f} at end. Figures are seed-steps/s (a run's steps/s for "
          "'one run'), setup and one evaluation included")


def every_recipe(steps: int) -> None:
    """Steps/s of each recipe at its own batch size (one evaluation included)."""
    from adder.train.recipes import RECIPES

    print(f"{'recipe':<16}{'params':>7}{'batch':>7}{'steps/s':>10}{'ms/step':>9}{'recipe steps':>14}{'est. run':>10}")
    for name, r in RECIPES.items():
        sps = recipe_loop(steps, r.hyper, name=name)
        print(f"{name:<16}{r.params:>7}{r.hyper.batch:>7}{sps:>10.1f}{1000 / sps:>9.2f}{r.hyper.steps:>14,}"
              f"{r.hyper.steps / sps / 60:>8.0f} min")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default 1500; 200 with --population)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2, help="alternate the two sides this many times; best of each")
    ap.add_argument("--all", action="store_true", help="steps/s of every recipe instead of the plain-loop comparison")
    ap.add_argument("--recipe", default="micro57", choices=sorted(PLAIN), help="recipe of the plain-loop comparison")
    ap.add_argument("--population", action="store_true",
                    help="seed-steps/s of populations (--sizes) against as many single-thread processes")
    ap.add_argument("--sizes", default="1,8,32,64", help="population sizes, comma-separated")
    ap.add_argument("--jobs", type=int, default=os.cpu_count(), help="single-thread processes at a time")
    ap.add_argument("--device", default="cpu", help="where the population trains (cpu, cuda)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.steps = args.steps or (POPULATION_STEPS if args.population else COMPARISON_STEPS)
    if args.all:
        return every_recipe(args.steps)
    if args.population:
        sizes = [int(s) for s in args.sizes.split(",")]
        return population_against_processes(sizes, args.steps, args.rounds, args.threads, args.jobs, args.recipe,
                                            args.device)
    name = args.recipe
    hyper = get_recipe(name).hyper
    cls, count = PLAIN[name]
    assert sum(p.numel() for p in cls().parameters()) == count
    plain, rec = [], []
    for _ in range(args.rounds):
        plain.append(plain_loop(args.steps, hyper, name=name))
        rec.append(recipe_loop(args.steps, hyper, name=name))
    p, r = max(plain), max(rec)
    print(f"{name}, batch {hyper.batch}, {args.threads} thread(s), {args.steps} steps x {args.rounds} rounds (best):")
    print(f"  plain hand-written PyTorch loop: {p:7.1f} steps/s  ({1000 / p:.2f} ms/step)")
    print(f"  adder.train (recipe, train()):   {r:7.1f} steps/s  ({1000 / r:.2f} ms/step)")
    print(f"  overhead ratio (plain / recipe): {p / r:.2f}x")


if __name__ == "__main__":
    main()
