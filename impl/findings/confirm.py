"""Search on the model server, confirm on the real one: a counterexample re-run on the real Execution API.

The search runs a supervisor target with ``--server model`` (``model.server`` answers, thousands
of scenarios a second). A failure it shrinks is a claim about Airflow only if it also holds when
the real Execution API app of the installed apache-airflow-core answers, through Airflow's real
client with its default retries. ``confirm`` re-runs the shrunk run there and says which:

- confirmed: the same invariant breaks (or model and target still disagree) on the real server;
- not confirmed: it does not: the failure came from a rule of ``model.server`` that the real
  server does not follow, a bug in our model of the server, never a finding about Airflow;
- not checked: the target cannot run on the real server here (the reason is given).

The pytest plugin in ``properties/conftest.py`` adds this verdict to every failing supervisor
property's report when the run was on the model server.
"""

from __future__ import annotations

import atexit
import os
from unittest import mock

import attrs

from impl.targets.kinds import KINDS
from impl.targets.registry import SERVER_ENV, TargetUnavailable, load_target
from impl.search.report import Disagreement, disagreement_report, explained


@attrs.frozen
class Confirmation:
    """``confirmed`` is True, False, or None when the run could not be re-run on the real server."""

    confirmed: bool | None
    detail: str

    def to_text(self) -> str:
        head = {True: "CONFIRMED on the real Execution API server (the client trying as the run says). ",
                False: "NOT CONFIRMED on the real Execution API server: model.server answers differently from the "
                       "real server here, so this is a disagreement of our model of the server, not a finding "
                       "about Airflow. ",
                None: "Not checked on the real Execution API server: "}[self.confirmed]
        return head + self.detail


_LOADED: dict[str, object] = {}


def real_server_target(name: str):
    """The supervisor target ``name`` on the real server, loaded once per process (closed by ``release``,
    at the latest at exit)."""
    if name not in _LOADED:
        with mock.patch.dict(os.environ, {SERVER_ENV: "airflow"}):
            _LOADED[name] = load_target(name, "supervisor")
    return _LOADED[name]


@atexit.register
def release() -> None:
    """Close the real-server targets loaded so far (their server stops once its last user closes it)."""
    while _LOADED:
        _LOADED.popitem()[1].close()


def confirm(failure: AssertionError) -> Confirmation | None:
    """Re-run the run of ``failure`` (a ``Disagreement`` or ``InvariantViolation`` raised on the model server)
    on the real server; None when there is nothing to confirm (not a supervisor run, or not on the model server)."""
    where = getattr(failure, "checked", None)
    if where is None or where.target.kind != "supervisor" or where.target.name == "model":
        return None
    try:
        real = real_server_target(where.target.name)
    except TargetUnavailable as e:
        return Confirmation(None, str(e))
    try:
        observed = real.run(where.run)
    except NotImplementedError as e:  # airflow_attempt.Unsupported: a run the real server cannot play
        return Confirmation(None, str(e))
    except RuntimeError as e:  # a server started with the first run (airflow-process) that cannot start here
        from impl.server.airflow_api import ServerUnavailable

        if not isinstance(e, ServerUnavailable):
            raise
        return Confirmation(None, f"{where.target.name} with --server airflow: {e}")
    if isinstance(failure, Disagreement):
        expected = real.reference(where.run)
        if expected != observed:
            return Confirmation(True, "The same run disagrees there too:\n"
                                + disagreement_report(real.name, where.run, expected, observed))
        return Confirmation(False, "There the model and the target agree:\n" + _lines(observed))
    broken = [v for v in KINDS["supervisor"].violations(where.run, observed, where.invariants)
              if explained(where.known, v, where.run, observed) is None]
    if broken:
        return Confirmation(True, "It breaks there too: " + "; ".join(str(v) for v in broken) + "\n" + _lines(observed))
    return Confirmation(False, "There no invariant breaks:\n" + _lines(observed))


def _lines(observation) -> str:
    return "\n".join(f"  {line}" for line in observation.to_lines())
