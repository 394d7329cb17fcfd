"""The database test infrastructure without any tracing: the private servers of
tests/databases.py start and stop, and the database client programs (testapps/sqlclient,
pgxclient, redisclient) run their scripts against them and answer what they did."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import databases
import pytest
from conftest import cell_id, selected_cells
from tracing import db_client

from testapps import matrix


def cells_of(app: str) -> list[matrix.Cell]:
    return [c for c in selected_cells() if c.app == app]


def fetch(addr: str, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def script(addr: str, path: str = "/script") -> list[dict]:
    status, body = fetch(addr, path)
    assert status == 200, body
    return json.loads(body)["steps"]


def check_two(addr: str, query: str = "") -> None:
    assert fetch(addr, "/healthz")[0] == 200
    status, body = fetch(addr, f"/two{query}")
    assert status == 200, body
    assert len(json.loads(body)["steps"]) == 2


@pytest.mark.parametrize("start", [databases.postgres, databases.mariadb, databases.redis],
                         ids=["postgres", "mariadb", "redis"])
def test_server_stops_and_cleans_up(start) -> None:
    with start() as server:
        os.kill(server.pid, 0)  # running
        assert server.workdir.is_dir()
        assert str(server.port) in server.dsn and server.host == "127.0.0.1"
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)
    assert not server.workdir.exists()


SQL_CALLS = [
    "DB.ExecContext", "DB.ExecContext",
    "DB.BeginTx", "Tx.ExecContext", "Tx.ExecContext", "Tx.Commit", "Tx.Rollback",
    "DB.PrepareContext", *["Stmt.QueryRowContext"] * 5, "Stmt.Close",
    "DB.QueryContext",
    "DB.ExecContext",
    "DB.QueryRowContext",
    "DB.QueryContext",
    "DB.BeginTx", "Tx.ExecContext", "Tx.Rollback",
]


@pytest.mark.parametrize(
    ("client", "db"),
    [(c, db) for c in cells_of("sqlclient") for db in ("pq", "pgx", "mysql", "sqlite")
     if db != "sqlite" or c.external_link],  # go-sqlite3 needs cgo: external linking here
    ids=lambda v: cell_id(v) if isinstance(v, matrix.Cell) else v,
)
def test_sqlclient_script(client: matrix.Cell, db: str, build, tmp_path: Path, request) -> None:
    if db == "sqlite":
        flags = ["-sqlite", str(tmp_path / "gotrace.db")]
    else:
        server = request.getfixturevalue("mariadb_server" if db == "mysql" else "postgres_server")
        flags = [f"-{db}", server.dsn]
    with db_client(build(client), *flags) as (_, addr):
        for _ in range(2):  # a second run starts from the same state
            steps = script(addr, f"/script?db={db}")
            assert [s["call"] for s in steps] == SQL_CALLS
            errors = {i: s["error"] for i, s in enumerate(steps) if s["error"]}
            assert set(errors) == {6, 15, 17}, errors
            assert steps[6]["deferred"] and "already been committed" in errors[6]
            assert "gotrace_missing_table" in errors[15]
            assert errors[17] == "context canceled"
            assert steps[14]["rows"] == 2 and steps[16]["rows"] == 0
            params = "($1, $2)" if db in ("pq", "pgx") else "(?, ?)"
            assert steps[4]["sql"].endswith(f"VALUES {params}")
            assert steps[4]["args"] == 2
            assert "'literal-alpha'" in steps[3]["sql"] and "'literal-delta'" in steps[19]["sql"]
        check_two(addr, f"?db={db}")
        assert fetch(addr, "/script?db=nosuch")[0] == 404


def test_sqlclient_without_cgo_refuses_sqlite(build, tmp_path: Path) -> None:
    client = matrix.Cell("sqlclient", matrix.go_versions()[-1], "stripped")
    with pytest.raises(AssertionError, match="no SQLite driver"), \
            db_client(build(client), "-sqlite", str(tmp_path / "x.db")):
        pass


PGX_CALLS = [
    "Conn.Exec", "Conn.Exec",
    "Conn.Begin", "Tx.Exec", "Tx.Exec", "Tx.Commit", "Tx.Rollback",
    *["Conn.QueryRow"] * 3,
    "Conn.Query",
    "Conn.Exec",
    "Conn.QueryRow",
    "Conn.SendBatch", "BatchResults.QueryRow", "BatchResults.Exec", "BatchResults.QueryRow",
    "BatchResults.Close",
    "Conn.Query",
]


@pytest.mark.parametrize("client", cells_of("pgxclient"), ids=cell_id)
def test_pgxclient_script(client: matrix.Cell, build, postgres_server) -> None:
    with db_client(build(client), "-dsn", postgres_server.dsn) as (_, addr):
        for _ in range(2):
            steps = script(addr)
            assert [s["call"] for s in steps] == PGX_CALLS
            errors = {i: s["error"] for i, s in enumerate(steps) if s["error"]}
            assert set(errors) == {6, 11, 18}, errors
            assert steps[6]["deferred"] and errors[6] == "tx is closed"
            assert "gotrace_missing_table" in errors[11] and "SQLSTATE 42P01" in errors[11]
            assert errors[18] == "context canceled"
            assert steps[10]["rows"] == 2 and steps[12]["rows"] == 0
            assert len(steps[13]["batch"]) == 3
        check_two(addr)


REDIS_CALLS = [
    "Client.Set", "Client.Get", "Client.Get", "Client.Incr", "Client.HSet", "Client.Del",
    "Pipeline.Exec", "TxPipeline.Exec", "Client.Incr",
]


@pytest.mark.parametrize("client", cells_of("redisclient"), ids=cell_id)
def test_redisclient_script(client: matrix.Cell, build, redis_server) -> None:
    with db_client(build(client), "-addr", redis_server.dsn) as (_, addr):
        for _ in range(2):
            steps = script(addr)
            assert [s["call"] for s in steps] == REDIS_CALLS
            errors = {i: s["error"] for i, s in enumerate(steps) if s["error"]}
            assert list(errors) == [8] and errors[8].startswith("WRONGTYPE"), errors
            assert [i for i, s in enumerate(steps) if s.get("nil")] == [2]
            assert len(steps[6]["commands"]) == 3 and len(steps[7]["commands"]) == 2
            assert steps[0]["command"] == "set gotrace:key literal-redis-value"
        check_two(addr)
