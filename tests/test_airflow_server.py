"""The real Execution API backend (``impl.server.airflow_api``): real rows, the real client, real answers.

One ``AirflowServer`` serves the whole module (one per process); its database lives under a
private temporary home, so the first start migrates and later starts copy the template.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("airflow.api_fastapi.execution_api.app", reason="needs apache-airflow-core (the airflow extra)")

from impl.server.airflow_api import (  # noqa: E402
    AirflowServer,
    LoopbackServer,
    RowState,
    ServerUnavailable,
    TransportFault,
    default_attempts,
    quiet_logs,
    saved_logging,
)

REPO = Path(__file__).resolve().parents[1]
PID = os.getpid()


def now():
    return dt.datetime.now(dt.timezone.utc)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    restore_logging = saved_logging()
    quiet_logs()
    srv = AirflowServer(home=tmp_path_factory.mktemp("airflow-server"))
    srv.start()
    yield srv
    srv.close()
    restore_logging()


@pytest.fixture
def client(server):
    c = server.client()
    yield c
    server.release(c)


def status_of(call, *args):
    """The HTTP status a client call ends with: 2xx as the last exchange had it, or the error's status."""
    from airflow.sdk.api.client import ServerResponseError

    try:
        call(*args)
    except ServerResponseError as e:
        return e.response.status_code
    return call.__self__.client.exchanges[-1].status


def succeed(c, ti_id):
    return status_of(c.task_instances.succeed, ti_id, now(), [], [], None)


def finish(c, ti_id, state="failed"):
    return status_of(c.task_instances.finish, ti_id, state, now(), None)


def retry(c, ti_id):
    return status_of(c.task_instances.retry, ti_id, now(), None)


def heartbeat(c, ti_id, pid=PID):
    return status_of(c.task_instances.heartbeat, ti_id, pid)


# -- the database ---------------------------------------------------------------------------------


def test_migrates_once_into_a_template_and_copies_it_per_worker(server):
    templates = list(server.home.glob("template-*.db"))
    assert len(templates) == 1, templates
    template = templates[0]
    stamp = template.stat().st_mtime_ns
    (ours,) = (server.home / "workers").glob(f"{PID}-*.db")
    attempt = server.open_attempt(1, 0)

    worker = textwrap.dedent(f"""
        import os, sys, threading
        sys.path.insert(0, {str(REPO)!r})
        from impl.server.airflow_api import AirflowServer, quiet_logs
        quiet_logs()
        srv = AirflowServer(home={str(server.home)!r}).start()
        copies = sorted(p.name for p in (srv.home / "workers").glob(f"{{os.getpid()}}-*.db"))
        mine = srv.open_attempt(1, 0)
        print("copies", len(copies))
        print("theirs", srv.row({attempt.run_id!r}))
        print("mine", srv.row(mine.run_id).state)
        srv.close()
        print("after", len(list((srv.home / "workers").glob(f"{{os.getpid()}}-*.db"))),
              sorted(t.name for t in threading.enumerate()))
    """)
    out = subprocess.run([sys.executable, "-c", worker], capture_output=True, text=True, timeout=300,
                         cwd=REPO).stdout
    lines = dict(line.split(" ", 1) for line in out.splitlines() if line.split(" ", 1)[0] in
                 ("copies", "theirs", "mine", "after"))
    assert lines == {"copies": "1", "theirs": "None", "mine": "running", "after": "0 ['MainThread']"}, out
    assert template.stat().st_mtime_ns == stamp, "the template was migrated again"
    assert ours.exists()


def test_a_bad_database_url_fails_fast_with_the_url_masked(server):
    for url in ("sqlite:////nonexistent/finalstate/airflow.db", "postgresql://finalstate:s3cret@127.0.0.1:9/airflow"):
        started = time.monotonic()
        with pytest.raises(ServerUnavailable) as raised:
            AirflowServer(db_url=url).start()
        assert time.monotonic() - started < 15
        message = str(raised.value)
        assert "s3cret" not in message
        assert url.replace("s3cret", "***") in message
    assert server.row(server.open_attempt(1, 0).run_id).state == "running"  # the running server is untouched


