"""Issue 22's acceptance: one trace across hosts, linked through a Redis store.

Each "host" is a network namespace of tests/hosts.py, behind a router namespace; the chain's
three services (HTTP front -> gRPC middle -> HTTP back) run one per host, each host with its
own `gotrace trace` agent tracing only that host's process (run inside the host's namespace,
so local addresses are the host's), all exporting to one OTLP receiver and meeting in one
Redis, both in this process's namespace at the address the hosts reach it at. The front calls
the middle through a service address (a DNAT in the router, as kube-proxy makes one), the
middle calls the back through a SNAT (the back sees the router's address): neither end of
either hop sees the other's 4-tuple.

The driver (this process) has no agent, so the front's server spans wait for a remote caller
the link hold long (`--link-hold`, short here) before they are exported: the tests wait for
spans with timeouts, never with sleeps.

A request is named (`?name=`) at the front and the middle passes the name on to the back, so
the front's server span, the middle's HTTP client span and the back's server span carry it
(tracing.name_of): a link to another request's span shows as two names in one chain.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address
from pathlib import Path

import databases
import pytest
from conftest import FULL
from hosts import Host, HostsError, Network, hosts, namespaces
from otlp_receiver import OtlpReceiver
from test_linking import chain_cells, chain_services, check_traces, drive
from tracing import REPO, go_server, gotrace, metric_samples, name_of, otlp_args, stop

from testapps import matrix

HOLD = 1  # --link-hold: seconds a server span waits for its remote caller's link
QUIET = HOLD + 1.5  # no span can come later than this after the last one (hold + flushes)
REQUESTS = 1000
CONCURRENCY = 20
TIERS = ("front", "middle", "back")
METRICS_PORT = 9464  # each agent's --metrics-port, on its own host
# (kind, service) of a request's spans, and how many of each a request has.
SPANS_PER_REQUEST = Counter({("SERVER", "httpgrpc"): 1, ("CLIENT", "httpgrpc"): 1,
                             ("SERVER", "grpcserver"): 1, ("CLIENT", "grpcserver"): 1,
                             ("SERVER", "httpserver"): 1})


def newest() -> str:
    return matrix.go_versions()[-1]


# ---------------------------------------------------------------------------
# The hosts, the receiver, the store


@pytest.fixture
def net() -> Iterator[Network]:
    """front, middle and back, fresh for each test."""
    try:
        with hosts(*TIERS) as network:
            yield network
    except HostsError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def receiver(net: Network) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(net.outside) as r:
        yield r


class Store:
    """The link store: a private Redis where the hosts reach it, which a test can stop and
    start again on the same port (empty then, as a restarted Redis without persistence)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.port: int | None = None
        self._running = contextlib.ExitStack()

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        try:
            server = self._running.enter_context(databases.redis(self.host, self.port))
        except databases.ServerError as e:
            pytest.fail(str(e), pytrace=False)
        self.port = server.port

    def stop(self) -> None:
        self._running.close()


@pytest.fixture
def store(net: Network) -> Iterator[Store]:
    s = Store(net.outside)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def link_args(store: Store) -> list[str]:
    return ["--link-store", store.url, "--link-hold", str(HOLD)]


# ---------------------------------------------------------------------------
# Services and agents on the hosts


@contextlib.contextmanager
def chain_across(net: Network, cells: tuple[matrix.Cell, ...], where: Sequence[str] = TIERS,
                 dnat_in_front: bool = False) -> Iterator[tuple[list[int], str, str]]:
    """The chain's services on the hosts named in `where` (front, middle, back): (their
    pids, the front's address, the address the front calls the middle at). On three hosts
    the front calls the middle at a service address DNAT'ed in the router (or, with
    dnat_in_front, in the front host's own output hook), and the middle's calls to the back
    leave the router SNAT'ed; on one host each calls the next directly."""
    places = [net[name] for name in where]
    front, middle, back = places

    def reach(tier: int, addr: str) -> str:
        if len(set(where)) == 1:
            return addr
        if tier == 1:
            return net.service(middle, int(addr.rsplit(":", 1)[1]),
                               client=front if dnat_in_front else None)
        net.snat(middle, back)
        return addr

    with chain_services(cells, places, reach) as services:
        yield services


