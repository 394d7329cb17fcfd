"""The database call workloads: a test program that serves HTTP and, per GET /two, makes two
calls to a real database server on the request's context. testapps/sqlclient through
database/sql and lib/pq, pgxclient through pgx's own API (both on PostgreSQL) and redisclient
through gopkg.in/redis.v5 (a GET and an INCR), each against a private server of
tests/databases.py started for the workload (Debian's PostgreSQL 15 and Redis, on a free
loopback port, their data in a temporary directory).

The probe-hit workloads (bench.probe_hits) run them traced by PID and called by httpclient;
the target-side rounds (bench.harness, with bench.overhead) call them with testapps/loadgen,
the program and its database server sharing the server's CPU (bench.cpus).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import databases  # tests/databases.py (bench/__init__.py)

from bench.apps import Apps, Server, serve_db_client
from bench.cpus import pin_process

QUERIES_PER_REQUEST = 2  # what GET /two makes, in every program
HANDLER = "two queries"  # the name of the target-side condition
# The load generator's connections, at a fixed rate and flat out: database/sql keeps two idle
# connections by default (SetMaxIdleConns), so that more requests at once would have it close
# connections it just used and open (and log in on: SCRAM) new PostgreSQL ones rather than
# query.
CONNECTIONS = 2


@dataclass(frozen=True)
class DbWorkload:
    app: str  # the test program (an Apps field)
    database: Callable[[], contextlib.AbstractContextManager[databases.Server]]
    flag: str  # the program's flag that takes the server's Server.dsn
    path: str  # requested
    probes: str  # what the names of the library's own probe programs start with


SQL = "database/sql, lib/pq"
DB_WORKLOADS: dict[str, DbWorkload] = {
    SQL: DbWorkload("sqlclient", databases.postgres, "-pq", "/two?db=pq", "sql_"),
    "pgx": DbWorkload("pgxclient", databases.postgres, "-dsn", "/two", "pgx_"),
    "Redis, redis.v5": DbWorkload("redisclient", databases.redis, "-addr", "/two", "redis_"),
}


@contextlib.contextmanager
def serving(apps: Apps, label: str, cpus: frozenset[int] | None = None) -> Iterator[Server]:
    """The workload's database server and its test program until the block ends, both on
    cpus if given (the server's processes pinned once it answers; the backends it forks
    later inherit that)."""
    workload = DB_WORKLOADS[label]
    with workload.database() as db:
        pin_process(db.pid, cpus)
        with serve_db_client(getattr(apps, workload.app), workload.flag, db.dsn,
                             cpus=cpus) as srv:
            yield srv
