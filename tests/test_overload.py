"""The overload policy (gotrace/pipeline/overload.py, bpf/shedding.h): when gotrace cannot keep
up, the kernel sheds whole traces by decision; every error and slow request is still
exported, and the counts add up. Not timed: the figures are in `make bench`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from debian_programs import prometheus
from tracing import go_server, gotrace, read_spans

from gotrace.pipeline.overload import (
    BUSY_CPU,
    MIN_RATIO,
    MachineLoad,
    OverloadController,
    OverloadSettings,
    Pressure,
)
from gotrace.pipeline.sampling import KEEP_ALL, SamplingGate
from gotrace.pipeline.session import take_while_queues_move
from gotrace.spans import Resource, Span
from testapps import matrix

SHED = re.compile(r"overload: kept share (\S+) \(lowest (\S+)\), spans shed (\d+) in the "
                  r"kernel, (\d+) by gotrace; of shed traces, (\d+) spans kept")
SAMPLED_OUT = re.compile(r"spans sampled out (\d+) in the kernel, (\d+) by gotrace")
CUT_FOR_MAX_CPU = re.compile(r"the kept share cut for: .*--max-cpu [1-9]")
SLOW_MS = 80


def _loadgen() -> Path:
    grpc = list(matrix.grpc_gopaths())[-1]
    return matrix.build(matrix.Cell("loadgen", matrix.supported_go(grpc)[-1], "stripped", grpc))


def _load(url: str, rate: float, seconds: float, conns: int = 4) -> subprocess.Popen[str]:
    return subprocess.Popen([str(_loadgen()), "-url", url, "-rate", str(rate), "-conns",
                             str(conns), "-duration", f"{seconds}s"],
                            stdout=subprocess.PIPE, text=True)


def _requests(load: subprocess.Popen[str]) -> int:
    out, _ = load.communicate(timeout=120)
    return int(json.loads(out)["requests"])


def _stop_in_bursts(tracer: subprocess.Popen[str], seconds: float) -> None:
    """gotrace stopped for 2.5 s at a time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        os.kill(tracer.pid, signal.SIGSTOP)
        time.sleep(2.5)
        os.kill(tracer.pid, signal.SIGCONT)
        time.sleep(0.5)


def _policies(tracer: subprocess.Popen[str]) -> set[int]:
    """The scheduling policies of gotrace's threads."""
    return {os.sched_getscheduler(int(task)) for task in os.listdir(f"/proc/{tracer.pid}/task")}


def _competing(tracer: subprocess.Popen[str], seconds: float) -> None:
    """No pressure but the load; gotrace (--no-yield-cpu) at normal priority meanwhile."""
    assert _policies(tracer) == {os.SCHED_OTHER}
    time.sleep(seconds)


def _busy_cpus(tracer: subprocess.Popen[str], seconds: float) -> None:
    """Every CPU kept busy at normal priority, which gotrace, running on idle time only by
    default (each of its threads SCHED_IDLE), leaves to them."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(os.cpu_count() or 1)]
    try:
        assert _policies(tracer) == {os.SCHED_IDLE}
        time.sleep(seconds)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@dataclass(frozen=True)
class Workload:
    """A server (started in a directory; yields its process and host:port) and what it is
    sent: a fast path as fast as it goes, errors (status 500 or more) and slow requests
    (longer than slow_ms) at fixed rates."""

    server: Callable[[Path], AbstractContextManager[tuple[subprocess.Popen, str]]]
    fast: str
    error: str
    slow: str
    slow_ms: int


def _testapp(_workdir: Path) -> AbstractContextManager[tuple[subprocess.Popen, str]]:
    return go_server(matrix.build(matrix.Cell("httpserver", matrix.go_versions()[-1],
                                              "stripped")))


TESTAPP = Workload(_testapp, "/hello", "/error", f"/slow?ms={SLOW_MS + 20}", SLOW_MS)
# Debian's prometheus: a query that times out at once answers 503; a subquery of three days
# at one-second steps takes tens of milliseconds of evaluation.
DEBIAN_PROMETHEUS = Workload(
    lambda workdir: prometheus(workdir, "loaded"), "/-/healthy",
    "/api/v1/query_range?query=up&start=0&end=1&step=1&timeout=0.000000001",
    "/api/v1/query?query=count_over_time(vector(1)[3d:1s])", 20)


def _served_under(tmp_path: Path, extra: list[str],
                  pressure: Callable[[subprocess.Popen[str], float], None],
                  workload: Workload = TESTAPP) -> tuple[Counter, dict, str]:
    """A server traced to JSON lines under more load than gotrace takes (its CPU capped, or
    the pressure put on it while the load lasts), with errors and slow requests among it.
    Returns the requests sent per path, the exported spans per path, and gotrace's stderr."""
    out = tmp_path / "spans.jsonl"
    seconds = 10.0
    with workload.server(tmp_path) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--jsonl", str(out),
                    "--stats", "--slow", f"{workload.slow_ms}ms", *extra) as proc:
        loads = {"fast": _load(f"http://{addr}{workload.fast}", 0, seconds, conns=8),
                 "error": _load(f"http://{addr}{workload.error}", 40, seconds, conns=1),
                 "slow": _load(f"http://{addr}{workload.slow}", 5, seconds, conns=1)}
        pressure(proc, seconds - 1)
        sent = Counter({label: _requests(load) for label, load in loads.items()})
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    labels = {urlsplit(getattr(workload, label)).path: label for label in loads}
    exported = Counter(labels[span["attributes"]["url.path"]] for span in read_spans(out))
    return sent, dict(exported), err


