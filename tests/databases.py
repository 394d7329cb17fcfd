"""Private database servers for the tests: PostgreSQL 15, MariaDB and Redis as Debian installs
them (scripts/setup.sh), each started in a temporary directory on a free loopback port and
stopped afterwards. The system's own services (and their data) are never touched.

    with postgres() as pg:       # pg.dsn: postgres://gotrace:...@127.0.0.1:PORT/gotrace?sslmode=disable
    with mariadb() as my:        # my.dsn: gotrace:...@tcp(127.0.0.1:PORT)/gotrace
    with redis() as rd:          # rd.dsn: 127.0.0.1:PORT

Each yields a :class:`Server` once it answers. A server that cannot start raises
:class:`ServerError`, one line with the end of its log.

Run as root (the tests are), PostgreSQL runs as the ``postgres`` user and MariaDB as
``mysql``, their directories given to them; as anyone else both run as that user.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tracing import free_port, terminate

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MARIADBD = Path("/usr/sbin/mariadbd")
REDIS_SERVER = Path("/usr/bin/redis-server")

HOST = "127.0.0.1"
USER = "gotrace"
PASSWORD = "gotrace-pw"
DATABASE = "gotrace"

START_TIMEOUT = 60.0  # seconds; they take one or two on an idle machine


class ServerError(RuntimeError):
    """A database server did not start; the message is one line ending with its log's tail."""


@dataclass(frozen=True)
class Server:
    """A running private database server."""

    kind: str  # "postgres", "mariadb" or "redis"
    host: str
    port: int
    # What the Go test programs take: sqlclient -pq / -pgx and pgxclient -dsn (PostgreSQL),
    # sqlclient -mysql (MariaDB), redisclient -addr (Redis).
    dsn: str
    user: str  # "" for Redis
    password: str  # "" for Redis
    database: str  # "" for Redis
    pid: int  # the server's main process
    workdir: Path  # its data, socket and log
    log: Path
    startup_seconds: float  # from the first command to answering

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


# ---------------------------------------------------------------------------
# Shared mechanics


def _owner(user: str) -> str | None:
    """The user to run a server as: `user` when we are root, else ourselves (None)."""
    return user if os.geteuid() == 0 else None


def _workdir(kind: str, owner: str | None) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"gotrace-{kind}-"))
    if owner:
        shutil.chown(path, owner, owner)
    return path


def _tail(log: Path, lines: int = 4) -> str:
    """The last lines of log that report an error (or, when none does, its last lines),
    joined into one."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in kept if re.search(r"error|fatal|panic|abort", line, re.I)]
    return " | ".join((errors or kept)[-lines:]) or "(empty log)"


def _run(kind: str, command: list[str], log: Path, owner: str | None, cwd: Path,
         timeout: float = START_TIMEOUT) -> None:
    """Run a set-up command to its end, its output appended to log; ServerError if it fails."""
    with log.open("a") as out:
        try:
            res = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, cwd=cwd, env=_env(), user=owner,
                                 group=owner, extra_groups=[] if owner else None,
                                 timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ServerError(f"{kind}: {Path(command[0]).name} failed: {e}") from e
    if res.returncode != 0:
        raise ServerError(f"{kind}: {Path(command[0]).name} exited with {res.returncode}: "
                          f"{_tail(log)}")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "MYSQL", "LC_"))}
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8")
    return env


def _wait(kind: str, proc: subprocess.Popen, ready: Callable[[], bool], log: Path,
          timeout: float = START_TIMEOUT) -> None:
    """Until ready() is true; ServerError when the server exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while not ready() or proc.poll() is not None:
        if proc.poll() is not None:
            raise ServerError(f"{kind} exited with {proc.returncode} while starting: "
                              f"{_tail(log)}")
        if time.monotonic() > deadline:
            raise ServerError(f"{kind} did not answer in {timeout:.0f} s: {_tail(log)}")
        time.sleep(0.05)