@contextlib.contextmanager
def agent(tmp_path: Path, receiver: OtlpReceiver, host: Host, targets: Sequence[str],
          *extra: str) -> Iterator[subprocess.Popen[str]]:
    """`gotrace trace` inside host, tracing targets (--pid N / --exe PATH arguments) with
    queries kept (the requests' names) and --stats, exporting to receiver."""
    with gotrace(tmp_path, "trace", *targets, "--include-query", "--stats",
                 *otlp_args(receiver), *extra, place=host) as proc:
        yield proc


@contextlib.contextmanager
def agents(tmp_path: Path, receiver: OtlpReceiver,
           per_host: Sequence[tuple[Host, Sequence[str]]], *extra: str
           ) -> Iterator[list[subprocess.Popen[str]]]:
    """One agent per host, started together (each takes seconds to attach)."""
    managers = [agent(tmp_path, receiver, host, targets, *extra) for host, targets in per_host]
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(len(managers)) as pool:
        started = [pool.submit(m.__enter__) for m in managers]
        for manager, future in zip(managers, started, strict=True):
            if future.exception() is None:
                stack.push(manager.__exit__)
        for future in started:
            if (error := future.exception()) is not None:
                raise error
        yield [future.result() for future in started]


def pid_args(*pids: int) -> list[str]:
    return [arg for pid in pids for arg in ("--pid", str(pid))]


def per_host(net: Network, pids: Sequence[int]) -> list[tuple[Host, Sequence[str]]]:
    """Each tier's host with its service's pid as the agent's target."""
    return [(net[name], pid_args(pid)) for name, pid in zip(TIERS, pids, strict=True)]


def stop_all(procs: Sequence[subprocess.Popen[str]]) -> list[str]:
    """SIGINT every agent, all at once (detaching takes each seconds); each must exit 0.
    Their stderr, in order."""
    with ThreadPoolExecutor(len(procs)) as pool:
        return [err for _, err in pool.map(stop, procs)]


# ---------------------------------------------------------------------------
# What the spans must look like


def wrong_links(spans: list[dict]) -> list[str]:
    """Every link that is not right, one line each. A link (a span whose parent is set) is
    right when the parent was exported, in the same trace, is a CLIENT span if the span is a
    SERVER span (in another process) and a SERVER span of the same process if it is a CLIENT
    span, and belongs to the same request: walking up from any span that names its request
    (name_of), every named span met carries that name."""
    by_id = {s["span_id"]: s for s in spans}
    problems = []
    for span in spans:
        if (parent_id := span["parent_span_id"]) is None:
            continue
        parent = by_id.get(parent_id)
        pid, name = span["resource"]["process.pid"], span["name"]
        if parent is None:
            problems.append(f"{name} (pid {pid}): parent {parent_id} never exported")
        elif parent["trace_id"] != span["trace_id"]:
            problems.append(f"{name} (pid {pid}): parent {parent_id} in another trace")
        elif (span["kind"], parent["kind"]) not in (("SERVER", "CLIENT"), ("CLIENT", "SERVER")):
            problems.append(f"{span['kind']} {name}: parent is a {parent['kind']} span")
        elif (parent["resource"]["process.pid"] == pid) != (span["kind"] == "CLIENT"):
            problems.append(f"{span['kind']} {name} (pid {pid}): parent in pid "
                            f"{parent['resource']['process.pid']}")
    for span in spans:
        if (request := name_of(span)) is None:
            continue
        seen = {span["span_id"]}
        up = by_id.get(span["parent_span_id"] or "")
        while up is not None and up["span_id"] not in seen:
            if (other := name_of(up)) not in (None, request):
                problems.append(f"{span['name']} of request {request} under {up['name']} of "
                                f"request {other}")
                break
            seen.add(up["span_id"])
            up = by_id.get(up["parent_span_id"] or "")
    return problems


