"""A private PostgreSQL server from a PyPI wheel: started with no root and no manual step, never left running.

The binaries are those of the ``pgserver`` wheel (PostgreSQL 16, in ``pgserver/pginstall/bin``;
the ``dev`` extra installs it). Only its binaries are used: its Python manager, run as root,
adds a system user and changes directory modes, which a checker has no business doing.

PostgreSQL refuses to run as root. Run as root, ``initdb`` and the postmaster run as the
unprivileged ``nobody`` (``subprocess``'s ``user``/``group``), in a home it owns; run as anyone
else, as that user. The cluster lives in ``home`` (default ``build/postgres/``): ``data/``,
``postgres.log``, the Unix socket (no TCP port is opened), ``users/`` (one empty file per handle
using it, named by its process's pid) and the lock files. Durability is switched off (``fsync``,
``synchronous_commit``, ``full_page_writes``): the databases are scratch, rebuilt from Airflow's
migrations whenever lost.

One cluster per ``home``, shared by the processes of one machine (pytest-xdist workers): the
first ``start`` launches it, each handle (``LocalPostgres``) registers itself in ``users/``, the
last ``close`` (or ``atexit``) stops it. A killed run leaves a postmaster and users that are gone: the next
``start`` drops the dead users and reuses that postmaster if it answers (else stops it and
launches another), so the next run's ``close`` stops it. Databases: one per worker, named by
the xdist worker id and the pid (``worker_database``), cloned from a template database; those
of processes that are gone are dropped on the next ``worker_database``.

Every failure is a ``PostgresUnavailable`` naming what failed, where, and the log's last lines.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import attrs

from impl.places import build_dir

HOME = build_dir("postgres")
#: The environment variable that chooses the Execution API server's database (``--server-db`` sets it).
SERVER_DB_ENV = "FINALSTATE_SERVER_DB"
#: ``--server-db`` values that are not URLs: the embedded SQLite copy (the default), this module's cluster.
SQLITE, LOCAL = "sqlite", "local"
SUPERUSER = "postgres"
PORT = 5432  # names the socket file only: no TCP port is opened
#: The user the cluster runs as when this process is root (PostgreSQL refuses root).
UNPRIVILEGED = "nobody"
_SETTINGS = {"listen_addresses": "", "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
             "max_connections": "200"}
_START_TIMEOUT = 30
_STOP_TIMEOUT = 20
_SOCKET_PATH_MAX = 100  # sun_path holds 107 bytes, ".s.PGSQL.5432" included


class PostgresUnavailable(RuntimeError):
    """The local PostgreSQL cannot be had: the wheel is missing, or it did not start (the message says why)."""


@attrs.frozen
class Postmaster:
    """A running postmaster as its ``postmaster.pid`` file describes it."""

    pid: int
    data_dir: Path
    socket_dir: Path
    port: int

    @classmethod
    def read(cls, data_dir: Path) -> Postmaster | None:
        """The postmaster ``data_dir/postmaster.pid`` names, if that process is alive and serves ``data_dir``."""
        try:
            lines = (data_dir / "postmaster.pid").read_text().splitlines()
            pid, port, socket_dir = int(lines[0]), int(lines[3]), Path(lines[4])
        except (OSError, ValueError, IndexError):
            return None
        return cls(pid, data_dir, socket_dir, port) if pid in postmasters(data_dir) else None


def postmasters(data_dir: Path) -> list[int]:
    """The pids of the postmasters serving ``data_dir`` (a process census: any ``postgres -D data_dir``)."""
    import psutil

    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and "-D" in cmdline and str(data_dir) in cmdline:
            found.append(process.pid)
    return found


def stop_postmasters(data_dir: Path) -> None:
    """End every postmaster serving ``data_dir`` (immediate shutdown): for a data directory about to go."""
    for pid in postmasters(data_dir):
        _end(pid)


def bin_dir() -> Path:
    """The directory of the wheel's PostgreSQL binaries; ``PostgresUnavailable`` when the wheel is not installed.

    Found without importing ``pgserver`` (its import sets up state of its own).
    """
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresUnavailable("the local PostgreSQL needs the pgserver wheel, which is not installed: "
                                  "pip install -e '.[dev]' (it has wheels for x86-64 Linux, macOS and Windows)")
    path = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    if not (path / "postgres").is_file():
        raise PostgresUnavailable(f"the pgserver wheel has no PostgreSQL binaries at {path}")
    return path


#: A worker's database: ``finalstate_w_<xdist worker id or main>_<pid>`` (the pid finds the stale ones).
_WORKER_DATABASE = re.compile(r"finalstate_w_[a-z0-9]+_(\d+)")


def worker_name() -> str:
    """This process's database name (``_WORKER_DATABASE``)."""
    worker = re.sub(r"[^a-z0-9]", "", os.environ.get("PYTEST_XDIST_WORKER", "main").lower()) or "main"
    return f"finalstate_w_{worker}_{os.getpid()}"


