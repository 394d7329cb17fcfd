"""End to end: database CLIENT spans against real servers (Debian's postgresql, mariadb-server,
redis-server, started privately by tests/databases.py). The test programs (testapps/sqlclient,
pgxclient, redisclient) run a fixed script of calls on an HTTP request's context and answer
each call they made, in order; the spans must equal those calls one for one, with the right
attributes, all children of the request's SERVER span. database/sql through lib/pq, pgx's
stdlib driver, go-sql-driver/mysql (MariaDB) and mattn/go-sqlite3 (cgo: a cgo-linked binary),
pgx v4's own API, and gopkg.in/redis.v5; on the oldest and newest Go each builds with,
stripped."""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FULL
from otlp_receiver import OtlpReceiver
from tracing import db_client, gotrace, otlp_args, probe_hits, stop

from gotrace.probes.sql_text import redact_sql
from testapps import matrix

# Text of the scripts that must never leave the traced process by default: literals in the
# statements, and the values the programs pass as arguments (never read at all).
LITERALS = ("literal-alpha", "literal-gamma", "literal-delta", "literal-batch", "param-beta",
            "31337", "987654", "4242", "literal-redis-value", "literal-hash-value",
            "literal-pipeline-value", "literal-multi-value", "gotrace:key", "gotrace:missing",
            "gotrace:counter", "gotrace:hash")

# database/sql calls (testapps/sqlclient's step names) and what their spans are named by.
SQL_STATEMENT_CALLS = frozenset({"DB.ExecContext", "DB.QueryContext", "DB.QueryRowContext",
                                 "Tx.ExecContext", "Stmt.QueryRowContext"})
SQL_OPERATION_CALLS = {"DB.BeginTx": "BEGIN", "Tx.Commit": "COMMIT", "Tx.Rollback": "ROLLBACK"}
SQL_DATABASES = {"pq": "postgresql", "pgx": "postgresql", "mysql": "mysql", "sqlite": "sqlite"}
SQL_SCRIPT_SPANS = 18  # the calls of sqlclient's script that are spans (sql_spans_expected)
SQL_PROGRAMS = ("sql_db_call", "sql_tx_call", "sql_stmt_call", "sql_db_begin", "sql_commit",
                "sql_rollback", "sql_rows_return", "sql_result_return", "sql_tx_return",
                "sql_error_return")


def cells(app: str) -> list[matrix.Cell]:
    """The app's default cells (oldest and newest Go, stripped); every Go with
    GOTRACE_MATRIX=full."""
    chosen = matrix.full_cells() if FULL else matrix.default_cells()
    return [cell for cell in chosen if cell.app == app and cell.stripped]


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as r:
        yield r


@contextlib.contextmanager
def traced_client(tmp_path: Path, receiver: OtlpReceiver, cell: matrix.Cell, *flags: str
                  ) -> Iterator[tuple[str, subprocess.Popen]]:
    """A database client test program, traced with --stats: ('host:port', the tracer)."""
    with db_client(matrix.build(cell), *flags) as (program, addr), \
            gotrace(tmp_path, "trace", "--pid", str(program.pid), "--stats",
                    *otlp_args(receiver)) as tracer:
        yield addr, tracer


def start(span: dict) -> int:
    return span["start_time_unix_nano"]


def end(span: dict) -> int:
    return span["end_time_unix_nano"]


def get_steps(addr: str, path: str) -> list[dict]:
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=60) as response:
        return json.load(response)["steps"]


def request_trace(receiver: OtlpReceiver, addr: str, path: str, spans_expected: int
                  ) -> tuple[list[dict], dict, list[dict]]:
    """(the calls the program made, the request's SERVER span, its CLIENT spans by start)."""
    receiver.clear()
    steps = get_steps(addr, path)
    spans = receiver.wait_for(spans_expected + 1, timeout=30)
    seen = [(s["kind"], s["name"], s["status"]) for s in spans]
    servers = [s for s in spans if s["kind"] == "SERVER"]
    assert len(servers) == 1, seen
    server = servers[0]
    clients = sorted((s for s in spans if s["kind"] == "CLIENT"), key=start)
    assert len(spans) == spans_expected + 1, seen
    for client in clients:
        assert client["trace_id"] == server["trace_id"], client["name"]
        assert client["parent_span_id"] == server["span_id"], client["name"]
        assert start(server) <= start(client) <= end(client) <= end(server), client["name"]
    return steps, server, clients


