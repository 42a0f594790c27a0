"""``model.server`` is a checked spec: the same request sequences on the model and on the real Execution API.

Runs once per session whatever ``--target`` says (it takes no target: the server's model is
checked against the server itself, not against a supervisor), wherever the real app can be
built: apache-airflow-core installed and its database made. Skipped with the reason otherwise.
One ``AirflowServer`` per process serves every example (each case on a run of its own); if a
supervisor target of this session already started it (``--server airflow``), it is shared. The
database is the one ``--server-db`` names (``FINALSTATE_SERVER_DB``; default SQLite).
"""

from __future__ import annotations


import pytest
from hypothesis import event

pytest.importorskip("airflow.api_fastapi.execution_api.app",
                    reason="the real Execution API needs apache-airflow-core (the airflow extra)")

from impl.releases.adapters import model_release  # noqa: E402
from impl.server.conformance import cases, first_difference, play_model, play_real  # noqa: E402
from properties.conftest import holds_for_all  # noqa: E402


@pytest.fixture(scope="module")
def real_server():
    """The process's real server (``open_server``: shared if a supervisor target already runs it), released after."""
    from impl.server.airflow_api import ServerUnavailable, saved_logging
    from impl.server.airflow_attempt import open_server

    restore_logging = saved_logging()
    try:
        server = open_server()
    except ServerUnavailable as e:
        pytest.skip(f"the real Execution API cannot be built here: {e}")
    yield server
    server.close()
    restore_logging()


def test_model_server_answers_as_the_real_execution_api(real_server):
    """Every generated sequence of requests and actors the installed release can make: per step, the same status,
    row, id and run context; the model answers as the installed release's server (``model.release``)."""
    release = model_release()

    def agrees(case):
        real = play_real(real_server, case)
        before = "queued"
        for step, seen in zip(case.steps, real):
            state = "deleted" if seen.row is None else seen.row[0]
            event(f"{step} -> {seen.status}" if seen.status is not None else f"{step} {before} -> {state}")
            before = state
        difference = first_difference(case, play_model(case, release), real)
        if difference is not None:
            pytest.fail(difference, pytrace=False)

    holds_for_all(cases(release), agrees)
