"""`adder train --ray` (train/cluster.py): a sweep or a population on a Ray cluster writes the same run
folders, the same metrics and the same summary as the local run of the same seeds.

The default tests need no ray: without it `--ray` is one line naming the extra, before any work.
The slow tests start a local Ray instance (2 CPUs) once for the module and compare with local runs.
"""

import csv
import json
import socket
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from adder.compiler import checkpoint
from adder.compiler.errors import AdderError
from adder.train.cluster import shards
from adder.train.recipes import get_recipe
from adder.train.sweep import seed_folder

from test_cli import one_line_error

#: Columns of metrics.csv that time the run, so differ between any two runs.
TIMING = ("seconds", "steps_per_s")
#: A tiny run: a few evaluations, seconds per seed.
STEPS = 60
SEEDS = [1, 2]


def adder_without_ray(*args, cwd):
    """The CLI in a process where `import ray` fails, as on a machine without the extra."""
    code = "import sys; sys.modules['ray'] = None; from adder.cli import main; sys.argv = ['adder', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("mode", [("--seeds", "1-2"), ("--population", "2")], ids=["sweep", "population"])
def test_without_ray_the_ray_path_is_one_line_naming_the_extra_before_any_work(mode, tmp_path):
    r = adder_without_ray("train", "micro57", *mode, "--ray", "auto", "--steps", "60", "--out", "runs", cwd=tmp_path)
    one_line_error(r, "--ray needs ray", "pip install 'adder[ray]'")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, needle", [
    (("--ray", "auto"), "add --seeds A-B or --population S"),
    (("--seeds", "1-2", "--shard-size", "2"), "--shard-size applies to --population with --ray only"),
])
def test_ray_options_out_of_place_are_one_line(args, needle, tmp_path):
    one_line_error(adder_without_ray("train", "micro57", *args, "--out", "runs", cwd=tmp_path), needle)
    assert not (tmp_path / "runs").exists()


def test_an_address_nothing_answers_on_is_refused_at_once():
    from adder.train.cluster import _check_reachable

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AdderError, match="nothing answers there"):
        _check_reachable(f"127.0.0.1:{port}")
    with socket.create_server(("127.0.0.1", 0)) as server:  # one that answers passes
        _check_reachable(f"127.0.0.1:{server.getsockname()[1]}")
    for name in ("auto", "local", "ray://head:10001"):
        _check_reachable(name)  # left to Ray


def test_shards_cut_the_seeds_in_order():
    assert shards([5, 1, 9, 2, 7], 2) == [[5, 1], [9, 2], [7]]
    assert shards([5, 1], 8) == [[5, 1]]
    assert sum(shards(list(range(64)), 5), []) == list(range(64))


# ---------------------------------------------------------------------- on a local Ray instance
def rows(folder):
    with open(folder / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items() if k not in TIMING and v != ""} for row in csv.DictReader(f)]


def assert_same_run(ray_folder, local_folder, rel=1e-6):
    """The same metrics rows (timing aside, within float tolerance), the same files, the same weights."""
    mine, theirs = rows(ray_folder), rows(local_folder)
    assert [r["step"] for r in mine] == [r["step"] for r in theirs] and mine
    for m, t in zip(mine, theirs):
        assert m.keys() == t.keys()
        assert all(m[k] == pytest.approx(t[k], rel=rel, abs=1e-9) for k in m), (m, t)
    assert sorted(p.name for p in ray_folder.iterdir()) == sorted(p.name for p in local_folder.iterdir())
    a = dict(checkpoint.load(ray_folder / "best.pt").named_spec_params())
    b = dict(checkpoint.load(local_folder / "best.pt").named_spec_params())
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def tiny():
    torch.set_num_threads(1)
    r = get_recipe("micro57")
    return r, replace(r.hyper, steps=STEPS)


