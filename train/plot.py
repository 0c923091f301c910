"""Training curves from a run's metrics.csv (matplotlib, optional)."""

from __future__ import annotations

import csv
from pathlib import Path

from ..compiler.optional import pyplot

#: What the plot is for, in the error a missing matplotlib gives.
PURPOSE = "--plot (training curves)"


def plot_curves(metrics: Path, out: Path, grokked_step: int | None = None) -> Path:
    plt = pyplot(PURPOSE)

    rows = [r for r in csv.DictReader(open(metrics)) if r["exact"]]
    steps = [int(r["step"]) for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot(steps, [float(r["loss"]) for r in rows])
    ax1.set(yscale="log", title="training loss", xlabel="step")
    ax2.plot(steps, [float(r["exact"]) for r in rows], label="held-out exact match")
    ax2.plot(steps, [float(r["token_acc"]) for r in rows], label="held-out token accuracy")
    if grokked_step:
        for ax in (ax1, ax2):
            ax.axvline(grokked_step, color="k", ls=":", lw=1)
        ax2.annotate(f"grokked @ {grokked_step}", (grokked_step, 0.5), fontsize=7)
    ax2.set(title="accuracy", xlabel="step", ylim=(-0.02, 1.02))
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