def spans_by_request(spans: list[dict]) -> dict[str, list[dict]]:
    """Each request's named spans (front server, middle HTTP client, back server)."""
    named: dict[str, list[dict]] = {}
    for span in spans:
        if (request := name_of(span)) is not None:
            named.setdefault(request, []).append(span)
    return named


def complete(spans: list[dict], names: Sequence[str]) -> list[str]:
    """The requests of names whose front server span does not head a trace of exactly their
    five spans, each the only child of the one before (tracing.chains' shape)."""
    by_trace: dict[str, list[dict]] = {}
    for span in spans:
        by_trace.setdefault(span["trace_id"], []).append(span)
    kinds = [("SERVER", "httpgrpc"), ("CLIENT", "httpgrpc"), ("SERVER", "grpcserver"),
             ("CLIENT", "grpcserver"), ("SERVER", "httpserver")]
    fronts = {name_of(s): s for s in spans if (s["kind"], s["resource"]["service.name"])
              == kinds[0]}
    broken = []
    for name in names:
        front = fronts.get(name)
        trace = by_trace.get(front["trace_id"], []) if front else []
        chain = [front] if front and front["parent_span_id"] is None else []
        while chain and len(chain) < len(trace):
            children = [s for s in trace if s["parent_span_id"] == chain[-1]["span_id"]]
            if len(children) != 1:
                break
            chain.append(children[0])
        if len(trace) != 5 or len(chain) != 5 or \
                [(s["kind"], s["resource"]["service.name"]) for s in chain] != kinds or \
                name_of(chain[3]) != name or name_of(chain[4]) != name:
            broken.append(name)
    return broken


def check_all_spans(spans: list[dict], names: Sequence[str]) -> None:
    """Every request's five spans exported once, none more, whatever their links."""
    kinds = Counter((s["kind"], s["resource"]["service.name"]) for s in spans)
    assert kinds == Counter({k: n * len(names) for k, n in SPANS_PER_REQUEST.items()})
    named = spans_by_request(spans)
    assert sorted(named) == sorted(names)
    assert all(len(found) == 3 for found in named.values()), \
        [name for name, found in named.items() if len(found) != 3][:10]


def cross_host_stats(err: str) -> list[str]:
    """The `--stats` line about cross-host linking (`gotrace: cross-host links: ...`)."""
    return [line for line in err.splitlines()
            if line.startswith("gotrace: ") and "cross-host" in line]


def store_warnings(err: str, store: Store) -> list[str]:
    """The lines of an agent's stderr naming the store's address, its --stats lines left
    out: the warning when it became unreachable and the line when it came back (issue 22:
    one warning line, not one per retry)."""
    return [line for line in err.splitlines()
            if store.address in line and line not in cross_host_stats(err)]


