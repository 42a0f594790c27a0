"""The real Execution API server on the local PostgreSQL (``impl.server.postgres``, ``--server-db local``).

The module's server runs on the default cluster (``build/postgres``, its template database kept
from run to run); the tests of a cluster's life use private ones under /tmp (as root the cluster
runs as ``nobody``, who must be able to enter its home). One ``AirflowServer`` per process, so the
SQLite run the PostgreSQL one is compared with comes first, in this process, and is closed before
the PostgreSQL one starts. Skipped, with the reason, where the local PostgreSQL cannot start.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("airflow.api_fastapi.execution_api.app", reason="needs apache-airflow-core (the airflow extra)")
pytest.importorskip("psycopg", reason="needs psycopg 3 (the dev extra)")

from impl.server.airflow_api import ATTEMPT_TABLES, AirflowServer, ServerUnavailable, quiet_logs  # noqa: E402
from impl.server.postgres import (  # noqa: E402
    LOCAL,
    SERVER_DB_ENV,
    LocalPostgres,
    PostgresUnavailable,
    ended,
    postmasters,
    stop_postmasters,
    worker_name,
)
from impl.supervisor_process.census import census  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def now():
    return dt.datetime.now(dt.timezone.utc)


def private_home() -> Path:
    """A directory under /tmp that the cluster's user (``nobody`` when root) may enter."""
    home = Path(tempfile.mkdtemp(prefix="finalstate-pg-test-"))
    home.chmod(0o755)
    return home


@pytest.fixture(scope="module")
def cluster():
    """The default cluster can start (else the module is skipped, with the reason)."""
    try:
        LocalPostgres().start().close()
    except PostgresUnavailable as e:
        pytest.skip(f"the local PostgreSQL cannot start here: {e}")


@pytest.fixture
def home(cluster):
    path = private_home()
    yield path
    for data in path.glob("*/data"):  # a test that failed half-way leaves no postmaster behind
        stop_postmasters(data)
    shutil.rmtree(path, ignore_errors=True)