class LocalPostgres:
    """The cluster in ``home``, started by ``start`` (idempotent), released by ``close`` (stopped by the last user)."""

    def __init__(self, home: str | os.PathLike | None = None):
        self.home = Path(home).resolve() if home is not None else HOME
        self.data_dir = self.home / "data"
        self.log = self.home / "postgres.log"
        self.postmaster: Postmaster | None = None
        self.reused: int | None = None  # the pid of a killed run's postmaster this start took over
        self._databases: list[str] = []
        self._user = self.home / "users" / f"{os.getpid()}.{id(self):x}"

    # -- lifecycle

    def start(self) -> LocalPostgres:
        """Initialise the data directory if new, reuse the running postmaster or launch one; register this process."""
        if self.postmaster is not None:
            return self
        bins = bin_dir()
        with self.locked("cluster"):
            self._prepare(bins)
            self._drop_dead_users()
            running = Postmaster.read(self.data_dir)
            if running is not None and not self._users() and self._answers(running):
                self.reused = running.pid  # left by a killed run: ours to stop when we are done
            elif running is not None and not self._answers(running):
                self._stop(bins, running)
                running = None
            self.postmaster = running or self._launch(bins)
            self._user.touch()
        atexit.register(self.close)
        return self

    def close(self) -> None:
        """Drop this process's databases, unregister it; the last user stops the postmaster. Idempotent."""
        atexit.unregister(self.close)
        if self.postmaster is None:
            return
        with contextlib.suppress(PostgresUnavailable):
            for name in self._databases:
                self.drop_database(name)
        self._databases.clear()
        with self.locked("cluster"):
            with contextlib.suppress(FileNotFoundError):
                self._user.unlink()
            self._drop_dead_users()
            if not self._users():
                running = Postmaster.read(self.data_dir)
                if running is not None:
                    self._stop(bin_dir(), running)
        self.postmaster = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def locked(self, name: str):
        """An exclusive lock, ``name``, over this cluster for the processes of the machine (``flock`` on a file in home)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # -- databases

    def url(self, database: str = SUPERUSER) -> str:
        """The SQLAlchemy URL of ``database`` (driver psycopg 3, over the Unix socket)."""
        pm = self._started()
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={pm.socket_dir}&port={pm.port}"

    def databases(self) -> set[str]:
        return {row[0] for row in self.execute("select datname from pg_database")}

    def create_database(self, name: str, template: str | None = None) -> None:
        """``CREATE DATABASE name [TEMPLATE template]``; the template must have no connections."""
        _check_name(name)
        clause = ""
        if template is not None:
            _check_name(template)
            clause = f" template {template}"
        self.execute(f"create database {name}{clause}")

    def drop_database(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS name WITH (FORCE)``: its connections are ended first."""
        _check_name(name)
        self.execute(f"drop database if exists {name} with (force)")

    def rename_database(self, name: str, new: str) -> None:
        _check_name(name)
        _check_name(new)
        self.execute(f"alter database {name} rename to {new}")

    def worker_database(self, template: str) -> str:
        """A fresh database for this process (``worker_name``), cloned from ``template``; dropped at ``close``.

        The databases of processes that are gone (a killed run's) are dropped first.
        """
        name = worker_name()
        for stale in self.databases():
            match = _WORKER_DATABASE.fullmatch(stale)
            if match and not alive(int(match.group(1))):
                self.drop_database(stale)
        self.drop_database(name)
        with self.locked("template"):  # a template being made is not cloned half-way
            self.create_database(name, template)
        self._databases.append(name)
        return name

    def execute(self, sql: str) -> list[tuple]:
        """Run ``sql`` on the ``postgres`` database in autocommit; its rows (none for a statement)."""
        import psycopg

        pm = self._started()
        try:
            with psycopg.connect(host=str(pm.socket_dir), port=pm.port, user=SUPERUSER, dbname=SUPERUSER,
                                 autocommit=True, connect_timeout=5) as conn:
                cursor = conn.execute(sql)
                return cursor.fetchall() if cursor.description else []
        except psycopg.Error as e:
            raise PostgresUnavailable(f"the local PostgreSQL in {self.data_dir}: {sql!r} failed: "
                                      f"{str(e).strip()}") from None

    # -- the cluster

    def _started(self) -> Postmaster:
        if self.postmaster is None:
            raise PostgresUnavailable(f"the local PostgreSQL in {self.data_dir} is not started")
        return self.postmaster

    def _prepare(self, bins: Path) -> None:
        """Make home owned by the user the cluster runs as, and run ``initdb`` there unless it was done."""
        as_user = _run_as()
        if as_user:
            _check_reachable(self.home, as_user["user"])
            _check_reachable(bins / "postgres", as_user["user"])
        for path in (self.home, self.home / "users"):
            path.mkdir(parents=True, exist_ok=True)
        if as_user:
            os.chown(self.home, as_user["user"], as_user["group"])
        if (self.data_dir / "PG_VERSION").exists():
            return
        stop_postmasters(self.data_dir)  # one serving a data directory deleted under it
        if self.data_dir.is_dir():
            import shutil

            shutil.rmtree(self.data_dir)  # a half-made one (initdb was killed)
        self._run(bins, ["initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                         "--no-sync", "--no-instructions"], "initdb")

    def _launch(self, bins: Path) -> Postmaster:
        socket_dir = self._socket_dir()
        options = " ".join(f"-c {key}={shlex.quote(value)}" for key, value in _SETTINGS.items())
        options += f" -p {PORT} -k {shlex.quote(str(socket_dir))}"
        self._run(bins, ["pg_ctl", "-D", str(self.data_dir), "-l", str(self.log), "-o", options, "-w",
                         "-t", str(_START_TIMEOUT), "start"], "pg_ctl start")
        started = Postmaster.read(self.data_dir)
        if started is None:
            raise PostgresUnavailable(f"pg_ctl said the local PostgreSQL in {self.data_dir} started, but no "
                                      f"postmaster serves it{self._log_tail()}")
        return started

    def _stop(self, bins: Path, running: Postmaster) -> None:
        """``pg_ctl stop -m fast``; if the postmaster is still there after that, signals until it is gone."""
        with contextlib.suppress(PostgresUnavailable):
            self._run(bins, ["pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(_STOP_TIMEOUT),
                             "stop"], "pg_ctl stop")
        _end(running.pid)

    def _answers(self, running: Postmaster) -> bool:
        import psycopg

        try:
            psycopg.connect(host=str(running.socket_dir), port=running.port, user=SUPERUSER, dbname=SUPERUSER,
                            connect_timeout=5).close()
        except psycopg.Error:
            return False
        return True

    def _socket_dir(self) -> Path:
        """Home itself, unless its path is too long for a Unix socket: then a directory in /tmp named after it."""
        if len(str(self.home)) + len(f"/.s.PGSQL.{PORT}") <= _SOCKET_PATH_MAX:
            return self.home
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        socket_dir = Path("/tmp") / f"finalstate-pg-{digest}"
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        as_user = _run_as()
        if as_user:
            os.chown(socket_dir, as_user["user"], as_user["group"])
        return socket_dir

    def _run(self, bins: Path, argv: list[str], what: str) -> None:
        try:
            done = subprocess.run([str(bins / argv[0]), *argv[1:]], capture_output=True, text=True,
                                  timeout=_START_TIMEOUT + 10, stdin=subprocess.DEVNULL, **_run_as())
        except subprocess.TimeoutExpired:
            raise PostgresUnavailable(f"{what} for the local PostgreSQL in {self.data_dir} did not finish within "
                                      f"{_START_TIMEOUT + 10} s{self._log_tail()}") from None
        except OSError as e:
            raise PostgresUnavailable(f"{what} for the local PostgreSQL in {self.data_dir} could not run: {e}") from None
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PostgresUnavailable(f"{what} for the local PostgreSQL in {self.data_dir} failed "
                                      f"(exit {done.returncode}): {' / '.join(said)}{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()[-5:]
        except OSError:
            return ""
        return "; its log (" + str(self.log) + ") ends: " + " / ".join(lines) if lines else ""

    def _users(self) -> list[Path]:
        """The handles registered, each a file named ``<pid>.<handle>``."""
        users = self.home / "users"
        return [p for p in users.iterdir() if p.name.split(".")[0].isdigit()] if users.is_dir() else []

    def _drop_dead_users(self) -> None:
        for user in self._users():
            if not alive(int(user.name.split(".")[0])):
                with contextlib.suppress(FileNotFoundError):
                    user.unlink()


def _run_as() -> dict:
    """``subprocess`` arguments that run the cluster as ``nobody`` when this process is root; else none."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        entry = pwd.getpwnam(UNPRIVILEGED)
    except KeyError:
        raise PostgresUnavailable(f"PostgreSQL refuses to run as root, and there is no {UNPRIVILEGED!r} user to "
                                  "run it as") from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _check_reachable(path: Path, uid: int) -> None:
    """Raise unless every directory above ``path`` lets others through (the cluster's user is not root)."""
    for parent in path.resolve().parents:
        st = parent.stat()
        if st.st_uid != uid and not st.st_mode & 0o001:
            raise PostgresUnavailable(f"PostgreSQL refuses to run as root and runs as {UNPRIVILEGED!r} here, who "
                                      f"cannot enter {parent} (mode {st.st_mode & 0o777:o}); put its home "
                                      f"({path}) where others may pass")


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"not a plain PostgreSQL database name: {name!r}")


def _end(pid: int) -> None:
    """Stop the postmaster ``pid``: SIGQUIT (immediate shutdown), then SIGKILL; return once it is gone."""
    for sig in (signal.SIGQUIT, signal.SIGKILL):
        if ended(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while not ended(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    if not ended(pid):
        raise PostgresUnavailable(f"the postmaster {pid} did not stop, even on SIGKILL")


def ended(pid: int) -> bool:
    """No such process, or only its exit status is left (a zombie its parent, not us, has yet to reap)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