# -- attempts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("try_number,max_tries", [(1, 0), (1, 1), (2, 1), (1, 3), (3, 3), (4, 3)])
def test_open_attempt_runs_the_ti_and_the_server_decides_should_retry(server, try_number, max_tries):
    attempt = server.open_attempt(try_number, max_tries)
    assert server.row(attempt.run_id).state == "running"
    assert (server.row(attempt.run_id).try_number, server.row(attempt.run_id).max_tries) == (try_number, max_tries)
    assert attempt.context.max_tries == max_tries
    assert attempt.context.should_retry == (max_tries != 0 and try_number <= max_tries)


def test_a_typical_attempt_is_recorded_exchange_by_exchange(server, client):
    attempt = server.open_attempt(1, 1)
    assert heartbeat(client, attempt.ti_id) == 204
    assert succeed(client, attempt.ti_id) == 204
    assert server.row(attempt.run_id).state == "success"
    assert [(e.call, e.attempt, e.method, e.name, e.status) for e in client.exchanges] == [
        (1, 1, "PUT", "heartbeat", 204), (2, 1, "PATCH", "succeed", 204)]
    assert client.exchanges[1].path == f"/task-instances/{attempt.ti_id}/state"


def test_a_second_state_update_on_a_ti_that_is_not_running_is_409(server, client):
    attempt = server.open_attempt(1, 1)
    assert finish(client, attempt.ti_id, "failed") == 204
    assert finish(client, attempt.ti_id, "failed") == 200  # the same state again: a no-op
    assert succeed(client, attempt.ti_id) == 409
    assert finish(client, attempt.ti_id, "skipped") == 409
    assert heartbeat(client, attempt.ti_id) == 409
    assert server.row(attempt.run_id).state == "failed"


def test_the_retry_path_archives_the_try_and_gives_the_live_row_a_new_id(server, client):
    attempt = server.open_attempt(1, 1)
    assert retry(client, attempt.ti_id) == 204
    live = server.ti_id(attempt.run_id)
    assert live != attempt.ti_id
    assert server.row(attempt.run_id) == RowState("up_for_retry", 1, 1)
    assert heartbeat(client, attempt.ti_id) == 410  # the old id is in the history table
    assert retry(client, attempt.ti_id) == 404  # state updates do not look there
    assert retry(client, live) == 200
    assert server.requeue(attempt.run_id) == RowState("queued", 2, 1)
    second = server.run_attempt(attempt.run_id)
    assert second.ti_id == live and second.context.should_retry is False
    assert succeed(client, live) == 204


# -- actors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("state,then_succeed", [("success", 200), ("failed", 409)])
def test_a_user_marking_the_running_ti(server, client, state, then_succeed):
    attempt = server.open_attempt(1, 1)
    assert server.mark(attempt.run_id, state)
    assert server.row(attempt.run_id).state == state
    assert heartbeat(client, attempt.ti_id) == 409
    assert succeed(client, attempt.ti_id) == then_succeed


def test_a_user_clearing_the_running_ti(server, client):
    attempt = server.open_attempt(1, 1)
    server.clear(attempt.run_id)
    assert server.row(attempt.run_id).state == "restarting"
    assert server.ti_id(attempt.run_id) != attempt.ti_id
    assert heartbeat(client, attempt.ti_id) == 410
    assert succeed(client, attempt.ti_id) == 404
    restarted = server.run_attempt(attempt.run_id)
    assert restarted.context.should_retry is True  # a RESTARTING TI may always retry


def test_a_user_clearing_a_finished_ti_gives_it_a_new_budget(server, client):
    attempt = server.open_attempt(2, 1, retries=1)
    assert succeed(client, attempt.ti_id) == 204
    server.clear(attempt.run_id)
    assert server.row(attempt.run_id) == RowState(None, 2, 3)  # max_tries = try_number + task.retries
    assert server.ti_id(attempt.run_id) != attempt.ti_id
    assert server.requeue(attempt.run_id) == RowState("queued", 3, 3)
    assert server.run_attempt(attempt.run_id).context.should_retry is True


def test_a_user_deleting_the_running_ti(server, client):
    attempt = server.open_attempt(1, 1)
    server.delete(attempt.run_id)
    assert server.row(attempt.run_id) is None
    assert heartbeat(client, attempt.ti_id) == 404
    assert succeed(client, attempt.ti_id) == 404


