"""``scripts/build-sdk-runtime``: the program an SDK maintainer points the checker at, built against their checkout.

The SDKs cannot be fetched here, so the checkout is a stand-in with the shape of the Go SDK's public API that
``runtimes/sdk/go/main.go`` uses (``tests/fixtures/go-sdk-shape``): what this shows is that the script builds the
program against whatever ``go-sdk/`` a checkout has, without writing to it, and that bad input is refused by name.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "build-sdk-runtime"
SHAPE = ROOT / "tests" / "fixtures" / "go-sdk-shape"
BUILT = ROOT / "build" / "runtimes" / "go-sdk-runtime"


def build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain on PATH: the Go SDK's runtime cannot be built")
def test_the_go_program_builds_against_a_checkouts_go_sdk_and_leaves_it_unwritten():
    before = sorted(p.relative_to(SHAPE) for p in SHAPE.rglob("*"))
    done = build("go", str(SHAPE))
    assert done.returncode == 0, done.stderr
    assert BUILT.exists() and "finalstate check --target 'cmd:build/runtimes/go-sdk-runtime'" in done.stdout
    assert sorted(p.relative_to(SHAPE) for p in SHAPE.rglob("*")) == before
    ran = subprocess.run([str(BUILT)], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 1 and "serves nothing" in ran.stderr  # main exits non-zero when Serve fails


@pytest.mark.parametrize("args,says", [
    ((), "usage: scripts/build-sdk-runtime go PATH"),
    (("go", "/no/such/checkout"), "/no/such/checkout is not a directory"),
    (("go", "/tmp"), "is not an apache/airflow checkout with the Go SDK"),
    (("rust", "/tmp"), "unknown SDK 'rust'"),
])
def test_bad_input_is_refused_by_name(args, says):
    done = build(*args)
    assert done.returncode == 2 and says in done.stderr
