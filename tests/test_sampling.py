"""Sampling: OpenTelemetry's samplers decided in the kernel, consistently across processes,
and the adaptive tail sampler."""

from __future__ import annotations

import http.client
import re
import time
from collections import defaultdict

import pytest
from otlp_receiver import OtlpReceiver
from test_linking import chain_cells, chain_services, check_traces, drive
from tracing import go_server, gotrace, name_of, otlp_args, stop

from gotrace.errors import GotraceError
from gotrace.pipeline.sampling import AdaptivePolicy, SamplerConfig, sampler_config
from gotrace.pipeline.session import POLL_INTERVAL_MS
from testapps import matrix

SAMPLED_OUT = re.compile(r"spans sampled out (\d+) in the kernel, (\d+) by gotrace")
NEWEST = matrix.go_versions()[-1]


def kept_by_rule(trace_id_hex: str, ratio: float) -> bool:
    """OpenTelemetry's TraceIdRatioBased rule, written out independently."""
    low = int(trace_id_hex[16:], 16)
    return (low >> 1) < int(ratio * 2**63)


def settled(receiver: OtlpReceiver, quiet_s: float = 2.5, timeout: float = 60) -> list[dict]:
    """The spans once none has arrived for quiet_s (the linker holds some for 1 s)."""
    deadline = time.monotonic() + timeout
    count, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        spans = receiver.spans
        if len(spans) != count:
            count, since = len(spans), time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return spans
        time.sleep(0.1)
    raise AssertionError("spans kept arriving")


def test_sampler_settings():
    assert sampler_config(None, None) == SamplerConfig("parentbased_always_on")
    assert sampler_config("TraceIdRatio", "0.25") == SamplerConfig("traceidratio", 0.25)
    assert sampler_config("adaptive", "rate=5,slow=250ms").adaptive == \
        AdaptivePolicy(rate=5.0, slow_ns=250_000_000, slow_quantile=None)
    assert sampler_config("adaptive", "slow=p95").adaptive == AdaptivePolicy(slow_quantile=0.95)
    for name, arg in (("sometimes", None), ("traceidratio", "half"), ("traceidratio", "2"),
                      ("adaptive", "slow=fast"), ("adaptive", "rate=x")):
        with pytest.raises(GotraceError):
            sampler_config(name, arg)
    ratio = SamplerConfig("traceidratio", 0.3)
    for i in range(2000):
        trace_id = (i * 0x9E3779B97F4A7C15 % 2**128).to_bytes(16, "big")
        assert ratio.keeps_root(trace_id) == kept_by_rule(trace_id.hex(), 0.3)


def test_ratio_decided_in_the_kernel_and_consistent_across_three_processes(tmp_path):
    """traceidratio 0.5 over HTTP front -> gRPC middle -> HTTP back, each traced: a trace is
    kept whole or not at all, by OpenTelemetry's rule on its (linked) trace id; the front's
    decisions move into the kernel once linking found no traced caller on its connections."""
    ratio, n = 0.5, 300
    names = [f"r{i}" for i in range(n)]
    with (OtlpReceiver() as receiver,
          chain_services(chain_cells((NEWEST,) * 3)) as (pids, front_addr, middle_addr),
          gotrace(tmp_path, "trace", *[a for pid in pids for a in ("--pid", str(pid))],
                  "--include-query", "--stats", "--sampler", "traceidratio",
                  "--sampler-arg", str(ratio), *otlp_args(receiver)) as tracer):
        # Three seconds on the same four connections: the linker finds no traced caller on
        # each after its first second.
        drive(front_addr, middle_addr, names, concurrency=4, rate=n / 3)
        spans = settled(receiver)
        _, err = stop(tracer)
    traces = defaultdict(list)
    for span in spans:
        traces[span["trace_id"]].append(span)
    kept = [name_of(min(t, key=lambda s: s["start_time_unix_nano"])) for t in traces.values()]
    check_traces(spans, kept)
    assert all(kept_by_rule(trace_id, ratio) for trace_id in traces), err
    assert 0.35 * n < len(traces) < 0.65 * n, (len(traces), err)
    in_kernel, in_gotrace = map(int, SAMPLED_OUT.search(err).groups())
    assert len(spans) + in_kernel + in_gotrace == 5 * n, err
    # After the first second the front decides in the kernel: the front's server span of an
    # unsampled trace is not sent (its client span is, for linking the rest of the trace).
    assert in_kernel > 0.3 * (n - len(traces)), err


