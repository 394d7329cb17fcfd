"""Probe hits per request, from the probes' own counters (`gotrace ... --stats`).

Each workload runs under its own gotrace session: a server traced by PID while an untraced
client calls it, or a client launched by `gotrace run`. Every probe program of the session
counts, the runtime's goroutine-creation probes included: they are hits the request pays
for too. Sessions are independent, so a few run at once (counts do not depend on timing).
Meanwhile the kernel counts how long the probe programs run (kernel.bpf_stats_enabled):
with the trap that enters them (bench.calibrate), that is what a hit costs the target.

    python bench/probe_hits.py [--calls N] [--only LABEL]... [--routes] [--databases]
        prints hits per request/RPC for each workload (or those labelled, or the routes' or
        the database clients')
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import statistics
import subprocess
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.apps import Apps, Server, build_apps, serve, serve_router
from bench.dbcalls import DB_WORKLOADS, serving
from bench.session import Gotrace, TraceStats

HELLO = "/hello"  # the path the HTTP server workloads request
STREAM_MESSAGES = 5  # messages per server-streaming RPC
RUNTIME_EVENT_PROBES = frozenset({"stw_begin", "stw_restart_called", "stw_end", "gc_cycle"})
HIT_WORKLOADS = ("HTTP server", "HTTP client", "gRPC server, unary", "gRPC server, streaming",
                 "gRPC client, unary", "gRPC client, streaming")
# testapps/h2's modes: net/http's bundled HTTP/2 over TLS, golang.org/x/net's over h2c.
HTTP2_MODES = {"TLS, net/http": "tls", "h2c, x/net": "h2c"}
HTTP2_WORKLOADS = tuple(f"HTTP/2 {side}, {mode}" for side in ("server", "client")
                        for mode in HTTP2_MODES)
# What opt-in probes add, measured like the rest; reported as a cost, not judged by a target.
SCHED_WAIT = "HTTP server, --sched-wait"
OPT_IN_WORKLOADS = {SCHED_WAIT: "HTTP server"}  # -> the workload it adds to
# The same program (testapps/wrapped) with plain and with wrapped connections: what following
# the wrappers to the socket costs (bpf/conn.h), reported side by side, no target. Label ->
# (listener wrappers, and for a server that calls an HTTP back end per request, its dialer's).
SERVER_WRAPS = "conntrack,limit,custom"
CLIENT_WRAPS = "conntrack,custom"
CONNECTION_WORKLOADS: dict[str, tuple[str, str | None]] = {
    "HTTP server, plain connection": ("", None),
    f"HTTP server, connection in {SERVER_WRAPS}": (SERVER_WRAPS, None),
    "HTTP server calling HTTP, plain connections": ("", ""),
    f"HTTP server calling HTTP, client connection in {CLIENT_WRAPS}": ("", CLIENT_WRAPS),
}
# testapps/routers serving one router, called by httpclient: what reading http.route costs on
# top of the net/http server's hits (one more probe; "HTTP server" is the baseline).
# Label -> (the router's flag, the path requested).
CHI_MOUNTED = "chi, mounted sub-routers"
ROUTE_WORKLOADS: dict[str, tuple[str, str]] = {
    "gin": ("gin", "/users/42"),
    "chi": ("chi", "/users/42"),
    CHI_MOUNTED: ("chi", "/api/v1/items/9"),  # through the routers mounted at /api and /v1
    "gorilla/mux": ("gorilla", "/users/42"),
    "httprouter": ("httprouter", "/users/42"),
    "echo": ("echo", "/users/42"),
}
# Route workloads whose route probe runs once per router level the request passes (chi's
# mounted sub-routers): reported, not judged by the hits target.
PER_ROUTER_LEVEL = frozenset({CHI_MOUNTED})
LABELS = (*HIT_WORKLOADS, *HTTP2_WORKLOADS, *OPT_IN_WORKLOADS, *CONNECTION_WORKLOADS,
          *ROUTE_WORKLOADS, *DB_WORKLOADS)  # every workload
BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


@dataclass(frozen=True)
class HitCount:
    label: str
    calls: int
    hits: dict[str, int]  # per BPF program, over all calls
    run_ns: dict[str, int] = field(default_factory=dict)  # per BPF program, over all calls
    # run_ns of each round, when the workload ran several (count_hits)
    run_ns_rounds: tuple[dict[str, int], ...] = ()

    @property
    def per_call(self) -> float:
        return sum(self.hits.values()) / self.calls

    @property
    def runtime_event_hits(self) -> float:
        """Per call, the hits of the GC probes: they fire per stop-the-world pause and GC
        cycle, whose number follows the program's allocation, not its requests."""
        return sum(n for k, n in self.hits.items() if k in RUNTIME_EVENT_PROBES) / self.calls

    @property
    def per_span(self) -> float:
        """Per call, the hits of everything but the GC probes: what a request costs."""
        return self.per_call - self.runtime_event_hits

    @property
    def run_us_per_call(self) -> float:
        """Per call, the time the probe programs ran."""
        return sum(self.run_ns.values()) / self.calls / 1000

    @property
    def run_us_rounds(self) -> list[float]:
        """run_us_per_call of each round, when the workload ran several."""
        return [sum(r.values()) / self.calls / 1000 for r in self.run_ns_rounds]

    def run_detail(self) -> str:
        """µs per run of the programs that ran at least once per 200 calls."""
        return ", ".join(f"{k} {ns / self.hits[k] / 1000:.2f}" for k, ns in self.run_ns.items()
                         if self.hits.get(k, 0) * 200 >= self.calls)

    def only(self, prefix: str) -> HitCount:
        """The counts of the probe programs whose names start with prefix (a library's own,
        such as sql_ for database/sql's)."""
        def mine(counts: dict[str, int]) -> dict[str, int]:
            return {k: n for k, n in counts.items() if k.startswith(prefix)}

        return HitCount(self.label, self.calls, mine(self.hits), mine(self.run_ns),
                        tuple(map(mine, self.run_ns_rounds)))

    def detail(self) -> str:
        """Hits per call by probe, those below 0.005 (run-time events such as GC) summed."""
        per_call = {k: v / self.calls for k, v in self.hits.items() if v}
        text = ", ".join(f"{k} {n:.2f}" for k, n in per_call.items() if n >= 0.005)
        rare = sum(n for n in per_call.values() if n < 0.005)
        return text + (f", other probes {rare:.3f}" if rare else "")