def child_env() -> dict[str, str]:
    """This environment but for the xdist worker id: a child's database is then ``finalstate_w_main_<pid>``."""
    return {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_WORKER"}


def play(server: AirflowServer) -> list:
    """A few attempts through every path that writes rows; what the server answered and the rows after each."""
    from airflow.sdk.api.client import ServerResponseError

    client = server.client()

    def status(call, *args):
        try:
            call(*args)
        except ServerResponseError as e:
            return e.response.status_code
        return client.exchanges[-1].status

    ti = client.task_instances
    seen = []
    a = server.open_attempt(1, 1)
    seen += [status(ti.heartbeat, a.ti_id, os.getpid()), status(ti.succeed, a.ti_id, now(), [], [], None),
             status(ti.finish, a.ti_id, "failed", now(), None), server.row(a.run_id)]
    a = server.open_attempt(1, 1)
    seen += [status(ti.retry, a.ti_id, now(), None), server.row(a.run_id), server.requeue(a.run_id)]
    second = server.run_attempt(a.run_id)
    seen += [second.context.should_retry, status(ti.finish, second.ti_id, "failed", now(), None), server.row(a.run_id)]
    a = server.open_attempt(2, 1)
    seen += [a.context.should_retry, server.mark(a.run_id, "failed"), status(ti.heartbeat, a.ti_id, os.getpid())]
    a = server.open_attempt(1, 1)
    server.clear(a.run_id)
    seen += [server.row(a.run_id), status(ti.heartbeat, a.ti_id, os.getpid())]
    a = server.open_attempt(1, 1)
    server.delete(a.run_id)
    seen += [server.row(a.run_id), status(ti.succeed, a.ti_id, now(), [], [], None)]
    a = server.open_attempt(1, 1)
    seen += [server.heartbeat_timeout(a.run_id), status(ti.heartbeat, a.ti_id, os.getpid())]
    server.release(client)
    return seen


def table_counts(server: AirflowServer) -> dict[str, int]:
    from sqlalchemy import inspect, text
    from airflow import settings

    engine = settings.engine
    with engine.connect() as conn:
        return {t: conn.execute(text(f'select count(*) from "{t}"')).scalar() for t in inspect(engine).get_table_names()}


@pytest.fixture(scope="module")
def on_sqlite(cluster):
    """``play`` on the embedded SQLite copy, in this process, before the PostgreSQL server starts."""
    quiet_logs()
    with AirflowServer(db_url="sqlite") as server:
        return play(server)


@pytest.fixture(scope="module")
def server(on_sqlite):
    srv = AirflowServer(db_url=LOCAL).start()
    yield srv
    srv.close()


def test_the_server_on_postgresql_answers_and_writes_as_on_sqlite(server, on_sqlite):
    assert server.url.startswith("postgresql+psycopg://") and worker_name() in server.url
    assert play(server) == on_sqlite
    assert on_sqlite[3].state == "success" and on_sqlite[-2].state == "up_for_retry"  # the play did something


def test_reset_leaves_every_table_as_the_template_has_it(server):
    server.reset()  # what earlier tests wrote
    clean = table_counts(server)
    play(server)
    played = table_counts(server)
    assert {t for t in clean if played[t] != clean[t]} == set(ATTEMPT_TABLES)
    started = time.monotonic()
    server.reset()
    elapsed = time.monotonic() - started
    assert table_counts(server) == clean
    print(f"reset after one play: {elapsed * 1000:.1f} ms")


def test_a_url_that_does_not_connect_fails_fast_naming_it(server, monkeypatch):
    socket_dir = tempfile.mkdtemp(prefix="finalstate-no-pg-")
    bad = [f"postgresql://finalstate:s3cret@/airflow?host={socket_dir}",  # no server on that socket
           "postgresql+psycopg://finalstate:s3cret@127.0.0.1:9/airflow"]  # nothing listens on port 9
    for url in bad:
        started = time.monotonic()
        with pytest.raises(ServerUnavailable) as raised:
            AirflowServer(db_url=url).start()
        assert time.monotonic() - started < 10
        assert "s3cret" not in str(raised.value) and "cannot connect to the database" in str(raised.value)
    monkeypatch.setenv(SERVER_DB_ENV, "postgres:/nowhere")
    with pytest.raises(ServerUnavailable, match="cannot connect|not a database URL"):
        AirflowServer().start()
    os.rmdir(socket_dir)
    assert server.row(server.open_attempt(1, 0).run_id).state == "running"  # the running server is untouched


def test_a_cluster_that_cannot_start_says_why_and_leaves_nothing(home):
    data = home / "old" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("9.6\n")  # a data directory of another PostgreSQL release
    started = time.monotonic()
    with pytest.raises(PostgresUnavailable, match=r"pg_ctl start for the local PostgreSQL in .*old/data failed"):
        LocalPostgres(home / "old").start()
    assert time.monotonic() - started < 30
    assert postmasters(data) == []


def test_as_root_a_home_nobody_can_enter_is_named(home):
    if os.geteuid() != 0:
        pytest.skip("only root runs the cluster as another user")
    home.chmod(0o700)
    with pytest.raises(PostgresUnavailable, match=f"runs as 'nobody' here, who cannot enter {home} "):
        LocalPostgres(home / "postgres").start()


def test_a_killed_runs_postgres_is_taken_over_and_stopped(home):
    """A run killed with SIGKILL leaves its postmaster and its database; the next start reuses it, its close stops it."""
    cluster = home / "killed"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from impl.server.postgres import LocalPostgres
        pg = LocalPostgres({str(cluster)!r}).start()
        pg.worker_database("template1")
        print(pg.postmaster.pid, flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True, env=child_env())
    try:
        left = int(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    assert postmasters(cluster / "data") == [left]  # what a killed run leaves
    stale = f"finalstate_w_main_{child.pid}"

    before = census()
    pg = LocalPostgres(cluster).start()
    try:
        assert pg.reused == left and pg.postmaster.pid == left
        assert stale in pg.databases()
        mine = pg.worker_database("template1")
        assert stale not in pg.databases() and mine in pg.databases()
    finally:
        pg.close()
    assert postmasters(cluster / "data") == []
    assert census()["children"] == before["children"] and census()["zombies"] == []


def test_a_process_that_exits_without_closing_stops_its_postgres_at_exit(home):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from impl.server.postgres import LocalPostgres
        pg = LocalPostgres({str(home / "pg")!r}).start()
        print(pg.worker_database("template1"), pg.postmaster.pid)
    """)], capture_output=True, text=True, timeout=120, cwd=REPO, env=child_env())
    database, pid = out.stdout.split()
    assert database.startswith("finalstate_w_main_"), out.stderr
    assert postmasters(home / "pg" / "data") == [] and ended(int(pid))
    assert list((home / "pg" / "users").iterdir()) == []


def test_closing_the_server_drops_its_database_and_lets_go_of_postgres(server):
    """``AirflowServer.close`` on ``local``: this process's database is dropped and it is no longer a user."""
    database = server.url.split("/")[3].split("?")[0]
    cluster = server._postgres
    assert cluster._user.exists()
    server.close()
    assert not cluster._user.exists()
    with LocalPostgres(cluster.home) as look:
        assert database not in look.databases()
    server.start()  # for any test after this one
    assert server.row(server.open_attempt(1, 0).run_id).state == "running"


def test_finalstate_server_db_names_a_database_that_does_not_connect_in_one_line():
    """``--server-db`` on the command line reaches the server (through ``FINALSTATE_SERVER_DB``); no traceback."""
    env = {k: v for k, v in os.environ.items() if k not in (SERVER_DB_ENV, "FINALSTATE_SERVER")}
    done = subprocess.run([sys.executable, "-m", "impl.frontdoor.cli", "replay", "--server", "airflow", "--server-db",
                           "postgresql://finalstate:s3cret@127.0.0.1:9/airflow", "--target", "airflow-inproc",
                           "exit 0"], capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "s3cret" not in done.stdout + done.stderr
    assert ("finalstate: airflow-inproc with --server airflow: cannot connect to the database "
            "postgresql://finalstate:***@127.0.0.1:9/airflow") in done.stderr, done.stderr[-2000:]