def rss_kib(proc: subprocess.Popen[str]) -> int:
    status = Path(f"/proc/{proc.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert match, status
    return int(match[1])


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


# ---------------------------------------------------------------------------
# The harness without the feature


def leftovers(run_id: str) -> list[str]:
    """The namespaces and root interfaces of run_id that exist."""
    return [name for name in [*namespaces(), *os.listdir("/sys/class/net")]
            if name == run_id or name.startswith(f"{run_id}-")]


def running(pid: int) -> bool:
    """Whether pid runs (a zombie, killed but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_hosts_leave_nothing_behind():
    """A run killed with everything up (a process still running in one of its hosts) is
    cleaned up by the next one; a run that ends deletes all it made, also after an error."""
    script = ("import sys, time; sys.path.insert(0, 'tests'); from hosts import hosts\n"
              "with hosts('x') as net:\n"
              "    net.service(net['x'], 80); net['x'].popen('sleep', '600')\n"
              "    print(net.run_id, flush=True); time.sleep(600)\n")
    killed = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True, cwd=REPO)
    try:
        run_id = killed.stdout.readline().strip()
        assert run_id, "the hosts did not come up"
    finally:
        killed.kill()
        killed.wait()
    assert sorted(leftovers(run_id)) == [run_id, f"{run_id}-router", f"{run_id}-x"]
    inside = subprocess.run(["ip", "netns", "pids", f"{run_id}-x"], capture_output=True,
                            text=True, check=True).stdout.split()
    assert len(inside) == 1
    with pytest.raises(ZeroDivisionError), hosts("y") as net:
        assert leftovers(run_id) == []
        deadline = time.monotonic() + 5  # SIGKILL takes effect asynchronously
        while running(int(inside[0])) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(int(inside[0]))
        ours = net.run_id
        assert sorted(leftovers(ours)) == [ours, f"{ours}-router", f"{ours}-y"]
        1 / 0  # noqa: B018
    assert leftovers(ours) == []


def test_chain_across_hosts_without_link_store(tmp_path, net, receiver):
    """The harness itself, and what gotrace does without --link-store: the chain answers
    through the DNAT and the SNAT, each host's agent exports its own host's spans (2, 2 and 1
    per request), and a host's spans are a trace of their own, never linked to another's."""
    requests = names("r", 300)
    with chain_across(net, chain_cells((newest(),) * 3)) as (pids, front_addr, middle_addr), \
            agents(tmp_path, receiver, per_host(net, pids)) as procs:
        drive(front_addr, middle_addr, requests, concurrency=CONCURRENCY)
        spans = receiver.wait_for(5 * len(requests), timeout=60)
        errs = stop_all(procs)
    check_all_spans(spans, requests)
    assert not wrong_links(spans)
    by_service = {service: [s for s in spans if s["resource"]["service.name"] == service]
                  for _, service in SPANS_PER_REQUEST}
    traces = {service: {s["trace_id"] for s in found} for service, found in by_service.items()}
    assert len(traces["httpgrpc"]) == len(traces["grpcserver"]) == len(traces["httpserver"]) \
        == len(requests)
    assert not traces["httpgrpc"] & traces["grpcserver"]
    assert not traces["grpcserver"] & traces["httpserver"]
    # What each end saw of the other: the front called a service address, the middle's
    # server saw the front's own address (a DNAT only); the back saw the router's.
    front_client = next(s for s in by_service["httpgrpc"] if s["kind"] == "CLIENT")
    middle_server = next(s for s in by_service["grpcserver"] if s["kind"] == "SERVER")
    back_server = by_service["httpserver"][0]
    assert ip_address(front_client["attributes"]["network.peer.address"]) in net.vip_range
    assert middle_server["attributes"]["network.peer.address"] == net["front"].address
    assert back_server["attributes"]["network.peer.address"] == net.router_address
    assert all("same-host links 0," in err for err in errs), errs


# ---------------------------------------------------------------------------
# Issue 22's acceptance


def run_across(tmp_path: Path, net: Network, receiver: OtlpReceiver, store: Store,
               cells: tuple[matrix.Cell, ...], requests: list[str], warm: int = 0,
               dnat_in_front: bool = False, agent_args: Sequence[str] = (),
               expected: int | None = None, before_stop: Callable[[], None] = lambda: None
               ) -> tuple[list[dict], list[str]]:
    """The chain on three hosts (chain_across), optionally its pools warmed untraced, an
    agent per host with the link store (and agent_args), requests driven: (spans, the
    agents' stderr) once at least `expected` spans (all five per request) came, and
    before_stop called with the agents still running."""
    with chain_across(net, cells, dnat_in_front=dnat_in_front) as (pids, front_addr,
                                                                    middle_addr):
        if warm:
            drive(front_addr, middle_addr, names("warm", warm), concurrency=CONCURRENCY)
        with agents(tmp_path, receiver, per_host(net, pids), *link_args(store),
                    *agent_args) as procs:
            drive(front_addr, middle_addr, requests, concurrency=CONCURRENCY)
            receiver.settle(5 * len(requests) if expected is None else expected, QUIET)
            before_stop()
            errs = stop_all(procs)
    return receiver.spans, errs


def test_one_trace_per_request_across_three_hosts(tmp_path, net, receiver, store):
    """Three Go versions, one per host: 1,000 requests, 20 at a time, give exactly 1,000
    traces of exactly 5 spans, each the child of the one before, no request linked to
    another's."""
    gos = matrix.go_versions()
    requests = names("r", REQUESTS)
    counted: dict[str, dict] = {}

    def scrape() -> None:
        """Each agent's gotrace counters, from its own --metrics-port on its host."""
        for tier in TIERS:
            url = f"http://{net[tier].address}:{METRICS_PORT}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                counted[tier] = metric_samples(response.read().decode())

    spans, errs = run_across(tmp_path, net, receiver, store,
                             chain_cells((gos[1], gos[0], gos[-1])), requests,
                             agent_args=("--metrics-port", str(METRICS_PORT)),
                             before_stop=scrape)
    check_traces(spans, requests)
    assert not wrong_links(spans)
    assert all(cross_host_stats(err) for err in errs), errs
    linked = ("gotrace_cross_host_server_spans_total", (("result", "linked"),))
    written = ("gotrace_link_store_publications_total", (("result", "written"),))
    assert [counted[tier].get(linked) for tier in TIERS] == [0, len(requests), len(requests)]
    # Each calling span twice: pending while its own trace waits to be linked further up
    # (the front's, for a caller without an agent), then final.
    assert [counted[tier].get(written) for tier in TIERS] == \
        [2 * len(requests), 2 * len(requests), 0]


def test_sampled_alike_on_every_host(tmp_path, net, receiver, store):
    """traceidratio 0.5 on every agent: the kernels leave every TCP request's decision to
    their agents, the front's agent decides its traces, and the middle's and back's follow
    the decision published with the calling span: a request's five spans are exported as
    one linked trace, or none of them."""
    requests = names("s", 400)
    spans, _ = run_across(tmp_path, net, receiver, store, chain_cells((newest(),) * 3),
                          requests, agent_args=("--sampler", "traceidratio",
                                                "--sampler-arg", "0.5"),
                          expected=5 * len(requests) // 4)
    kept = sorted(spans_by_request(spans))
    assert 0.35 * len(requests) < len(kept) < 0.65 * len(requests)
    assert complete(spans, kept) == []
    assert len(spans) == 5 * len(kept)  # no part of an unsampled request
    assert not wrong_links(spans)


def test_pools_warm_before_the_agents_start(tmp_path, net, receiver, store):
    """Every connection of the chain opened before any agent attached: links from the
    first request on. The service address is DNAT'ed in the front host itself this time,
    as kube-proxy does for a host-network client."""
    requests = names("r", REQUESTS)
    spans, _ = run_across(tmp_path, net, receiver, store, chain_cells((newest(),) * 3),
                          requests, warm=200, dnat_in_front=True)
    check_traces(spans, requests)
    assert not wrong_links(spans)


def test_middle_agent_restarted_mid_run(tmp_path, net, receiver, store):
    """The middle's agent stops while requests flow and starts again: the requests before and
    the requests after it is back are whole traces; those in between lose the middle's spans
    (no agent there) and link what they can, and not one link anywhere is wrong."""
    before, during, after = names("a", 300), names("b", 400), names("c", 300)
    extra = link_args(store)
    with chain_across(net, chain_cells((newest(),) * 3)) as (pids, front_addr, middle_addr), \
            agents(tmp_path, receiver, [per_host(net, pids)[i] for i in (0, 2)],
                   *extra) as outer:
        middle_host, middle_targets = per_host(net, pids)[1]
        with ThreadPoolExecutor(1) as pool:
            with agent(tmp_path, receiver, middle_host, middle_targets, *extra) as middle:
                drive(front_addr, middle_addr, before, concurrency=CONCURRENCY)
                receiver.settle(5 * len(before), QUIET)
                load = pool.submit(drive, front_addr, middle_addr, during, CONCURRENCY, 200)
                stop(middle)
            with agent(tmp_path, receiver, middle_host, middle_targets, *extra) as middle:
                load.result()
                drive(front_addr, middle_addr, after, concurrency=CONCURRENCY)
                receiver.settle(5 * len(before) + 3 * len(during) + 5 * len(after), QUIET)
                stop_all([middle, *outer])
    spans = receiver.spans
    # The front's and the back's agents ran throughout: all of their spans are there.
    kinds = Counter((s["kind"], s["resource"]["service.name"]) for s in spans)
    total = len(before) + len(during) + len(after)
    assert kinds[("SERVER", "httpgrpc")] == kinds[("CLIENT", "httpgrpc")] == total
    assert kinds[("SERVER", "httpserver")] == total
    assert not wrong_links(spans)
    assert not complete(spans, before + after)


def test_redis_restarted_mid_run(tmp_path, net, receiver, store):
    """Redis stops while requests flow and starts again on its port, empty: every request's
    five spans are exported all the same (those of the outage unlinked across hosts, and
    counted), the agents' memory stays bounded, each says so in a line or two rather than per
    retry, and linking resumes once Redis is back."""
    before, outage, after = names("a", 300), names("b", 300), names("d", 300)
    probes: list[str] = []
    with chain_across(net, chain_cells((newest(),) * 3)) as (pids, front_addr, middle_addr), \
            agents(tmp_path, receiver, per_host(net, pids), *link_args(store)) as procs:
        drive(front_addr, middle_addr, before, concurrency=CONCURRENCY)
        receiver.settle(5 * len(before), QUIET)
        rss_before = [rss_kib(p) for p in procs]
        with ThreadPoolExecutor(1) as pool:  # Redis goes while requests are in flight
            load = pool.submit(drive, front_addr, middle_addr, outage, CONCURRENCY, 150)
            store.stop()
            load.result()
        receiver.settle(5 * (len(before) + len(outage)), QUIET)
        store.start()
        # The agents reconnect with a back-off: probe with small batches until one links.
        resumed = resume_probe(receiver, front_addr, middle_addr, probes, timeout=45)
        drive(front_addr, middle_addr, after, concurrency=CONCURRENCY)
        spans = receiver.settle(5 * (len(before) + len(outage) + len(probes) + len(after)),
                                QUIET)
        rss_after = [rss_kib(p) for p in procs]
        errs = stop_all(procs)
    spans = receiver.spans
    check_all_spans(spans, before + outage + probes + after)
    assert not wrong_links(spans)
    assert resumed, f"none of {len(probes)} probe requests' batches linked within 45 s"
    assert not complete(spans, before + after)
    assert complete(spans, outage), "every request linked across hosts while Redis was down"
    for tier, err in zip(TIERS, errs, strict=True):
        warnings = store_warnings(err, store)
        assert len(warnings) == 2, (tier, err)  # one outage: down once, back once
        assert "unavailable" in warnings[0] and "reachable again" in warnings[1], warnings
        assert cross_host_stats(err), (tier, err)
    assert any("unlinked" in line for err in errs[1:] for line in cross_host_stats(err)), errs
    growth = [after - before for before, after in zip(rss_before, rss_after, strict=True)]
    assert all(g < 64 * 1024 for g in growth), f"agents' RSS grew by {growth} KiB"


def resume_probe(receiver: OtlpReceiver, front_addr: str, middle_addr: str,
                 probes: list[str], timeout: float, batch: int = 20) -> bool:
    """Drive batches of `batch` requests (their names appended to probes) until one comes
    out whole, every request a complete trace, or timeout seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group = names(f"p{len(probes)}-", batch)
        probes += group
        expected = len(receiver.spans) + 5 * batch
        drive(front_addr, middle_addr, group, concurrency=batch)
        if not complete(receiver.settle(expected, QUIET, timeout=30), group):
            return True
    return False


def test_one_host_links_as_today_with_the_store_on(tmp_path, net, receiver, store):
    """All three services on one host under one agent with --link-store: same-host linking
    as without the store, every call linked locally (2 per request)."""
    requests = names("r", REQUESTS)
    host = net["front"]
    with chain_across(net, chain_cells((newest(),) * 3), where=("front",) * 3) as \
            (pids, front_addr, middle_addr), \
            agent(tmp_path, receiver, host, pid_args(*pids), *link_args(store)) as proc:
        drive(front_addr, middle_addr, requests, concurrency=CONCURRENCY)
        spans = receiver.settle(5 * len(requests), QUIET)
        _, err = stop(proc)
    check_traces(spans, requests)
    assert not wrong_links(spans)
    assert f"same-host links {2 * len(requests)}," in err, err


H2_CALLS = 40  # 20 at a time, multiplexed on one connection


# net/http's bundled HTTP/2 over TLS; GOTRACE_MATRIX=full adds x/net's h2c (prior knowledge).
@pytest.mark.parametrize("mode", ["tls", *(["h2c"] if FULL else [])])
def test_http2_hop_across_hosts(tmp_path, net, receiver, store, mode):
    """testapps/h2's client on the front host calls its server on the back host through a
    service address (DNAT in the router) and a SNAT, 20 streams at a time on one connection:
    each server span the child of the client span of its own stream (the stream id is the
    request's identity on the connection, as the name is on HTTP/1)."""
    binary = matrix.build(matrix.Cell("h2", newest(), "stripped"))
    client = tmp_path / "h2"  # its own copy: --exe traces every process of the file
    shutil.copy2(binary, client)
    front, back = net["front"], net["back"]
    with go_server(binary, "serve", "-mode", mode, place=back) as (server, addr):
        vip = net.service(back, int(addr.rsplit(":", 1)[1]), vip_port=443)
        net.snat(front, back)
        scheme = "https" if mode == "tls" else "http"
        with agents(tmp_path, receiver, [(front, ["--exe", str(client)]),
                                         (back, pid_args(server.pid))],
                    *link_args(store)) as procs:
            done = subprocess.run(
                [*front.prefix, str(client), "call", "-mode", mode, "-url",
                 f"{scheme}://{vip}/hello?name=h2", "-n", str(H2_CALLS), "-concurrency", "20",
                 "-linger", "1s"], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "CONNS 1\n" in done.stdout, done.stdout
            spans = receiver.settle(2 * H2_CALLS, QUIET)
            stop_all(procs)
    servers = [s for s in spans if s["kind"] == "SERVER"]
    clients = {s["span_id"]: s for s in spans if s["kind"] == "CLIENT"}
    assert len(servers) == len(clients) == H2_CALLS
    # Neither end saw the other's address: the client called the service address, the
    # server was called from the router's.
    assert {s["attributes"]["network.peer.address"] for s in servers} == {net.router_address}
    assert {s["attributes"]["network.local.address"] for s in servers} == {back.address}
    assert {(c["attributes"]["network.local.address"], c["attributes"]["network.peer.address"])
            for c in clients.values()} == {(front.address, vip.rsplit(":", 1)[0])}
    assert not wrong_links(spans)
    parents = [clients.get(s["parent_span_id"] or "") for s in servers]
    assert all(parents), f"{parents.count(None)} server spans left unlinked"
    assert len({p["span_id"] for p in parents if p}) == H2_CALLS
    for server, parent in zip(servers, parents, strict=True):
        assert parent is not None
        assert server["attributes"]["http2.stream.id"] == parent["attributes"]["http2.stream.id"]
