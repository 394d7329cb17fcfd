"""One `gotrace trace` or `gotrace run` process with --stats: when it was ready, its CPU and
memory while it runs, and the counters it prints when it ends."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import REPO
from bench.cpus import pinned_to
from bench.procstat import cpu_seconds, grpc_threads_cpu_seconds, memory_mb


@dataclass(frozen=True)
class CrossHostCounts:
    """What `--stats` printed about cross-host linking (an agent with --link-store)."""

    linked: int  # server spans joined to a caller's trace on another host
    unlinked: dict[str, int]  # ... exported without, by reason
    published: int  # keys written to the store
    publish_dropped: dict[str, int]  # ... not written, by reason
    lookups: int  # keys asked (once per round trip while wanted)
    found: int
    round_trips: int
    outages: int
    lookups_given_up: int  # for room


@dataclass(frozen=True)
class TraceStats:
    """What `--stats` printed: probe hits per BPF program, spans exported and dropped by
    the export pipeline, spans lost in the kernel by reason."""

    hits: dict[str, int]
    exported: int
    dropped: int
    kernel_lost: dict[str, int]
    sampled_out: tuple[int, int] = (0, 0)  # (in the kernel, in gotrace)
    run_ns: dict[str, int] = field(default_factory=dict)  # per BPF program, if counted
    # The overload policy: the kept share at the end, the lowest it reached, spans shed
    # (in the kernel, in gotrace).
    kept_share: float = 1.0
    lowest_share: float = 1.0
    shed: tuple[int, int] = (0, 0)
    cross_host: CrossHostCounts | None = None  # with --link-store

    @property
    def total_hits(self) -> int:
        return sum(self.hits.values())

    @property
    def lost(self) -> int:
        """Every span that did not reach the exporters' destination."""
        return self.dropped + sum(self.kernel_lost.values())


def _named(text: str) -> dict[str, int]:
    """The name=count pairs in text."""
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}


def _pairs(text: str, marker: str) -> dict[str, int]:
    """The name=count pairs on the line that contains marker."""
    for line in text.splitlines():
        if marker in line:
            return _named(line.split(marker, 1)[1])
    return {}


CROSS_HOST = re.compile(
    r"gotrace: cross-host links: linked (\d+), unlinked (.*?); link store published (\d+) "
    r"\(dropped (.*?)\), looked up (\d+), found (\d+), round trips (\d+), outages (\d+), "
    r"lookups given up for room (\d+)")


def _cross_host(stderr: str) -> CrossHostCounts | None:
    m = CROSS_HOST.search(stderr)
    if m is None:
        return None
    return CrossHostCounts(int(m[1]), _named(m[2]), int(m[3]), _named(m[4]),
                           *(int(m[i]) for i in range(5, 10)))


def parse_stats(stderr: str) -> TraceStats:
    """The counters of the lines `gotrace ... --stats` ends with, e.g.
    'gotrace: 2000 spans; otlp: exported 1990, dropped 10 (queue_full 10)',
    'gotrace: probe hits http_server_entry=2000, http_server_end=2000',
    'gotrace: probe run time ns (kernel.bpf_stats_enabled) http_server_entry=11400000, ...',
    'gotrace: spans lost in the kernel ringbuf_full=3',
    'gotrace: sampler traceidratio: spans sampled out 900 in the kernel, 80 by gotrace',
    'gotrace: overload: kept share 0.25 (lowest 0.125), spans shed 9000 in the kernel, 10 by
    gotrace',
    'gotrace: cross-host links: linked 9, unlinked not_found=1, store_down=0, no_identity=0;
    link store published 0 (dropped store_down=0, queue_full=0), looked up 12, found 9,
    round trips 5, outages 0, lookups given up for room 0'."""
    summary = next((line for line in stderr.splitlines()
                    if re.match(r"gotrace: \d+ spans", line)), "")
    sampled = re.search(r"spans sampled out (\d+) in the kernel, (\d+) by gotrace", stderr)
    overload = re.search(r"overload: kept share (\S+) \(lowest (\S+)\), spans shed (\d+) in "
                         r"the kernel, (\d+) by gotrace", stderr)
    return TraceStats(
        hits=_pairs(stderr, "probe hits"),
        exported=sum(int(n) for n in re.findall(r"exported (\d+)", summary)),
        dropped=sum(int(n) for n in re.findall(r"dropped (\d+)", summary)),
        kernel_lost=_pairs(stderr, "spans lost in the kernel"),
        sampled_out=(int(sampled[1]), int(sampled[2])) if sampled else (0, 0),
        run_ns=_pairs(stderr, "probe run time ns (kernel.bpf_stats_enabled)"),
        **({"kept_share": float(overload[1]), "lowest_share": float(overload[2]),
            "shed": (int(overload[3]), int(overload[4]))} if overload else {}),
        cross_host=_cross_host(stderr),
    )