@pytest.mark.slow
def test_a_ray_sweep_matches_the_local_sweep(ray_instance, tiny, tmp_path):
    from adder.train.cluster import ray_sweep
    from adder.train.sweep import sweep

    r, h = tiny
    local = sweep(r.name, SEEDS, tmp_path / "local", h, jobs=2, force=False, final_test=True)
    remote = ray_sweep(r.name, SEEDS, tmp_path / "ray", h, "auto", force=False, final_test=True)
    assert [row["seed"] for row in remote] == SEEDS
    for a, b in zip(remote, local):
        folder = seed_folder(tmp_path / "ray", a["seed"])
        assert a["checkpoint"] == str(folder / "best.pt") and a["metrics"] == str(folder / "metrics.csv")
        for key in ("steps", "best_exact", "best_step", "grokked_step", "official"):
            assert a[key] == pytest.approx(b[key]), key
        assert_same_run(folder, seed_folder(tmp_path / "local", a["seed"]))


@pytest.mark.slow
@pytest.mark.parametrize("shard_size, rel", [(len(SEEDS), 1e-6), (1, 1e-4)], ids=["one-shard", "shards-of-one"])
def test_a_ray_population_matches_the_local_population(shard_size, rel, ray_instance, tiny, tmp_path):
    """One shard is the local population's very computation; shards of one member stack fewer rows, so
    batched kernels may sum in another order (float rounding, as a member against its single run)."""
    from adder.train.cluster import ray_population
    from adder.train.population import train_population

    r, h = tiny
    local = train_population(r, SEEDS, tmp_path / "local", h)
    remote = ray_population(r.name, SEEDS, tmp_path / "ray", h, "auto", shard_size=shard_size)
    assert [m.seed for m in remote.runs] == SEEDS and remote.seed_steps == local.seed_steps == STEPS * len(SEEDS)
    for a, b in zip(remote.runs, local.runs):
        assert a.checkpoint == seed_folder(tmp_path / "ray", a.seed) / "best.pt" and a.checkpoint.exists()
        assert (a.best_exact, a.best_step, a.grokked_step) == (b.best_exact, b.best_step, b.grokked_step)
        assert_same_run(seed_folder(tmp_path / "ray", a.seed), seed_folder(tmp_path / "local", a.seed), rel=rel)


@pytest.mark.slow
def test_the_cli_runs_a_sweep_on_a_cluster_by_address_and_keeps_existing_runs(ray_instance, tmp_path):
    address = ray_instance.get_runtime_context().gcs_address
    args = [sys.executable, "-m", "adder", "train", "micro57", "--seeds", "1-2", "--steps", str(STEPS),
            "--ray", address, "--out", "sweep", "--no-final-test"]
    r = subprocess.run([*args, "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert [s["seed"] for s in summary["seeds"]] == SEEDS
    for s in SEEDS:
        folder = tmp_path / "sweep" / f"seed{s}"
        assert {"metrics.csv", "best.pt", "last.pt"} <= {p.name for p in folder.iterdir()}
        assert summary["seeds"][s - 1]["checkpoint"] == str(folder.relative_to(tmp_path) / "best.pt")
    before = (tmp_path / "sweep" / "seed1" / "metrics.csv").read_text()
    one_line_error(subprocess.run(args, capture_output=True, text=True, cwd=tmp_path), "already holds a run", "--force")
    assert (tmp_path / "sweep" / "seed1" / "metrics.csv").read_text() == before


@pytest.mark.slow
def test_a_seed_that_diverges_on_ray_is_the_local_error_and_keeps_its_metrics(ray_instance, tiny, tmp_path):
    from adder.train.cluster import ray_sweep
    from adder.train.loop import TrainingDiverged

    r, h = tiny
    with pytest.raises(TrainingDiverged, match="training loss is nan"):
        ray_sweep(r.name, [1], tmp_path / "ray", replace(h, lr=1e9), "auto", force=False)
    last = (seed_folder(tmp_path / "ray", 1) / "metrics.csv").read_text().splitlines()[-1]
    assert last.split(",")[1] == "nan"  # the step that diverged, as a local run records it