def assert_no_literal(spans: list[dict]) -> None:
    """No literal of the scripts in a span's name or text attributes (numbers such as times
    and ids may hold the digits of a numeric literal by chance)."""
    text = json.dumps([[span["name"], *(value for value in span["attributes"].values()
                                        if isinstance(value, str))] for span in spans])
    leaked = [literal for literal in LITERALS if literal in text]
    assert not leaked, leaked


def check_sql_span(span: dict, step: dict, system: str, port: int | None, namespace: str
                   ) -> None:
    attrs = span["attributes"]
    call, sql = step["call"], step["sql"]
    assert attrs["db.system.name"] == system, (call, sql)
    assert attrs["db.namespace"] == namespace, (call, sql)
    if call in SQL_OPERATION_CALLS:
        assert attrs["db.operation.name"] == SQL_OPERATION_CALLS[call], call
        assert span["name"] == SQL_OPERATION_CALLS[call]
        assert "db.query.text" not in attrs
    else:
        assert attrs["db.query.text"] == redact_sql(sql, mysql=system == "mysql"), call
        assert attrs["db.operation.name"] == sql.split()[0].upper(), sql
        assert span["name"] == attrs["db.query.summary"], sql
    assert (span["status"] == "ERROR") == bool(step["error"]), (call, sql, step["error"])
    assert ("error.type" in attrs) == bool(step["error"]), (call, sql)
    if port is not None:  # a network database: its server, also for calls that failed
        assert (attrs["server.address"], attrs["server.port"]) == ("127.0.0.1", port), sql


def sql_spans_expected(steps: list[dict]) -> list[dict]:
    """The calls that are spans: not a Prepare or a Stmt's Close, not the deferred Rollback
    after a Commit."""
    return [step for step in steps
            if step["call"] in SQL_STATEMENT_CALLS
            or (step["call"] in SQL_OPERATION_CALLS and not step.get("deferred"))]


@pytest.mark.parametrize("client_cell", cells("sqlclient"), ids=str)
def test_database_sql_spans_equal_the_calls(tmp_path: Path, receiver, client_cell,
                                            postgres_server, mariadb_server):
    dsns = {"pq": postgres_server.dsn, "pgx": postgres_server.dsn, "mysql": mariadb_server.dsn,
            "sqlite": str(tmp_path / "gotrace.sqlite")}
    ports = {"pq": postgres_server.port, "pgx": postgres_server.port,
             "mysql": mariadb_server.port, "sqlite": None}
    flags = [arg for name, dsn in dsns.items() for arg in (f"-{name}", dsn)]
    calls = transactions = 0
    with traced_client(tmp_path, receiver, client_cell, *flags) as (addr, tracer):
        exported = []
        for db, system in SQL_DATABASES.items():
            steps, _, spans = request_trace(receiver, addr, f"/script?db={db}",
                                            SQL_SCRIPT_SPANS)
            expected = sql_spans_expected(steps)
            calls += sum(1 for s in steps if s["call"] not in ("DB.PrepareContext", "Stmt.Close"))
            transactions += sum(1 for s in steps if s["call"] == "DB.BeginTx")
            for span, step in zip(spans, expected, strict=True):
                check_sql_span(span, step, system, ports[db],
                               dsns[db] if db == "sqlite" else postgres_server.database)
            exported += spans
        _, err = stop(tracer)
    assert_no_literal(exported)
    # Two hits per call (an entry and a RET), and per transaction the rollback database/sql
    # runs once its context is done, after the Commit or Rollback (it returns at once).
    hits = probe_hits(err)
    sql_hits = {program: hits.get(program, 0) for program in SQL_PROGRAMS}
    assert 2 * calls <= sum(sql_hits.values()) <= 2 * (calls + transactions), (calls, sql_hits)


@pytest.mark.parametrize("client_cell", cells("sqlclient")[:1], ids=str)
def test_two_queries_are_children_of_their_request(tmp_path: Path, receiver, client_cell,
                                                   postgres_server):
    with traced_client(tmp_path, receiver, client_cell, "-pq", postgres_server.dsn) as (
            addr, _):
        steps, server, spans = request_trace(receiver, addr, "/two?db=pq", 2)
    assert [step["call"] for step in steps] == ["DB.QueryRowContext"] * 2
    assert [span["attributes"]["db.query.text"] for span in spans] == [
        redact_sql(step["sql"]) for step in steps]
    assert server["name"].startswith("GET")
    assert sum(end(s) - start(s) for s in spans) <= end(server) - start(server)


