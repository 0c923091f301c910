"""`adder train`: train a learned variant (one seed, a sweep of seeds, or `--finetune` of a trained one);
`--list` shows the recipes.

Everything that can be refused is refused before training starts (the options, the run folder,
matplotlib for --plot). A run that ends early keeps what it did: Ctrl-C prints where the best
checkpoint so far is and exits with INTERRUPTED_EXIT; a loss that stops being finite is one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..compiler.errors import AdderError
from ..compiler.limits import check_count, check_seed, check_threads
from .common import INTERRUPTED_EXIT, console, creatable_folder, err_console, print_final_test, print_json, table
from .progress import progress_bar

RECIPE_COLUMNS = ("name", "params", "steps", "summary")
#: Runs in a folder of their own under this one unless --out names it.
RUNS = Path("runs")
#: Processes of a sweep, members of a population, threads on a cluster: far above any machine here.
MAX_JOBS = 4096


def run(recipe: Optional[str] = typer.Argument(None, help="Recipe name (see --list)."),
        list_: bool = typer.Option(False, "--list", help="List the recipes."),
        seed: int = typer.Option(0, help="Seed of initialisation and data (recorded in the checkpoint)."),
        seeds: Optional[str] = typer.Option(None, help="Sweep: '1-8' or '1,5,777' (one process per seed)."),
        jobs: int = typer.Option(2, help="Parallel single-thread processes for a sweep (at least 1); with --ray "
                                 "local, the instance's CPUs."),
        population: Optional[int] = typer.Option(None, help="Train S seeds in one process as one batched "
                                                 "computation (--seed .. --seed+S-1, or the --seeds list)."),
        device: str = typer.Option("cpu", help="With --population: cpu or cuda."),
        ray: Optional[str] = typer.Option(None, "--ray", help="Run --seeds or --population on a Ray cluster: auto "
                                          "(the one `ray start` runs here), HOST:PORT, or local (a private instance "
                                          "of --jobs CPUs). Needs pip install 'adder[ray]' (docs/train.md)."),
        shard_size: Optional[int] = typer.Option(None, "--shard-size", help="With --population --ray: members per "
                                                 "Ray task [one shard per CPU of the cluster, per GPU with cuda]."),
        steps: Optional[int] = typer.Option(None, help="Override the recipe's step count."),
        out: Optional[Path] = typer.Option(None, "--out", help="Run folder [runs/RECIPE-seedN]."),
        resume: Optional[Path] = typer.Option(None, help="Continue from a checkpoint of the same recipe."),
        curriculum: Optional[str] = typer.Option(None, help="e.g. '1-3:2000,1-6:5000,1-10:rest'."),
        lr: Optional[float] = typer.Option(None, help="Override the recipe's peak learning rate."),
        sets: list[str] = typer.Option([], "--set", help="Override any scalar hyperparameter, NAME=VALUE "
                                       "(repeatable), e.g. --set grokfast_lamb=2 (docs/train.md lists them)."),
        plot: bool = typer.Option(False, "--plot", help="Write curves.png (needs matplotlib)."),
        warm_start: Optional[str] = typer.Option(None, "--warm-start", help="Construction or checkpoint whose "
                                                 "same-named, same-shaped parameters initialise the run."),
        partial_warm_start: bool = typer.Option(False, "--partial-warm-start", help="Allow a --warm-start that fills "
                                                "only some of the recipe's parameters (the rest start at their "
                                                "initial values); not with --finetune."),
        compile_: bool = typer.Option(False, "--compile", help="torch.compile the training forward pass "
                                      "(10-26 s to compile; -30%..+50% speed here, so off by default)."),
        finetune: bool = typer.Option(False, "--finetune", help="Fine-tune the --warm-start model: mine its wrong and "
                                      "thin-margin pairs, train on them, repeat (--steps, --lr: the fine-tune's)."),
        margin: Optional[float] = typer.Option(None, help="With --finetune: mine margins below this; the hinge's "
                                               "target [1.0]."),
        rounds: Optional[int] = typer.Option(None, help="With --finetune: at most this many rounds [10]."),
        mine_from: Optional[Path] = typer.Option(None, "--mine-from", help="With --finetune: also mine the weak "
                                                 "inputs and counterexample of this proof report (adder prove --json, "
                                                 "or an --until-proven run's attemptN.proof.json: re-runs an attempt)."),
        robust: Optional[str] = typer.Option(None, help="With --finetune or --until-proven: SCORES[,OUT]: mine and "
                                             "train on the margins left after a worst-case perturbation of every "
                                             "attention score by SCORES float32 ulps of its row, and of every "
                                             "attention output by OUT (for a float proof; docs/train.md) [off]."),
        bridge_from: Optional[str] = typer.Option(None, "--bridge-from", help="Carry this trained model of the "
                                                  "family into RECIPE's tied layout: fit, anneal each tie's learned "
                                                  "difference to zero over --steps [40,000] at --lr [3e-4], write "
                                                  "OUT/bridged.pt (docs/train.md)."),
        until_proven: bool = typer.Option(False, "--until-proven", help="Prove the --warm-start model; while not "
                                          "proven, fine-tune it on the prover's weak inputs and prove again "
                                          "(--steps, --lr, --margin, --rounds: each attempt's fine-tune)."),
        attempts: int = typer.Option(3, help="With --until-proven: at most this many fine-tunes."),
        prove_timeout: float = typer.Option(1800.0, "--prove-timeout", help="With --until-proven: each proof's "
                                            "search budget in seconds."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing run folder."),
        threads: int = typer.Option(1, help="torch threads for a single run or a population (a 57p model "
                                    "gains nothing from more)."),
        final_test: bool = typer.Option(True, "--final-test/--no-final-test",
                                        help="Run the official 10,010 cases once on the best checkpoint."),
        json_out: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout "
                                                            "(progress stays on stderr).")):
    """Train a learned variant; keeps the best held-out checkpoint (never selected on official cases).

    Ctrl-C stops the run; its best checkpoint so far stays on disk (exit status 130).
    """
    from ..train.recipes import RECIPES, Hyper, get_recipe

    if list_:
        if json_out:
            print_json([{"name": r.name, "params": r.params, "steps": r.hyper.steps, "summary": r.summary}
                        for r in RECIPES.values()])
            return
        rows = ((r.name, str(r.params), f"{r.hyper.steps:,}", r.summary) for r in RECIPES.values())
        console.print(table("recipes", RECIPE_COLUMNS, rows))
        return
    if recipe is None:
        raise AdderError("name a recipe (adder train --list shows them)")
    check_seed(seed)
    check_count(jobs, "--jobs", high=MAX_JOBS)
    if ray is None:
        check_threads(threads)
    else:  # the cluster's machines, not this one, run the threads
        check_count(threads, "--threads", high=MAX_JOBS)
    if population is not None:
        check_count(population, "--population", high=MAX_JOBS)
        check_seed(seed + population - 1, "--seed + --population - 1")
    if device != "cpu" and population is None:
        raise AdderError("--device applies to --population runs only (a single run trains on the CPU)")
    if ray is not None:
        if not seeds and population is None:
            raise AdderError("--ray runs many seeds on a cluster: add --seeds A-B or --population S")
        from ..train.cluster import require_ray

        require_ray()  # a missing ray is found now, before any folder or run
    if shard_size is not None and (ray is None or population is None):
        raise AdderError("--shard-size applies to --population with --ray only")
    rec = get_recipe(recipe)
    if bridge_from is not None:
        from .bridge import run_bridge_cli
        from .finetune import refuse

        refuse(bridge_from, {"--warm-start": warm_start, "--resume": resume, "--seeds": seeds,
                             "--population": population, "--ray": ray, "--compile": compile_, "--curriculum": curriculum,
                             "--plot": plot, "--set": sets, "--finetune": finetune, "--until-proven": until_proven,
                             "--margin": margin is not None, "--rounds": rounds is not None, "--robust": robust,
                             "--mine-from": mine_from}, mode="--bridge-from")
        run_bridge_cli(rec, source=bridge_from, seed=seed, run_dir=out or RUNS / f"{recipe}-bridge-seed{seed}",
                       steps=steps, lr=lr, threads=threads, force=force, final_test=final_test, json_out=json_out)
        return
    if partial_warm_start and (warm_start is None or finetune or until_proven):
        raise AdderError("--partial-warm-start applies to --warm-start without --finetune or --until-proven only")
    if warm_start is not None and not until_proven:  # --until-proven checks the layout itself (--attempts 0 proves any)
        _check_warm_start(rec, warm_start, partial_warm_start)
    if finetune or until_proven:
        from .finetune import refuse, run_finetune

        refuse(warm_start, {"--resume": resume, "--seeds": seeds, "--population": population, "--ray": ray,
                            "--compile": compile_, "--curriculum": curriculum, "--plot": plot, "--set": sets,
                            "--finetune": finetune and until_proven, "--mine-from": until_proven and mine_from},
               mode="--until-proven" if until_proven else "--finetune")
    if until_proven:
        from .until_proven import run_until_proven

        run_until_proven(rec, rec.hyper, seed=seed, run_dir=out or RUNS / f"{recipe}-until-proven-seed{seed}",
                         warm_start=warm_start, steps=steps, lr=lr, margin=margin, rounds=rounds, robust=robust,
                         attempts=attempts,
                         prove_timeout=prove_timeout, threads=threads, force=force, json_out=json_out)
        return
    if finetune:
        run_finetune(rec, rec.hyper, seed=seed, run_dir=out or RUNS / f"{recipe}-finetune-seed{seed}",
                     warm_start=warm_start, steps=steps, lr=lr, margin=margin, rounds=rounds, robust=robust,
                     mine_from=mine_from, threads=threads,
                     force=force, final_test=final_test, json_out=json_out)
        return
    if margin is not None or rounds is not None or robust is not None:
        raise AdderError("--margin, --rounds and --robust apply to --finetune and --until-proven only")
    if mine_from is not None:
        raise AdderError("--mine-from applies to --finetune only")
    hyper = Hyper.recorded_in(resume, rec.hyper) if resume is not None else rec.hyper  # go on as the run went
    hyper = hyper.override(steps=steps, lr=lr, curriculum=curriculum, sets=sets)
    from ..train.loop import refuse_existing_run, train
    from ..train.sweep import parse_seeds, seed_folder, warm_start_model

    import torch

    torch.set_num_threads(threads)  # a sweep's processes set their own (one each)
    if population is not None:
        from .sweep import run_population

        run_population(rec, population, seed, seeds, out or RUNS / f"{recipe}-population", hyper, device, force,
                       warm_start, json_out, ray=ray, shard_size=shard_size, threads=threads, jobs=jobs)
        return
    if seeds:
        base = out or RUNS / f"{recipe}-sweep"
        creatable_folder(base, "--out")
        seed_list = parse_seeds(seeds)
        for s in seed_list:
            refuse_existing_run(seed_folder(base, s), force=force)
        from .sweep import run_sweep

        run_sweep(rec, seeds, seed_list, jobs, base, hyper, force, final_test, warm_start, compile_, json_out, ray=ray)
        return
    run_dir = out or (resume.parent if resume else RUNS / f"{recipe}-seed{seed}")
    creatable_folder(run_dir, "--out")
    refuse_existing_run(run_dir, force=force, resume=resume)
    warm_model = warm_start_model(warm_start) if warm_start else None
    if plot:
        from ..compiler.optional import pyplot
        from ..train.plot import PURPOSE

        pyplot(PURPOSE)  # a missing matplotlib is found now, not after training
    rows_to = err_console if json_out else console  # with --json, stdout holds the JSON alone
    with progress_bar("{task.fields[info]}") as bar:
        shown = _resumed_seed(resume, seed) if resume is not None else seed  # a resumed run goes on with its own seed
        task = bar.add_task(f"{recipe} seed {shown}", total=hyper.steps, info="")

        def on_row(row):
            info = f"loss {row['loss']:.3f} lr {row['lr']:.2g} {row.get('steps_per_s', 0):.0f} steps/s"
            if "exact" in row:
                info += f" | exact {row['exact']:.3f} tok {row['token_acc']:.3f}"
                rows_to.print(f"step {row['step']:>6}: loss {row['loss']:.4f}  held-out exact {row['exact']:.4f}  "
                              f"token acc {row['token_acc']:.4f}  lr {row['lr']:.3g}", highlight=False)
            bar.update(task, completed=row["step"], info=info)

        res = train(rec, seed=seed, out=run_dir, hyper=hyper, resume=resume, on_row=on_row, force=force,
                    warm_start=warm_model, compile=compile_)
    summary = {"recipe": rec.name, **res.to_json(), "final_test": None, "curves": None}
    if final_test and not res.interrupted:
        from ..train.loop import final_test as run_final_test

        summary["final_test"] = run_final_test(res.checkpoint)
    if plot and res.rows:
        from ..train.plot import plot_curves

        summary["curves"] = str(plot_curves(res.metrics, run_dir / "curves.png", res.grokked_step))
    if json_out:
        print_json(summary)
    else:
        _print_run(res, summary, warm_start)
    if res.interrupted:
        from ..train.loop import LAST, kept_checkpoint

        last = run_dir / LAST
        err_console.print(f"interrupted at step {res.steps:,} of {hyper.steps:,}. "
                          f"{kept_checkpoint(res.checkpoint, res.best_exact, res.best_step, hyper.eval_every)}"
                          + (f"; go on with --resume {last}" if last.exists() else ""),
                          markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(INTERRUPTED_EXIT)


def _resumed_seed(resume: Path, default: int) -> int:
    """The seed a checkpoint records (the one a resumed run goes on with, `train.loop.train`)."""
    from ..compiler import checkpoint

    return int(checkpoint.read(resume)["meta"].get("seed", default))


def _check_warm_start(rec, warm_start: str, partial: bool) -> None:
    """Refuse, before any work, a warm start that leaves some of the recipe's parameters at their initial
    values, unless `partial` (never for a fine-tune: it would fine-tune a near-random model)."""
    from ..train.loop import warm_start_gaps
    from ..train.sweep import warm_start_model

    gaps = warm_start_gaps(rec, warm_start_model(warm_start))
    if gaps and not partial:
        shown = ", ".join(gaps[:4]) + (f" and {len(gaps) - 4} more" if len(gaps) > 4 else "")
        raise AdderError(f"--warm-start {warm_start} has no parameter of the same name and shape for {len(gaps)} of "
                         f"{rec.name}'s ({shown}); name a model of this recipe's layout, or pass --partial-warm-start "
                         "(not with --finetune) to start those from their initial values")


def _print_run(res, summary: dict, warm_start: Optional[str]) -> None:
    """The human summary of one run."""
    if res.warm_started:
        console.print(escape(f"warm-started from {warm_start}: {', '.join(res.warm_started)}"), highlight=False)
    if res.best_step >= 0:
        console.print(f"best held-out exact {res.best_exact:.4f} at step {res.best_step}; "
                      f"grokked (>= 99%): {res.grokked_step or 'no'}; {res.steps:,} steps in {res.seconds:.0f}s "
                      f"-> {res.checkpoint} (metrics: {res.metrics})", markup=False, highlight=False)
    print_final_test(summary["final_test"])
    if summary["curves"]:
        console.print(f"wrote {summary['curves']}", markup=False, highlight=False)
