"""`adder board`: each row's verdicts are those of running verify and prove directly; the manifest's
models that are missing are "not obtained"; a bad manifest or an existing output is one line, exit 2."""

from pathlib import Path

import pytest
import torch

from adder.compiler import checkpoint, compile_spec
from adder.compiler.decode import add
from adder.constructions import build_spec
from adder.verify.api import verify_model, verify_submission
from adder.verify.board import (BLACK_BOX, BLACK_BOX_SUITES, BOARD_SUITE, CHECKED, COULD_NOT_RUN, IN_IR, NOT_OBTAINED,
                                BoardSettings, board_entries, model_row)
from adder.verify.cases import ADVERSARIAL, SuiteOptions
from adder.verify.manifest import ManifestError, read_manifest
from adder.verify.prove import prove

from adder.train.importers import FORMATS, import_checkpoint

from test_cli import adder_here
from test_import import foreign_state, fresh, write

pytestmark = pytest.mark.usefixtures("one_thread")

#: Wrong whenever the sum holds a run of five 9s, which only carry chains make likely.
CARRY_BUG = '''
def build_model():
    return None, {"name": "carrybug", "params": 3}

def add(model, a, b):
    s = a + b
    return s + 1 if "99999" in str(s) else s
'''
#: Small suites and a small prover budget, so that the test runs in seconds: the prover refutes the mutant
#: below within it (at its first answer step), and leaves the constructions undecided.
SETTINGS = BoardSettings(seed=3, options=SuiteOptions(k=1, window=1), examples=30,
                         black_box=SuiteOptions(k=1, window=1), prove_timeout=1)


def manifest_text(*entries: dict) -> str:
    out = []
    for e in entries:
        out.append("[[model]]")
        out += [f"{k} = {v!r}" if isinstance(v, (str, int)) else f"{k} = {list(v)}" for k, v in e.items()]
    return "\n".join(out).replace("'", '"') + "\n"


SUBMISSION = {"name": "carrybug", "author": "test", "kind": "trained", "source": "https://example.org/carrybug",
              "submission": "subs/carrybug.py", "published_counterexample": (4_999_999_999, 0)}
MUTANT = {"name": "mutant40", "author": "test", "kind": "trained", "source": "https://example.org/mutant",
          "checkpoint": "mutant40.pt"}
#: Published weights in MicroAdder's 57p format (written by the test from a fresh micro57), read by the board
#: as `adder import --as micro57` reads them, with a search budget of its own.
PUBLISHED = {"name": "pub57", "author": "test", "kind": "trained", "source": "https://example.org/pub57",
             "published": "pub/checkpoint_57p.pt", "import_as": "micro57", "prove_timeout": 2}