def _traced_server(tmp_path, receiver, flags: list[str], paths: list[tuple[str, dict]]
                   ) -> tuple[list[dict], str]:
    """SERVER spans of GET paths (with headers) on one keep-alive connection."""
    binary = matrix.build(matrix.Cell("httpserver", NEWEST, "stripped"))
    with go_server(binary) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--stats", *flags,
                    *otlp_args(receiver)) as tracer:
        conn = http.client.HTTPConnection(addr, timeout=10)
        for path, headers in paths:
            conn.request("GET", path, headers=headers)
            conn.getresponse().read()
        conn.close()
        spans = settled(receiver)
        _, err = stop(tracer)
    return spans, err


def test_parent_based_follows_the_incoming_sampled_flag(tmp_path):
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    keep = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
    drop = {"traceparent": f"00-{'1' * 32}-00f067aa0ba902b7-00"}
    paths = [("/hello?n=1", keep), ("/hello?n=2", drop), ("/hello?n=3", {})] * 5
    with OtlpReceiver() as receiver:
        spans, err = _traced_server(tmp_path, receiver, ["--sampler", "parentbased_always_off"],
                                    paths)
    assert {s["trace_id"] for s in spans} == {trace}, err
    assert len(spans) == 5
    in_kernel, in_gotrace = map(int, SAMPLED_OUT.search(err).groups())
    assert in_kernel + in_gotrace == 10, err


def test_always_off_exports_nothing_and_counts_it(tmp_path):
    with OtlpReceiver() as receiver:
        spans, err = _traced_server(tmp_path, receiver, ["--sampler", "always_off"],
                                    [("/hello", {})] * 20)
    assert spans == []
    assert sum(map(int, SAMPLED_OUT.search(err).groups())) == 20, err


def test_adaptive_keeps_errors_and_slow_requests_and_caps_the_rest(tmp_path):
    paths = [("/hello", {})] * 200 + [("/error", {})] * 5 + [("/slow?ms=120", {})] * 3
    started = time.monotonic()
    with OtlpReceiver() as receiver:
        spans, err = _traced_server(
            tmp_path, receiver, ["--sampler", "adaptive", "--sampler-arg",
                                 "rate=5,slow=100ms"], paths)
        elapsed = time.monotonic() - started
    paths_seen = [s["attributes"]["url.path"] for s in spans]
    assert paths_seen.count("/error") == 5 and paths_seen.count("/slow") == 3, err
    # The bucket starts full (5) and refills at 5 a second.
    assert paths_seen.count("/hello") <= 5 + 5 * elapsed, (paths_seen.count("/hello"), err)
    assert paths_seen.count("/hello") >= 1
    in_kernel, in_gotrace = map(int, SAMPLED_OUT.search(err).groups())
    assert (in_kernel, len(spans) + in_gotrace) == (0, len(paths)), err


def test_new_connections_of_an_untraced_local_client_are_decided_in_the_kernel(tmp_path):
    """The tracepoint saw this test (a process gotrace does not trace) open each connection:
    no traced client span can come for its requests, so the kernel decides their sampling
    from the first ones on, instead of leaving each new connection's first second to gotrace
    (where waiting for a client span would put it)."""
    binary = matrix.build(matrix.Cell("httpserver", NEWEST, "stripped"))
    per_connection, rate = 100, 100.0
    with OtlpReceiver() as receiver, go_server(binary) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--stats", "--sampler",
                    "traceidratio", "--sampler-arg", "0.1", *otlp_args(receiver)) as tracer:
        for _ in range(3):
            conn = http.client.HTTPConnection(addr, timeout=10)
            for i in range(per_connection):
                conn.request("GET", f"/hello?n={i}")
                conn.getresponse().read()
                time.sleep(1 / rate)
            conn.close()
        spans = settled(receiver)
        _, err = stop(tracer)
    in_kernel, in_gotrace = map(int, SAMPLED_OUT.search(err).groups())
    assert len(spans) + in_kernel + in_gotrace == 3 * per_connection, err
    assert all(kept_by_rule(s["trace_id"], 0.1) for s in spans)
    # Only the requests before gotrace reads a connection's first span go its way: about one
    # poll's worth per connection (two allowed: a busy machine delays a poll), where leaving
    # each connection's first second to gotrace would send it nearly all of them.
    per_poll = rate * POLL_INTERVAL_MS / 1000
    assert in_gotrace <= 3 * 2 * per_poll, err
