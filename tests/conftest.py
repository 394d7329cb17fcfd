"""Shared fixtures: the test-app matrix, built once and cached outside git.

GOTRACE_MATRIX=full selects every cell of the matrix; by default the tests use the smaller set
that still covers every Go version, every grpc-go version and every build variant. FULL also
brings back end-to-end repetitions the default run leaves to other cells or tests (each test
says which): more Go versions or builds for the same case, more attach/detach cycles.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import databases
import pytest

from testapps import matrix

FULL = os.environ.get("GOTRACE_MATRIX") == "full"


def selected_cells() -> list[matrix.Cell]:
    return matrix.full_cells() if FULL else matrix.default_cells()


def cell_id(cell: matrix.Cell) -> str:
    grpc = f"-grpc{cell.grpc}" if cell.grpc else ""
    return f"{cell.app}-go{cell.go}{grpc}-{cell.variant}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cell" in metafunc.fixturenames:
        cells = selected_cells()
        metafunc.parametrize("cell", cells, ids=[cell_id(c) for c in cells])
    if "stripped_cell" in metafunc.fixturenames:
        cells = [c for c in selected_cells() if c.variant.endswith("stripped")]
        metafunc.parametrize("stripped_cell", cells, ids=[cell_id(c) for c in cells])


@pytest.fixture(scope="session")
def build():
    """build(cell) -> path of the binary (cached across runs by content)."""
    return matrix.build


@pytest.fixture
def binary(cell: matrix.Cell, build) -> Path:
    return build(cell)


@pytest.fixture
def twin(cell: matrix.Cell, build) -> Path:
    """The unstripped build of the same program: the ground truth for a stripped one."""
    return build(cell.twin())


def go_tool(cell: matrix.Cell) -> str:
    return f"/usr/lib/go-{cell.go}/bin/go"


def _database(start: Callable[[], AbstractContextManager[databases.Server]]
              ) -> Iterator[databases.Server]:
    """A private database server for the session (tests/databases.py); a failure to start is
    one line."""
    try:
        with start() as server:
            yield server
    except databases.ServerError as e:
        pytest.fail(str(e), pytrace=False)


# The database servers start when a test first asks for them and stop at the end of the
# session. Tests share them: each program's script begins by emptying its table.
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[databases.Server]:
    """PostgreSQL 15: .dsn for sqlclient -pq / -pgx and pgxclient -dsn."""
    yield from _database(databases.postgres)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[databases.Server]:
    """MariaDB: .dsn for sqlclient -mysql."""
    yield from _database(databases.mariadb)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[databases.Server]:
    """Redis: .dsn (host:port) for redisclient -addr."""
    yield from _database(databases.redis)
