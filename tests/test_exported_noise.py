"""An exported module run as a maintainer runs it (pytest, a process of its own) leaves no noise behind.

Its harness serves apache-airflow-core's Execution API app in process; ``InProcessExecutionAPI`` runs the app on an
event loop of its own, which it stops but never closes. Left unclosed, the loop is reported as the interpreter
exits (``ResourceWarning: unclosed event loop``, shown here as ``-W always::ResourceWarning`` shows it), or its
``__del__`` fails with ``ValueError: Invalid file descriptor: -1`` when its sockets were finalized first; the
harness closes it (``ExecutionAPIServer.close``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("airflow.api_fastapi.execution_api.app",
                    reason="the exported real-row modules serve apache-airflow-core's Execution API app")

from impl.export import writer as export  # noqa: E402

#: One try on one real row: the cheapest of the modules that serve the real app.
MODULE = export.EXPORTED / "test_f13_no_second_transition.py"
NOISE = ("unclosed event loop", "Invalid file descriptor", "Exception ignored in")


def test_an_exported_real_row_module_closes_the_apps_event_loop(tmp_path):
    (tmp_path / MODULE.name).write_text(MODULE.read_text())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-W", "always::ResourceWarning", "-m", "pytest", "-q", "-p",
                           "no:cacheprovider", MODULE.name], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    output = done.stdout + done.stderr
    assert re.search(r"^1 (passed|failed)\b", output, re.M), output[-3000:]  # its test ran, whatever its outcome
    heard = [line for line in output.splitlines() if any(noise in line for noise in NOISE)]
    assert not heard, "\n".join(heard)