# pgx's own API (testapps/pgxclient's step names): each call a span, but a batch's results
# (the batch is one span, from SendBatch to its results' Close) and the deferred Rollback
# after a Commit.
PGX_OPERATIONS = {"Conn.Begin": "BEGIN", "Tx.Commit": "COMMIT"}
PGX_NOT_SPANS = frozenset({"BatchResults.QueryRow", "BatchResults.Exec", "BatchResults.Close"})
PGX_SCRIPT_SPANS = 14  # the calls of pgxclient's script that are spans
PGX_PROGRAMS = ("pgx_call", "pgx_send_batch", "pgx_query_return", "pgx_exec_return",
                "pgx_batch_closed")


@pytest.mark.parametrize("client_cell", cells("pgxclient"), ids=str)
def test_pgx_spans_equal_the_calls(tmp_path: Path, receiver, client_cell, postgres_server):
    with traced_client(tmp_path, receiver, client_cell, "-dsn", postgres_server.dsn) as (
            addr, tracer):
        steps, _, spans = request_trace(receiver, addr, "/script", PGX_SCRIPT_SPANS)
        _, err = stop(tracer)
    expected = [s for s in steps if s["call"] not in PGX_NOT_SPANS and not s.get("deferred")]
    for span, step in zip(spans, expected, strict=True):
        attrs = span["attributes"]
        assert attrs["db.system.name"] == "postgresql"
        assert attrs["db.namespace"] == postgres_server.database
        assert (attrs["server.address"], attrs["server.port"]) == (
            "127.0.0.1", postgres_server.port)
        assert (span["status"] == "ERROR") == bool(step["error"]), step
        if step["call"] in PGX_OPERATIONS:
            assert attrs["db.operation.name"] == PGX_OPERATIONS[step["call"]], step
        elif step["call"] == "Conn.SendBatch":
            assert attrs["db.operation.batch.size"] == len(step["batch"])
            assert attrs["db.query.text"] == redact_sql(step["batch"][0])
        else:
            assert attrs["db.query.text"] == redact_sql(step["sql"]), step
    failed = [s for s in spans if s["status"] == "ERROR"]
    assert any(s["attributes"].get("db.response.status_code") == "42P01" for s in failed)
    assert_no_literal(spans)
    hits = probe_hits(err)
    assert sum(hits.get(program, 0) for program in PGX_PROGRAMS) == 2 * len(spans), hits


def redis_text(command: str) -> str:
    """A command as sent ('set k v') as its query text ('SET ? ?')."""
    name, *arguments = command.split()
    return " ".join([name.upper(), *["?"] * len(arguments)])


REDIS_SCRIPT_SPANS = 9  # redisclient's script: each command and each pipeline


@pytest.mark.parametrize("client_cell", cells("redisclient"), ids=str)
def test_redis_commands_are_spans(tmp_path: Path, receiver, client_cell, redis_server):
    with traced_client(tmp_path, receiver, client_cell, "-addr", redis_server.dsn) as (
            addr, tracer):
        steps, _, spans = request_trace(receiver, addr, "/script", REDIS_SCRIPT_SPANS)
        _, err = stop(tracer)
    hits = probe_hits(err)
    assert sum(count for program, count in hits.items()
               if program.startswith("redis_")) == 2 * len(spans), hits
    for span, step in zip(spans, steps, strict=True):
        attrs = span["attributes"]
        assert attrs["db.system.name"] == "redis"
        assert attrs["db.namespace"] == "0"  # the client's database number
        assert (attrs["server.address"], attrs["server.port"]) == ("127.0.0.1", redis_server.port)
        assert (span["status"] == "ERROR") == bool(step["error"]), step
        if step["call"] in ("Pipeline.Exec", "TxPipeline.Exec"):
            operation = "PIPELINE" if step["call"] == "Pipeline.Exec" else "MULTI"
            assert attrs["db.operation.name"] == operation  # different commands
            assert attrs["db.operation.batch.size"] == len(step["commands"])
            assert attrs["db.query.text"] == "; ".join(
                redis_text(command) for command in step["commands"])
        else:
            assert attrs["db.operation.name"] == step["command"].split()[0].upper()
            assert attrs["db.query.text"] == redis_text(step["command"])
    assert Counter(s["attributes"].get("db.response.status_code") for s in spans) == Counter(
        {None: len(spans) - 1, "WRONGTYPE": 1})
    assert_no_literal(spans)