# A server program, and the arguments it runs with.
ServerCommand = Path | tuple[Path, ...]


def _serving(server: ServerCommand) -> contextlib.AbstractContextManager:
    path, *args = server if isinstance(server, tuple) else (server,)
    return serve(path, *args)


def _server_side(server: ServerCommand, client: Callable[[str], list[str]], *flags: str
                 ) -> TraceStats:
    """Trace the server by PID while the client program runs against it untraced."""
    return _traced_while_called(_serving(server), client, *flags)


def _traced_while_called(serving: contextlib.AbstractContextManager[Server],
                         client: Callable[[str], list[str]], *flags: str) -> TraceStats:
    """Start the server, trace it by PID and run the client program against it untraced."""
    with serving as srv, Gotrace(["trace", "--pid", str(srv.pid), "--jsonl", "/dev/null",
                                  *flags]) as session:
        session.ready()
        subprocess.run(client(srv.addr), check=True, stdout=subprocess.DEVNULL)
        return session.stop()


def _wrapped_side(apps: Apps, calls: int, listen_wrap: str, next_wrap: str | None
                  ) -> TraceStats:
    """testapps/wrapped traced by PID, called by httpclient untraced; with next_wrap, each
    request it serves calls httpserver (untraced) through that dialer."""
    with contextlib.ExitStack() as stack:
        args = ["-serve", "http", "-listen-wrap", listen_wrap]
        if next_wrap is not None:
            back = stack.enter_context(serve(apps.httpserver))
            args += ["-next", f"http://{back.addr}/hello", "-next-wrap", next_wrap]
        front = stack.enter_context(serve(apps.wrapped, *args))
        session = stack.enter_context(Gotrace(["trace", "--pid", str(front.pid), "--jsonl",
                                               "/dev/null"]))
        session.ready()
        path = "/hello" if next_wrap is None else "/chain"
        subprocess.run([str(apps.httpclient), "-url", f"http://{front.addr}{path}", "-n",
                        str(calls)], check=True, stdout=subprocess.DEVNULL)
        return session.stop()


def _client_side(server: ServerCommand, client: Callable[[str], list[str]]) -> TraceStats:
    """Launch the client under `gotrace run` against an untraced server."""
    with _serving(server) as srv, Gotrace(["run", "--jsonl", "/dev/null", "--",
                                        *client(srv.addr)]) as session:
        return session.wait()


def _route_side(apps: Apps, client: Callable[[str], list[str]], router: str) -> TraceStats:
    """testapps/routers serving one router, traced by PID, called by the client untraced."""
    return _traced_while_called(serve_router(apps.routers, router), client)