def _check(sent: Counter, exported: dict, err: str) -> None:
    # Every error and every slow request, shed or not.
    assert exported.get("error") == sent["error"] > 0, (sent, exported, err)
    assert exported.get("slow") == sent["slow"] > 0, (sent, exported, err)
    # The policy shed (the load was too much), by decision: nothing lost.
    _share, lowest, shed_kernel, shed_here, _rescued = SHED.search(err).groups()
    assert float(lowest) < 1 and int(shed_kernel) + int(shed_here) > 0, err
    assert "spans lost in the kernel" not in err, err
    summary = next(line for line in err.splitlines() if "jsonl: exported" in line)
    assert "dropped" not in summary and "could not be delivered" not in err, err
    sampled_kernel, sampled_here = map(int, SAMPLED_OUT.search(err).groups())
    assert sampled_kernel == sampled_here == 0, err  # the sampler keeps everything
    total_exported = sum(exported.values())
    assert total_exported + int(shed_kernel) + int(shed_here) == sum(sent.values()), \
        (sent, exported, err)


def test_a_starved_tracer_sheds_in_the_kernel_and_keeps_every_error_and_slow_request(tmp_path):
    """gotrace stopped for 2.5 s at a time: the ring buffer fills past half, and the kernel
    sheds new traces by itself, keeping the errors and slow ones."""
    _check(*_served_under(tmp_path, [], _stop_in_bursts))


def test_debian_prometheus_starved_tracer_keeps_every_error_and_slow_query(tmp_path):
    """The same, on Debian's prometheus as shipped (stripped, Go 1.19): its health check as
    fast as it goes, queries that time out (503) and slow ones."""
    _check(*_served_under(tmp_path, [], _stop_in_bursts, DEBIAN_PROMETHEUS))


def test_max_cpu_sheds_to_its_budget_and_keeps_every_error_and_slow_request(tmp_path):
    """--max-cpu 5: far below what the load needs, so gotrace lowers the kept share; at
    normal priority (--no-yield-cpu), so that the budget alone limits it."""
    sent, exported, err = _served_under(tmp_path, ["--max-cpu", "5", "--no-yield-cpu"],
                                        _competing)
    _check(sent, exported, err)
    assert CUT_FOR_MAX_CPU.search(err), err


def test_gotrace_leaves_a_busy_machine_to_its_programs_and_sheds_by_decision(tmp_path):
    """By default, on a machine whose CPUs are all busy: gotrace gets next to no CPU, so the
    kernel sheds, keeping every error and slow request, and nothing is lost."""
    _check(*_served_under(tmp_path, [], _busy_cpus))


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.cpu = 0.0

    def tick(self, seconds: float, cpu_share: float) -> None:
        self.now += seconds
        self.cpu += seconds * cpu_share


CALM = Pressure(ring_fill=0.0, queue_fill=0.0, lost=0)


def _controller(max_cpu: float | None = None) -> tuple[OverloadController, _Clock]:
    clock = _Clock()
    return OverloadController(OverloadSettings(max_cpu=max_cpu), cpu_clock=lambda: clock.cpu,
                              clock=lambda: clock.now), clock


def test_pressure_halves_the_kept_share_at_most_twice_a_second_and_calm_raises_it():
    control, clock = _controller()
    assert control.bound == 0  # nothing shed
    full = Pressure(ring_fill=0.6, queue_fill=0.0, lost=0)
    seen = []
    for _ in range(10):  # 1 s of full ring buffers, looked at every 0.1 s
        clock.tick(0.1, 0.5)
        control.update(full)
        seen.append(control.ratio)
    assert seen[0] == 0.5 and control.ratio == 0.5 ** 2, seen
    assert control.bound == int(0.25 * (1 << 63))
    clock.tick(0.6, 0.5)
    control.update(Pressure(0.0, 0.0, lost=5))  # spans lost: shed more
    assert control.ratio == 0.125
    assert control.cuts == {"backlog": 2, "spans lost": 1}
    for _ in range(50):  # calm: a quarter more a second, up to everything
        clock.tick(0.1, 0.1)
        control.update(Pressure(0.0, 0.0, lost=5))
    assert 0.125 < control.ratio < 1 and control.lowest_ratio == 0.125
    for _ in range(200):
        clock.tick(0.1, 0.1)
        control.update(Pressure(0.0, 0.0, lost=5))
    assert control.ratio == 1 and control.bound == 0


