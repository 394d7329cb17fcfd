"""Smoke test of the benchmark harness: `python -m bench --quick` in-process, every piece with a
handful of requests, then the report's sections and the sanity of its numbers. No timing is
checked: the figures of a quick run (all sections at once on a shared machine) mean nothing."""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cpus import pinned_to, placement
from bench.dbcalls import DB_WORKLOADS, QUERIES_PER_REQUEST, SQL
from bench.harness import QUICK, run
from bench.loadgen import SATURATION
from bench.overhead import BUSY
from bench.probe_hits import (
    BPF_STATS,
    CONNECTION_WORKLOADS,
    OPT_IN_WORKLOADS,
    PER_ROUTER_LEVEL,
    ROUTE_WORKLOADS,
    SCHED_WAIT,
    bpf_run_times_counted,
)
from bench.profiles import summarize
from bench.report import SECTIONS
from bench.results import Results
from bench.saturation import (
    Bracketed,
    SaturationResult,
    Served,
    Settings,
    TracedRound,
    schedule,
)
from bench.session import CrossHostCounts, TraceStats, parse_stats
from bench.targets import BPF_BUDGETED, DB_HITS_PER_QUERY, Verdict

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (BPF)")

# What the targets ask about; each appears in at least one verdict.
TARGET_TOPICS = ("uprobe hits per request", "target CPU added per request",
                 "tracer CPU per exported span", "spans per second on one core",
                 "traceidratio", "throughput traced / untraced", "attach time", "tracer RSS",
                 "BPF run time per request", "at saturation, overload policy on",
                 "errors and slow requests exported", "database probe hits per query",
                 "BPF run time per query", "with cross-host linking / without",
                 "link store round trips per second", "added export delay",
                 "linked across hosts")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, list[Verdict], str]:
    out = tmp_path_factory.mktemp("bench") / "REPORT.md"
    results, verdicts = run(QUICK, out, lambda _: None)
    return results, verdicts, out.read_text()


def test_stats_lines_are_parsed() -> None:
    stats = parse_stats(
        '{"msg": "stopped", "exported": {"otlp": 10}}\n'
        "gotrace: 12 spans; otlp: exported 10, dropped 2 (queue_full 2)\n"
        "gotrace: probe hits newproc_return=3, http_server_entry=12\n"
        "gotrace: probe run time ns (kernel.bpf_stats_enabled) newproc_return=900, "
        "http_server_entry=60000\n"
        "gotrace: spans lost in the kernel ringbuf_full=1\n"
        "gotrace: cross-host links: linked 9, unlinked not_found=1, store_down=2, "
        "no_identity=0; link store published 7 (dropped store_down=3, queue_full=0), looked "
        "up 12, found 9, round trips 5, outages 1, lookups given up for room 0\n")
    assert (stats.exported, stats.dropped, stats.lost) == (10, 2, 3)
    assert stats.hits == {"newproc_return": 3, "http_server_entry": 12}
    assert stats.run_ns == {"newproc_return": 900, "http_server_entry": 60000}
    assert stats.cross_host == CrossHostCounts(
        linked=9, unlinked={"not_found": 1, "store_down": 2, "no_identity": 0}, published=7,
        publish_dropped={"store_down": 3, "queue_full": 0}, lookups=12, found=9,
        round_trips=5, outages=1, lookups_given_up=0)
    assert parse_stats("gotrace: 1 spans; otlp: exported 1, dropped 0\n").cross_host is None


def test_report_has_every_section(quick_run) -> None:
    _, verdicts, text = quick_run
    for section in SECTIONS:
        assert f"\n## {section}\n" in text
    assert "\n### Opt-in probes\n" in text and f"| {SCHED_WAIT} |" in text
    assert "\n### Route templates\n" in text
    for label in (w for w in QUICK.hit_workloads if w in ROUTE_WORKLOADS):
        assert f"| {label} |" in text
        judged = f"uprobe hits per request with http.route, {label}"
        assert any(v.target == judged for v in verdicts) == (label not in PER_ROUTER_LEVEL)
    for topic in TARGET_TOPICS:
        assert any(topic in v.target for v in verdicts), topic
    for v in verdicts:
        assert math.isfinite(v.ratio), v  # may be negative: noise on a quick run
        assert v.passed or v.why, v
        assert f"| {v.target} |" in text


