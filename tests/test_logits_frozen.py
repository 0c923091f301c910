"""Every registered construction's logits stay bit-identical across refactors of the constructions,
the builder and the compiler (issue 28: parts and the operation table must not change one bit).

The reference digests in `data/logit_digests.json` were written by this file
(`python tests/test_logits_frozen.py --write`) before the refactors they guard; rewrite them only
when a construction is meant to change, and say so in the commit. Float results depend on the
torch build, the CPU's vector unit and its vendor (the same AVX-512 build takes other kernel paths
on AMD and Intel: every digest differed), so the file holds one set of digests per platform, and
on a platform it has none for the test is skipped, saying why, rather than failing for a reason
that is not a regression. `--write` adds (or replaces) this platform's set.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

from adder.compiler import compile_spec
from adder.constructions import REGISTRY, build_spec

REFERENCE = Path(__file__).parent / "data" / "logit_digests.json"


def platform() -> dict:
    return {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability(), "vendor": vendor()}


def vendor() -> str:
    """The CPU's vendor_id (Linux), else what the platform module says, else "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform as stdlib_platform
    return stdlib_platform.processor() or "unknown"


def digest(name: str) -> str:
    """sha256 of the float logits of 64 seeded random additions, teacher-forced."""
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 10**10, (64,), generator=g)
    b = torch.randint(0, 10**10, (64,), generator=g)
    model = compile_spec(build_spec(name))
    fmt = model.spec.format
    tokens = torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], 1)
    with torch.no_grad():
        logits = model(tokens)
    return hashlib.sha256(logits.numpy().tobytes()).hexdigest()


def references() -> list[dict]:
    return json.loads(REFERENCE.read_text())["references"]


def test_every_reference_covers_every_construction():
    assert all(sorted(ref["digests"]) == sorted(REGISTRY) for ref in references())


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_logits_bit_identical(name):
    here = [ref for ref in references() if ref["platform"] == platform()]
    if not here:
        pytest.skip(f"reference digests are for {[ref['platform'] for ref in references()]}, this is {platform()}")
    assert digest(name) == here[0]["digests"][name], f"{name}'s logits changed"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    others = [ref for ref in references() if ref["platform"] != platform()]
    mine = {"platform": platform(), "digests": {n: digest(n) for n in sorted(REGISTRY)}}
    REFERENCE.write_text(json.dumps({"references": others + [mine]}, indent=1) + "\n")
    print(f"wrote {REFERENCE}")
