"""``impl.coordinator.go_runtime``: the Go runtime built once from its source, again when stale, and said unavailable
by its reason where it cannot be built (``finalstate build-runtimes``, ``cmd:go-runtime``)."""

from __future__ import annotations

import shutil

import pytest

from impl.coordinator import go_runtime


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """The runtime built into a directory of the test's own, not the checkout's build/."""
    monkeypatch.setattr(go_runtime, "binary", lambda: tmp_path / "runtimes" / go_runtime.NAME)
    return tmp_path / "runtimes" / go_runtime.NAME


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain on PATH: nothing to build with")
def test_built_once_then_up_to_date_until_its_stamp_no_longer_matches(elsewhere):
    first = go_runtime.ensure_built()
    assert (first.path, first.how) == (elsewhere, "built") and first.go_version.startswith("go")
    assert go_runtime.ensure_built().how == "up to date"
    elsewhere.with_name(f"{go_runtime.NAME}.stamp").write_text("a source that changed\n")
    assert go_runtime.ensure_built().how == "built"
    assert not elsewhere.with_name(f"{go_runtime.NAME}.unavailable").exists()


def test_without_go_and_nothing_built_it_is_unavailable_and_says_why(elsewhere, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "no-go-here"))
    with pytest.raises(go_runtime.NoGoToolchain, match="go toolchain not found on PATH"):
        go_runtime.ensure_built()
    assert elsewhere.with_name(f"{go_runtime.NAME}.unavailable").read_text().strip() == "go toolchain not found on PATH"


def test_without_go_a_runtime_built_before_is_used_as_it_is(elsewhere, monkeypatch, tmp_path):
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_text("#!/bin/sh\n")
    monkeypatch.setenv("PATH", str(tmp_path / "no-go-here"))
    assert go_runtime.ensure_built().path == elsewhere
