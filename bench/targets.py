"""The targets of the performance issue, checked against one run: each as a ratio of the
measured figure to its limit, PASS or MISS, and for a miss by how much and why."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.cross_host import AgentRound, CrossHostResult, Round
from bench.dbcalls import DB_WORKLOADS, QUERIES_PER_REQUEST
from bench.loadgen import SATURATION
from bench.overhead import BUSY, ConditionResult, ProtocolResult
from bench.pipeline import JSON_LINES, PipelineResult, Step
from bench.probe_hits import PER_ROUTER_LEVEL, RUNTIME_EVENT_PROBES, HitCount
from bench.profiles import summarize
from bench.results import Results
from bench.saturation import Bracketed, SaturationResult, TracedRound
from gotrace.export.otlp_config import DEFAULT_PROTOCOL
from gotrace.pipeline.link_store import FLUSH_INTERVAL_S
from gotrace.probes import ALL_PROBES

HITS_PER_SPAN = 2
ROUTE_HITS_PER_REQUEST = 3  # the net/http server's two and the router's route probe
CPU_FLOOR_FACTOR = 1.3
TRACER_US_PER_SPAN = 10
# Spans per second on one core, by exporter (OTLP's default protocol is HTTP).
SPANS_PER_CORE = {DEFAULT_PROTOCOL: 100_000, "grpc": 100_000, JSON_LINES: 60_000}
EXPORTER_NAMES = {"http/protobuf": "OTLP/HTTP", "grpc": "OTLP/gRPC", JSON_LINES: "JSON lines"}
BPF_US_PER_REQUEST = 3  # the server probes' run time per request
BPF_BUDGETED = ("HTTP server", "gRPC server, unary")
DB_HITS_PER_QUERY = 2  # the call's entry and its RET
DB_BPF_US_PER_QUERY = 2  # the database library's probes' run time per query
SATURATION_THROUGHPUT = 0.85  # a trivial handler, every process on any CPU
SAMPLER_SAVING = 5
BUSY_THROUGHPUT = 0.95
ATTACH_S = 3
RSS_MB = 150
EVIDENCE_LINES = 3  # profile entries quoted in a verdict
CROSS_HOST_CPU_FACTOR = 1.3  # tracer CPU per span with --link-store / without
# The store thread's design: one pipelined round trip per flush interval while there is work.
STORE_ROUND_TRIPS_PER_S = 1 / FLUSH_INTERVAL_S
CROSS_HOST_DELAY_S = 0.5  # added to a server span's export, median
CROSS_HOST_LINKED = 0.99  # of the requests, their server span linked across hosts


@dataclass(frozen=True)
class Verdict:
    target: str
    limit: str
    measured: str
    ratio: float  # measured / limit
    passed: bool
    why: str = ""  # for a miss: by how much and why


def _profile_evidence(profile: Path, what: str) -> str:
    summary = summarize(profile, EVIDENCE_LINES)
    top = "; ".join(f"`{p.function}` {p.own_s / summary.total_s:.0%}" for p in summary.top)
    return (f"Profile of {what} ({summary.total_s:.1f} s of CPU over all threads): own time "
            f"by package {summary.package_shares(EVIDENCE_LINES + 1)}; most own time in "
            f"{top}.")


def _at_most(target: str, limit: float, unit: str, measured: float, text: str,
             why: str) -> Verdict:
    ratio = measured / limit
    passed = ratio <= 1
    miss = f"{ratio - 1:.0%} over the limit of {limit:g}{unit}. {why}"
    return Verdict(target, f"≤ {limit:g}{unit}", text, ratio, passed, "" if passed else miss)


def _at_least(target: str, limit: float, unit: str, measured: float, text: str,
              why: str) -> Verdict:
    ratio = measured / limit
    passed = ratio >= 1
    miss = f"{1 - ratio:.0%} short of {limit:g}{unit}. {why}"
    return Verdict(target, f"≥ {limit:g}{unit}", text, ratio, passed, "" if passed else miss)


# Why a workload takes more than HITS_PER_SPAN hits, quoted in its verdict when it does.
HITS_WHY = {
    "HTTP client": (
        "The third, http_client_conn at (*persistConn).roundTrip's entry, is the one place "
        "where the request meets its TCP connection on the calling goroutine: "
        "(*Transport).roundTrip's arguments do not name the connection, which is picked "
        "inside it (an idle one, or one dialled on another goroutine), and its results reach "
        "it only through the response body's reader chain, whose types depend on the "
        "response's framing and which a response without a body (NoBody) lacks. Beginning "
        "the span at persistConn.roundTrip instead would drop the wait for a connection and "
        "the dial from its duration, and every request whose dial fails."),
    # As for HTTP/1: the third is where the request meets its connection.
    "HTTP/2 client, TLS, net/http": (
        "The third, http2_client_conn at (*http2ClientConn).roundTrip's entry, is where the "
        "request meets its connection, as (*persistConn).roundTrip's is for HTTP/1 (see the "
        "HTTP client)."),
    "HTTP/2 client, h2c, x/net": (
        "The third, xnet_http2_client_conn at x/net's (*ClientConn).roundTrip's entry, is where "
        "the request meets its connection, as (*persistConn).roundTrip's is for HTTP/1 (see "
        "the HTTP client)."),
    "gRPC client, streaming": (
        "A stream may end on another goroutine (its reader's, or grpc's context watcher), so "
        "NewStream's RET moves the record from the goroutine to the *clientStream it "
        "returns: at NewStream's entry the stream does not exist yet, and nothing known "
        "there names it later (the caller's context may serve many streams; "
        "context.Background() always does). grpc itself calls (*clientStream).finish twice "
        "per stream: every stream starts a goroutine that waits for the stream's context and "
        "then calls finish, and finish cancels that context, so the second call (which "
        "returns at once) always comes. Ending at (*csAttempt).finish, once per attempt, "
        "would save that hit but add one to every unary call that fails (grpc finishes the "
        "attempt in retryLocked before the call's finish) and to every retried attempt."),
}


def _hits_verdict(target: str, limit: int, h: HitCount) -> Verdict:
    """Judged at the precision shown (two decimals), without the GC probes' hits, which come
    per GC cycle (shown beside); a process's own start-up (goroutines created before the
    first call) adds a few hits spread over thousands of calls."""
    return _at_most(target, limit, "", round(h.per_span, 2),
                    f"{h.per_span:.2f} (+{h.runtime_event_hits:.3f} of GC events)",
                    f"Hits per request by probe: {h.detail()}. {HITS_WHY.get(h.label, '')}"
                    .rstrip())


def _hits(results: Results) -> list[Verdict]:
    return [_hits_verdict(f"uprobe hits per request, {h.label}", HITS_PER_SPAN, h)
            for h in results.hits]


def _route_hits(results: Results) -> list[Verdict]:
    """The route workloads, those whose route probe runs once per router level aside (the
    report shows their count)."""
    return [_hits_verdict(f"uprobe hits per request with http.route, {h.label}",
                          ROUTE_HITS_PER_REQUEST, h)
            for h in results.route_hits if h.label not in PER_ROUTER_LEVEL]


def _db_hits(results: Results) -> list[Verdict]:
    """The database library's own probes (sql_*, pgx_*, redis_*): exactly an entry and a
    RET per query, at the precision shown."""
    verdicts = []
    for h in results.db_hits:
        per_query = h.only(DB_WORKLOADS[h.label].probes).per_call / QUERIES_PER_REQUEST
        shown = round(per_query, 2)
        passed = shown == DB_HITS_PER_QUERY
        verdicts.append(Verdict(
            f"database probe hits per query, {h.label}", f"= {DB_HITS_PER_QUERY}",
            f"{per_query:.2f}", per_query / DB_HITS_PER_QUERY, passed,
            "" if passed else f"{shown - DB_HITS_PER_QUERY:+.2f} per query. Hits per request "
            f"by probe ({QUERIES_PER_REQUEST} queries each): {h.detail()}."))
    return verdicts


def _db_bpf_time(results: Results) -> list[Verdict]:
    verdicts = []
    http = _hit_count(results.hits, SERVER_WORKLOADS["HTTP"])
    for h in results.db_hits:
        library = h.only(DB_WORKLOADS[h.label].probes)
        if not library.run_ns:
            continue
        rounds = library.run_us_rounds or [library.run_us_per_call]
        per_query = statistics.median_low(rounds) / QUERIES_PER_REQUEST
        verdicts.append(_at_most(
            f"database probes' BPF run time per query, {h.label}", DB_BPF_US_PER_QUERY, " µs",
            per_query, f"{per_query:.2f} µs ({library.run_detail()} µs per run"
                       f"{_rounds(library.run_us_rounds, QUERIES_PER_REQUEST)})",
            "The library's probes as the kernel counts their run time "
            "(kernel.bpf_stats_enabled; the Database calls section): at the call's entry the "
            "span record is begun (the statement's first bytes copied), at its RET the "
            "driver's connection is followed to its socket (bpf/conn.h) and the record "
            "written to the ring buffer." + (
                f" The HTTP server's two probes took {http.run_us_per_call:.2f} µs per request "
                f"in the same section ({http.run_detail()} µs per run)."
                if http and http.run_ns else "")))
    return verdicts


def _cpu_added(results: Results) -> list[Verdict]:
    cost = results.calibration.hit_us
    verdicts = []
    for proto in results.overhead:
        for cond in proto.conditions:
            if cond.rate == 0:  # saturation: CPU per request also moves with throughput
                continue
            floor = proto.hits_per_request * cost
            added, spread = cond.added_cpu_us, cond.added_spread_us
            per_hit = added / proto.hits_per_request
            noise = (f" The rounds disagree by ± {spread:.1f} µs: the miss is within the "
                     "machine's noise." if added - spread <= CPU_FLOOR_FACTOR * floor else "")
            verdicts.append(_at_most(
                f"target CPU added per request, {proto.name} {cond.handler}, {cond.rate}/s",
                CPU_FLOOR_FACTOR, " x floor", added / floor,
                f"{added:+.1f} ± {spread:.1f} µs ({cond.cpu_us(False):.1f} → "
                f"{cond.cpu_us(True):.1f}) = {added / floor:.2f} x floor; floor "
                f"{floor:.1f} µs = {proto.hits_per_request:.2f} hits x {cost:.2f} µs",
                f"Each hit costs {per_hit:.1f} µs here against {cost:.2f} µs for an empty "
                "program: the rest is the probes' own BPF work (map updates, user-memory "
                f"reads, ring-buffer records).{noise}"))
    return verdicts


def _tracer(pipeline: PipelineResult) -> list[Verdict]:
    busiest = pipeline.busiest
    evidence = _profile_evidence(pipeline.profile, "the tracer at "
                                 f"{pipeline.profiled.rate}/s")
    return [
        _at_most("tracer CPU per exported span", TRACER_US_PER_SPAN, " µs",
                 busiest.cpu_us_per_span,
                 f"{busiest.cpu_us_per_span:.1f} µs at {busiest.spans_per_s:.0f} spans/s",
                 evidence),
        *(_per_core(step, evidence) for step in (busiest, *pipeline.capacity)),
    ]


def _per_core(step: Step, evidence: str) -> Verdict:
    per_core = 1e6 / step.cpu_us_per_span
    return _at_least(f"spans per second on one core (1 s / CPU per span), "
                     f"{EXPORTER_NAMES[step.protocol]}", SPANS_PER_CORE[step.protocol], "",
                     per_core, f"{per_core:.0f} (reached {step.spans_per_s:.0f}/s here)",
                     evidence)


def _bpf_time(results: Results) -> list[Verdict]:
    return [_at_most(f"probes' BPF run time per request, {h.label}", BPF_US_PER_REQUEST, " µs",
                     h.run_us_per_call, f"{h.run_us_per_call:.2f} µs ({h.run_detail()} µs "
                     f"per run{_rounds(h.run_us_rounds)})", "The probe programs' run time as "
                     "the kernel counts it (kernel.bpf_stats_enabled); see the hits table.")
            for h in results.hits if h.label in BPF_BUDGETED and h.run_ns]


def _rounds(run_us: list[float], per: int = 1) -> str:
    """The run time of each round, when the workload ran several (the median is judged)."""
    if not run_us:
        return ""
    return f"; the median of {len(run_us)} rounds: " + ", ".join(
        f"{us / per:.2f}" for us in run_us)


def _saturation(s: SaturationResult) -> list[Verdict]:
    """The busy node: throughput kept, nothing lost, every error and slow request exported."""
    ratio, competing = s.throughput_ratio, s.competing_throughput_ratio
    rounds = [b.traced for b in (*s.traced, *s.competing)]
    lost = sum(t.stats.lost for t in rounds)
    notable = sum(t.served.errors + t.served.slow for t in rounds)
    kept = sum(min(t.received_errors, t.served.errors) + min(t.received_slow, t.served.slow)
               for t in rounds)

    def cpu(rounds: list[Bracketed], of: Callable[[TracedRound], float]) -> float:
        return statistics.median(of(b.traced) / s.settings.seconds for b in rounds)

    def details(rounds: list[Bracketed]) -> str:
        return (f"gotrace used {cpu(rounds, lambda t: t.tracer_cpu_s):.0%} of a core and the "
                f"receiver {cpu(rounds, lambda t: t.receiver_cpu_s):.0%}; the rounds' ratios "
                + ", ".join(f"{b.ratio:.3f}" for b in rounds) + ", their lowest kept shares "
                + ", ".join(f"{b.traced.stats.lowest_share:.3g}" for b in rounds))

    return [
        _at_least("throughput traced / untraced, trivial HTTP handler at saturation, every "
                  "process on any CPU", SATURATION_THROUGHPUT, "", ratio, f"{ratio:.3f}",
                  f"The median of {len(s.traced)} traced rounds, each against the mean of the "
                  "untraced rounds just before and after it. gotrace with its defaults, on idle "
                  f"CPU time only (SCHED_IDLE): {details(s.traced)}. With --no-yield-cpu (normal "
                  f"priority, complete traces for as long as it keeps up): {competing:.3f}; "
                  f"{details(s.competing)}. See the saturation section."),
        Verdict("spans lost to a full ring buffer or queue at saturation, overload policy on",
                "0", str(lost), float(lost), lost == 0,
                "" if lost == 0 else f"{lost} lost over {len(rounds)} rounds."),
        _at_least("errors and slow requests exported at saturation", 1, "",
                  kept / max(1, notable), f"{kept} of {notable}",
                  "Every /error and /slow request must reach the receiver, whatever is shed."),
    ]


def _sampler(pipeline: PipelineResult) -> Verdict:
    on, ratio = pipeline.sampled_always_on, pipeline.sampled
    saving = on.cpu_us_per_request / ratio.cpu_us_per_request
    pairs = ", ".join(f"{p.always_on.cpu_us_per_request / p.ratio.cpu_us_per_request:.2f}x"
                      for p in pipeline.sampler)
    in_kernel, in_gotrace = ratio.stats.sampled_out
    kernel_share = in_kernel / max(1, in_kernel + in_gotrace)
    return _at_least(
        "tracer CPU, always_on / traceidratio 0.1", SAMPLER_SAVING, "x", saving,
        f"{saving:.2f}x ({on.cpu_us_per_request:.1f} vs {ratio.cpu_us_per_request:.1f} µs "
        f"per request at {on.rate}/s, medians of {len(pipeline.sampler)} alternating pairs of "
        f"steps; pair by pair {pairs})",
        f"With traceidratio 0.1, {ratio.exported_fraction:.0%} of the requests were "
        f"exported; of the spans sampled out, {kernel_share:.0%} were in the kernel and the "
        "rest decoded and dropped by gotrace: the load generator runs on this host and opens "
        "new connections every step of "
        f"{pipeline.sampled.load.seconds:.0f} s, whose first requests go to gotrace until it "
        "has read one of their spans and found that a process it does not trace opened the "
        "connection (then the kernel decides, bpf/sampling.h). The tracer's fixed cost "
        "(polling, the status line, the exporter's requests) is the same for both "
        "samplers." + _over_grpc(pipeline))


def _over_grpc(pipeline: PipelineResult) -> str:
    """What exporting over OTLP/gRPC instead does to the saving."""
    pair = pipeline.grpc_pair
    if pair is None:
        return ""
    on, ratio = pair.always_on, pair.ratio
    return (f" Exporting over OTLP/gRPC instead (one pair of steps), the saving was "
            f"{on.cpu_us_per_request / ratio.cpu_us_per_request:.2f}x ("
            f"{on.cpu_us_per_request:.1f} vs {ratio.cpu_us_per_request:.1f} µs per request): "
            "gRPC's own threads (its C core's thread pool, which wakes every few milliseconds "
            "after each export, each wakeup costing tens of µs on this machine) took "
            f"{on.grpc_cpu_us_per_request:.1f} µs per request with always_on and "
            f"{ratio.grpc_cpu_us_per_request:.1f} µs with traceidratio.")


# Programs attached at RET instructions (the calibration's single-stepped hits).
RET_PROGRAMS = frozenset(a.program for probe in ALL_PROBES for a in probe.attachments
                         if a.where == "return")

# The hit-count workload of each protocol's server in the overhead rounds.
SERVER_WORKLOADS = {"HTTP": "HTTP server", "gRPC": "gRPC server, unary"}


def _probe_share(results: Results, server: HitCount | None) -> str:
    """What the server's probes cost per request: their BPF programs' run time and the traps
    that enter them, at function entries (whose branch the kernel emulates) or at RET
    instructions (which it single-steps, a second trap)."""
    if server is None or not server.run_ns:
        return ""
    calibration = results.calibration
    at_ret = sum(n for k, n in server.hits.items()
                 if k in RET_PROGRAMS and k not in RUNTIME_EVENT_PROBES) / server.calls
    at_entry = server.per_span - at_ret
    entry_us, ret_us = calibration.emulated.hit_us, calibration.stepped.hit_us
    trap = at_entry * entry_us + at_ret * ret_us
    at_rets = (f" and {at_ret:.2f} x {ret_us:.2f} µs at RET instructions (which it "
               "single-steps)" if at_ret else "")
    return (f" Per request, the server's probe programs ran {server.run_us_per_call:.1f} µs "
            f"({server.run_detail()} µs per run; the probe-hit tables) and their traps took "
            f"about {at_entry:.2f} x {entry_us:.2f} µs at function entries (whose branch the "
            f"kernel emulates){at_rets} = {trap:.1f} µs; the rest is the kernel's uprobe "
            "dispatch and the caches the probes disturb.")


def _throughput_verdict(target: str, proto: ProtocolResult, cond: ConditionResult,
                        shared: float | None, probe_share: str) -> Verdict:
    """Traced / untraced throughput of a condition at saturation; shared: the same with
    every process on any CPU, if measured."""
    ratio = cond.ratio(lambda load: load.rps)
    tracer_share = statistics.median((s.tracer_cpu_s or 0) / s.load.seconds
                                     for s in cond.traced)
    return _at_least(
        target, BUSY_THROUGHPUT, "", ratio, f"{ratio:.3f}" + (
            f" ({shared:.3f} with every process on any CPU)" if shared is not None else ""),
        f"At saturation ({proto.placement}) the target used {cond.added_cpu_us:+.1f} µs "
        f"more CPU per request ({cond.cpu_us(False):.0f} → {cond.cpu_us(True):.0f} µs); "
        f"the tracer used {tracer_share:.0%} of a core, and the machine's CPUs were "
        f"{cond.machine_busy(False):.0%} busy untraced and {cond.machine_busy(True):.0%} "
        "traced." + probe_share)


def _hit_count(counts: list[HitCount], label: str) -> HitCount | None:
    return next((h for h in counts if h.label == label), None)


def _throughput(results: Results) -> list[Verdict]:
    verdicts = []
    for proto in results.overhead:
        cond = next(c for c in proto.conditions if c.handler == BUSY and c.rate == SATURATION)
        verdicts.append(_throughput_verdict(
            f"throughput traced / untraced, {proto.name} handler with {BUSY}", proto, cond,
            results.shared_throughput(proto.name),
            _probe_share(results, _hit_count(results.hits, SERVER_WORKLOADS[proto.name]))))
    for proto in results.db_rounds:
        cond = next(c for c in proto.conditions if c.rate == SATURATION)
        verdicts.append(_throughput_verdict(
            f"throughput traced / untraced, {proto.name}, {cond.handler} per request", proto,
            cond, None, _probe_share(results, _hit_count(results.db_hits, proto.name))))
    return verdicts


def _attach(results: Results) -> list[Verdict]:
    a = results.attach
    seconds = statistics.median(a.seconds)
    evidence = _profile_evidence(a.profile, "one attach and detach")
    steady = max(s.rss_mb for s in results.pipeline.steps)
    return [
        _at_most(f"attach time, {a.binary} ({a.size_mb:.0f} MB)", ATTACH_S, " s", seconds,
                 f"{seconds:.2f} s", evidence),
        _at_most("tracer RSS, steady under load", RSS_MB, " MB", steady,
                 f"{steady:.0f} MB (peak {max(a.peak_rss_mb):.0f} MB attaching)",
                 f"A Python process that only compiles an empty BPF program with BCC "
                 f"(LLVM in process) already peaks at {a.bare_bcc_mb:.0f} MB."),
    ]


def _cross_host_cpu(c: CrossHostResult, agent: Callable[[Round], AgentRound], which: str,
                    why: str) -> Verdict:
    def per_span(r: Round) -> float:
        return agent(r).cpu_us_per_span

    ratio = c.ratio(per_span)
    return _at_most(
        f"tracer CPU per span with cross-host linking / without, {which}",
        CROSS_HOST_CPU_FACTOR, "x", ratio,
        f"{ratio:.2f}x ({c.median(False, per_span):.1f} → {c.median(True, per_span):.1f} µs "
        f"per span, medians of the rounds at {2 * c.settings.rate} spans/s in all)", why)


def cross_host_verdicts(c: CrossHostResult) -> list[Verdict]:
    """Cross-host linking: what the store adds to each agent's CPU and to the server spans'
    export, the store's round trips, and whether the spans were linked and none lost."""
    on = c.of(True)
    lookups = sum(r.server.store.lookups for r in on) / max(
        1, sum(r.server.store.linked for r in on))
    trips = max(a.store.round_trips / r.window_s for r in on for a in r.agents)
    delay = c.added(lambda r: r.delays.p50_s)

    def shown(linking: bool, p99: bool) -> str:
        """The delay's median over rounds, in seconds."""
        return f"{c.median(linking, lambda r: r.delays.p99_s if p99 else r.delays.p50_s):.3f}"

    share = min(r.server.store.linked / r.load.requests for r in on)
    unlinked = ", ".join(f"{k} {sum(r.server.store.unlinked.get(k, 0) for r in on)}"
                         for k in on[0].server.store.unlinked)
    lost = sum(r.lost for r in c.rounds)
    return [
        _cross_host_cpu(c, lambda r: r.client, "the client host's agent (publishes)",
                        "Its link store thread writes each CLIENT span's key (SET PX, "
                        "pipelined) once its span is exported."),
        _cross_host_cpu(c, lambda r: r.server, "the server host's agent (looks up)",
                        "Each SERVER span is held until its caller's key is found (the "
                        "linker's bookkeeping of a held trace, its store key, the answer "
                        f"read and joined: {lookups:.1f} lookups per linked span here), and "
                        "the kernel leaves every TCP request's sampling decision to gotrace "
                        "(LINK_ACROSS_HOSTS), which decides it per trace."),
        _at_most(f"link store round trips per second per agent at {2 * c.settings.rate} "
                 "spans/s", STORE_ROUND_TRIPS_PER_S, "", trips,
                 f"{trips:.1f} (the busiest agent and round, over the load and "
                 "the settling after it)",
                 f"One pipelined round trip per flush interval ({FLUSH_INTERVAL_S * 1000:g} "
                 "ms, gotrace/pipeline/link_store.py) while there is work."),
        _at_most("added export delay of server spans with cross-host linking, median",
                 CROSS_HOST_DELAY_S, " s", delay,
                 f"{delay:+.3f} s (median {shown(False, False)} → {shown(True, False)} s, "
                 f"p99 {shown(False, True)} → {shown(True, True)} s, from span end to the "
                 "receiver)",
                 "A SERVER span called from another host waits until its caller's agent has "
                 "exported and published the CLIENT span (after the response), the store "
                 "thread has found the key and the pipeline thread has taken the answer."),
        _at_least("server spans linked across hosts / requests", CROSS_HOST_LINKED, "",
                  share, f"{share:.4f} (the lowest round; unlinked: {unlinked})",
                  "Every request's SERVER span has a traced caller whose key is published."),
        Verdict("spans lost with cross-host linking on and off", "0", str(lost), float(lost),
                lost == 0, "" if lost == 0 else f"{lost} lost over {len(c.rounds)} rounds at "
                f"{2 * c.settings.rate} spans/s (the section's table)."),
    ]


def evaluate(results: Results) -> list[Verdict]:
    return [*_hits(results), *_route_hits(results), *_db_hits(results), *_bpf_time(results),
            *_db_bpf_time(results), *_cpu_added(results),
            *_tracer(results.pipeline), _sampler(results.pipeline), *_throughput(results),
            *_saturation(results.saturation), *_attach(results),
            *cross_host_verdicts(results.cross_host)]

