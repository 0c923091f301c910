"""`adder train RECIPE --warm-start CKPT --finetune`: iterated targeted fine-tuning of a trained
model (mine its errors and thin margins, train on them, repeat); one line per round."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..compiler.errors import AdderError
from .common import INTERRUPTED_EXIT, console, creatable_folder, err_console, print_final_test, print_json


def refuse(warm_start: Optional[str], others: dict, mode: str = "--finetune") -> None:
    """One line for a fine-tune (`mode`) asked for without its source, or with an option it does not take."""
    if not warm_start:
        raise AdderError(f"{mode} starts from a trained model: name it with --warm-start CKPT")
    given = [name for name, value in others.items() if value]
    if given:
        raise AdderError(f"{mode} does not take {', '.join(given)}")


def finetune_options(steps: Optional[int], lr: Optional[float], margin: Optional[float], rounds: Optional[int],
                     robust: Optional[str] = None):
    """The fine-tune's options: the defaults, with what the command line gave; checked."""
    from dataclasses import replace

    from ..train.finetune import FinetuneOptions

    given = {"steps": steps, "lr": lr, "margin": margin, "rounds": rounds}
    if robust is not None:
        given["robust"], given["robust_out"] = parse_robust(robust)
    return replace(FinetuneOptions(), **{k: v for k, v in given.items() if v is not None}).check()


def parse_robust(text: str) -> tuple[float, float]:
    """'SCORES[,OUT]' -> (scores ulps, output ulps), or one line saying what is wrong."""
    parts = text.split(",")
    try:
        if len(parts) > 2:
            raise ValueError
        values = [float(p) for p in parts] + [0.0] * (2 - len(parts))
    except ValueError:
        raise AdderError(f"--robust takes SCORES[,OUT] in float32 ulps (e.g. 130,600), got {text!r}") from None
    return values[0], values[1]


def round_printer(margin: float, rows_to):
    """The one line printed as each fine-tune round ends."""
    def on_row(row):
        loss = f"loss {row['loss']:.4f}  " if row["loss"] is not None else ""
        rows_to.print(f"round {row['round']:>3} step {row['step']:>6}: {loss}mined {row['mined_wrong']:,} wrong, "
                      f"{row['mined_low']:,} below margin {margin:g} of {row['mined_seen']:,} (pool "
                      f"{row['pool']:,})  held-out exact {row['exact']:.4f}, smallest margin {row['min_margin']:.3f}",
                      markup=False, highlight=False)
    return on_row


def run_finetune(rec, hyper, *, seed: int, run_dir: Path, warm_start: str, steps: Optional[int], lr: Optional[float],
                 margin: Optional[float], rounds: Optional[int], threads: int, force: bool, final_test: bool,
                 json_out: bool, robust: Optional[str] = None, mine_from: Optional[Path] = None) -> None:
    """Fine-tune, print each round as it ends, then the summary and the official final test."""
    import torch

    from ..train.finetune import finetune, source_of
    from ..train.loop import refuse_existing_run
    from ..train.sweep import warm_start_model

    from ..train.until_proven import findings_file

    options = finetune_options(steps, lr, margin, rounds, robust)
    extra = findings_file(mine_from) if mine_from is not None else None
    creatable_folder(run_dir, "--out")
    refuse_existing_run(run_dir, force=force)
    torch.set_num_threads(threads)
    warm = warm_start_model(warm_start)
    on_row = round_printer(options.margin, err_console if json_out else console)
    res = finetune(rec, seed=seed, out=run_dir, warm_start=warm, options=options, hyper=hyper, force=force,
                   source=source_of(warm_start, warm), on_row=on_row, extra=extra)
    summary = {"recipe": rec.name, "finetune": options.to_json(), **res.to_json(), "final_test": None}
    if final_test and res.best is not None and not res.interrupted:
        from ..train.loop import final_test as run_final_test

        summary["final_test"] = run_final_test(res.checkpoint)
    if json_out:
        print_json(summary)
    else:
        if res.best is not None:
            b = res.best
            console.print(f"{res.stopped}: best held-out exact {b['exact']:.4f}, smallest held-out margin "
                          f"{b['min_margin']:.3f} (round {b['round']}, step {b['step']:,}); {res.steps:,} steps in "
                          f"{res.seconds:.0f}s -> {res.checkpoint} (metrics: {res.metrics})",
                          markup=False, highlight=False)
        print_final_test(summary["final_test"], "selection or mining")
    if res.interrupted:
        err_console.print(f"interrupted after {res.steps:,} fine-tune steps; what the last round wrote is in {run_dir}",
                          markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(INTERRUPTED_EXIT)
