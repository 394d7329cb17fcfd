"""The Markdown report of one benchmark run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench import cross_host, saturation
from bench.cross_host import CrossHostResult, Round
from bench.dbcalls import CONNECTIONS, DB_WORKLOADS, QUERIES_PER_REQUEST
from bench.loadgen import SATURATION
from bench.overhead import BUSY, ConditionResult, ProtocolResult
from bench.pipeline import PipelineResult, Step
from bench.probe_hits import (
    HELLO,
    OPT_IN_WORKLOADS,
    PER_ROUTER_LEVEL,
    ROUTE_WORKLOADS,
    HitCount,
)
from bench.profiles import summarize
from bench.results import Results
from bench.saturation import SaturationResult
from bench.targets import (
    BUSY_THROUGHPUT,
    DB_BPF_US_PER_QUERY,
    DB_HITS_PER_QUERY,
    EXPORTER_NAMES,
    ROUTE_HITS_PER_REQUEST,
    Verdict,
)

PROFILE_LINES = 12
ROUTE_BASELINE = "HTTP server"  # the hits workload of net/http's server without a router
SECTIONS = ("Targets", "Calibration: one uprobe hit", "Probe hits per request",
            "Target CPU per request", "Tracer pipeline", "Attach time and memory",
            "Saturation: a busy node", "Database calls", "Cross-host linking")


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def _rate(rate: int) -> str:
    return "saturation" if rate == SATURATION else f"{rate}/s"


def _values(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def _targets(verdicts: list[Verdict]) -> list[str]:
    passed = sum(v.passed for v in verdicts)
    out = [f"## {SECTIONS[0]}", "",
           f"{passed} of {len(verdicts)} met. Ratio = measured / limit.", ""]
    out += _table(["Target", "Limit", "Measured", "Ratio", "Result"],
                  [(v.target, v.limit, v.measured, f"{v.ratio:.2f}",
                    "PASS" if v.passed else "**MISS**") for v in verdicts])
    misses = [v for v in verdicts if not v.passed]
    if misses:
        out += ["Misses, by how much and why:", ""]
        out += [f"- **{v.target}**: {v.why}" for v in misses]
        out.append("")
    return out


def _calibration(results: Results) -> list[str]:
    c = results.calibration
    s, e = c.stepped, c.emulated
    return [f"## {SECTIONS[1]}", "",
            f"testapps/hitloop calls a never-inlined function {c.calls} times per run, timing "
            "itself; runs alternate without and with an empty BPF program. On main.hit's first "
            "instruction, which the kernel single-steps after the trap (the classic measure, "
            "and what gotrace's RET probes cost):", "",
            f"- without the probe: {_values(s.plain_ns)} ns per call",
            f"- with the probe: {_values(s.probed_ns)} ns per call",
            f"- **one uprobe hit costs {s.hit_us:.2f} µs** (difference of the medians; the "
            "floors below use it)", "",
            "On the branch of main.checked's stack check, which the kernel emulates (where "
            "gotrace puts its entry probes):", "",
            f"- without the probe: {_values(e.plain_ns)} ns per call",
            f"- with the probe: {_values(e.probed_ns)} ns per call",
            f"- **one uprobe hit costs {e.hit_us:.2f} µs** there", ""]


def _hits(results: Results) -> list[str]:
    return [f"## {SECTIONS[2]}", "",
            "From the probes' own counters (`--stats`), every probe program of the session "
            "included (the runtime's goroutine-creation probe too, where it runs: Go before 1.21, "
            "or --goroutine-ancestry). What the probes cost the target beyond their traps: how "
            "long the kernel ran their BPF programs (kernel.bpf_stats_enabled, on during these "
            "workloads only), per call and per run of each program. That count takes in "
            "whatever else the CPU did meanwhile (interrupts, time the hypervisor took), so the "
            "workloads whose run time has a target ran in rounds, and show the median round "
            "(every round's figure is in the targets table).", "",
            *_table(["Workload", "Calls", "Hits per call", "By probe",
                     "Probes ran µs per call", "µs per run by probe"],
                    [(h.label, h.calls, f"{h.per_call:.2f}", h.detail(),
                      f"{h.run_us_per_call:.2f}", h.run_detail())
                     for h in results.hits]), *_opt_in(results), *_connections(results),
            *_routes(results)]


def _connections(results: Results) -> list[str]:
    """The same program with plain and with wrapped connections (bpf/conn.h's walk)."""
    if not results.connection_hits:
        return []
    return ["", "### Wrapped connections", "",
            "testapps/wrapped with plain connections and with connections wrapped in "
            "go-conntrack, LimitListener and a type of the program's own: the probes' BPF run "
            "time per request (no target). A server reads its connection once per connection "
            "(the client here keeps one); an HTTP client reads it for every request.", "",
            *_table(["Workload", "Calls", "Hits per call", "Probes ran µs per call",
                     "µs per run by probe"],
                    [(h.label, h.calls, f"{h.per_call:.2f}", f"{h.run_us_per_call:.2f}",
                      h.run_detail()) for h in results.connection_hits])]


def _route_row(h: HitCount, label: str, path: str) -> tuple[object, ...]:
    return (label, path, h.calls, f"{h.per_call:.2f}", h.detail(), f"{h.run_us_per_call:.2f}",
            h.run_detail())


def _route_probe_hits(h: HitCount) -> float:
    """Per call, the hits of the router's probe (gin_route, chi_route, ...)."""
    return sum(n for k, n in h.hits.items() if k.endswith("_route")) / h.calls


def _routes(results: Results) -> list[str]:
    """What reading http.route from each router costs, beside net/http's server alone."""
    if not results.route_hits:
        return []
    rows = [_route_row(h, f"{h.label} (net/http alone, the baseline)", HELLO)
            for h in results.hits if h.label == ROUTE_BASELINE]
    rows += [_route_row(h, h.label, ROUTE_WORKLOADS[h.label][1]) for h in results.route_hits]
    notes = [f"- {h.label}: {_route_probe_hits(h):.2f} route probe hits per request, one per "
             "router level the request passes (the top router, then each mounted one): "
             "reported, not judged by the target." for h in results.route_hits
             if h.label in PER_ROUTER_LEVEL]
    return ["", "### Route templates", "",
            "testapps/routers serving one router at a time, traced by PID and called by "
            "httpclient on one keep-alive connection, GET requests. Reading http.route takes one "
            "probe per request (its program's name ends in _route) beside the net/http "
            "server's two; the HTTP server workload (testapps/httpserver, no router) is the "
            f"baseline. Target: at most {ROUTE_HITS_PER_REQUEST:g} hits per request, GC "
            "events aside (see Targets).", "",
            *_table(["Workload", "Path", "Calls", "Hits per call", "By probe",
                     "Probes ran µs per call", "µs per run by probe"], rows),
            *notes, *([""] if notes else [])]


def _opt_in(results: Results) -> list[str]:
    """What opt-in probes add per request: their extra hits at the calibrated hit cost."""
    if not results.opt_in_hits:
        return []
    base = {h.label: h.per_call for h in results.hits}
    hit_us = results.calibration.hit_us
    rows = []
    for h in results.opt_in_hits:
        extra = h.per_call - base.get(OPT_IN_WORKLOADS[h.label], 0.0)
        rows.append((h.label, h.calls, f"{h.per_call:.2f}", f"{extra:.2f}",
                     f"{extra * hit_us:.1f} µs", h.detail()))
    return ["", "### Opt-in probes", "",
            "What they add per request, at the calibrated cost of one hit (no target: they "
            "run only when asked for).", "",
            *_table(["Workload", "Calls", "Hits per call", "Added hits", "Added target CPU",
                     "By probe"], rows)]


def _protocol(proto: ProtocolResult, hit_us: float) -> list[str]:
    floor = proto.hits_per_request * hit_us
    rows = []
    for c in proto.conditions:
        rows.append((
            c.handler, _rate(c.rate), f"{c.cpu_us(False):.1f}", f"{c.cpu_us(True):.1f}",
            f"{c.added_cpu_us:+.1f} ± {c.added_spread_us:.1f}", f"{floor:.1f}",
            f"{c.ratio(lambda load: load.rps):.3f}", f"{c.ratio(lambda load: load.p50_us):.2f}",
            f"{c.ratio(lambda load: load.p99_us):.2f}",
            f"{c.tracer_cpu_us_per_request:.1f}",
            f"{c.machine_busy(False):.0%} / {c.machine_busy(True):.0%}",
            f"{_values([s.cpu_us_per_request for s in c.untraced])} / "
            f"{_values([s.cpu_us_per_request for s in c.traced])}",
            f"{_values([s.load.rps for s in c.untraced])} / "
            f"{_values([s.load.rps for s in c.traced])}"))
    by_probe = proto.hit_count(proto.name).detail()
    return [f"### {proto.name}", "",
            f"Hits per request in the traced rounds: {proto.hits_per_request:.2f} ({by_probe}); "
            f"attach {_values(proto.attach_s)} s.", "",
            *_table(["Handler", "Rate", "CPU µs/req untraced", "traced", "added ± rounds",
                     "floor (hits x hit)", "throughput ratio", "p50 ratio", "p99 ratio",
                     "tracer CPU µs/req", "machine busy (untraced / traced)",
                     "CPU µs/req per round (untraced / traced)",
                     "req/s per round (untraced / traced)"], rows)]


def _overhead(results: Results) -> list[str]:
    out = [f"## {SECTIONS[3]}", "",
           "The server's CPU time per request, from its CPU-time clock (to the nanosecond; "
           "the tracer's CPU is its own), medians over alternating untraced/traced rounds; "
           "ratios are traced / untraced. Traced rounds export over OTLP to a receiver in "
           "another process; the tracer's CPU per request there is approximate (spans leave "
           "the tracer up to 1.2 s after their request, so partly in the next measurement). "
           f"Where they ran: {results.overhead[0].placement}, so that a server's throughput "
           "at saturation is its own, not what the load generator and the tracer leave of "
           "two shared CPUs (bench/cpus.py tells why).", ""]
    for proto in results.overhead:
        out += _protocol(proto, results.calibration.hit_us)
        shared = results.shared_throughput(proto.name)
        if shared is not None:
            out += ["", f"With every process on any CPU instead (the load generator, gotrace and "
                    f"the receiver competing with the server for both), the handler with {BUSY} "
                    f"had a throughput ratio of {shared:.3f} at saturation.", ""]
    return out


def _per_query(value: float) -> str:
    return f"{value / QUERIES_PER_REQUEST:.2f}"


def _db_hits_row(h: HitCount) -> tuple[object, ...]:
    library = h.only(DB_WORKLOADS[h.label].probes)
    return (h.label, DB_WORKLOADS[h.label].path, h.calls, f"{h.per_call:.2f}", h.detail(),
            _per_query(library.per_call), f"{h.run_us_per_call:.2f}",
            _per_query(library.run_us_per_call), h.run_detail())


def _db_round_row(label: str, c: ConditionResult) -> tuple[object, ...]:
    return (label, _rate(c.rate), _per_query(c.cpu_us(False)), _per_query(c.cpu_us(True)),
            f"{c.added_cpu_us / QUERIES_PER_REQUEST:+.2f} ± "
            f"{c.added_spread_us / QUERIES_PER_REQUEST:.2f}",
            _per_query(c.tracer_cpu_us_per_request), f"{c.ratio(lambda load: load.rps):.3f}",
            f"{c.ratio(lambda load: load.p50_us):.2f}")


def _databases(results: Results) -> list[str]:
    """The database clients: their probes' hits and run time, the target's CPU and
    throughput, per request and per query."""
    if not results.db_hits and not results.db_rounds:
        return []
    libraries = "; ".join(f"{label} ({w.app}): {w.probes}*" for label, w in DB_WORKLOADS.items())
    out = [f"## {SECTIONS[7]}", "",
           "A test program serving HTTP makes two calls to a real database server per "
           "request (GET /two, on the request's context): testapps/sqlclient through "
           "database/sql and lib/pq and pgxclient through pgx's own API on PostgreSQL 15, "
           "redisclient through gopkg.in/redis.v5 (a GET and an INCR) on Redis, each "
           "against a private server of tests/databases.py started for the workload "
           "(bench/dbcalls.py). Per query is per request divided by "
           f"{QUERIES_PER_REQUEST}. The library's own probes, by the names of their programs: "
           f"{libraries}. Targets: {DB_HITS_PER_QUERY} of their hits per query exactly, "
           f"their BPF run time at most {DB_BPF_US_PER_QUERY:g} µs per query, and a "
           f"throughput ratio at saturation of at least {BUSY_THROUGHPUT:g} (see Targets).",
           "", "### Probe hits and BPF run time", "",
           "Traced by PID and called by httpclient on one keep-alive connection, the "
           "kernel timing the probe programs (kernel.bpf_stats_enabled), as in Probe hits per "
           "request; every probe program of the session counts (the HTTP server's two too).",
           "",
           *_table(["Workload", "Path", "Requests", "Hits per request", "By probe",
                    "Library probe hits per query", "Probes ran µs per request",
                    "Library probes ran µs per query", "µs per run by probe"],
                   [_db_hits_row(h) for h in results.db_hits])]
    if not results.db_rounds:
        return out
    return [*out, "### Target CPU and throughput", "",
            "As in Target CPU per request: the program's CPU time per request from its "
            "CPU-time clock, medians over alternating untraced/traced rounds, traced ones "
            "exporting over OTLP; the load from testapps/loadgen at a fixed rate and flat "
            f"out, on {CONNECTIONS} connections (bench/dbcalls.py tells why). Where they "
            f"ran: {results.db_rounds[0].placement}. Per query, then each workload's rounds "
            "per request:", "",
            *_table(["Workload", "Rate", "Target CPU µs/query untraced", "traced",
                     "added ± rounds", "tracer CPU µs/query", "throughput ratio",
                     "p50 ratio"],
                    [_db_round_row(p.name, c) for p in results.db_rounds
                     for c in p.conditions]),
            *(line for p in results.db_rounds
              for line in _protocol(p, results.calibration.hit_us))]


def _step_row(label: str, s: Step) -> tuple[object, ...]:
    return (label, f"{s.load.rps:.0f}", f"{s.spans_per_s:.0f}", f"{s.cpu_us_per_span:.1f}",
            f"{s.cpu_us_per_request:.1f}", f"{s.grpc_cpu_us_per_request:.1f}", s.stats.dropped,
            sum(s.stats.kernel_lost.values()),
            f"{s.rss_mb:.0f}", f"{s.peak_rss_mb:.0f}")


def _profile(path: Path) -> list[str]:
    summary = summarize(path, PROFILE_LINES)
    return [f"{summary.total_s:.1f} s of CPU profiled over all threads (`{path.name}`, a "
            f"pstats file). Own time by package: {summary.package_shares(PROFILE_LINES)}. "
            "The functions with the most own time:", "",
            *_table(["Function", "Calls", "Own s", "Own share", "With callees s"],
                    [(f"`{p.function}`", p.calls, f"{p.own_s:.2f}",
                      f"{p.own_s / summary.total_s:.0%}", f"{p.total_s:.2f}")
                     for p in summary.top])]


def _pipeline(p: PipelineResult) -> list[str]:
    rows = [_step_row(f"{_rate(s.rate)}, always_on", s) for s in p.steps]
    for n, pair in enumerate(p.sampler, 1):
        if n > 1:
            rows.append(_step_row(f"{_rate(pair.always_on.rate)}, always_on (pair {n})",
                                  pair.always_on))
        rows.append(_step_row(f"{_rate(pair.ratio.rate)}, traceidratio 0.1 (pair {n})",
                              pair.ratio))
    if p.grpc_pair is not None:
        for step, sampler in ((p.grpc_pair.always_on, "always_on"),
                              (p.grpc_pair.ratio, "traceidratio 0.1")):
            rows.append(_step_row(f"{_rate(step.rate)}, {sampler}, OTLP/gRPC", step))
    rows += [_step_row(f"{_rate(s.rate)}, always_on, {EXPORTER_NAMES[s.protocol]}", s)
             for s in p.capacity]
    rows.append(_step_row(f"{_rate(p.profiled.rate)}, under the profiler", p.profiled))
    lossless = max(p.lossless, key=lambda s: s.spans_per_s, default=None)
    best = p.busiest
    return [
        f"## {SECTIONS[4]}", "",
        "The HTTP server's trivial handler under load, traced by PID, spans exported over "
        "OTLP/HTTP (protobuf: gotrace's default protocol; the rows marked OTLP/gRPC over "
        "gRPC) to a counting receiver in another process (the row marked JSON lines to a "
        "file instead), every process on any CPU. "
        "Tracer CPU from the gotrace process's CPU-time clock, from the start of the load "
        "until its spans were exported; of it, the share of the threads of gRPC's C core "
        "(the OTLP/gRPC exporter's client library) from their schedstat.",
        "",
        *_table(["Load", "Req/s", "Spans exported/s", "Tracer CPU µs/span",
                 "Tracer CPU µs/req", "of it gRPC's threads µs/req", "Dropped",
                 "Lost in kernel", "RSS MB", "Peak RSS MB"],
                rows),
        f"- sustained: {best.spans_per_s:.0f} spans/s exported at {_rate(best.rate)}, "
        f"{best.cpu_us_per_span:.1f} µs of tracer CPU each "
        f"({1e6 / best.cpu_us_per_span:.0f} spans/s per core)",
        "- highest rate with nothing dropped: " + (
            f"{lossless.spans_per_s:.0f} spans/s ({_rate(lossless.rate)})" if lossless
            else "none (every step dropped spans)")
        + (": nothing was dropped even at the highest load this machine generated"
           if len(p.lossless) == len(p.steps) else ""),
        f"- the receiver got {p.received} spans; the sessions reported {p.sent_to_sink} "
        "exported", "",
        f"### Profile of the tracer at {_rate(p.profiled.rate)}", "", *_profile(p.profile)]


def _attach(results: Results) -> list[str]:
    a = results.attach
    return [f"## {SECTIONS[5]}", "",
            f"`gotrace trace --exe` on {a.binary}, {a.size_mb:.1f} MB: from the command's "
            "start to --ready-file.", "",
            f"- attach: {_values(a.seconds)} s",
            f"- tracer peak RSS once attached (VmHWM): {_values(a.peak_rss_mb)} MB",
            f"- a Python process that only compiles an empty BPF program with BCC: "
            f"{a.bare_bcc_mb:.0f} MB peak", "",
            "### Profile of one attach and detach", "", *_profile(a.profile)]


def _saturation(s: SaturationResult) -> list[str]:
    header = ["Round", "Req/s untraced (before, after)", "Req/s traced", "Ratio",
              "Requests served", "Spans exported", "Received", "Shed (kernel / gotrace)",
              "Sampled out", "Lost (queue; kernel)", "Accounted",
              "Kept share at the end (lowest)", "Errors received", "Slow received",
              "Tracer CPU", "Receiver CPU",
              "CPU stolen by the hypervisor (before / traced / after)"]
    return [f"## {SECTIONS[6]}", "", saturation.__doc__.split("\n\n")[0].replace("\n", " "),
            "", saturation.BRACKETED.replace("\n", " "), "",
            f"Rounds of {s.settings.seconds:g} s, the flat-out load on {s.settings.conns} "
            f"connections, {s.settings.error_rate:g} errors/s and {s.settings.slow_rate:g} "
            "slow requests/s beside it; gotrace exports over OTLP/HTTP with --slow "
            f"{saturation.SLOW_MS}ms to a receiver on this machine (the bench's stand-in for "
            "a backend elsewhere: its CPU is in the table). CPU stolen: the share of the "
            "machine's CPU time that the hypervisor gave to other machines during the round "
            "(/proc/stat), which moves a round's throughput on its own.", "",
            *_table(header, _saturation_rows(s, s.traced)),
            f"- throughput ratio (the median of the rounds'): {s.throughput_ratio:.3f}",
            "- beside it, the median traced round over the median untraced one (the drift "
            f"left in): {s.ratio_of_medians:.3f}", "",
            "With --no-yield-cpu (gotrace competing for CPU at normal priority):", "",
            *_table(header, _saturation_rows(s, s.competing)),
            "- throughput ratio with --no-yield-cpu (the median of the rounds'): "
            f"{s.competing_throughput_ratio:.3f}",
            ""]


def _saturation_rows(s: SaturationResult, rounds: list[saturation.Bracketed]
                     ) -> list[tuple[object, ...]]:
    rows = []
    for n, b in enumerate(rounds, 1):
        traced, st = b.traced, b.traced.stats
        lost = ", ".join(f"{k} {v}" for k, v in st.kernel_lost.items() if v)
        rows.append((n, f"{b.before.rps:.0f}, {b.after.rps:.0f}", f"{traced.served.rps:.0f}",
                     f"{b.ratio:.3f}", traced.served.requests,
                     st.exported, traced.received, f"{st.shed[0]} / {st.shed[1]}",
                     sum(st.sampled_out), (f"{st.dropped}" + (f"; {lost}" if lost else "")),
                     traced.accounted, f"{st.kept_share:.3g} ({st.lowest_share:.3g})",
                     f"{traced.received_errors} of {traced.served.errors}",
                     f"{traced.received_slow} of {traced.served.slow}",
                     f"{traced.tracer_cpu_s / s.settings.seconds:.0%}",
                     f"{traced.receiver_cpu_s / s.settings.seconds:.0%}",
                     f"{b.before.stolen:.0%} / {traced.served.stolen:.0%} / "
                     f"{b.after.stolen:.0%}"))
    return rows


def _cross_host_row(n: int, r: Round) -> tuple[object, ...]:
    client, server = r.agents
    lost = f"{client.stats.lost} / {server.stats.lost}"
    shared = (n, "on" if r.linking else "off", f"{r.load.rps:.0f}",
              f"{client.stats.exported} / {server.stats.exported}",
              f"{client.cpu_us_per_span:.1f} / {server.cpu_us_per_span:.1f}")
    delays = f"{r.delays.p50_s * 1000:.0f} / {r.delays.p99_s * 1000:.0f}"
    if not r.linking:
        return (*shared, "", "", "", "", delays, lost)
    published, looked_up = client.store, server.store
    unlinked = ", ".join(f"{k} {v}" for k, v in looked_up.unlinked.items() if v) or "0"
    return (*shared, f"{looked_up.linked} (unlinked {unlinked})",
            f"{published.published / r.load.seconds:.0f}",
            f"{looked_up.lookups / r.load.seconds:.0f} "
            f"({looked_up.lookups / max(1, looked_up.linked):.1f})",
            f"{published.round_trips / r.window_s:.1f} / {looked_up.round_trips / r.window_s:.1f}",
            delays, lost)


def cross_host_section(c: CrossHostResult) -> list[str]:
    s = c.settings
    rows = [_cross_host_row(n, r) for n, r in enumerate(c.rounds, 1)]
    added_p50 = c.added(lambda r: r.delays.p50_s)
    added_p99 = c.added(lambda r: r.delays.p99_s)
    sent = sum(a.stats.exported for r in c.rounds for a in r.agents)
    reached = sorted(r.load.rps for r in c.rounds)
    return [f"## {SECTIONS[8]}", "", cross_host.__doc__.split("\n\n")[0].replace("\n", " "),
            f"{2 * s.pairs} rounds of {s.seconds:g} s at {s.rate}/s ({2 * s.rate} spans/s in "
            f"all) on {s.conns} connections; each agent exports over OTLP/HTTP, the "
            "link hold and batch delay their defaults. Per column, client host's agent / "
            "server host's agent. Keys published and looked up per second of load; round "
            f"trips per second over the load and the {cross_host.SETTLE_S:g} s after it; "
            "delay: from a server span's end to its arrival at the receiver.", "",
            *_table(["Round", "Store", "Req/s", "Spans exported", "Tracer CPU µs/span",
                     "Server spans linked", "Keys published/s",
                     "Lookups/s (per linked span)", "Round trips/s", "Delay p50 / p99 ms",
                     "Lost"], rows),
            f"- load: {s.rate}/s asked, {reached[0]:.0f} to {reached[-1]:.0f} req/s reached "
            "(the load generator falls behind when the machine's two CPUs are busy)",
            "- tracer CPU per span with the store / without (medians): client host's agent "
            f"{c.ratio(lambda r: r.client.cpu_us_per_span):.2f}x, server host's agent "
            f"{c.ratio(lambda r: r.server.cpu_us_per_span):.2f}x",
            f"- added export delay of the server spans (medians): {added_p50 * 1000:+.0f} ms "
            f"at the median, {added_p99 * 1000:+.0f} ms at p99",
            f"- the receiver got {sum(r.received for r in c.rounds)} spans; the agents "
            f"reported {sent} exported", ""]


def render(results: Results, verdicts: list[Verdict]) -> str:
    machine = ", ".join(f"{k} {v}" for k, v in results.machine.items())
    lines = ["# gotrace benchmark", "",
             f"{machine}; the run took {results.seconds:.0f} s.", "",
             *_targets(verdicts), *_calibration(results), *_hits(results),
             *_overhead(results), *_databases(results), *_pipeline(results.pipeline),
             *_saturation(results.saturation), *_attach(results),
             *cross_host_section(results.cross_host)]
    return "\n".join(lines)