@pytest.mark.parametrize("try_number,max_tries,expected,new_id", [
    (1, 1, "up_for_retry", True), (2, 1, "failed", False), (1, 0, "failed", False)])
def test_the_schedulers_heartbeat_timeout(server, client, try_number, max_tries, expected, new_id):
    attempt = server.open_attempt(try_number, max_tries)
    assert server.heartbeat_timeout(attempt.run_id).state == expected
    assert (server.ti_id(attempt.run_id) != attempt.ti_id) == new_id
    assert heartbeat(client, attempt.ti_id) == (410 if new_id else 409)


def test_the_heartbeat_timeout_leaves_a_finished_ti_alone(server, client):
    attempt = server.open_attempt(1, 1)
    assert succeed(client, attempt.ti_id) == 204
    assert server.heartbeat_timeout(attempt.run_id).state == "success"


# -- the client's retries and the transport's faults ----------------------------------------------


def test_the_client_makes_airflows_default_number_of_attempts_on_a_5xx(server):
    from airflow.sdk.api.client import ServerResponseError
    from airflow.sdk.configuration import conf

    assert default_attempts() == conf.getint("workers", "execution_api_retries") == 5
    attempt = server.open_attempt(1, 1)
    c = server.client(faults=(TransportFault("succeed", "5xx", times=None),))
    with pytest.raises(ServerResponseError) as raised:
        c.task_instances.succeed(attempt.ti_id, now(), [], [], None)
    assert raised.value.response.status_code == 500
    assert [(e.attempt, e.status, e.server_status) for e in c.exchanges] == [(n, 500, None) for n in range(1, 6)]
    assert server.row(attempt.run_id).state == "running"

    c = server.client(faults=(TransportFault("succeed", "5xx", times=4),))
    c.task_instances.succeed(attempt.ti_id, now(), [], [], None)
    assert [e.status for e in c.exchanges] == [500, 500, 500, 500, 204]
    assert server.row(attempt.run_id).state == "success"


@pytest.mark.parametrize("kind,error", [("refuse", "ConnectError"), ("timeout", "ConnectTimeout")])
def test_a_request_that_never_reaches_the_server_is_retried(server, kind, error):
    attempt = server.open_attempt(1, 1)
    c = server.client(attempts=2, faults=(TransportFault("finish", kind),))
    c.task_instances.finish(attempt.ti_id, "failed", now(), None)
    assert [(e.error, e.status) for e in c.exchanges] == [(error, None), (None, 204)]
    assert server.row(attempt.run_id).state == "failed"


def test_a_lost_answer_is_retried_against_what_the_server_already_did(server):
    from airflow.sdk.api.client import ServerResponseError

    attempt = server.open_attempt(1, 1)
    c = server.client(faults=(TransportFault("succeed", "lost"),))
    c.task_instances.succeed(attempt.ti_id, now(), [], [], None)  # the retry finds it done: 200
    assert [(e.status, e.server_status) for e in c.exchanges] == [(None, 204), (200, 200)]

    attempt = server.open_attempt(1, 1)
    c = server.client(faults=(TransportFault("retry", "lost"),))
    with pytest.raises(ServerResponseError) as raised:  # the retry archived the id it is retried with
        c.task_instances.retry(attempt.ti_id, now(), None)
    assert raised.value.response.status_code == 404
    assert server.row(attempt.run_id).state == "up_for_retry"


def test_the_loopback_server_starts_serves_and_stops_cleanly(server):
    before = {t.ident for t in threading.enumerate()}
    loopback = LoopbackServer(server)
    port = int(loopback.base_url.split(":")[2].split("/")[0])
    c = loopback.client()
    attempt = server.open_attempt(1, 1)
    assert heartbeat(c, attempt.ti_id) == 204
    assert succeed(c, attempt.ti_id) == 204
    assert c.exchanges[-1].path == f"/execution/task-instances/{attempt.ti_id}/state"
    c.close()
    loopback.close()
    assert not loopback._thread.is_alive()
    # Threads born meanwhile may only be the in-process app's own AnyIO workers (open_attempt used it).
    assert {t.name for t in threading.enumerate() if t.ident not in before} <= {"AnyIO worker thread"}
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
