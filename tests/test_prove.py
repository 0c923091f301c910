"""`adder prove`: the verdicts, the certificate, and soundness tested the hard way.

The tests that matter most are the soundness ones: the bounds of a proven model must contain
the real activations of many random and adversarial inputs; broken models (mutants that a
suite catches, the shipped trained reference that adds some carries wrongly) must never be
proven; a certificate must stop checking as soon as a weight or a number in it changes.
"""

import copy
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from adder.cli import app
from adder.compiler import add, compile_spec, load, teacher_forced
from adder.compiler.spec import MLP
from adder.constructions import build_spec
from adder.verify.prove import check, prove, render
from adder.verify.prove.automaton import path_of
from adder.verify.prove.certificate import CertificateError, leaf_of, read, write
from adder.verify.prove.layout import StepLayout
from adder.verify.prove.report import ProofReport
from adder.verify.prove.split import root_cases
from adder.verify.runner import run_suite

from test_verify_mutations import BOUNDARY


@pytest.fixture(scope="module")
def param40(compiled, tmp_path_factory):
    model = compiled("param40")
    path = tmp_path_factory.mktemp("cert") / "param40.json"
    report = prove(model, "param40", certificate=path)
    return model, report, read(path)


def test_param40_is_proven_in_float32(param40):
    model, report, cert = param40
    assert report.verdict == "proven", report.summary()
    assert [s.verdict for s in report.steps] == ["proven"] * 11
    assert report.dtype == "float32" and "re-verified" in report.check
    assert report.libm and all(x["holds"] and x["exhaustive"] for x in report.libm)
    assert all(s.certified_margin > 0 for s in report.steps)


def test_certificate_check_passes_and_detects_tampering(param40):
    model, _, cert = param40
    assert check(cert, model).passed
    # a changed number in the certificate: one attention bound tightened below the truth
    bad = copy.deepcopy(cert)
    leaf = next(n["leaf"] for n in bad["steps"][3]["roots"] if "leaf" in n)
    lam = np.asarray(leaf["lam"][0], dtype=float)
    lam[np.abs(lam) == np.abs(lam).max()] *= 0.9
    leaf["lam"][0] = lam.tolist()
    assert not check(bad, model).passed
    # a leaf removed: the checker regenerates the split, so coverage cannot be faked
    gone = copy.deepcopy(cert)
    gone["steps"][5]["roots"][7] = {"empty": True}
    assert not check(gone, model).passed


@pytest.mark.parametrize("suffix", [".json.xz", ".json.gz", ".json"])
def test_certificates_are_compressed_by_suffix_and_read_back_whole(param40, tmp_path, suffix):
    model, _, cert = param40
    path = tmp_path / f"c{suffix}"
    write(cert, path)
    assert path.read_bytes()[:1] == {".json.xz": b"\xfd", ".json.gz": b"\x1f", ".json": b"{"}[suffix]
    again = read(path)
    assert again == cert and check(again, model).passed
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # cut short: one clear error
    with pytest.raises(CertificateError, match="not readable"):
        read(path)


def test_short_certified_numbers_keep_the_check_and_the_bound_direction(param40):
    """Bounds are written with SHORT_DIGITS digits where that still certifies (most leaves) and
    margins rounded down to MARGIN_DIGITS: short numbers, still lower bounds."""
    from adder.verify.prove.search import MARGIN_DIGITS
    from adder.verify.prove.softmax import SHORT_DIGITS

    _, report, cert = param40
    leaves = [n["leaf"] for s in cert["steps"] for n in s["roots"] if "leaf" in n]
    lams = [x for leaf in leaves for row in leaf["lam"] for pair in row for x in (pair if isinstance(pair, list) else [pair])]
    short = [x for x in lams if len(repr(abs(x)).replace(".", "").lstrip("0").split("e")[0]) <= SHORT_DIGITS]
    assert len(short) >= 0.9 * len(lams)
    by_step = {s["step"]: min(n["leaf"]["margin"] for n in s["roots"] if "leaf" in n) for s in cert["steps"]}
    for sv in report.steps:
        assert by_step[sv.step] <= sv.certified_margin and \
            len(repr(by_step[sv.step]).split("e")[0].replace(".", "").lstrip("0")) <= MARGIN_DIGITS