class Gotrace:
    """Starts `gotrace ARGS --stats --ready-file ...` (optionally under bench.profiled);
    ready() waits for the probes to be attached and returns how long that took from the
    command's start. As a context manager, it never leaves gotrace running behind it."""

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str] | None = None,
                 profile: Path | None = None, cpus: frozenset[int] | None = None,
                 prefix: Sequence[str] = ()) -> None:
        """cpus: where gotrace runs (bench.cpus), if not anywhere; prefix: a command that
        runs it (e.g. a tests/hosts.py Host's, inside that host's network namespace), which
        must exec it so that the process started is gotrace's."""
        self._dir = tempfile.TemporaryDirectory(prefix="gotrace-bench-")
        self._ready = Path(self._dir.name) / "ready"
        self._stderr = open(Path(self._dir.name) / "stderr", "w+")  # noqa: SIM115
        command, rest = args[0], list(args[1:])
        runner = ["-m", "bench.profiled", str(profile)] if profile else ["-m", "gotrace"]
        self._started = time.monotonic()
        self._interrupted = False
        self.process = subprocess.Popen(
            [*prefix, sys.executable, *runner, command, "--stats", "--ready-file", str(self._ready),
             *rest],
            cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
            stderr=self._stderr, preexec_fn=pinned_to(cpus))

    def __enter__(self) -> Gotrace:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.interrupt()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def ready(self, timeout: float = 120) -> float:
        while not self._ready.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"gotrace exited with {self.process.returncode}: "
                                   f"{self._output()}")
            if time.monotonic() - self._started > timeout:
                self.process.kill()
                raise RuntimeError("gotrace did not attach in time")
            time.sleep(0.01)
        return time.monotonic() - self._started

    def restart_profile(self) -> None:
        """Under bench.profiled: profile only from now on."""
        self.process.send_signal(signal.SIGUSR1)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def grpc_cpu(self) -> float:
        """The part of cpu() that gRPC's own threads used (bench.procstat)."""
        return grpc_threads_cpu_seconds(self.pid)

    def memory(self, key: str) -> float:
        return memory_mb(self.pid, key)

    def interrupt(self) -> None:
        """SIGINT (detach, flush, exit), once (a second would cut the flush short): to stop
        several sessions at once, then wait() for each."""
        if self.process.poll() is None and not self._interrupted:
            self.process.send_signal(signal.SIGINT)
            self._interrupted = True

    def stop(self) -> TraceStats:
        """SIGINT (detach, flush, exit) and the counters printed."""
        self.interrupt()
        return self.wait()

    def wait(self, timeout: float = 120) -> TraceStats:
        """Wait for gotrace to end by itself (`gotrace run` when its program exits)."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        output = self._output()
        self._close()
        if code != 0:
            raise RuntimeError(f"gotrace exited with {code}: {output}")
        return parse_stats(output)

    def _close(self) -> None:
        self._stderr.close()
        self._dir.cleanup()

    def _output(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()
