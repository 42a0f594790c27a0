"""``airflow-process`` on other task-sdk releases: before 1.3.0 the release's own forking ``ActivitySubprocess``
runs the scripted runtime as its child; on 1.4.0 the real ``Client`` on httpx2 (and the real server with it).

Each test runs in the release's environment (``build/envs/R``, built by ``impl.releases.environments``) and is
skipped, with the reason, where that environment is not built.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Each line a scenario the real process and the release's model must observe alike.
SCENARIOS = [
    "try_number=1 max_tries=2; send SucceedTask; exit 0",
    "try_number=1 max_tries=0; send TaskState failed; send MaskSecret; exit 1",
    "try_number=2 max_tries=2; exit -9",
    "fault succeed transient; send SucceedTask; exit 0",
    "heartbeat 404; send SucceedTask; exit 0",
    "send TaskState failed; ignore sigterm; overtime; exit 0",
    "send DeferTask; overtime; exit 0",
    "try_number=1 max_tries=3 should_retry=false; send AwaitInputTask; exit -6",
]

#: The widened world (a runtime that handles SIGTERM and carries on inside the kill, users' actions, a runtime that
#: never exits), each line where the word changes what the release's supervisor does.
WIDENED_WORLD = [
    "try_number=1 max_tries=1; handle sigterm; heartbeat 409; send SucceedTask; exit 0",
    "try_number=1 max_tries=1; handle sigterm; heartbeat 404; exit hang",
    "try_number=1 max_tries=1; user marks success; send RetryTask; exit 0",
    "try_number=1 max_tries=1; user clears; heartbeat 200; exit 0",
    "user deletes; send SucceedTask; exit 0",
    "send SucceedTask; exit hang",
    "ignore sigterm; exit hang",
    "send RescheduleTask; exit hang",  # F16 (a DeferTask's first call costs 1.0.x seconds of imports)
]

_CHECK = """
import json, sys
from impl.targets.registry import load_target
from model.scenario import Scenario
target = load_target("airflow-process")
try:
    for text in sys.argv[1:]:
        scenario = Scenario.from_text(text)
        observed, expected = target.run(scenario), target.reference(scenario)
        print(json.dumps([text, observed == expected, observed.to_lines(), expected.to_lines()]))
finally:
    target.close()
"""


def python_of(release: str) -> Path:
    python = ROOT / "build" / "envs" / release / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no environment of apache-airflow-task-sdk {release} at {python.parent.parent} "
                    f"(impl.releases.environments builds it)")
    return python


def in_release(release: str, code: str, *args: str, timeout: float = 600, **env) -> subprocess.CompletedProcess:
    return subprocess.run([str(python_of(release)), "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **env})


@pytest.mark.parametrize("release", ["1.0.0", "1.0.2", "1.0.3", "1.1.8", "1.2.2"])
def test_the_forking_supervisor_of_a_release_before_1_3_0_runs_the_scripted_runtime(release):
    """The real ``ActivitySubprocess.start(target=...)`` forks, the child speaks the release's wire on its fd 0,
    ``wait()`` reaps it: the same observation as the release's model (1.0.3: no ``MaskSecret`` yet, its no-op is
    ``GetVariable``; ``AwaitInputTask`` is not decoded before 1.3.0, so it goes unanswered; before 1.0.3 JSON lines, the
    requests written to the descriptor StartupDetails names, a frame handled with nothing to send ``unanswered``)."""
    done = in_release(release, _CHECK, *SCENARIOS)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(results) == len(SCENARIOS), done.stdout[-2000:]
    for text, agree, observed, expected in results:
        assert agree, f"{text}\n  real:  {observed}\n  model: {expected}"


@pytest.mark.parametrize("release", ["1.0.0", "1.0.3", "1.2.2", "1.4.0b2"])
def test_the_widened_world_on_other_releases(release):
    """Each new word of the supervisor's world, on a release's own supervisor (forking before 1.3.0, JSON lines
    before 1.0.3; 1.4.0's SERVER_TERMINATED held before the kill): the same observation as the release's model."""
    done = in_release(release, _CHECK, *WIDENED_WORLD)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(results) == len(WIDENED_WORLD), done.stdout[-2000:]
    for text, agree, observed, expected in results:
        assert agree, f"{text}\n  real:  {observed}\n  model: {expected}"


def test_a_coordinator_target_before_1_3_0_is_unavailable_and_says_what_is_missing():
    done = in_release("1.2.2", "from impl.targets.registry import load_target\n"
                               "load_target('reference-runtime', 'coordinator')")
    assert done.returncode != 0
    assert "TargetUnavailable: apache-airflow-task-sdk 1.2.2 has no airflow.sdk.coordinators" in done.stderr, \
        done.stderr[-2000:]
    assert "came in 1.3.0" in done.stderr


def test_1_4_0_sends_each_heartbeat_once_over_real_processes():
    """1.4.0's ``Client`` sends a heartbeat with ``retry=False``: one request, whatever the answer (the model of
    1.4.0 does not follow that yet, so this reads the real observation alone); ``server_terminated`` is recorded
    in the model's spelling."""
    code = ("from impl.supervisor_process import target as process, helper\n"
            "from model.scenario import Scenario\n"
            "try:\n"
            "    for text in ('heartbeat 500; send SucceedTask; exit 0', 'heartbeat 404; exit 0'):\n"
            "        print([str(c) for c in process.run(Scenario.from_text(text)).calls])\n"
            "finally:\n"
            "    helper.close()\n")
    done = in_release("1.4.0b2", code)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert lines == ["['start->200', 'heartbeat->500', 'succeed->200']",
                     "['start->200', 'heartbeat->404', 'finish(SERVER_TERMINATED)->404']"], done.stdout[-2000:]


def test_1_4_0_on_the_real_server_over_real_processes():
    """``--server airflow`` on 1.4.0: the loopback server reached on httpx2's pool, the client the release's."""
    code = ("from impl.supervisor_process import target as process\n"
            "from model.scenario import Scenario\n"
            "t = process.target('airflow-process', server='airflow')\n"
            "try:\n"
            "    o = t.run(Scenario.from_text('fault succeed transient; send SucceedTask; exit 0'))\n"
            "    print('OBSERVED', o.to_lines())\n"
            "finally:\n"
            "    t.close()\n")
    done = in_release("1.4.0b2", code, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    observed = next(line for line in done.stdout.splitlines() if line.startswith("OBSERVED"))
    assert "'calls=start->200, succeed->500, succeed->200'" in observed and "'row=success'" in observed, observed
