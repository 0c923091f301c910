"""The `adder` command line: parse, call the library, render with rich. No logic of its own.

Errors a user can cause (`AdderError`) print as one red line and exit with status 2;
`--debug` (or ADDER_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .compiler.errors import AdderError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Compile, train and verify tiny transformers that add two 10-digit integers.")
console = Console()
err_console = Console(stderr=True)


def load_target(target: str, dtype: Optional[str] = None, device: str = "cpu"):
    """A model from a checkpoint path or a construction name."""
    from .compiler import checkpoint
    from .compiler.module import compile_spec

    if target.endswith(".pt") or os.sep in target or Path(target).exists():
        return checkpoint.load(target, dtype=dtype, device=_device(device))
    from .constructions import build_spec

    return compile_spec(build_spec(target), dtype=dtype, device=_device(device))


def _device(device: str) -> str:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise AdderError(f"--device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise AdderError("--device cuda was asked for but no CUDA GPU is available here; use --device cpu")
    return device


@app.command("list")
def list_cmd(markdown: bool = typer.Option(False, "--markdown", help="Print the Markdown table of docs/constructions.md "
                                                                     "(also runs the official cases on each)."),
             prove_timeout: float = typer.Option(0.0, help="With --markdown: add a proof column, proving each "
                                                           "construction with this search budget (s) [0: no column].")):
    """List the registered constructions with their parameter counts."""
    from .compiler.ledger import ledger
    from .compiler.module import compile_spec
    from .constructions import REGISTRY, build_spec

    if markdown:
        from .verify.runner import run_suite

        cols = ["name", "author", "source", "layers / d_model / heads", "positions", "dtype", "AdderBoard params",
                "strict params", "official 10,010", "smallest margin (official)"] + (["proof"] if prove_timeout > 0 else [])
        console.print("| " + " | ".join(cols) + " |", markup=False, highlight=False, soft_wrap=True)
        console.print("|" + "---|" * len(cols), markup=False, highlight=False)
        for name in sorted(REGISTRY):
            e, spec = REGISTRY[name], build_spec(name)
            model = compile_spec(spec)
            led, r = ledger(model), run_suite(model, "adderboard")
            m = spec.meta
            row = [name, e.author, f"[link]({e.source})", f"{m.get('layers', '?')} / {spec.d_model} / {m.get('heads', '?')}",
                   str(m.get("positions", "?")), spec.dtype, f"{led.adderboard} (claimed {e.claimed_params})",
                   str(led.strict), f"{r.passed:,}/{r.cases:,}", f"{min(r.worst_margin):.3g}"]
            if prove_timeout > 0:
                from .verify.prove import prove as run_prove

                row.append(run_prove(model, name, timeout=prove_timeout, sampled=False).verdict)
            console.print("| " + " | ".join(row) + " |", markup=False, highlight=False, soft_wrap=True)
        return
    t = Table(title="constructions (adder info NAME for the ledger)")
    for col in ("name", "author", "claimed", "AdderBoard", "strict", "dtype"):
        t.add_column(col, no_wrap=True)
    for name in sorted(REGISTRY):
        e, spec = REGISTRY[name], build_spec(name)
        led = ledger(compile_spec(spec))
        t.add_row(name, e.author, str(e.claimed_params), str(led.adderboard), str(led.strict), spec.dtype)
    console.print(t)


@app.command()
def build(name: str = typer.Argument(..., help="Construction name (see `adder list`)."),
          output: Optional[Path] = typer.Option(None, "-o", "--output", help="Checkpoint path [NAME.pt]."),
          dtype: Optional[str] = typer.Option(None, help="float32 or float64 [the construction's own]."),
          force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")):
    """Compile a construction and write its checkpoint."""
    from .compiler import checkpoint
    from .compiler.ledger import ledger
    from .compiler.module import compile_spec
    from .constructions import build_spec

    model = compile_spec(build_spec(name), dtype=dtype)
    path = checkpoint.save(model, output or Path(f"{name}.pt"), force=force)
    led = ledger(model)
    console.print(f"wrote [bold]{path}[/] ({name}, {str(model.dtype).replace('torch.', '')}, "
                  f"{led.adderboard} AdderBoard / {led.strict} strict params, "
                  f"sha256 {checkpoint.weights_hash(model)[:12]})")


@app.command()
def info(target: str = typer.Argument(..., help="Checkpoint path or construction name."),
         json_out: bool = typer.Option(False, "--json", help="Print the ledger as JSON.")):
    """Show a model's architecture summary and parameter ledger."""
    import json

    from .compiler import checkpoint
    from .compiler.ledger import ledger

    model = load_target(target)
    led = ledger(model)
    spec = model.spec
    if json_out:
        console.print_json(json.dumps({"name": spec.name, "meta": spec.meta, "dtype": str(model.dtype),
                                       "weights_sha256": checkpoint.weights_hash(model), "ledger": led.to_json()}))
        return
    fmt = spec.format
    console.print(f"[bold]{spec.name}[/]  {spec.meta.get('description', '')}")
    console.print(f"author {spec.meta.get('author', '?')} · source {spec.meta.get('source', '?')}")
    console.print(f"d_model {spec.d_model} (slots: {', '.join(f'{n}[{w}]' if w > 1 else n for n, w in spec.slots)}) · "
                  f"{len(spec.blocks)} blocks ({', '.join(b.name for b in spec.blocks)}) · vocab {len(spec.vocab)} · "
                  f"dtype {str(model.dtype).replace('torch.', '')}")
    console.print(f"prompt {fmt.prompt_len} tokens, answer {fmt.out_digits} digits {fmt.out_order}-first")
    t = Table(title="parameter ledger")
    for col in ("tensor", "shape", "scalars", "kind", "used in", "note"):
        t.add_column(col, overflow="fold")
    for r in led.rows:
        t.add_row(r.name, "x".join(map(str, r.shape)) or "scalar", str(r.scalars),
                  "learned" if r.trainable else "frozen (counted)", ", ".join(r.used_in), r.note)
    console.print(t)
    claimed = spec.meta.get("claimed_params")
    console.print(f"AdderBoard count (unique learned scalars): [bold]{led.adderboard}[/]"
                  + (f"  (claimed {claimed})" if claimed is not None else ""))
    console.print(f"strict count (+ {len(led.hard_coded)} distinct hard-coded values other than 0, ±1): "
                  f"[bold]{led.strict}[/]")
    console.print(f"distinct learned values: {led.distinct_learned}")
    if led.hard_coded:
        console.print("hard-coded values: " + ", ".join(f"{v:.6g}" for v in led.hard_coded))
    console.print(f"weights sha256 {checkpoint.weights_hash(model)}")


