"""Pictures and the self-contained HTML report for `adder compare` (matplotlib, Agg backend).

`write_report(comparison, out_dir)` writes routing heatmaps (one PNG per model, same axes),
carry-probe curves, margin distributions and accuracy by carry-chain length (both models
on the same axes), `report.html` embedding them, and `comparison.json` with every number.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ...compiler.optional import pyplot
from .circuits import Comparison, Profile, headlines

#: What the plots are for, in the error a missing matplotlib gives.
PURPOSE = "plots (compare --out)"

COLORS = ("#1f77b4", "#d62728")


def routing_figure(p: Profile, classes: list[str], path: Path) -> Path:
    plt = pyplot(PURPOSE)
    heads = list(p.routing)
    fig, axes = plt.subplots(1, len(heads), figsize=(3.2 * len(heads) + 1, 3.6), squeeze=False)
    for ax, key in zip(axes[0], heads):
        im = ax.imshow(p.routing[key]["mean"], vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_title(f"{key}\ncontent dependence {p.position_only[key]:.3f}", fontsize=8)
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=6)
        n = len(p.routing[key]["mean"])
        ax.set_yticks(range(n), [str(i) for i in range(n)], fontsize=6)
        ax.set_ylabel("answer digit (0 = least significant)", fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="attention mass")
    fig.suptitle(f"{p.name}: where each answer digit's query attends", fontsize=9, y=1.08)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def probes_figure(c: Comparison, path: Path) -> Path:
    plt = pyplot(PURPOSE)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    for p, col in zip((c.a, c.b), COLORS):
        xs = range(len(p.probes))
        ax1.plot(xs, [s["carry_acc"] for s in p.probes], "o-", color=col, label=p.name)
        ax2.plot(xs, [max(s["sum_r2"], -0.1) for s in p.probes], "o-", color=col, label=p.name)
        ax1.axhline(p.carry_base_rate, color=col, ls=":", lw=1)
        for x, s in zip(xs, p.probes):
            ax1.annotate(s["stage"], (x, s["carry_acc"]), fontsize=6, rotation=30, color=col)
    ax1.set(title="linear probe: incoming carry bit (dotted: guessing)", xlabel="residual stage", ylabel="held-out accuracy", ylim=(0.4, 1.02))
    ax2.set(title="linear probe: digit-pair sum a_i + b_i", xlabel="residual stage", ylabel="held-out R²", ylim=(-0.12, 1.02))
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def margins_figure(c: Comparison, path: Path) -> Path:
    plt = pyplot(PURPOSE)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.2))
    for j, (p, col) in enumerate(zip((c.a, c.b), COLORS)):
        pos = [i + (j - 0.5) * 0.35 for i in range(len(p.margin_samples))]
        data = [[max(v, 1e-6) for v in s] or [1e-6] for s in p.margin_samples]
        bp = ax1.boxplot(data, positions=pos, widths=0.3, patch_artist=True, showfliers=False)
        for box in bp["boxes"]:
            box.set_facecolor(col)
        ax1.plot([], [], color=col, label=p.name)
        Ls = sorted(p.chain_accuracy, key=int)
        ax2.plot([int(L) for L in Ls], [p.chain_accuracy[L][1] for L in Ls], "o-", color=col, label=p.name)
    ax1.set_yscale("log")
    ax1.set(title="margin (right logit − best other) per answer digit", xlabel="answer digit", ylabel="margin")
    ax1.set_xticks(range(len(c.a.margin_samples)), range(len(c.a.margin_samples)))
    ax2.set(title="exact accuracy by longest carry chain", xlabel="longest carry chain", ylabel="accuracy", ylim=(-0.02, 1.02))
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_report(c: Comparison, out: Path) -> list[Path]:
    """Write PNGs, comparison.json and a self-contained report.html into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    pngs = [routing_figure(c.a, c.classes, out / f"routing_{_safe(c.a.name)}_a.png"),
            routing_figure(c.b, c.classes, out / f"routing_{_safe(c.b.name)}_b.png"),
            probes_figure(c, out / "probes.png"), margins_figure(c, out / "margins.png")]
    data = out / "comparison.json"
    data.write_text(json.dumps(c.to_json(), indent=1))
    imgs = "\n".join(f'<figure><img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" '
                     f'alt="{p.stem}"><figcaption>{p.stem}</figcaption></figure>' for p in pngs)
    rows = "\n".join(f"<tr><td>{html.escape(k)}</td><td>{a}</td><td>{b}</td></tr>" for k, a, b in _ledger_rows(c))
    heads = "\n".join(f"<li>{html.escape(h)}</li>" for h in headlines(c))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>adder compare</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} img{{max-width:100%}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 8px}}</style></head><body>
<h1>{html.escape(c.a.name)} vs {html.escape(c.b.name)}</h1>
<p>{c.probes} carry-balanced probes (seed {c.seed}), teacher-forced. Weights:
{c.a.weights_sha256[:12]} / {c.b.weights_sha256[:12]}.</p>
<h2>Headlines</h2><ul>{heads}</ul>
<h2>Parameters</h2><table><tr><th></th><th>{html.escape(c.a.name)}</th><th>{html.escape(c.b.name)}</th></tr>{rows}</table>
<h2>Pictures</h2>{imgs}
<p>All numbers: <code>comparison.json</code>.</p></body></html>"""
    report = out / "report.html"
    report.write_text(page)
    return pngs + [data, report]


def _ledger_rows(c: Comparison):
    la, lb = c.a.ledger, c.b.ledger
    yield "AdderBoard (learned)", la["adderboard"], lb["adderboard"]
    yield "strict (+ hard-coded values)", la["strict"], lb["strict"]
    yield "distinct learned values", la["distinct_learned"], lb["distinct_learned"]
    for name, led in (("A", la), ("B", lb)):
        for t in led["tensors"]:
            yield f"{name}: {t['name']} {'x'.join(map(str, t['shape'])) or 'scalar'}", \
                t["scalars"] if name == "A" else "", t["scalars"] if name == "B" else ""


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