@pytest.mark.integration
def test_a_compacted_certificate_has_shorter_bounds_rounded_up_and_still_checks(param40):
    """`certificate.compact`: each leaf's head bounds with the fewest digits that still certify it,
    rounded up (never below the search's), its recorded margin re-bounded; the independent
    checker passes the copy, and a copy whose margins were not re-bounded would overstate them."""
    import json
    import lzma

    from adder.verify.prove.certificate import COMPACT_DIGITS, check, compact

    model, _, cert = param40
    small, counts = compact(cert, model)
    leaves = lambda c: [n["leaf"] for s in c["steps"] for n in s["roots"] if "leaf" in n]  # noqa: E731
    before, after = leaves(cert), leaves(small)
    assert sum(counts.values()) == len(before) == len(after)
    assert counts[COMPACT_DIGITS[0]] > 0.5 * len(before)  # param40's margins leave room: most take 4 digits
    for x, y in zip(before, after):
        assert (np.asarray(y["lam"]) >= np.asarray(x["lam"])).all()  # upper bounds, only loosened
        assert y["margin"] <= x["margin"]
    xz = lambda c: len(lzma.compress(json.dumps(c).encode()))  # noqa: E731
    assert xz(small) < 0.9 * xz(cert)
    r = check(small, model)
    assert r.passed and r.independent, r.reason


def test_certificate_is_bound_to_the_weights(param40, compiled):
    model, _, cert = param40
    other = compile_spec(build_spec("param40"))  # a fresh copy: the session's compiled models stay intact
    with torch.no_grad():
        other.param("mlp.w2")[1, 0] *= 1.0005624972128714861  # a boundary mutant
    result = check(cert, other)
    assert not result.passed and "sha256" in result.reason
    # even with the hash forged, the mutant's bounds do not hold
    forged = dict(cert, weights_sha256=__import__("adder.compiler.checkpoint", fromlist=["x"]).weights_hash(other))
    assert not check(forged, other).passed


def _root_index(layout, pairs, carries):
    roots = root_cases(layout)
    mask, final = roots.cases.mask, roots.cases.final
    ok = final[:, carries[:, 10]]
    for j in range(10):
        ok &= mask[:, j, pairs[:, j], carries[:, j]]
    return ok.argmax(0)


def test_bounds_contain_real_margins(param40):
    """Containment: every sampled margin lies at or above its leaf's certified lower bound."""
    model, _, cert = param40
    _assert_leaves_below_margins(model, cert, 20_000)
    node = leaf_of(cert, model.spec.format, len(model.spec.vocab), 4, 5193798811, 1806201129)
    assert "leaf" in node


def _assert_leaves_below_margins(model, cert, n: int) -> None:
    gen = torch.Generator().manual_seed(1)
    a = torch.randint(0, 10**10, (n,), generator=gen)
    b = torch.randint(0, 10**10, (n,), generator=gen)
    # plus carry chains and near-boundary sums
    extra = [(5193798811, 1806201129), (9999999999, 1), (4999999999, 5000000001), (1, 9999999999), (0, 0)]
    a = torch.cat([a, torch.tensor([x for x, _ in extra])])
    b = torch.cat([b, torch.tensor([y for _, y in extra])])
    margins = teacher_forced(model, a, b).margin.double().numpy()
    paths = [path_of(int(x), int(y)) for x, y in zip(a, b)]
    pairs = np.stack([p for p, _ in paths])
    carries = np.stack([c for _, c in paths])
    fmt = model.spec.format
    for k in range(fmt.out_digits):
        layout = StepLayout(fmt, len(model.spec.vocab), k)
        idx = _root_index(layout, pairs, carries)
        bound = np.array([cert["steps"][k]["roots"][i]["leaf"]["margin"] for i in idx])
        assert np.all(margins[:, k] >= bound), (k, np.min(margins[:, k] - bound))


def _gelu40() -> "torch.nn.Module":
    """param40 with GELU in place of its two ReLU hinges: the hinges are sharp (256/sqrt 2 per
    unit), so gelu reads them as relu does and the model still adds; a gelu model to prove."""
    spec = build_spec("param40")
    mlp = next(b.layer for b in spec.blocks if isinstance(b.layer, MLP))
    mlp.act = "gelu"
    return compile_spec(spec)


@pytest.fixture(scope="module")
def gelu40(tmp_path_factory):
    model = _gelu40()
    path = tmp_path_factory.mktemp("cert") / "gelu40.json"
    # the library check of gelu over the range met (~2e9 float32) takes minutes: the slow test runs it
    report = prove(model, "param40-gelu", certificate=path, check_libm=False, sampled=False)
    return model, report, read(path)


def test_a_gelu_model_is_bounded_and_its_certificate_checks(gelu40):
    model, report, cert = gelu40
    assert report.verdict == "conditional" and [s.verdict for s in report.steps] == ["conditional"] * 11
    assert "re-verified" in report.check and "not checked" in report.unchecked[0]  # only the library check is left
    _assert_leaves_below_margins(model, cert, 5_000)


@pytest.mark.integration
@pytest.mark.parametrize("key,idx,factor", [BOUNDARY[2], BOUNDARY[3]], ids=["mlp.w2", "final_norm"])
def test_gelu_mutants_are_never_proven(key, idx, factor):
    model = _gelu40()
    with torch.no_grad():
        model.param(key)[idx] *= factor
    assert run_suite(model, "carry").failed > 0  # broken: the carry suite catches it
    report = prove(model, "mutant", timeout=30, sampled=False)
    assert report.verdict != "proven" and any(s.verdict != "closed" for s in report.steps), report.summary()


