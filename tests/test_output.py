"""Scriptable output: tables print whole when piped, --json prints JSON alone on stdout, provenance,
--version, user text printed literally (never read as rich markup), plain progress lines when piped."""

import json
import os
import subprocess
import sys

import pytest
import torch

from adder.compiler import checkpoint
from adder.compiler.ledger import ledger
from adder.constructions import REGISTRY
from adder.verify.board import LIST_COLUMNS, list_rows

from test_cli import adder

#: What rich puts where it cuts a cell, and what a live bar is drawn with.
ELLIPSIS, BAR = "…", "━"


def test_list_piped_prints_every_value_whole():
    r = adder("list")  # stdout is a pipe, as in `adder list | cat`
    assert r.returncode == 0, r.stderr
    assert ELLIPSIS not in r.stdout
    for row in list_rows():
        line = next(line for line in r.stdout.splitlines() if f" {row[0]} " in line)
        assert all(f" {cell} " in line for cell in row), (row, line)
    assert "float32" in r.stdout and "float64" in r.stdout


def test_info_with_a_narrow_terminal_setting_still_prints_every_value_whole(compiled):
    r = subprocess.run([sys.executable, "-m", "adder.cli", "info", "param40"], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "60"})
    assert r.returncode == 0, r.stderr
    assert ELLIPSIS not in r.stdout
    m = compiled("param40")
    for row in ledger(m).rows:
        for cell in (row.name, ", ".join(row.used_in), row.note):
            assert cell in r.stdout, cell
    assert f"weights sha256 {checkpoint.weights_hash(m)}" in r.stdout
    assert m.spec.meta["source"] in r.stdout


def test_list_json_is_one_object_per_construction():
    r = adder("list", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["name"] for row in rows] == sorted(REGISTRY)
    p40 = next(row for row in rows if row["name"] == "param40")
    assert set(p40) == set(LIST_COLUMNS) and p40["AdderBoard"] == 40 and p40["dtype"] == "float32"


def test_version():
    r = adder("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"adder {checkpoint.adder_version()}", r.stdout


def test_help_keeps_square_brackets():
    r = adder("train", "--help")
    assert r.returncode == 0 and "[runs/RECIPE-seedN]" in r.stdout, r.stdout


def test_train_json_summary_provenance_and_piped_progress(tmp_path):
    run = tmp_path / "run[1]"  # brackets in a user path must survive rich
    r = adder("train", "micro57", "--steps", "100", "--out", str(run), "--no-final-test", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)  # stdout holds the JSON alone
    assert summary["recipe"] == "micro57" and summary["complete"] and summary["steps"] == 100
    assert summary["checkpoint"] == str(run / "best.pt")
    assert "micro57 seed 0" in r.stderr and "held-out exact" in r.stderr  # progress on stderr, as plain lines
    assert BAR not in r.stderr and "\x1b" not in r.stderr

    info = adder("info", summary["checkpoint"], "--json")
    prov = json.loads(info.stdout)["provenance"]
    assert prov["recipe"] == "micro57" and prov["seed"] == 0 and prov["step"] == summary["best_step"]
    assert prov["val_exact"] == summary["best_exact"] and prov["adder_version"] == checkpoint.adder_version()
    shown = adder("info", summary["checkpoint"]).stdout
    assert f"recorded: recipe micro57, seed 0, step {summary['best_step']}" in shown

    again = adder("train", "micro57", "--steps", "100", "--out", str(run), "--force", "--no-final-test")
    assert again.returncode == 0 and str(run / "best.pt") in again.stdout, again.stdout


def test_compare_json(tmp_path):
    r = adder("compare", "param40", "qwen87", "--probes", "100", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["probes"] == 100 and data["a"]["name"] == "param40" and data["b"]["ledger"]["adderboard"] == 87
    assert any("routes by position only" in line for line in data["headlines"])


def test_user_text_is_never_read_as_markup(compiled, tmp_path):
    """A name with square brackets prints as written (rich would swallow `[red]` and `[/red]`)."""
    m = compiled("param40")
    ck = checkpoint.to_checkpoint(m)
    name = "p[red]40[/red]"
    ck["spec"] = ck["spec"].replace('"name":"param40"', json.dumps({"name": name})[1:-1], 1)
    assert name in ck["spec"]
    ck["meta"]["weights_sha256"] = checkpoint.state_hash(ck["spec"], ck["state"])
    torch.save(ck, tmp_path / "named.pt")
    r = adder("info", str(tmp_path / "named.pt"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(name), r.stdout[:80]


@pytest.mark.parametrize("data", [{"x": float("nan"), "y": [float("inf"), 1.5]}])
def test_json_text_is_valid_json_for_non_finite_numbers(data):
    from adder.cli.common import json_text

    assert json.loads(json_text(data), parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}")) == \
        {"x": "nan", "y": ["inf", 1.5]}
