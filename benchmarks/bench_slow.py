"""How long a runtime that starts slowly, or dies slowly, waits for its verdict: the whole ``finalstate check``.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_slow.py [--standins slow-start,traps-sigterm]
        [--today-budget 900] [--no-today] [--profile ci] [--workers 2]

For each stand-in of ``benchmarks/standins/`` around the Go runtime (``scripts/build-runtimes``):

- ``slow-start``: sleeps 0.5 s before it becomes the runtime (a JVM's start, in time, not in CPU);
- ``traps-sigterm``: every kill of the supervisor's waits out Airflow's 5 s escalation to SIGKILL (the Go SDK's
  ``Serve`` while it waits): the Go runtime's own trap where it has one (``--sigterm-waiting=traps
  --sigterm-running=traps``), else a shell that ignores SIGTERM around it (``benchmarks/standins/traps-sigterm``: a
  process more per try, whose connections Airflow's supervisor then looks for among the runtime's children);
- ``go-runtime`` (not by default): no stand-in, the Go runtime itself, as ``scripts/test`` checks it;

it runs ``finalstate check --target 'cmd:benchmarks/standins/NAME build/runtimes/go-runtime'`` (the ci profile, two
workers: every property of a coordinator target, its scope and its lifecycles) twice, one after the other: as the
checker runs it now (tries lived ahead, several at once, each judged by every property that draws it:
``impl.coordinator.lived``), and as it ran before (``FINALSTATE_TRY_POOL=0``: each try lived when a property asks for
it, each property its own), the second stopped after ``--today-budget`` seconds as a person would stop it (Ctrl-C: a
SIGINT to its process group, then SIGKILL after a minute) and reported as no verdict within that time. Each prints
its wall time, the CPU time of it and of every process it started (this process reaps them all: it is their
subreaper), pytest's summary line and exit status, and any process of the stand-in still running afterwards.

Not a test: nothing is asserted. The machine is shared: wall time depends on its load (printed beside each run); the
CPU time much less so.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GO_RUNTIME = ROOT / "build" / "runtimes" / "go-runtime"
STANDINS = ROOT / "benchmarks" / "standins"
_PR_SET_CHILD_SUBREAPER = 36
#: How long a stopped run has to end after its SIGINT before its process group is killed.
STOP_GRACE = 60.0


def become_subreaper() -> None:
    """Orphans of the runs (a process whose parent ended first) become this process's children, so that they are
    reaped here and their CPU time counted."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"(not a subreaper: {os.strerror(ctypes.get_errno())}; orphans' CPU time is not counted)")


def reap_orphans(but: int | None = None) -> None:
    """Reap every child that has ended (orphans of the runs among them), except ``but``'s (a run still waited for)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == but:
            return
        os.waitpid(info.si_pid, 0)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: What the command line of a process a check started holds: a runtime, a stand-in, a helper, the fork server.
STARTED = ("runtimes/go-runtime", "benchmarks/standins/", "multiprocessing.forkserver", "supervisor_process.helper")


def still_running() -> list[int]:
    """Processes a check of this checkout started that still run (working in it, and not ended: zombies aside)."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        if (process.info["cwd"] == str(ROOT) and process.info["status"] != psutil.STATUS_ZOMBIE
                and any(word in cmdline for word in STARTED)):
            found.append(process.info["pid"])
    return found


def check(target: str, env: dict, profile: str, workers: int, budget: float | None) -> dict:
    """One ``finalstate check`` of ``target``: wall and CPU time, summary line, exit status; stopped after ``budget``."""
    command = [sys.executable, "-m", "impl.frontdoor.cli", "check", "--target", target, "--profile", profile,
               "--workers", str(workers), "--", "-q", "-p", "no:randomly"]
    cpu_before, began = children_cpu(), time.monotonic()
    load = os.getloadavg()[0]
    output = tempfile.TemporaryFile("w+")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                               start_new_session=True, text=True)
    stopped = False
    while process.poll() is None:
        reap_orphans(but=process.pid)  # a killed runtime's children, which this process adopts
        if budget is not None and time.monotonic() - began > budget and not stopped:
            stopped = True
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        if stopped and time.monotonic() - began > budget + STOP_GRACE:
            os.killpg(process.pid, signal.SIGKILL)
        time.sleep(0.5)
    wall = time.monotonic() - began
    if stopped:  # what the stopped run left: ended by its process group's SIGKILL, and reaped here
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    time.sleep(1.0)
    reap_orphans()
    output.seek(0)
    output = output.read()
    summary = [line for line in output.splitlines() if re.search(r"\b(passed|failed|error|no tests ran)\b", line)]
    return dict(wall=wall, cpu=children_cpu() - cpu_before, status=process.returncode, stopped=stopped,
                summary=summary[-1].strip() if summary else "(no summary)", load=load, output=output)


def report(label: str, result: dict, budget: float | None, leftover: list[int]) -> None:
    verdict = (f"no verdict within {budget:g} s (stopped: SIGINT)" if result["stopped"]
               else f"verdict in {result['wall']:.0f} s (exit {result['status']}): {result['summary']}")
    print(f"  {label:<44} {verdict}", flush=True)
    print(f"  {'':<44} wall {result['wall']:.0f} s, CPU {result['cpu']:.0f} s (it and every process it started), "
          f"load average {result['load']:.1f} at its start; left running afterwards: {len(leftover)}", flush=True)


def standin_target(name: str) -> str:
    """The ``cmd:`` target of the stand-in ``name`` around the Go runtime (see the module)."""
    runtime = GO_RUNTIME.relative_to(ROOT)
    if name == "go-runtime":  # no stand-in: the Go runtime itself, as scripts/test checks it
        return f"cmd:{runtime}"
    if name == "traps-sigterm":
        usage = subprocess.run([str(GO_RUNTIME), "--help"], capture_output=True, text=True).stdout
        if "--sigterm-waiting" in usage:
            return f"cmd:{runtime} --sigterm-waiting=traps --sigterm-running=traps"
    standin = STANDINS / name
    if not standin.exists():
        raise SystemExit(f"bench_slow: no stand-in {name!r} in {STANDINS}")
    return f"cmd:{standin.relative_to(ROOT)} {runtime}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--standins", default="slow-start,traps-sigterm")
    parser.add_argument("--today-budget", type=float, default=900.0,
                        help="seconds before the run as before (FINALSTATE_TRY_POOL=0) is stopped (0: never)")
    parser.add_argument("--no-today", action="store_true", help="skip the run as before")
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep-output", metavar="DIR", help="write each run's output there")
    args = parser.parse_args()
    if not GO_RUNTIME.exists():
        raise SystemExit(f"bench_slow: {GO_RUNTIME} is not built; run scripts/build-runtimes")
    become_subreaper()
    print(f"{os.cpu_count()} CPUs; finalstate check, {args.profile} profile, {args.workers} workers", flush=True)
    for name in args.standins.split(","):
        target = standin_target(name)
        print(f"{target}:", flush=True)
        runs = [("now (tries lived ahead, shared)", {}, None)]
        if not args.no_today:
            runs.append(("before (FINALSTATE_TRY_POOL=0)", {"FINALSTATE_TRY_POOL": "0"}, args.today_budget or None))
        for label, extra, budget in runs:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                   **extra}
            result = check(target, env, args.profile, args.workers, budget)
            report(label, result, budget, still_running())
            if args.keep_output:
                out = Path(args.keep_output) / f"{name}-{'before' if extra else 'now'}.txt"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(result["output"])


if __name__ == "__main__":
    main()