@contextlib.contextmanager
def _serving(kind: str, command: list[str], log: Path, owner: str | None, cwd: Path,
             stop_signal: int = signal.SIGTERM) -> Iterator[subprocess.Popen]:
    """The server process, its output appended to log; stopped by stop_signal (SIGKILL
    after 20 s) on exit."""
    with log.open("a") as out:
        try:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=cwd, env=_env(), user=owner,
                                    group=owner, extra_groups=[] if owner else None,
                                    start_new_session=True)
        except OSError as e:
            raise ServerError(f"{kind}: cannot run {command[0]}: {e}") from e
    try:
        yield proc
    finally:
        terminate(proc, timeout=20, sig=stop_signal)


def _port_taken(log: Path) -> bool:
    """Whether the server's log says somebody took its port between free_port() and its
    bind (then it is started again on another)."""
    try:
        text = log.read_text(errors="replace")[-4000:].lower()
    except OSError:
        return False
    return "address already in use" in text or "could not create any tcp/ip sockets" in text


def _tcp_answers(port: int, send: bytes = b"", expect: bytes = b"", host: str = HOST) -> bool:
    """Whether host:port accepts a connection (and answers send with something starting
    with expect)."""
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            if send:
                s.sendall(send)
            return s.recv(len(expect) or 1).startswith(expect)
    except OSError:
        return False


# ---------------------------------------------------------------------------
# PostgreSQL


@contextlib.contextmanager
def postgres() -> Iterator[Server]:
    """A private PostgreSQL 15 (Debian's /usr/lib/postgresql/15/bin): initdb in a temporary
    directory, then `postgres` on a free port of 127.0.0.1 with its socket there too. Its
    role gotrace (password PASSWORD, password authentication over TCP: scram-sha-256) owns
    its database gotrace; the superuser postgres is trusted on the Unix socket only.
    Durability is off (fsync, synchronous_commit, full_page_writes)."""
    t0 = time.monotonic()
    owner = _owner("postgres")
    workdir = _workdir("postgres", owner)
    log = workdir / "postgres.log"
    data = workdir / "data"
    try:
        _run("postgres", [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                          "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                          "--locale=C", "--no-sync", "--no-instructions"],
             log, owner, workdir)
        for attempt in range(3):
            port = free_port()
            command = [str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port),
                       "-k", str(workdir), "-c", f"listen_addresses={HOST}",
                       "-c", "fsync=off", "-c", "synchronous_commit=off",
                       "-c", "full_page_writes=off", "-c", "max_connections=50",
                       "-c", "shared_buffers=32MB", "-c", "dynamic_shared_memory_type=mmap"]
            psql = [str(PG_BIN / "psql"), "-X", "-q", "-h", str(workdir), "-p", str(port),
                    "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1"]

            def ready(psql=psql) -> bool:
                return subprocess.run([*psql, "-Atc", "SELECT 1"], capture_output=True,
                                      env=_env()).returncode == 0

            with _serving("postgres", command, log, owner, workdir,
                          stop_signal=signal.SIGINT) as proc:  # SIGINT: "fast" shutdown
                try:
                    _wait("postgres", proc, ready, log)
                except ServerError:
                    if attempt < 2 and proc.poll() is not None and _port_taken(log):
                        continue
                    raise
                _run("postgres", [*psql,
                                  "-c", f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'",
                                  "-c", f"CREATE DATABASE {DATABASE} OWNER {USER}"],
                     log, None, workdir)
                yield Server(
                    kind="postgres", host=HOST, port=port,
                    dsn=f"postgres://{USER}:{PASSWORD}@{HOST}:{port}/{DATABASE}"
                        "?sslmode=disable",
                    user=USER, password=PASSWORD, database=DATABASE, pid=proc.pid,
                    workdir=workdir, log=log, startup_seconds=time.monotonic() - t0)
                return
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------
# MariaDB

# InnoDB made small and careless: a throw-away server.
_MARIADB_TUNING = ("--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M",
                   "--innodb-flush-log-at-trx-commit=0", "--skip-innodb-doublewrite",
                   "--skip-name-resolve")