def workloads(apps: Apps, calls: int) -> list[tuple[str, Callable[[], TraceStats]]]:
    def http_path(path: str) -> Callable[[str], list[str]]:
        def command(addr: str) -> list[str]:
            return [str(apps.httpclient), "-url", f"http://{addr}{path}", "-n", str(calls)]
        return command

    http = http_path(HELLO)

    def unary(addr: str) -> list[str]:
        return [str(apps.grpcclient), "-addr", addr, "-n", str(calls), "-streams", "0"]

    def streaming(addr: str) -> list[str]:
        return [str(apps.grpcclient), "-addr", addr, "-n", "0", "-streams", str(calls),
                "-count", str(STREAM_MESSAGES)]

    def http2(mode: str) -> Callable[[str], list[str]]:
        def command(addr: str) -> list[str]:
            scheme = "https" if mode == "tls" else "http"
            return [str(apps.h2), "call", "-mode", mode, "-url", f"{scheme}://{addr}/hello",
                    "-n", str(calls)]
        return command

    def h2(mode: str) -> tuple[Path, ...]:
        return (apps.h2, "serve", "-mode", mode)

    http2_runs = [(f"HTTP/2 server, {label}", lambda m=mode: _server_side(h2(m), http2(m)))
                  for label, mode in HTTP2_MODES.items()]
    http2_runs += [(f"HTTP/2 client, {label}", lambda m=mode: _client_side(h2(m), http2(m)))
                   for label, mode in HTTP2_MODES.items()]
    runs = [
        lambda: _server_side(apps.httpserver, http),
        lambda: _client_side(apps.httpserver, http),
        lambda: _server_side(apps.grpcserver, unary),
        lambda: _server_side(apps.grpcserver, streaming),
        lambda: _client_side(apps.grpcserver, unary),
        lambda: _client_side(apps.grpcserver, streaming),
    ]
    connections = [(label, lambda wraps=wraps: _wrapped_side(apps, calls, *wraps))
                   for label, wraps in CONNECTION_WORKLOADS.items()]
    routes = [(label, lambda r=router, p=path: _route_side(apps, http_path(p), r))
              for label, (router, path) in ROUTE_WORKLOADS.items()]
    # The database clients, each with its database server, traced by PID (bench.dbcalls).
    databases = [(label, lambda lb=label, p=w.path: _traced_while_called(serving(apps, lb),
                                                                          http_path(p)))
                 for label, w in DB_WORKLOADS.items()]
    return [*zip(HIT_WORKLOADS, runs, strict=True), *http2_runs,
            (SCHED_WAIT, lambda: _server_side(apps.httpserver, http, "--sched-wait")),
            *connections, *routes, *databases]


@contextlib.contextmanager
def bpf_run_times_counted() -> Iterator[None]:
    """The kernel times every BPF program run while this lasts (two clock reads a run, so
    not during the overhead rounds)."""
    before = BPF_STATS.read_text().strip()
    BPF_STATS.write_text("1")
    try:
        yield
    finally:
        BPF_STATS.write_text(before)


def count_hits(apps: Apps, calls: int, only: Collection[str] | None = None,
               parallel: int = 4, again: Collection[str] = (), rounds: int = 1
               ) -> list[HitCount]:
    """Hits per call of every workload (or of those labelled in only), and the probes' run
    time. The workloads labelled in again run in rounds rounds, and keep the round whose run
    time is the median: the kernel counts in a program's run time whatever else its CPU did
    meanwhile (interrupts, time the hypervisor took), which varies from round to round."""
    todo = [w for w in workloads(apps, calls) if only is None or w[0] in only]
    repeated = [w for w in todo if w[0] in again] * (rounds - 1)
    with bpf_run_times_counted(), \
            concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        stats = list(pool.map(lambda item: item[1](), [*todo, *repeated]))
    counts: dict[str, list[HitCount]] = {}
    for (label, _), s in zip([*todo, *repeated], stats, strict=True):
        counts.setdefault(label, []).append(HitCount(label, calls, s.hits, s.run_ns))
    return [_median_round(counts[label]) for label, _ in todo]


def _median_round(rounds: list[HitCount]) -> HitCount:
    """The round whose run time per call is the median (the lower middle of an even number),
    with every round's run time."""
    if len(rounds) == 1:
        return rounds[0]
    median = statistics.median_low(h.run_us_per_call for h in rounds)
    chosen = next(h for h in rounds if h.run_us_per_call == median)
    return replace(chosen, run_ns_rounds=tuple(h.run_ns for h in rounds))


def _selected(only: Sequence[str] | None, routes: bool, databases: bool) -> list[str] | None:
    """The labels the command line asked for (None: every workload)."""
    if only is None and not routes and not databases:
        return None
    return [*(only or ()), *(ROUTE_WORKLOADS if routes else ()),
            *(DB_WORKLOADS if databases else ())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--only", action="append", metavar="LABEL", choices=LABELS,
                        help="measure only this workload (repeatable): "
                        + "; ".join(f"'{label}'" for label in LABELS))
    parser.add_argument("--routes", action="store_true",
                        help="measure the route workloads (testapps/routers), and any --only")
    parser.add_argument("--databases", action="store_true",
                        help="measure the database client workloads (bench/dbcalls.py), and "
                        "any --only")
    args = parser.parse_args()
    only = _selected(args.only, args.routes, args.databases)
    for count in count_hits(build_apps(), args.calls, only=only):
        print(f"{count.label:24} {count.per_call:5.2f} hits per call ({count.detail()}); "
              f"probes ran {count.run_us_per_call:.2f} µs per call ({count.run_detail()})",
              flush=True)


if __name__ == "__main__":
    main()