MISSING = {"name": "elsewhere", "author": "test", "kind": "trained", "source": "https://example.org/elsewhere",
           "submission": "not/here.py"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A models folder with the carry-bug submission and a param40 mutant the carry suites catch, and its manifest."""
    root = tmp_path_factory.mktemp("board")
    (root / "subs").mkdir()
    (root / "subs" / "carrybug.py").write_text(CARRY_BUG)
    mutant = compile_spec(build_spec("param40"))
    with torch.no_grad():
        mutant.param("mlp.w1")[0, 0] *= 1.02
    checkpoint.save(mutant, root / "mutant40.pt")
    (root / "pub").mkdir()
    fmt = FORMATS["micro57"]
    write(fmt, foreign_state(fmt, fresh("micro57")), root / "pub" / "checkpoint_57p.pt")
    manifest = root / "board.toml"
    manifest.write_text(manifest_text({"name": "param40", "construction": "param40",
                                       "published_counterexample": (5_193_798_811, 1_806_201_129)},
                                      SUBMISSION, MUTANT, PUBLISHED, MISSING))
    return root, manifest


def imported(path, recipe):
    return import_checkpoint(path, recipe)[0]


def rows(models, *names, load_published=imported):
    root, manifest = models
    return {e.name: (e, model_row(e, SETTINGS, load_published))
            for e in board_entries(read_manifest(manifest), root, only=list(names))}


def first_failure(report):
    """The first failing case of the first failing adversarial suite, else the search's."""
    for s in report.suites:
        if s.suite != BOARD_SUITE and s.failures:
            return s.failures[0]
    return report.search.counterexample if report.search else None


@pytest.mark.integration
def test_rows_of_models_in_the_ir_match_verify_and_prove_run_directly(models):
    got = rows(models, "zcbtrak6", "param40", "mutant40")
    assert set(got) == {"zcbtrak6", "param40", "mutant40"}
    for name, (entry, row) in got.items():
        model = checkpoint.load(Path(entry.target)) if name == "mutant40" else compile_spec(build_spec(name))
        report = verify_model(model, name, suites=[BOARD_SUITE, *ADVERSARIAL], seed=SETTINGS.seed,
                              options=SETTINGS.options, search_examples=SETTINGS.examples)
        official = report.suites[0]
        assert row.status == CHECKED and row.box == IN_IR and not row.params_claimed
        assert (row.official_passed, row.official_cases) == (official.passed, official.cases)
        assert row.adversarial_cases == report.cases - official.cases
        assert row.adversarial_failed == report.failed - official.failed
        first = first_failure(report)
        if first is None:
            assert row.counterexample is None and "pass: no counterexample" in row.adversarial_cell()
        else:
            c = row.counterexample
            assert (c["a"], c["b"]) == first and c["expected"] == sum(first)
            assert c["printed"] == add(model, *first)[0] != sum(first)
        direct = prove(model, name, timeout=SETTINGS.prove_timeout, sampled=False)
        assert (row.proof["verdict"], row.proof["counterexample"]) == (direct.verdict, direct.counterexample)
        assert f"adder prove {name}" in row.command or name == "mutant40"
    assert got["mutant40"][1].adversarial_failed > 0  # the carry suites catch it: it must not be proven
    assert got["mutant40"][1].proof["verdict"] == "refuted"
    assert got["mutant40"][1].command.startswith("adder verify MODELS/mutant40.pt ")
    published = got["param40"][1].published  # the manifest's pair, run alone
    assert published["printed"] == add(compile_spec(build_spec("param40")), 5_193_798_811, 1_806_201_129)[0]


def test_a_submission_row_matches_verify_submission_run_directly(models):
    root, _ = models
    (entry, row), = rows(models, "carrybug").values()
    report = verify_submission(root / "subs" / "carrybug.py", suites=[BOARD_SUITE, *BLACK_BOX_SUITES],
                               seed=SETTINGS.seed, options=SETTINGS.black_box)
    official = report.suites[0]
    assert row.box == BLACK_BOX and row.params == 3 and row.params_claimed
    assert (row.official_passed, row.adversarial_failed) == (official.passed, report.failed - official.failed)
    assert row.adversarial_failed > 0  # the chains suite has runs of 9s in the sum
    a, b = first_failure(report)
    assert row.counterexample == {"a": a, "b": b, "printed": a + b + 1, "expected": a + b, "found_by": "chains suite"}
    assert row.published == {"a": 4_999_999_999, "b": 0, "printed": 5_000_000_000, "expected": 4_999_999_999}
    cells = row.cells(SETTINGS.prove_timeout)
    assert "3 (claimed)" in cells and "not in the IR (black box)" in cells
    assert entry.shown_target == "MODELS/subs/carrybug.py" and " --suite chains --suite window --k 1" in row.command


def test_published_weights_are_read_into_the_ir_and_proven_with_their_own_budget(models):
    """A `published` entry is the model `adder import` makes of its file: checked like a checkpoint, proven
    with the manifest's budget (printed in the cell), and its reproduce command imports it first."""
    root, _ = models
    (entry, row), = rows(models, "pub57").values()
    model = imported(root / "pub" / "checkpoint_57p.pt", "micro57")
    report = verify_model(model, "pub57", suites=[BOARD_SUITE, *ADVERSARIAL], seed=SETTINGS.seed,
                          options=SETTINGS.options, search_examples=SETTINGS.examples)
    assert row.status == CHECKED and row.box == IN_IR and row.params == 57 and not row.params_claimed
    assert (row.official_passed, row.adversarial_failed) == (report.suites[0].passed,
                                                             report.failed - report.suites[0].failed)
    assert entry.prove_timeout == row.prove_timeout == 2 != SETTINGS.prove_timeout
    direct = prove(model, "pub57", timeout=2, sampled=False)
    assert row.proof["verdict"] == direct.verdict
    if direct.verdict == "undecided":
        assert row.proof_cell(SETTINGS.prove_timeout).startswith("undecided at 2 s")
    assert row.command.startswith("adder import MODELS/pub/checkpoint_57p.pt --as micro57 -o pub57.pt; "
                                  "adder verify pub57.pt --suite adderboard --adversarial")
    assert row.command.endswith("adder prove pub57.pt --timeout 2")
    (_, unread), = rows(models, "pub57", load_published=None).values()
    assert unread.status == COULD_NOT_RUN and "pass a loader" in unread.problem


def test_an_undecided_proof_names_its_obstruction_when_the_budget_did_not_end_it():
    """A proof left undecided by an obstruction (here: open in real arithmetic) says which in its cell, not
    "undecided at N s" as if the budget had run out; one the budget ended says that."""
    from adder.verify.board import ModelRow, proof_cell_data
    from adder.verify.prove.report import ProofReport, Verdict

    def cell(**report):
        proof = proof_cell_data(ProofReport(target="m.pt", name="m", weights_sha256="0", dtype="float32",
                                            verdict=Verdict.UNDECIDED, seconds=12.0, **report))
        return ModelRow(name="m", author="t", kind="trained", source="", proof=proof).proof_cell(60)

    why = "step 1: open in real arithmetic too (2e+16 inputs); step 2: open in real arithmetic too (3e+16 inputs)"
    assert cell(reason=why) == "undecided (12 s): step 1: open in real arithmetic too"
    assert cell(reason="the budget ran out (60 s) with steps 1-10 not decided", budget_ran_out=True) == \
        "undecided at 60 s (the budget ran out)"


def test_the_shipped_manifest_reads_and_each_published_entry_names_a_recipe_that_imports():
    manifest = read_manifest(Path(__file__).parent.parent / "docs" / "board-models.toml")
    published = [m for m in manifest if m.location == "published"]
    assert published and all(m.import_as in FORMATS and m.kind == "trained" for m in published)
    assert all(m.prove_timeout for m in published)  # trained proofs take minutes: each says its budget


def test_a_manifest_model_without_a_local_copy_is_not_obtained(models):
    (entry, row), = rows(models, "elsewhere").values()
    assert not entry.present and row.status == NOT_OBTAINED
    assert "not obtained: no local copy at MODELS/not/here.py" in row.cells(60)


def test_the_board_run_is_a_library_call_whose_record_renders_and_reads_back(models, tmp_path):
    """`run_board` (what `adder board` calls) without the CLI: one row per entry in order, each
    heard of as it completes with the record so far; the Markdown names the command and the
    headline counts; the JSON record reads back to the same document."""
    from adder.compiler.files import json_text
    from adder.verify.board.document import markdown_document, read_run, run_board

    root, manifest = models
    entries = board_entries(read_manifest(manifest), root, only=["carrybug", "elsewhere"])
    heard = []
    run = run_board(entries, SETTINGS, "adder board --only carrybug --only elsewhere", str(manifest),
                    on_start=lambda i, e: heard.append(("start", i, e.name)),
                    on_row=lambda i, e, row, rec: heard.append(("row", i, e.name, len(rec["rows"]))))
    assert heard == [("start", 1, "carrybug"), ("row", 1, "carrybug", 1), ("start", 2, "elsewhere"),
                     ("row", 2, "elsewhere", 2)]
    assert [r["name"] for r in run["rows"]] == ["carrybug", "elsewhere"] and run["models"] == 2
    doc = markdown_document(run)
    assert "    adder board --only carrybug --only elsewhere" in doc
    assert "**Headline**: " in doc and "1 not obtained" in doc and "| carrybug |" in doc
    assert "**Trained models**: 1 black box, wrong on some case; 1 not obtained." in doc
    (tmp_path / "run.json").write_text(json_text(run))
    assert markdown_document(read_run(tmp_path / "run.json")) == doc


def adder(*args):
    return adder_here(*args)


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr + r.stdout and err.startswith("error:") and "\n" not in err, err
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize("text,needle", [
    ("[[model]\nname = 1", "not valid TOML"),
    ('[[model]]\nname = "x"\nauthor = "a"\nkind = "trained"\nsource = "s"', "give exactly one of"),
    ('[[model]]\nname = "x"\nauthor = "a"\nkind = "trained"\nsource = "s"\nsubmission = "x.py"\nweights = "w"',
     "unknown key(s) weights"),
    ('[[model]]\nname = "x"\nauthor = "a"\nkind = "learned"\nsource = "s"\nsubmission = "x.py"', "kind must be"),
    ('[[model]]\nname = "x"\nsubmission = "x.py"', "missing author, kind, source"),
    ('[[model]]\nname = "x"\nauthor = "a"\nkind = "trained"\nsource = "s"\nsubmission = "../x.py"', "inside the models"),
    ('[[model]]\nname = "t"\nconstruction = "tinyadder36"\npublished_counterexample = [1, -2]', "two integers"),
    ('title = "x"', "unknown top-level"),
    ('[[model]]\nname = "x"\nauthor = "a"\nkind = "trained"\nsource = "s"\npublished = "w.pt"', "needs it"),
    ('[[model]]\nname = "x"\nauthor = "a"\nkind = "trained"\nsource = "s"\nsubmission = "x.py"\nimport_as = "micro57"',
     "goes with a published entry"),
    ('[[model]]\nname = "x"\nauthor = "a"\nkind = "trained"\nsource = "s"\nsubmission = "x.py"\nprove_timeout = 9',
     "black box"),
    ('[[model]]\nname = "t"\nconstruction = "tinyadder36"\nprove_timeout = -1', "prove_timeout must be"),
])
def test_a_malformed_manifest_is_refused(tmp_path, text, needle):
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(ManifestError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(path)


def test_the_command_refuses_a_malformed_manifest_in_one_line(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text('[[model]]\nname = "x"\nsubmission = "x.py"\n')
    one_line_error(adder("board", "--models", bad), "entry 1 (x)", "missing author")
    one_line_error(adder("board", "--models", tmp_path / "none.toml"), "no manifest at")
    bad.write_text('[[model]]\nname = "x"\nconstruction = "tinyadder63"\n')
    one_line_error(adder("board", "--models", bad), "tinyadder63")


def test_an_existing_output_is_kept_without_force(models, tmp_path):
    root, manifest = models
    out = tmp_path / "board.md"
    out.write_text("mine")
    run = ("board", "--models", manifest, "--models-dir", root, "--only", "carrybug", "--only", "elsewhere", "-o", out)
    one_line_error(adder(*run), "already exists", "--force")
    assert out.read_text() == "mine"
    r = adder(*run, "--force")
    assert r.returncode == 0, r.stderr
    doc = out.read_text()
    assert "| carrybug | test | trained |" in doc and "not obtained" in doc
    assert "[2/2] elsewhere: not obtained" in r.stderr  # each row's progress, on stderr
    saved = tmp_path / "run.json"  # a --json run renders again, checking nothing, as the same document
    assert adder(*run[:-1], saved, "--json").returncode == 0
    again = adder("board", "--rows", saved, "--markdown")
    assert again.returncode == 0 and again.stdout.split("| name |")[1] == doc.split("| name |")[1]
    one_line_error(adder("board", "--rows", manifest), "--rows", "not a run written by `adder board --json`")
    one_line_error(adder("board", "--only", "nosuchmodel"), "--only nosuchmodel")
