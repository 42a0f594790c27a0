"""Thousands of real-process attempts leave nothing behind: no process, zombie, descriptor, socket or thread.

The count is taken in the process that runs the attempts (the helper of ``impl.process``, or
this one) before and after ``FINALSTATE_LEAK_SCENARIOS`` attempts (default 2,000), drawn with
a fixed seed across every kind of event and exit, bad runtimes included.
"""

from __future__ import annotations

import os
import random
import time

import pytest

pytest.importorskip("airflow.sdk", reason="airflow-process needs apache-airflow-task-sdk")

from impl import process  # noqa: E402
from model.scenario import (  # noqa: E402
    FAULT_KINDS, FAULTABLE_CALLS, FRAME_TYPES, HEARTBEAT_ANSWERS, TASK_STATE_STATES,
    Fault, Heartbeat, Overtime, RunContext, Scenario, Send,
)

SCENARIOS = int(os.environ.get("FINALSTATE_LEAK_SCENARIOS", "2000"))


def scenarios(n: int, seed: int = 2026):
    rng = random.Random(seed)
    frames = [Send("TaskState", s) for s in TASK_STATE_STATES] + [Send(f) for f in FRAME_TYPES if f != "TaskState"]
    for _ in range(n):
        events = []
        for _ in range(rng.randint(0, 6)):
            roll = rng.random()
            if roll < 0.5:
                events.append(rng.choice(frames))
            elif roll < 0.75:
                events.append(Fault(rng.choice(FAULTABLE_CALLS), rng.choice(FAULT_KINDS)))
            elif roll < 0.93:
                events.append(Heartbeat(rng.choice(HEARTBEAT_ANSWERS)))
            else:
                events.append(Overtime())
        yield Scenario(RunContext.from_server(rng.randint(1, 4), rng.randint(0, 3)), tuple(events),
                       rng.choice([0, 0, 1, 3, 255, -9, -15, -11, -6, -2]))


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
    start = time.monotonic()
    for i, scenario in enumerate(scenarios(SCENARIOS)):
        process.run(scenario)
        if i % 500 == 0:  # a few bad runtimes among them: killed at the deadline, crashed supervisor
            for script in bad:
                process.supervise(script, deadline=0.5)
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
    process.close()
