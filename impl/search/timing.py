"""A pytest plugin for long runs: a progress line per slow test, and the time each target took at the end.

Load it with ``-p impl.search.timing`` (``finalstate check`` and ``scripts/test`` do). The
run's header names the targets and the server that answers the supervisor targets (``--server``). A test
that took longer than ``SLOW`` seconds gets a line as it finishes: how many tests are done, how
long the run has gone on; a property that failed gets its counterexample's headline and replay command at
once, not only in the report at the end of the run. Each test is charged to the target it ran on (its ``target_name``
parameter, or its lifecycle pairing), else to ``unit tests``; durations are summed across xdist
workers, so with ``-n 2`` the figures add up to about twice the wall time.
"""

from __future__ import annotations

import time
from collections import defaultdict

SLOW = 10.0

_durations: dict[str, float] = defaultdict(float)
_counts: dict[str, int] = defaultdict(int)
_started = time.monotonic()
_config = None


def _target_of(item) -> str:
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "target_name" in params:
        return params["target_name"]
    if "pairing" in params:
        return f"lifecycle {params['pairing'].name}"
    return "unit tests"


def pytest_configure(config):
    global _config
    _config = config


def run_description(config) -> str:
    """The targets and the server of this run, as the header and the summary name them."""
    import os

    from impl.targets.registry import SERVER_ENV

    targets = ", ".join(getattr(config, "finalstate_targets", None) or ["(none)"])
    server = os.environ.get(SERVER_ENV) or "model"
    where = ("the real Execution API of apache-airflow-core, Airflow's client with its default retries"
             if server == "airflow" else "model.server")
    return f"finalstate: target {targets}; server {server} ({where})"


def pytest_report_header(config):
    return run_description(config)


def pytest_runtest_makereport(item, call):
    if call.when == "call":
        item.user_properties.append(("finalstate_target", _target_of(item)))


def pytest_runtest_logreport(report):
    target = dict(report.user_properties).get("finalstate_target") or "unit tests"
    _durations[target] += report.duration
    if report.when != "call":
        return
    _counts[target] += 1
    # Asked for here, not at configure time: the terminal reporter may be registered after this plugin.
    _reporter = _config.pluginmanager.get_plugin("terminalreporter") if _config is not None else None
    if _reporter is None:
        return
    done = f"  [{sum(_counts.values())} done, {time.monotonic() - _started:.0f}s]"
    if report.failed:  # said now, not only at the end of a long run: what broke, and the command that replays it
        found = _counterexample(report)
        _reporter.write_line(f"{done} FAILED: {report.nodeid}" + "".join(f"\n      {line}" for line in found))
    elif report.duration > SLOW:
        _reporter.write_line(f"{done} {report.outcome} in {report.duration:.0f}s: {report.nodeid}")


#: The lines of a checker's failure that say what broke and how to replay it.
_HEADLINES = ("VIOLATION", "DISAGREEMENT", "replay: ")


def _counterexample(report) -> list[str]:
    """The headline and replay lines of a failed property's report (none for another failure)."""
    found = []
    for line in (getattr(report, "longreprtext", "") or "").splitlines():
        at = min((i for i in map(line.find, _HEADLINES) if i >= 0), default=-1)  # after "E   impl...Disagreement: "
        if at >= 0 and len(found) < 2:
            found.append(line[at:].strip())
    return found


def pytest_terminal_summary(terminalreporter):
    if not _durations:
        return
    write = terminalreporter.write_line
    terminalreporter.section("time per target (test durations, summed over workers)")
    write(run_description(terminalreporter.config))
    for target, seconds in sorted(_durations.items(), key=lambda kv: -kv[1]):
        write(f"{seconds:8.1f} s  {_counts[target]:4d} tests  {target}")
    write(f"{time.monotonic() - _started:8.1f} s  wall time of the whole run")