def test_max_cpu_cuts_to_the_budget_and_never_below_the_floor():
    control, clock = _controller(max_cpu=0.2)
    for _ in range(11):  # a second at 80% of a core: four times the budget
        clock.tick(0.1, 0.8)
        control.update(CALM)
    assert control.ratio == pytest.approx(0.9 * 0.2 / 0.8)
    assert control.cuts == {"--max-cpu": 1}
    for _ in range(1000):
        clock.tick(0.1, 1.0)
        control.update(CALM)
    assert control.ratio == MIN_RATIO
    assert control.keeps(bytes(16)) and not control.keeps(b"\xff" * 16)


@pytest.mark.parametrize(("others", "traced", "max_cpu", "expected"), [
    (0.9, 0.4, None, 0.9 * BUSY_CPU / 0.2),  # busy with the traced programs: the busy budget
    (0.9, 0.2, None, 1.0),  # busy with something else: the traced programs' rate is modest
    (0.5, 0.4, None, 1.0),  # a machine with room: no budget
    (0.9, 0.4, 0.5, 1.0),  # --max-cpu's 50% wins over the busy budget
])
def test_on_a_busy_machine_gotrace_holds_to_the_busy_budget(others, traced, max_cpu, expected):
    """--yield-cpu's budget applies only while the other processes keep the machine busy, a
    third of it or more the programs gotrace traces; what attaching cost is not judged."""
    clock = _Clock()
    ticks = [0, 0]  # busy, all, of two CPUs
    programs = {7: 1000, 8: 0}  # a traced program's ticks; PID 8 exits
    asked: list[set[int]] = []

    def process_ticks(pids):
        asked.append(set(pids))
        return {pid: programs[pid] for pid in pids if pid in programs}

    machine = MachineLoad(lambda: (ticks[0], ticks[1]), lambda: [7, 8], cpus=2,
                          process_ticks=process_ticks)
    control = OverloadController(OverloadSettings(max_cpu=max_cpu, busy_cpu=BUSY_CPU),
                                 cpu_clock=lambda: clock.cpu, clock=lambda: clock.now,
                                 machine=machine)
    clock.tick(5, 1.0)  # attaching: a core for five seconds
    ticks[0] += 1000
    ticks[1] += 1000
    control.begin()
    for _ in range(11):  # a second with gotrace at 20% of a core: 10% of the machine
        clock.tick(0.1, 0.2)
        ticks[0] += round(20 * (others + 0.1))
        ticks[1] += 20
        programs[7] += round(20 * traced)
        programs.pop(8, None)
        control.update(CALM)
    assert machine.others_busy == pytest.approx(others)
    assert machine.traced_busy == pytest.approx(traced)
    assert control.ratio == pytest.approx(expected)
    assert control.cuts == ({"busy machine": 1} if expected < 1 else {})
    machine.begin()
    assert asked == [{7, 8}, {7, 8}, {7}]  # a process found gone is not looked for again


def test_the_gate_keeps_a_rescued_trace_whole_and_counts_what_it_sheds():
    """A client span of a shed trace sent only for linking is kept with its rescued root (in
    the same release) and shed otherwise; a deferred trace obeys the kept share unless an
    error or a slow span is in it."""
    control, clock = _controller()
    clock.tick(1, 0)
    control.update(Pressure(ring_fill=0.9, queue_fill=0, lost=0))
    control.ratio = MIN_RATIO  # shed nearly everything
    gate = SamplingGate(KEEP_ALL, control, slow_ns=lambda _kind: 1_000)

    def span(trace: int, sampling: str, status: str = "UNSET", duration: int = 10,
             root: bool = True) -> Span:
        tid = (trace << 64 | (1 << 63) - 1).to_bytes(16, "big")  # a high rank: shed
        return Span(tid, bytes(8), None if root else bytes(8), "s", "SERVER", 0, duration,
                    Resource({}), status=status, sampling=sampling,  # type: ignore[arg-type]
                    monotonic_start_ns=0, monotonic_end_ns=duration)

    kept = gate.filter([span(1, "shed", root=False), span(1, "rescued", status="ERROR"),
                        span(2, "shed", root=False),
                        span(3, "deferred"), span(4, "deferred", status="ERROR"),
                        span(5, "deferred", duration=5_000),
                        # A callee linked to a shed call, its caller's root shed in the kernel.
                        span(6, "deferred", status="ERROR"), span(6, "shed", root=False)])
    assert [int.from_bytes(s.trace_id[:8], "big") for s in kept] == [1, 1, 4, 5]
    assert (gate.dropped, gate.shed) == (4, 4)


