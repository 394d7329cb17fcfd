"""Helpers for end-to-end tests: start test servers and a real `gotrace trace` against them."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

REPO = Path(__file__).resolve().parent.parent
# A sample line of the Prometheus text format, and one label in its braces.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Place(Protocol):
    """Where a test process runs: the command prefix that starts a process there (none for
    this machine's own network namespace, `nsenter --net=...` for a tests/hosts.py Host) and the
    address its servers listen on."""

    @property
    def prefix(self) -> tuple[str, ...]: ...

    @property
    def address(self) -> str: ...


@dataclass(frozen=True)
class Loopback:
    """This machine's own namespace, servers on 127.0.0.1."""

    prefix: tuple[str, ...] = ()
    address: str = "127.0.0.1"


HERE: Place = Loopback()


@contextlib.contextmanager
def go_server(path: Path, *args: str, env: dict[str, str] | None = None, place: Place = HERE
              ) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run a test server at place (listening on a free port of its address; an `-addr` in
    args overrides that), with env, else this process's environment; yields (process,
    'host:port')."""
    proc = subprocess.Popen([*place.prefix, str(path), "-addr", f"{place.address}:0", *args],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), f"{path} did not start: {line!r}"
        yield proc, line.split()[1]
    finally:
        terminate(proc, timeout=10)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on host (127.0.0.1) free a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_port_at(place: Place) -> int:
    """A TCP port free a moment ago on place's address, asked inside place's network
    namespace (a host's address is on no interface of this process's)."""
    if not place.prefix:
        return free_port(place.address)
    script = (f"import socket; s = socket.socket(); s.bind(({place.address!r}, 0)); "
              "print(s.getsockname()[1])")
    done = subprocess.run([*place.prefix, sys.executable, "-c", script], capture_output=True,
                          text=True, check=True, timeout=30)
    return int(done.stdout)


def terminate(proc: subprocess.Popen, timeout: float, sig: int = signal.SIGTERM) -> None:
    """sig (SIGTERM), then SIGKILL if it has not exited after `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def gotrace(tmp_path: Path, *args: str, timeout: float = 60, env: dict[str, str] | None = None,
            place: Place = HERE) -> Iterator[subprocess.Popen[str]]:
    """Run `gotrace <args> --ready-file ...` at place (with env, else this process's
    environment) until it is attached; SIGINT and wait on exit."""
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    split = args.index("--") if "--" in args else len(args)
    command = [*args[:split], "--ready-file", str(ready), *args[split:]]
    proc = subprocess.Popen([*place.prefix, sys.executable, "-m", "gotrace", *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env=env)
    deadline = time.monotonic() + timeout
    try:
        while not ready.exists():
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"gotrace exited with {proc.returncode}: {err}{out}")
            assert time.monotonic() < deadline, "gotrace did not attach in time"
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGINT a gotrace process and return its (stdout, stderr); it must exit 0."""
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out, err


def probe_hits(err: str) -> dict[str, int]:
    """The hits per BPF program of a `--stats` session's stderr (programs never hit left out)."""
    line = next(line for line in err.splitlines() if line.startswith("gotrace: probe hits "))
    pairs = (item.split("=") for item in line.removeprefix("gotrace: probe hits ").split(", "))
    return {name: int(count) for name, count in pairs}


def newproc_probed(go: str) -> bool:
    """Whether goroutine ancestry needs the runtime.newproc1 probe by default: on Go releases
    without g.parentGoid (before 1.21)."""
    return tuple(map(int, go.split("."))) < (1, 21)


def get(addr: str, path: str, headers: dict[str, str] | None = None,
        conn: http.client.HTTPConnection | None = None) -> int:
    """One GET (on a given keep-alive connection if any); returns the status."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(addr, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        if own:
            conn.close()


def otlp_args(receiver) -> list[str]:
    return ["--otlp-endpoint", receiver.grpc_endpoint, "--otlp-protocol", "grpc"]


def env_without_otel() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}


def name_of(span: dict) -> str | None:
    """The `name` query parameter of an HTTP span's URL (the test drivers name each request):
    a server span's url.query, a client span's url.full (with --include-query)."""
    attributes = span["attributes"]
    query = attributes.get("url.query") or urllib.parse.urlsplit(
        attributes.get("url.full", "")).query
    return urllib.parse.parse_qs(query).get("name", [None])[0]


def chains(spans: list[dict], length: int, requests: int) -> list[list[dict]]:
    """The spans of each trace from its root down, each span the only child of the one before:
    there must be exactly `requests` traces of `length` spans each."""
    traces: dict[str, list[dict]] = defaultdict(list)
    for span in spans:
        traces[span["trace_id"]].append(span)
    assert Counter(len(t) for t in traces.values()) == {length: requests}
    out = []
    for trace in traces.values():
        roots = [s for s in trace if s["parent_span_id"] is None]
        if len(roots) != 1:
            for s in trace:
                print("TRACE", s["name"], s["kind"], s["span_id"], s["parent_span_id"],
                      s["start_time_unix_nano"], s["end_time_unix_nano"], s["attributes"])
        assert len(roots) == 1
        chain = [roots[0]]
        while len(chain) < length:
            children = [s for s in trace if s["parent_span_id"] == chain[-1]["span_id"]]
            assert len(children) == 1, [s["name"] for s in trace]
            chain.append(children[0])
        out.append(chain)
    return out


def conn_misses(err: str) -> dict[str, int]:
    """The `--stats` count of spans left without their connection, by reason."""
    line = re.search(r"^gotrace: spans without their connection (.*)$", err, re.M)
    assert line, err
    return {k: int(v) for k, v in (item.split("=") for item in line[1].split(", "))}


def reversed_tuple(span: dict) -> tuple:
    """A span's connection as the other end sees it: (local, port, peer, port) reversed."""
    a = span["attributes"]
    return (a["network.peer.address"], a["network.peer.port"],
            a["network.local.address"], a["network.local.port"])


def own_tuple(span: dict) -> tuple:
    """A span's connection from its own end: (local address, port, peer address, port)."""
    a = span["attributes"]
    return (a["network.local.address"], a["network.local.port"],
            a["network.peer.address"], a["network.peer.port"])


def read_spans(path: Path) -> list[dict]:
    """The spans of a --jsonl capture."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def linked_pairs(spans: list[dict], server_pid: int, client_pids: set[int]
                 ) -> list[tuple[dict, dict]]:
    """(client, server) of every server span of server_pid, each with its parent client span,
    which must be one of client_pids' and on the connection the server span saw."""
    by_id = {s["span_id"]: s for s in spans if s["kind"] == "CLIENT"}
    pairs = []
    for server in (s for s in spans
                   if s["kind"] == "SERVER" and s["resource"]["process.pid"] == server_pid):
        client = by_id.get(server["parent_span_id"])
        assert client is not None, server
        assert client["trace_id"] == server["trace_id"]
        assert client["resource"]["process.pid"] in client_pids
        assert own_tuple(client) == reversed_tuple(server)
        pairs.append((client, server))
    return pairs


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of a Prometheus exposition as {(name, sorted labels): value}; comments are
    skipped."""
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = tuple(sorted(LABEL.findall(m[2] or "")))
        samples[m[1], labels] = float(m[3])
    return samples


def fetch(url: str) -> tuple[str, str]:
    """GET url; (content type, body)."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.headers["Content-Type"], resp.read().decode()


ROUTERS = ("gin", "chi", "gorilla", "httprouter", "echo")  # testapps/routers' flags


@contextlib.contextmanager
def routers(binary: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """The routers app with all five on free ports: (process, router -> 'host:port')."""
    flags = [arg for name in ROUTERS for arg in (f"-{name}", "127.0.0.1:0")]
    proc = subprocess.Popen([str(binary), *flags], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), f"{binary} did not start: {line!r}"
        yield proc, dict(pair.split("=", 1) for pair in line.split()[1:])
    finally:
        terminate(proc, timeout=10)


@contextlib.contextmanager
def db_client(binary: Path, *flags: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """One of the database client test programs (testapps/sqlclient, pgxclient, redisclient)
    serving HTTP on a free loopback port, with flags naming its databases (sqlclient: -pq,
    -pgx, -mysql DSN, -sqlite PATH; pgxclient: -dsn DSN; redisclient: -addr HOST:PORT; the
    Server.dsn values of tests/databases.py): (process, 'host:port') once it printed READY,
    its databases opened and pinged. One that exits first fails with its stderr."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([str(binary), "-listen", "127.0.0.1:0", *flags],
                                stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("READY "):
                proc.wait(timeout=10)
                err.seek(0)
                raise AssertionError(f"{binary.name} did not start (exit {proc.returncode}): "
                                     f"{err.read().strip() or line!r}")
            yield proc, line.split()[1]
        finally:
            terminate(proc, timeout=10)