@app.command("add", context_settings={"ignore_unknown_options": True})
def add_cmd(target: str = typer.Argument(..., help="Checkpoint path or construction name."),
            a: str = typer.Argument(..., help="First addend, 0..9999999999."),
            b: str = typer.Argument(..., help="Second addend, 0..9999999999."),
            trace: bool = typer.Option(False, "--trace", help="Show each generated digit with its top-2 logits."),
            dtype: Optional[str] = typer.Option(None, help="float32 or float64.")):
    """Add two numbers with a model (generic greedy decoding)."""
    import torch

    from .compiler.decode import generate
    from .compiler.formats import as_addends, check_addend

    ia, ib = check_addend(a, "A"), check_addend(b, "B")
    model = load_target(target, dtype=dtype)
    fmt = model.spec.format
    prompt = fmt.encode(as_addends(ia), as_addends(ib))
    out = generate(model, prompt, fmt.out_digits)
    got = fmt.decode(out)[0]
    if trace:
        seq = torch.cat([prompt, out], dim=1)
        with torch.no_grad():
            logits = model(seq[:, :-1], keep_last=fmt.out_digits)[0]
        t = Table(title=f"{ia} + {ib}")
        for col in ("step", "token", "logit", "runner-up", "logit ", "gap"):
            t.add_column(col)
        for i in range(fmt.out_digits):
            top = torch.topk(logits[i], 2)
            t.add_row(str(i), model.spec.vocab[int(top.indices[0])], f"{float(top.values[0]):.6g}",
                      model.spec.vocab[int(top.indices[1])], f"{float(top.values[1]):.6g}",
                      f"{float(top.values[0] - top.values[1]):.3g}")
        console.print(t)
    ok = got == ia + ib
    console.print(f"{ia} + {ib} = [bold]{got}[/]" + ("" if ok else f"  [red](wrong: the sum is {ia + ib})[/]"))
    raise typer.Exit(0 if ok else 1)