@pytest.fixture
def far_host():
    """A network namespace joined by a veth pair: an address that is not this host's, so
    that a call to it is not a same-host link (and a shed trace's call waits in the kernel
    for its root)."""
    name, octet = f"gotrace-far-{os.getpid()}", 64 + os.getpid() % 128
    host_end, far_end = f"gtf{os.getpid() % 100000}", "gtfar0"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (["ip", "link", "add", host_end, "type", "veth", "peer", "name",
                         far_end, "netns", name],
                        ["ip", "addr", "add", f"10.199.{octet}.1/30", "dev", host_end],
                        ["ip", "link", "set", host_end, "up"],
                        ["ip", "-n", name, "addr", "add", f"10.199.{octet}.2/30", "dev", far_end],
                        ["ip", "-n", name, "link", "set", far_end, "up"],
                        ["ip", "-n", name, "link", "set", "lo", "up"]):
            subprocess.run(command, check=True)
        yield name, f"10.199.{octet}.2"
    finally:
        subprocess.run(["ip", "link", "delete", host_end], check=False)
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_a_shed_trace_with_an_error_is_exported_whole(tmp_path, far_host):
    """A proxy whose calls go to another host, its CPU budget far below the load: its traces
    are shed, and those whose call failed (the proxy answers 500) are exported with the call,
    which the kernel held until the proxy's span ended."""
    namespace, address = far_host
    binary = matrix.build(matrix.Cell("httpserver", matrix.go_versions()[-1], "stripped"))
    far = subprocess.Popen(["ip", "netns", "exec", namespace, str(binary), "-addr",
                            f"{address}:0"], stdout=subprocess.PIPE, text=True)
    try:
        ready = far.stdout.readline() if far.stdout else ""
        assert ready.startswith("READY "), ready
        target = ready.split()[1]
        out = tmp_path / "spans.jsonl"
        seconds = 8.0
        with go_server(binary) as (proxy, addr), \
                gotrace(tmp_path, "trace", "--pid", str(proxy.pid), "--jsonl", str(out),
                        "--stats", "--slow", "10s", "--max-cpu", "5") as proc:
            busy = _load(f"http://{addr}/proxy?url=http://{target}/hello", 0, seconds)
            failing = _load(f"http://{addr}/proxy?url=http://{target}/error", 20, seconds, 1)
            errors = _requests(failing)
            _requests(busy)
            time.sleep(1.5)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
    finally:
        far.terminate()
        far.wait(10)
    assert proc.returncode == 0, err
    spans = read_spans(out)
    _share, lowest, shed_kernel, _, rescued = SHED.search(err).groups()
    assert float(lowest) < 1 and int(shed_kernel) > 0, err
    assert int(rescued) >= 2, err  # at least one error's server span and its call
    failed = [s for s in spans if s["kind"] == "SERVER" and s["attributes"].get(
        "http.response.status_code") == 500]
    calls = {s["parent_span_id"]: s for s in spans if s["kind"] == "CLIENT"}
    assert len(failed) == errors > 0, err
    for server in failed:
        call = calls.get(server["span_id"])
        assert call is not None and call["trace_id"] == server["trace_id"], server
        assert call["attributes"]["url.full"].endswith("/error"), call


def _drain(rooms: list[int]) -> int:
    """Polls take_while_queues_move makes, each 1/32 s of a fake clock, while the ring buffers
    always leave records behind and the queues' room is rooms[i] after poll i (then 0)."""
    clock = _Clock()
    polls = 0

    def poll() -> bool:
        nonlocal polls
        polls += 1
        clock.tick(1 / 32, 0.0)
        return True

    def room() -> int:
        return rooms[polls - 1] if polls <= len(rooms) else 0

    take_while_queues_move(poll, room, seconds=10.0, stall=2.0, clock=lambda: clock.now)
    return polls


def test_the_final_drain_goes_on_while_the_queues_move_and_stops_when_they_stall():
    assert _drain([]) == 64  # no room ever (an exporter whose endpoint is down): 2 s
    assert _drain([1] * 128) == 128 + 64  # room for 4 s, then 2 s of none
    assert _drain([1] * 1000) == 320  # the queues keep up: until the 10 s are over