@contextlib.contextmanager
def mariadb() -> Iterator[Server]:
    """A private MariaDB (Debian's /usr/sbin/mariadbd): mariadb-install-db in a temporary
    directory (which also creates the database gotrace and the user gotrace@'%' with password
    PASSWORD and every privilege on it), then mariadbd on a free port of 127.0.0.1, its
    socket in that directory. Grant tables are on: the Go driver logs in for real
    (mysql_native_password)."""
    t0 = time.monotonic()
    owner = _owner("mysql")
    workdir = _workdir("mariadb", owner)
    log = workdir / "mariadb.log"
    data = workdir / "data"
    init = workdir / "init.sql"
    # Bootstrap runs without grant tables; FLUSH PRIVILEGES loads them so that CREATE USER
    # works.
    init.write_text(f"FLUSH PRIVILEGES;\n"
                    f"CREATE DATABASE {DATABASE};\n"
                    f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';\n"
                    f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'%';\n")
    user_flag = [f"--user={owner}"] if owner else []
    try:
        _run("mariadb", ["mariadb-install-db", "--no-defaults", f"--datadir={data}", *user_flag,
                         "--skip-test-db", "--auth-root-authentication-method=socket",
                         f"--extra-file={init}", *_MARIADB_TUNING],
             log, None, workdir)
        for attempt in range(3):
            port = free_port()
            command = [str(MARIADBD), "--no-defaults", f"--datadir={data}", *user_flag,
                       f"--port={port}", f"--bind-address={HOST}",
                       f"--socket={workdir / 'mariadbd.sock'}",
                       f"--pid-file={workdir / 'mariadbd.pid'}", f"--tmpdir={workdir}",
                       *_MARIADB_TUNING]
            client = ["mariadb", "--no-defaults", "-h", HOST, "-P", str(port), "-u", USER,
                      f"-p{PASSWORD}", DATABASE, "-e", "SELECT 1"]

            def ready(client=client, port=port) -> bool:
                return _tcp_answers(port) and subprocess.run(
                    client, capture_output=True, env=_env()).returncode == 0

            with _serving("mariadb", command, log, None, workdir) as proc:
                try:
                    _wait("mariadb", proc, ready, log)
                except ServerError:
                    if attempt < 2 and proc.poll() is not None and _port_taken(log):
                        continue
                    raise
                yield Server(
                    kind="mariadb", host=HOST, port=port,
                    dsn=f"{USER}:{PASSWORD}@tcp({HOST}:{port})/{DATABASE}",
                    user=USER, password=PASSWORD, database=DATABASE, pid=proc.pid,
                    workdir=workdir, log=log, startup_seconds=time.monotonic() - t0)
                return
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------
# Redis


@contextlib.contextmanager
def redis(host: str = HOST, port: int | None = None, extra: Sequence[str] = ()
          ) -> Iterator[Server]:
    """A private Redis (Debian's /usr/bin/redis-server) on host (127.0.0.1 unless told: an
    address other namespaces reach, for tests/hosts.py, then with protected mode off), on
    port or else a free one, without persistence (no RDB snapshots, no append-only file), its
    directory a temporary one.
    Given the port of one just stopped, it is Redis restarted, empty. extra: more
    redis-server options (TLS, ACL users)."""
    t0 = time.monotonic()
    workdir = _workdir("redis", None)
    log = workdir / "redis.log"
    wanted = port
    try:
        for attempt in range(3):
            port = wanted or free_port(host)
            command = [str(REDIS_SERVER), "--port", str(port), "--bind", host, "--save", "",
                       "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no",
                       "--logfile", "",
                       # Without a password Redis answers only loopback clients otherwise.
                       *([] if ipaddress.ip_address(host).is_loopback
                         else ["--protected-mode", "no"]), *extra]
            with _serving("redis", command, log, None, workdir) as proc:
                try:
                    _wait("redis", proc, lambda port=port: _tcp_answers(
                        port, b"PING\r\n", b"+PONG", host), log)
                except ServerError:
                    if (attempt < 2 and not wanted and proc.poll() is not None
                            and _port_taken(log)):
                        continue
                    raise
                yield Server(kind="redis", host=host, port=port, dsn=f"{host}:{port}",
                             user="", password="", database="", pid=proc.pid,
                             workdir=workdir, log=log,
                             startup_seconds=time.monotonic() - t0)
                return
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