@pytest.mark.slow
def test_a_gelu_model_is_proven_with_its_library_check():
    """The whole argument, gelu's exhaustive float32 check included (minutes on a first run, then cached)."""
    report = prove(_gelu40(), "param40-gelu", sampled=False)
    assert report.verdict == "proven", report.summary()
    gelu = next(x for x in report.libm if x["fn"] == "gelu")
    assert gelu["holds"] and gelu["exhaustive"]


@pytest.mark.integration
def test_tinyadder36_is_refuted_by_the_prover_itself(compiled):
    model = compiled("tinyadder36")
    report = prove(model, "tinyadder36", timeout=120, sampled=False)
    assert report.verdict == "refuted", report.summary()
    c = report.counterexample
    assert add(model, c["a"], c["b"])[0] == c["printed"] != c["a"] + c["b"]


@pytest.mark.integration
@pytest.mark.parametrize("key,idx,factor", BOUNDARY)
def test_boundary_mutants_are_never_proven(compiled, key, idx, factor):
    model = compile_spec(build_spec("param40"))
    with torch.no_grad():
        model.param(key)[idx] *= factor
    report = prove(model, "mutant", timeout=30, sampled=False)
    assert report.verdict != "proven", (key, idx, factor)


@pytest.mark.integration
def test_trained_reference_is_not_proven():
    model = load("train/reference/micro57.pt")
    report = prove(model, "micro57", timeout=30, sampled=False)
    assert report.verdict != "proven"


def _words(report: ProofReport) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    with console.capture():
        console.print(render(report))
    return console.export_text() + str(report.to_json())


def test_the_word_proven_only_in_a_proven_verdict(param40, compiled):
    _, proven_report, _ = param40
    undecided = prove(compiled("param40"), "param40", timeout=0.5, sampled=False)
    assert undecided.verdict == "undecided"
    real_only = ProofReport("x", "x", "0" * 64, "float32", verdict="real-only", reason="step 3 margin within rounding")
    for report in (undecided, real_only):
        text = _words(report)
        for m in re.finditer("proven", text):
            assert text[max(0, m.start() - 4):m.start()] == "not ", text[max(0, m.start() - 60):m.end() + 20]
    assert "proven:" in _words(proven_report)


@pytest.mark.integration
def test_cli_prove_writes_and_checks_a_certificate(tmp_path):
    runner = CliRunner()
    cert = tmp_path / "c.json"
    r = runner.invoke(app, ["prove", "param40", "--certificate", str(cert)])
    assert r.exit_code == 0 and "proven" in r.output, r.output
    assert runner.invoke(app, ["prove", "param40", "--certificate", str(cert)]).exit_code != 0  # no overwrite
    r = runner.invoke(app, ["build", "param40", "-o", str(tmp_path / "p.pt")])
    r = runner.invoke(app, ["prove", str(tmp_path / "p.pt"), "--check", str(cert)])
    assert r.exit_code == 0 and "check passed" in " ".join(r.output.split()), r.output  # rich may wrap lines
    r = runner.invoke(app, ["prove", str(tmp_path / "p.pt"), "--check", str(cert), "--compact", str(tmp_path / "s.json")])
    out = " ".join(r.output.split())
    assert r.exit_code == 0 and "compacted:" in out and out.count("check passed") == 2, r.output
    assert (tmp_path / "s.json").stat().st_size < cert.stat().st_size
    assert runner.invoke(app, ["prove", "param40", "--compact", str(tmp_path / "t.json")]).exit_code != 0  # no --check
    (tmp_path / "bad.json").write_text("{not json")
    r = runner.invoke(app, ["prove", "param40", "--check", str(tmp_path / "bad.json")])
    assert r.exit_code != 0


def test_a_steps_cut_is_read_as_written_and_older_certificates_as_they_were_made():
    """`certificate.step_cut` (the search's re-check and `compact`) reads a step's "cut"; a step of a
    certificate written before the field cut the residual only in one-layer models with several
    heads and one O matrix (wonderfall121), the head outputs elsewhere (wonderfall27; qwen87, whose
    joint rule came later); a cut it does not know is a one-line certificate error."""
    from adder.verify.prove.certificate import step_cut
    from adder.verify.prove.layers import Ctx
    from adder.verify.prove.weights import ModelWeights

    def ctx(name):
        mw = ModelWeights(compile_spec(build_spec(name)))
        return Ctx(mw, mw.arithmetic)

    assert [step_cut({"step": 0}, ctx(n)) for n in ("wonderfall121", "wonderfall27", "qwen87")] == \
        ["residual", "heads", "heads"]
    assert step_cut({"step": 0, "cut": "residual"}, ctx("qwen87")) == "residual"
    with pytest.raises(CertificateError, match="malformed cut"):
        step_cut({"step": 0, "cut": "sideways"}, ctx("wonderfall27"))
