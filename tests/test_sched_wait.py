"""Scheduler wait (--sched-wait): runnable time and blocked time by reason, per span.

testapps/schedwait blocks each request's goroutine on one known thing for a known time, and
can run CPU-bound goroutines beside the server; with GOMAXPROCS=1 they compete with every
request for the one processor.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess

import pytest
from otlp_receiver import OtlpReceiver
from tracing import get, go_server, gotrace, otlp_args, stop

from gotrace.facts.scheduler import ATTRIBUTE_NAMES, reason_class
from gotrace.gobin.binary import GoBinary
from gotrace.gobin.waitreasons import wait_reason_names
from testapps import matrix

GOS = [matrix.go_versions()[0], matrix.go_versions()[-1]]
WAIT_MS = 30
WORK_US = 25_000  # past the scheduler's 10 ms time slice: a competitor then takes turns


def test_wait_reason_names_equal_the_runtime_array(tmp_path):
    """The names found by content in a stripped binary are runtime.waitReasonStrings, as the
    symbol table of the same program unstripped locates it (`go tool nm`)."""
    for go in matrix.go_versions():
        plain = matrix.build(matrix.Cell("httpserver", go, "plain"))
        nm = subprocess.run([str(matrix.go_binary(go)), "tool", "nm", "-size", str(plain)],
                            capture_output=True, text=True, check=True).stdout
        match = re.search(r"^\s*([0-9a-f]+)\s+(\d+) D runtime\.waitReasonStrings$", nm, re.M)
        assert match, go
        address, size = int(match[1], 16), int(match[2])
        with GoBinary(plain) as binary:
            headers = binary.image.words(address, size // 8)
            expected = [binary.image.read(ptr, length).decode() if length else ""
                        for ptr, length in zip(headers[::2], headers[1::2], strict=True)]
        with GoBinary(matrix.build(matrix.Cell("httpserver", go, "stripped"))) as binary:
            assert wait_reason_names(binary.image) == expected, go
        classes = {reason_class(name) for name in expected}
        assert classes == {"network", "channel", "lock", "sleep", "other"}, go


def _traced_requests(receiver: OtlpReceiver, tmp_path, go: str, hogs: int,
                     paths: list[str], *flags: str) -> tuple[list[dict], str]:
    """SERVER spans of `paths`, requested one after another from a schedwait server with
    GOMAXPROCS=1 and `hogs` CPU-bound goroutines; and gotrace's stderr."""
    receiver.clear()
    binary = matrix.build(matrix.Cell("schedwait", go, "stripped"))
    env = {**os.environ, "GOMAXPROCS": "1"}
    with (go_server(binary, "-hogs", str(hogs), env=env) as (server, addr),
          gotrace(tmp_path, "trace", "--pid", str(server.pid), "--stats", *flags,
                  *otlp_args(receiver)) as tracer):
        assert [get(addr, path) for path in paths] == [200] * len(paths)
        spans = receiver.wait_for(len(paths), timeout=15)
        _, err = stop(tracer)
    assert len(spans) == len(paths), err
    return spans, err


def _ms(span: dict, attribute: str) -> float:
    return span["attributes"][attribute] / 1e6


@pytest.mark.parametrize("go", GOS)
def test_runnable_time_grows_with_a_competing_goroutine(tmp_path, go):
    paths = [f"/work?us={WORK_US}"] * 10
    with OtlpReceiver() as receiver:
        alone, err = _traced_requests(receiver, tmp_path, go, 0, paths, "--sched-wait")
        contended, _ = _traced_requests(receiver, tmp_path, go, 1, paths, "--sched-wait")
    assert re.search(r"sched_casgstatus=\d+", err), err
    quiet = statistics.median(_ms(s, "go.sched.runnable_ns") for s in alone)
    busy = statistics.median(_ms(s, "go.sched.runnable_ns") for s in contended)
    # Preempted after its 10 ms slice, the handler waits while the hog has its turn.
    assert busy > 5.0 and busy > 5 * quiet, (quiet, busy)
    for span in alone + contended:
        duration_ms = (span["end_time_unix_nano"] - span["start_time_unix_nano"]) / 1e6
        waited = sum(_ms(span, name) for name in ATTRIBUTE_NAMES)
        assert waited <= duration_ms, span


@pytest.mark.parametrize("go", GOS)
def test_blocked_time_is_told_apart_by_reason(tmp_path, go):
    routes = {"sleep": "sleep", "chan": "channel", "lock": "lock", "net": "network",
              "syscall": "syscall"}
    paths = [f"/{route}?ms={WAIT_MS}" for route in routes]
    with OtlpReceiver() as receiver:
        spans, _ = _traced_requests(receiver, tmp_path, go, 0, paths, "--sched-wait")
    by_route = {span["attributes"]["url.path"].lstrip("/"): span for span in spans}
    for route, reason in routes.items():
        span = by_route[route]
        blocked = _ms(span, f"go.sched.blocked.{reason}_ns")
        assert WAIT_MS * 0.9 <= blocked <= WAIT_MS + 20, (route, span["attributes"])
        others = sum(_ms(span, name) for name in ATTRIBUTE_NAMES
                     if name != f"go.sched.blocked.{reason}_ns")
        # What else the handler waits for (starting a goroutine, the response's write) is
        # short, but a loaded machine stretches it.
        assert others < WAIT_MS / 2, (route, span["attributes"])


def test_no_sched_attributes_unless_asked(tmp_path):
    with OtlpReceiver() as receiver:
        spans, err = _traced_requests(receiver, tmp_path, GOS[-1], 0, ["/sleep?ms=1"])
    assert not any(name in spans[0]["attributes"] for name in ATTRIBUTE_NAMES)
    assert "sched_casgstatus" not in err