@app.command()
def export(target: str = typer.Argument(..., help="Checkpoint path."),
           output: Path = typer.Option(..., "-o", "--output", help="Submission file to write."),
           force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")):
    """Write an AdderBoard submission file (build_model/add) that loads the checkpoint through adder."""
    from .compiler.submission import write_submission

    load_target(target)  # fail early on a bad checkpoint
    write_submission(Path(target), output, force=force)
    console.print(f"wrote [bold]{output}[/]; check it with AdderBoard's `python verify.py {output}`")


@app.command()
def verify(target: str = typer.Argument(..., help="Checkpoint, construction name, or AdderBoard submission .py file."),
           suite: list[str] = typer.Option([], "--suite", "-s", help="adderboard, carry, chains, window, random (repeatable)."),
           adversarial: bool = typer.Option(False, "--adversarial", help="carry + chains + window + Hypothesis search."),
           seed: int = typer.Option(0, help="Seed of every generated case (recorded in the report)."),
           k: Optional[int] = typer.Option(None, help="Random instances per carry pattern and chain "
                                                      "[1; 16 with --adversarial, over 10^6 cases in all]."),
           window: int = typer.Option(2, help="Window width w (window suite: (11-w) x 10^2w cases)."),
           n: int = typer.Option(100_000, help="Pairs per half of the random suite."),
           examples: int = typer.Option(2000, help="Hypothesis examples (with --adversarial or --search)."),
           search_: bool = typer.Option(False, "--search", help="Run the Hypothesis search."),
           precision: Optional[str] = typer.Option(None, help="Re-check in e.g. float32,float64,exact."),
           dtype: Optional[str] = typer.Option(None, help="Arithmetic to run the suites in [the model's own]."),
           device: str = typer.Option("cpu", help="cpu or cuda."),
           chunk: int = typer.Option(4096, help="Additions per forward pass (bounds memory)."),
           threads: int = typer.Option(1, help="CPU threads for torch (1 is fastest on a busy 2-core machine)."),
           timeout: float = typer.Option(10.0, help="Per-call timeout for submission files (seconds)."),
           json_path: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON here."),
           prove_: bool = typer.Option(False, "--prove", help="Also run `adder prove` and add the proof to the report."),
           prove_timeout: float = typer.Option(600.0, help="Search budget of --prove (seconds)."),
           force: bool = typer.Option(False, "--force", help="Overwrite an existing --json file.")):
    """Check a model: official cases, carry patterns and chains, windows, Hypothesis search, precision."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .verify.api import suite_count, verify_model, verify_submission
    from .verify.cases import ADVERSARIAL, ADVERSARIAL_K, SUITES
    from .verify.precision import parse_arithmetics
    from .verify.report import render

    k = k if k is not None else (ADVERSARIAL_K if adversarial else 1)
    if threads < 1:
        raise AdderError(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
    names = list(dict.fromkeys(suite + (list(ADVERSARIAL) if adversarial else []))) or ["adderboard"]
    for nm in names:
        if nm not in SUITES:
            raise AdderError(f"unknown suite {nm!r}; choose from {', '.join(SUITES)}")
    if k < 1 or n < 1 or not 1 <= window <= 3 or chunk < 1 or examples < 1:
        raise AdderError("--k, --n, --chunk and --examples must be positive and --window in 1..3")
    if json_path is not None:
        _writable(json_path, force)
    if prove_ and target.endswith(".py"):
        raise AdderError("--prove needs a construction or checkpoint; a submission file is a black box")
    if prove_ and prove_timeout <= 0:
        raise AdderError(f"--prove-timeout must be positive seconds, got {prove_timeout}")
    arith = parse_arithmetics(precision) if precision else None
    options = {"k": k, "window": window, "n": n}
    total = suite_count(names, options)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task(f"verifying ({', '.join(names)})", total=total)
        step = lambda m: bar.advance(task, m)  # noqa: E731
        if target.endswith(".py"):
            report = verify_submission(Path(target), suites=names, seed=seed, options=options, timeout=timeout, progress=step)
        else:
            model = load_target(target, dtype=dtype, device=device)
            report = verify_model(model, target, suites=names, seed=seed, options=options, chunk=chunk,
                                  search_examples=examples if (adversarial or search_) else None,
                                  precision=arith, progress=step)
    if prove_:
        from .verify.prove import prove as run_prove

        report.proof = run_prove(model.cpu(), target, timeout=prove_timeout).to_json()
    console.print(render(report))
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=1))
        console.print(f"wrote {json_path}")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def prove(target: Optional[str] = typer.Argument(None, help="Construction name or checkpoint (with --check: the checkpoint)."),
          certificate: Optional[Path] = typer.Option(None, "--certificate", help="Write the proof certificate (JSON) here."),
          check: Optional[Path] = typer.Option(None, "--check", help="Re-check this certificate against TARGET, no search."),
          timeout: float = typer.Option(600.0, help="Search budget in seconds; what is left open is reported undecided."),
          dtype: Optional[str] = typer.Option(None, help="Prove the model compiled in float32 or float64 [its own]."),
          libm_check: bool = typer.Option(True, "--libm-check/--no-libm-check",
                                          help="Check the library-function assumptions exhaustively (cached per machine)."),
          json_path: Optional[Path] = typer.Option(None, "--json", help="Write the proof report as JSON here."),
          force: bool = typer.Option(False, "--force", help="Overwrite existing --certificate / --json files.")):
    """Prove (or refute) that a model adds correctly on all 10^20 inputs, float rounding included.

    Exit status: 0 proven (or certificate check passed), 1 refuted (or check failed), 3 real-only or undecided.
    """
    import json

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .verify.prove import check as check_certificate
    from .verify.prove import prove as run_prove
    from .verify.prove import read, render

    if target is None:
        raise AdderError("name a construction or checkpoint to prove (see `adder list`)")
    if target.endswith(".py"):
        raise AdderError(f"{target} is a submission file, which runs as a black box; prove a construction name or "
                         "a checkpoint instead")
    if timeout <= 0:
        raise AdderError(f"--timeout must be positive seconds, got {timeout}")
    for path in (certificate, json_path):
        if path is not None:
            _writable(path, force)
    cert = read(check) if check is not None else None
    model = load_target(target, dtype=dtype)
    if cert is not None:
        result = check_certificate(cert, model)
        style = "bold green" if result.passed else "bold red"
        console.print(f"certificate {check}: " + ("check passed: " if result.passed else "check FAILED: ") + result.reason,
                      style=style, markup=False)
        raise typer.Exit(0 if result.passed else 1)
    with Progress(SpinnerColumn(), TextColumn("proving {task.fields[name]}: {task.completed:,} cases bounded"),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("prove", total=None, name=model.spec.name)
        report = run_prove(model, target, timeout=timeout, certificate=certificate, check_libm=libm_check,
                           progress=lambda n: bar.advance(task, n))
    console.print(render(report))
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=1))
        console.print(f"wrote {json_path}")
    raise typer.Exit({"proven": 0, "refuted": 1}.get(report.verdict, 3))


def _writable(path: Path, force: bool) -> None:
    """Refuse, before any long work, an output path that exists (without --force) or cannot be written."""
    if path.exists() and not force:
        raise AdderError(f"{path} already exists; pass --force to overwrite it")
    if not path.parent.exists():
        raise AdderError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise AdderError(f"cannot write {path}: it is a folder")


@app.command()
def train(recipe: Optional[str] = typer.Argument(None, help="Recipe name (see --list)."),
          list_: bool = typer.Option(False, "--list", help="List the recipes."),
          seed: int = typer.Option(0, help="Seed of initialisation and data (recorded in the checkpoint)."),
          seeds: Optional[str] = typer.Option(None, help="Sweep: '1-8' or '1,5,777' (one process per seed)."),
          jobs: int = typer.Option(2, help="Parallel single-thread processes for a sweep."),
          steps: Optional[int] = typer.Option(None, help="Override the recipe's step count."),
          out: Optional[Path] = typer.Option(None, "--out", help="Run folder [runs/RECIPE-seedN]."),
          resume: Optional[Path] = typer.Option(None, help="Continue from a checkpoint of the same recipe."),
          curriculum: Optional[str] = typer.Option(None, help="e.g. '1-3:2000,1-6:5000,1-10:rest'."),
          lr: Optional[float] = typer.Option(None, help="Override the recipe's peak learning rate."),
          plot: bool = typer.Option(False, "--plot", help="Write curves.png (needs matplotlib)."),
          warm_start: Optional[str] = typer.Option(None, "--warm-start", help="Construction or checkpoint whose "
                                                   "same-named, same-shaped parameters initialise the run."),
          compile_: bool = typer.Option(False, "--compile", help="torch.compile the training forward pass "
                                        "(10-26 s to compile; -30%..+50% speed here, so off by default)."),
          force: bool = typer.Option(False, "--force", help="Overwrite an existing run folder."),
          threads: int = typer.Option(1, help="torch threads for a single run (a 57p model gains nothing from more)."),
          final_test: bool = typer.Option(True, "--final-test/--no-final-test",
                                          help="Run the official 10,010 cases once on the best checkpoint.")):
    """Train a learned variant; keeps the best held-out checkpoint (never selected on official cases)."""
    from dataclasses import replace

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .train import data as tdata
    from .train.loop import train as run_train
    from .train.recipes import RECIPES, get_recipe

    if list_:
        t = Table(title="recipes")
        for col in ("name", "params", "steps", "summary"):
            t.add_column(col, overflow="fold")
        for r in RECIPES.values():
            t.add_row(r.name, str(r.params), f"{r.hyper.steps:,}", r.summary)
        console.print(t)
        return
    if recipe is None:
        raise AdderError("name a recipe (adder train --list shows them)")
    rec = get_recipe(recipe)
    hyper = rec.hyper
    if resume is not None:  # go on with the run's own hyperparameters (options below still override)
        from .compiler import checkpoint as ckpt
        from .train.recipes import Hyper

        recorded = ckpt.read(resume)["meta"].get("hyper")
        hyper = Hyper.from_json(recorded) if recorded else hyper
    if steps is not None:
        if steps < 1:
            raise AdderError(f"--steps must be positive, got {steps}")
        hyper = replace(hyper, steps=steps, eval_every=min(hyper.eval_every, max(1, steps // 4)))
    if lr is not None:
        if not lr > 0:
            raise AdderError(f"--lr must be positive, got {lr}")
        hyper = replace(hyper, lr=lr)
    if curriculum is not None:
        tdata.parse_curriculum(curriculum)
        hyper = replace(hyper, curriculum=curriculum)
    if seeds:
        from .train.sweep import parse_seeds, sweep

        base = out or Path("runs") / f"{recipe}-sweep"
        with console.status(f"training {recipe} on seeds {seeds} ({jobs} at a time)"):
            rows = sweep(recipe, parse_seeds(seeds), base, hyper, jobs, force, final_test, warm_start, compile_)
        t = Table(title=f"{recipe} sweep")
        for col in ("seed", "grokked (step)", "best exact", "at step", "official 10,010", "params", "wall time",
                    "checkpoint"):
            t.add_column(col)
        for r in rows:
            t.add_row(str(r["seed"]), str(r["grokked_step"] or "no"), f"{r['best_exact']:.4f}", str(r["best_step"]),
                      f"{r['official']:.4f}" if r.get("official") is not None else "-",
                      str(rec.params), f"{r['seconds']:.0f}s", r["checkpoint"])
        console.print(t)
        console.print(f"grokked (>= 99% held-out exact): {sum(r['grokked_step'] is not None for r in rows)}/{len(rows)}")
        return
    import torch

    torch.set_num_threads(max(1, threads))
    warm = load_target(warm_start, dtype="float32") if warm_start else None
    run_dir = out or (resume.parent if resume else Path("runs") / f"{recipe}-seed{seed}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[info]}"), console=err_console) as bar:
        task = bar.add_task(f"{recipe} seed {seed}", total=hyper.steps, info="")

        def on_row(row):
            info = f"loss {row['loss']:.3f} lr {row['lr']:.2g} {row.get('steps_per_s', 0):.0f} steps/s"
            if "exact" in row:
                info += f" | exact {row['exact']:.3f} tok {row['token_acc']:.3f}"
                console.print(f"step {row['step']:>6}: loss {row['loss']:.4f}  held-out exact {row['exact']:.4f}  "
                              f"token acc {row['token_acc']:.4f}  lr {row['lr']:.3g}", highlight=False)
            bar.update(task, completed=row["step"], info=info)

        res = run_train(rec, seed=seed, out=run_dir, hyper=hyper, resume=resume, on_row=on_row, force=force,
                        warm_start=warm, compile=compile_)
    if warm is not None:
        console.print(f"warm-started from {warm_start}: {', '.join(res.warm_started)}")
    console.print(f"best held-out exact {res.best_exact:.4f} at step {res.best_step}; "
                  f"grokked (>= 99%): {res.grokked_step or 'no'}; {res.steps:,} steps in {res.seconds:.0f}s "
                  f"-> {res.checkpoint} (metrics: {run_dir / 'metrics.csv'})")
    if final_test:
        from .train.loop import final_test as run_final

        ft = run_final(res.checkpoint)
        console.print(f"official AdderBoard cases (final test, never used for selection): "
                      f"{ft['passed']:,}/{ft['cases']:,} = {ft['accuracy']:.2%}")
    if plot:
        from .train.plot import plot_curves

        console.print(f"wrote {plot_curves(run_dir / 'metrics.csv', run_dir / 'curves.png', res.grokked_step)}")


@app.command()
def compare(a: str = typer.Argument(..., help="First model: checkpoint path or construction name."),
            b: str = typer.Argument(..., help="Second model: checkpoint path or construction name."),
            out: Optional[Path] = typer.Option(None, "--out", help="Folder for PNG plots, report.html and comparison.json."),
            probes: int = typer.Option(2000, help="Number of carry-balanced probe additions."),
            seed: int = typer.Option(0, help="Seed of the probe set (recorded in the report).")):
    """Do two models add the same way? Routing, carry probes, margins and parameters side by side."""
    from .verify.compare import CLASSES, compare as run_compare, headlines

    if probes < 50:
        raise AdderError(f"--probes must be at least 50 (linear probes need data), got {probes}")
    if out is not None and out.exists() and not out.is_dir():
        raise AdderError(f"--out {out} exists and is not a folder")
    with console.status(f"profiling {a} and {b} on {probes} probes"):
        c = run_compare(load_target(a), load_target(b), probes=probes, seed=seed)
    console.print(f"[bold]{c.a.name}[/] vs [bold]{c.b.name}[/] on {probes} carry-balanced probes (seed {seed})")
    for line in headlines(c):
        console.print(" • " + line, highlight=False)
    t = Table(title="attention routing: top position class per head (digits 0..9)")
    for col in ("model", "head", "top class", "mass", "content dependence"):
        t.add_column(col)
    for p in (c.a, c.b):
        for key, r in p.routing.items():
            import torch

            mean = torch.tensor(r["mean"][:10]).mean(0)
            top = int(mean.argmax())
            t.add_row(p.name, key, CLASSES[top], f"{float(mean[top]):.2f}", f"{p.position_only[key]:.3f}")
    console.print(t)
    if out is not None:
        from .verify.compare_plots import write_report

        files = write_report(c, out)
        console.print(f"wrote {len(files)} files to [bold]{out}[/] (open {out / 'report.html'})")


def main() -> None:
    debug = "--debug" in sys.argv or os.environ.get("ADDER_DEBUG") == "1"
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except AdderError as e:
        if debug:
            raise
        err_console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as e:
        code = getattr(e, "exit_code", None)
        sys.exit(code if code is not None else getattr(e, "code", 0))
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        sys.exit(130)
    except Exception as e:
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # a click usage error: one line + usage hint
            e.show()
            sys.exit(e.exit_code)
        if type(e).__name__ == "Abort":
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