def test_calibration_and_hits(quick_run) -> None:
    results, _, _ = quick_run
    assert results.calibration.hit_us > 0
    assert [h.label for h in results.hits] == [
        w for w in QUICK.hit_workloads
        if w not in OPT_IN_WORKLOADS and w not in CONNECTION_WORKLOADS
        and w not in ROUTE_WORKLOADS]
    assert [h.label for h in results.opt_in_hits] == [SCHED_WAIT]
    assert [h.label for h in results.connection_hits] == list(CONNECTION_WORKLOADS)
    assert [h.label for h in results.route_hits] == [w for w in QUICK.hit_workloads
                                                      if w in ROUTE_WORKLOADS]
    for count in (*results.hits, *results.opt_in_hits, *results.connection_hits,
                  *results.route_hits):
        assert count.calls > 0 and count.per_call >= 2, count  # an entry and an end at least
        # The kernel timed every program that ran (kernel.bpf_stats_enabled, on meanwhile).
        assert {k for k, n in count.hits.items() if n} <= {k for k, n in count.run_ns.items()
                                                           if n}, count
        assert count.run_us_per_call > 0 and count.run_detail(), count
    # --sched-wait: a casgstatus hit for every state change of the request's goroutines.
    assert results.opt_in_hits[0].hits.get("sched_casgstatus", 0) >= results.opt_in_hits[0].calls
    # The workloads whose run time is judged ran in rounds, and keep the median round's.
    for count in results.hits:
        rounds = count.run_us_rounds
        assert len(rounds) == (QUICK.bpf_rounds if count.label in BPF_BUDGETED else 0), count
        if rounds:
            assert count.run_us_per_call == statistics.median_low(rounds)


def test_database_calls(quick_run) -> None:
    results, verdicts, text = quick_run
    assert [h.label for h in results.db_hits] == list(QUICK.db_workloads) == [SQL]
    for count in results.db_hits:
        # The library's probes: an entry and a RET per query (the entry again, rarely, when
        # the goroutine's stack grew first); the HTTP server's two beside them.
        library = count.only(DB_WORKLOADS[count.label].probes)
        queries = count.calls * QUERIES_PER_REQUEST
        assert queries * DB_HITS_PER_QUERY <= sum(library.hits.values()) \
            <= queries * DB_HITS_PER_QUERY * 1.05, count
        assert library.run_us_per_call > 0, count
        assert len(library.run_us_rounds) == QUICK.bpf_rounds, count
        assert f"| {count.label} |" in text
    assert [p.name for p in results.db_rounds] == [SQL]
    for proto in results.db_rounds:
        assert [c.rate for c in proto.conditions] == [QUICK.databases.rate, SATURATION]
        assert proto.placement.startswith("the server and its database server on CPU")
        for cond in proto.conditions:
            assert len(cond.untraced) == len(cond.traced) == QUICK.databases.pairs
            assert all(s.load.requests > 0 for s in (*cond.untraced, *cond.traced))
        assert proto.hits_per_request >= 2 + QUERIES_PER_REQUEST * DB_HITS_PER_QUERY, proto
    assert any(v.target.startswith(f"throughput traced / untraced, {SQL}") for v in verdicts)


def test_a_saturated_round_is_judged_against_its_untraced_neighbours() -> None:
    def served(rps: float) -> Served:
        return Served(requests=int(rps), rps=rps, errors=0, slow=0, stolen=0.0)

    def traced(rps: float) -> TracedRound:
        stats = TraceStats(hits={}, exported=int(rps), dropped=0, kernel_lost={})
        return TracedRound(served(rps), stats, int(rps), 0, 0, 0.1, 0.05)

    # The machine slows down steadily: 100, 80, 60, 40, 20 untraced.
    untraced = [served(rps) for rps in (100, 80, 60, 40, 20)]
    rounds = [Bracketed(untraced[n], traced(rps), untraced[n + 1])
              for n, rps in enumerate((81, 49, 45, 27))]
    settings = Settings(seconds=1, rounds=2, competing_rounds=2, conns=1, error_rate=1,
                        slow_rate=1)
    assert schedule(settings) == [False, True, False, True]
    result = SaturationResult(untraced, rounds[0::2], rounds[1::2], settings)
    assert [b.ratio for b in rounds] == pytest.approx([0.9, 0.7, 0.9, 0.9])
    assert result.throughput_ratio == pytest.approx(0.9)
    assert result.competing_throughput_ratio == pytest.approx(0.8)
    assert result.ratio_of_medians == pytest.approx(63 / 60)  # the drift read as a gain


def test_the_competing_rounds_are_spread_among_the_judged_ones() -> None:
    settings = Settings(seconds=1, rounds=9, competing_rounds=3, conns=1, error_rate=1,
                        slow_rate=1)
    order = schedule(settings)
    assert order.count(False) == 9 and order.count(True) == 3
    assert [n for n, compete in enumerate(order) if compete] == [1, 5, 9]


def test_bpf_run_times_are_counted_only_meanwhile() -> None:
    before = BPF_STATS.read_text()
    with bpf_run_times_counted():
        assert BPF_STATS.read_text().strip() == "1"
    assert BPF_STATS.read_text() == before


