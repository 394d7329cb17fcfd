"""The Go programs the benchmark runs: which builds of the test-app matrix, and starting the
servers."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.cpus import pinned_to
from testapps import matrix


@dataclass(frozen=True)
class Apps:
    httpserver: Path
    httpclient: Path
    grpcserver: Path
    grpcclient: Path
    loadgen: Path
    hitloop: Path
    wrapped: Path  # testapps/wrapped: servers and clients with wrapped connections
    h2: Path  # testapps/h2: HTTP/2 servers and clients (net/http's and golang.org/x/net's)
    routers: Path  # testapps/routers: gin, chi, gorilla/mux, httprouter and echo
    # The database clients: database/sql (lib/pq, ...), pgx's own API, gopkg.in/redis.v5
    sqlclient: Path
    pgxclient: Path
    redisclient: Path
    go: str  # the Go the HTTP programs are built with
    grpc: str  # the grpc-go the gRPC programs are built with
    grpc_go: str  # ... and their Go


def build_apps() -> Apps:
    """Stripped builds (as services ship) with the newest Go, and the newest grpc-go with
    the newest Go it supports; built once, then taken from the matrix cache."""
    go = matrix.go_versions()[-1]
    grpc = list(matrix.grpc_gopaths())[-1]
    grpc_go = matrix.supported_go(grpc)[-1]

    def plain(app: str) -> Path:
        return matrix.build(matrix.Cell(app, go, "stripped"))

    def with_grpc(app: str) -> Path:
        return matrix.build(matrix.Cell(app, grpc_go, "stripped", grpc))

    return Apps(httpserver=plain("httpserver"), httpclient=plain("httpclient"),
                grpcserver=with_grpc("grpcserver"), grpcclient=with_grpc("grpcclient"),
                loadgen=with_grpc("loadgen"), hitloop=plain("hitloop"),
                wrapped=with_grpc("wrapped"), h2=plain("h2"), routers=plain("routers"),
                sqlclient=plain("sqlclient"), pgxclient=plain("pgxclient"),
                redisclient=plain("redisclient"), go=go, grpc=grpc, grpc_go=grpc_go)


@dataclass(frozen=True)
class Server:
    pid: int
    addr: str  # host:port


@contextlib.contextmanager
def _ready(command: list[str], cpus: frozenset[int] | None = None
           ) -> Iterator[tuple[int, list[str]]]:
    """Run a test server until the block ends: (its pid, the words after READY on the line
    it prints once it listens)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                            preexec_fn=pinned_to(cpus))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"{command[0]} did not start: {line!r}")
        yield proc.pid, line.split()[1:]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serve(path: Path, *args: str, cpus: frozenset[int] | None = None) -> Iterator[Server]:
    """Run a test server on a free loopback port until the block ends (on cpus, if given:
    bench.cpus)."""
    with _ready([str(path), "-addr", "127.0.0.1:0", *args], cpus) as (pid, words):
        yield Server(pid, words[0])


@contextlib.contextmanager
def serve_router(path: Path, router: str) -> Iterator[Server]:
    """Run testapps/routers serving one router (its flag: gin, chi, gorilla, httprouter or
    echo) on a free loopback port until the block ends."""
    with _ready([str(path), f"-{router}", "127.0.0.1:0"]) as (pid, words):
        yield Server(pid, words[0].split("=", 1)[1])


@contextlib.contextmanager
def serve_db_client(path: Path, *flags: str, cpus: frozenset[int] | None = None
                    ) -> Iterator[Server]:
    """Run a database client test program (testapps/sqlclient, pgxclient, redisclient) with
    flags naming its database, serving HTTP on a free loopback port until the block ends (on
    cpus, if given); it prints READY once its database answered."""
    with _ready([str(path), "-listen", "127.0.0.1:0", *flags], cpus) as (pid, words):
        yield Server(pid, words[0])
