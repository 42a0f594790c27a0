"""Thousands of real-process attempts leave nothing behind: no process, zombie, descriptor, socket or thread.

The count is taken in the process that runs the attempts (the helper of ``impl.supervisor_process``,
or this one) before and after ``FINALSTATE_LEAK_SCENARIOS`` attempts (default 2,000), drawn with
a fixed seed across every kind of event and exit, bad runtimes included.
"""

from __future__ import annotations

import os
import time

import pytest

pytest.importorskip("airflow.sdk", reason="airflow-process needs apache-airflow-task-sdk")

from impl.search.scenarios import corpus  # noqa: E402
from impl.supervisor_process import helper  # noqa: E402
from impl.supervisor_process import target as process  # noqa: E402
from model.scenario import Scenario  # noqa: E402

SCENARIOS = int(os.environ.get("FINALSTATE_LEAK_SCENARIOS", "2000"))


def held():
    """What the attempts' process holds, and what this one does (its children: the helper, if any)."""
    import psutil

    stats = process.stats()
    me = psutil.Process()
    here = me.children(recursive=True)
    stats |= {"our_children": sorted(p.pid for p in here), "our_fds": me.num_fds(),
              "our_zombies": [p.pid for p in here if p.status() == psutil.STATUS_ZOMBIE]}
    return {k: (len(v) if isinstance(v, list) else v) for k, v in stats.items()}, stats


def test_no_leaks_after_thousands_of_attempts():
    process.run(Scenario.from_text("send SucceedTask; exit 0"))  # warm: helper, fork server, client, threads
    before, raw_before = held()
    bad = [{"steps": [["hang"]]}, {"steps": [["raw", b"\x00\x00\x00\x04\xc1\xc1\xc1\xc1"], ["exit", 1]]},
           {"steps": [["close"], ["exit", 0]]}]
    # runtimes that never exit: one nothing ends (the harness ends the attempt), one killed after it handled SIGTERM
    never_exiting = [Scenario.from_text(text) for text in ("handle sigterm; exit hang",
                                                          "handle sigterm; heartbeat 409; send SucceedTask; exit hang")]
    start = time.monotonic()
    for i, scenario in enumerate(corpus(SCENARIOS, seed=2026)):
        process.run(scenario)
        if i % 500 == 0:  # a few bad runtimes among them: killed at the deadline, crashed supervisor
            for script in bad:
                process.supervise_script(script, deadline=0.5)
            for hanging in never_exiting:
                process.run(hanging)
    elapsed = time.monotonic() - start
    time.sleep(0.5)  # daemon threads of lost answers finish
    after, raw_after = held()
    print(f"{SCENARIOS} attempts in {elapsed:.1f}s; before {raw_before}; after {raw_after}")
    assert after["children"] == before["children"], (raw_before, raw_after)  # the fork server only
    assert after["zombies"] == 0
    assert after["fds"] <= before["fds"] and after["sockets"] <= before["sockets"], (before, after)
    assert after["threads"] <= before["threads"], (before, after)
    assert raw_after["our_children"] == raw_before["our_children"] and after["our_zombies"] == 0
    assert after["our_fds"] <= before["our_fds"], (before, after)
    helper.close()