def test_overhead_rounds(quick_run) -> None:
    results, _, _ = quick_run
    assert [p.name for p in results.overhead] == ["HTTP", "gRPC"]
    for proto in results.overhead:
        assert len(proto.conditions) == 4 and proto.attach_s
        for cond in proto.conditions:
            assert len(cond.untraced) == len(cond.traced) == QUICK.overhead.pairs
            for sample in (*cond.untraced, *cond.traced):
                assert sample.load.requests > 0 and sample.target_cpu_s >= 0
            assert cond.cpu_us(True) > 0 and cond.ratio(lambda load: load.rps) > 0
    # For comparison: the busy handler flat out with the CPUs shared.
    assert [p.name for p in results.shared_cpus] == ["HTTP", "gRPC"]
    for proto in results.shared_cpus:
        assert [(c.handler, c.rate) for c in proto.conditions] == [(BUSY, SATURATION)]
        assert (results.shared_throughput(proto.name) or 0) > 0
        assert proto.placement == "every process on any CPU"
    assert results.overhead[0].placement.startswith("the server alone on CPU")


def test_pipeline_and_attach(quick_run) -> None:
    results, _, _ = quick_run
    spans = results.pipeline
    assert len(spans.sampler) == QUICK.pipeline.sampler_pairs
    assert spans.steps == [spans.sampler[0].always_on]
    assert spans.grpc_pair is not None
    pairs = [*spans.sampler, spans.grpc_pair]
    assert [s.protocol for s in spans.capacity] == ["grpc", "jsonl"]
    for step in (*spans.steps, *(s for pair in pairs for s in (pair.always_on, pair.ratio)),
                 spans.profiled, *spans.capacity):
        assert step.stats.exported > 0 and step.tracer_cpu_s > 0 and step.rss_mb > 0
        if step.protocol == "grpc":
            # gRPC's C core starts its threads with the OTLP exporter: some CPU is theirs.
            assert 0 < step.grpc_cpu_s < step.tracer_cpu_s
        else:
            assert step.protocol in ("http/protobuf", "jsonl") and step.grpc_cpu_s == 0
    assert spans.received == spans.sent_to_sink
    busy = results.saturation
    order = schedule(QUICK.saturation)
    assert len(busy.untraced) == len(order) + 1
    assert (len(busy.traced), len(busy.competing)) == \
        (QUICK.saturation.rounds, QUICK.saturation.competing_rounds)
    kinds = iter(busy.traced), iter(busy.competing)
    for n, compete in enumerate(order):  # between the untraced rounds just before and after
        bracketed = next(kinds[compete])
        assert bracketed.before is busy.untraced[n] and bracketed.after is busy.untraced[n + 1]
    for traced in (b.traced for b in (*busy.traced, *busy.competing)):
        # Every request is a span exported, shed, sampled out or lost: the counts add up.
        assert traced.accounted == traced.served.requests, traced
        assert traced.received == traced.stats.exported, traced
        assert traced.served.errors > 0 and traced.served.slow > 0, traced
        assert traced.received_errors == traced.served.errors, traced
        assert traced.received_slow >= traced.served.slow, traced
        assert traced.tracer_cpu_s > 0 and traced.receiver_cpu_s > 0, traced
    assert busy.throughput_ratio > 0 and busy.competing_throughput_ratio > 0
    attached = results.attach
    assert all(s > 0 for s in attached.seconds) and attached.bare_bcc_mb > 0
    for profile in (spans.profile, attached.profile):
        summary = summarize(Path(profile), 5)
        assert summary.total_s > 0 and summary.top and summary.packages


def test_the_server_gets_a_cpu_of_its_own() -> None:
    where = placement()
    assert where.server and where.others and not where.server & where.others  # 2 CPUs here
    for cpus in (where.server, where.others):
        shown = subprocess.run(
            [sys.executable, "-c", "import os; print(*sorted(os.sched_getaffinity(0)))"],
            preexec_fn=pinned_to(cpus), capture_output=True, text=True, check=True).stdout
        assert shown.split() == [str(cpu) for cpu in sorted(cpus)], shown


def test_cross_host_linking(quick_run) -> None:
    results, _, _ = quick_run
    c = results.cross_host
    assert [r.linking for r in c.rounds] == [False, True] * QUICK.cross_host.pairs
    for r in c.rounds:
        requests = r.load.requests
        assert requests > 0 and r.lost == 0, r
        # A CLIENT span on the load generator's host, a SERVER span on the server's.
        assert r.client.stats.exported == r.server.stats.exported == requests, r
        assert r.received == 2 * requests, r
        assert r.delays.count == requests and 0 < r.delays.p50_s <= r.delays.p99_s, r
        assert all(a.cpu_s > 0 for a in r.agents), r
        assert all((a.stats.cross_host is not None) == r.linking for a in r.agents), r
        if r.linking:
            published, looked_up = r.client.store, r.server.store
            # Every server span called from the other host is linked or counted unlinked.
            assert looked_up.linked + sum(looked_up.unlinked.values()) == requests, r
            assert looked_up.linked > 0 and published.published >= looked_up.linked, r
            assert looked_up.lookups >= looked_up.found >= looked_up.linked, r
            assert all(a.store.round_trips > 0 and a.store.outages == 0 for a in r.agents), r
