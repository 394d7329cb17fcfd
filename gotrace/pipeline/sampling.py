"""Which traces are kept: OpenTelemetry's samplers, decided in the kernel, and an adaptive
tail sampler.

OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (or --sampler / --sampler-arg) choose:
  always_on, always_off, traceidratio (ARG: the ratio, 0-1), and parentbased_always_on (the
  default), parentbased_always_off, parentbased_traceidratio, which follow an incoming
  traceparent's sampled flag; decided by bpf/sampling.h where the trace begins, with
  OpenTelemetry's trace-id rule so that every process given the same ratio agrees.
  adaptive (ARG: "rate=10,slow=p99" or "slow=250ms"): every trace with an error or a slow
  local root (slower than a fixed threshold, or than the given percentile of its route), and
  at most `rate` other traces a second. Errors and durations are known only at the end, so
  the kernel sends every span and the decision is made here, per trace.

The kernel defers the decision for a trace whose server span was called from this host
(bpf/sampling.h); once linking has given it its caller's trace, SamplingGate decides it as
the caller's trace was decided, or by the root rule when no traced caller was found.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from gotrace.errors import GotraceError
from gotrace.pipeline.linking import UNTRACED_PEER_IDLE_NS
from gotrace.pipeline.overload import (
    BOUND_ONE,
    OverloadController,
    parse_slow,
    quantile,
    trace_id_rank,
)
from gotrace.spans import Span

DEFAULT_SAMPLER = "parentbased_always_on"
RATIO_SAMPLERS = frozenset({"traceidratio", "parentbased_traceidratio"})
SAMPLERS = frozenset({"always_on", "always_off", "parentbased_always_on",
                      "parentbased_always_off", "adaptive"}) | RATIO_SAMPLERS
REMEMBERED_TRACES = 100_000  # decisions kept for spans of the same trace arriving later
_KEPT = frozenset({"sampled", "rescued"})  # kept by the kernel's decision
_DECIDED_BY_TRACE = frozenset({"deferred", "shed"})  # kept as their trace is decided


@dataclass(frozen=True)
class AdaptivePolicy:
    rate: float = 10.0  # other traces kept per second
    slow_ns: int | None = None  # a fixed threshold, or
    slow_quantile: float | None = 0.99  # the route's percentile


@dataclass(frozen=True)
class SamplerConfig:
    name: str = DEFAULT_SAMPLER
    ratio: float = 1.0
    adaptive: AdaptivePolicy | None = None

    def _root_rule(self) -> str:
        """'on', 'off' or 'ratio': how a trace that begins here is decided."""
        base = self.name.removeprefix("parentbased_")
        if base == "traceidratio":
            return "on" if self.ratio >= 1 else "off" if self.ratio <= 0 else "ratio"
        return "off" if base == "always_off" else "on"  # always_on, adaptive

    @property
    def bound(self) -> int:
        return int(self.ratio * BOUND_ONE)

    def kernel_macros(self) -> dict[str, int]:
        """The settings of bpf/sampling.h: SAMPLER_*, and how long it trusts a mark of an
        untraced peer (as long as linking trusts its own)."""
        rule = self._root_rule()
        macros = {"SAMPLER_ROOT": {"off": 0, "on": 1, "ratio": 2}[rule],
                  "SAMPLER_PARENT_BASED": int(self.name.startswith("parentbased_")),
                  "UNTRACED_PEER_IDLE_NS": UNTRACED_PEER_IDLE_NS}
        if rule == "ratio":
            macros["SAMPLER_BOUND"] = self.bound
        return macros

    def keeps_root(self, trace_id: bytes) -> bool:
        """The root rule, as the kernel applies it (OpenTelemetry's trace-id rule)."""
        rule = self._root_rule()
        if rule != "ratio":
            return rule == "on"
        return trace_id_rank(trace_id) < self.bound


KEEP_ALL = SamplerConfig()  # the default: parentbased_always_on


def sampler_config(name: str | None, arg: str | None) -> SamplerConfig:
    """From --sampler/--sampler-arg, else OTEL_TRACES_SAMPLER/_ARG; a clear error when
    either is not understood."""
    name = (name or os.environ.get("OTEL_TRACES_SAMPLER") or DEFAULT_SAMPLER).strip().lower()
    arg = arg if arg is not None else os.environ.get("OTEL_TRACES_SAMPLER_ARG")
    if name not in SAMPLERS:
        raise GotraceError(f"unknown sampler {name!r} (known: {', '.join(sorted(SAMPLERS))})")
    if name in RATIO_SAMPLERS:
        try:
            ratio = float(arg) if arg not in (None, "") else 1.0
        except ValueError:
            raise GotraceError(f"sampler {name}: the argument must be a ratio between 0 and "
                               f"1, not {arg!r}") from None
        if not 0 <= ratio <= 1:
            raise GotraceError(f"sampler {name}: the ratio must be between 0 and 1, not {arg}")
        return SamplerConfig(name, ratio)
    if name == "adaptive":
        return SamplerConfig(name, adaptive=_adaptive_policy(arg or ""))
    return SamplerConfig(name)


def _adaptive_policy(arg: str) -> AdaptivePolicy:
    """'rate=10,slow=p99' / 'slow=250ms' -> the policy (unspecified parts: the defaults)."""
    settings: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in arg.split(","))):
        key, _, value = item.partition("=")
        if key == "rate":
            try:
                settings["rate"] = float(value)
            except ValueError:
                raise GotraceError(f"sampler adaptive: rate must be traces per second, "
                                   f"not {value!r}") from None
        elif key == "slow":
            try:
                slow = parse_slow(value)
            except GotraceError as e:
                raise GotraceError(f"sampler adaptive: {e}") from None
            settings.update(slow_quantile=slow.quantile, slow_ns=slow.threshold_ns)
        else:
            raise GotraceError(f"sampler adaptive: cannot read {item!r} (expected rate=N, "
                               "slow=pNN or slow=DURATION such as 250ms)")
    return dataclasses.replace(AdaptivePolicy(), **settings)


class _Remembered(collections.OrderedDict[bytes, bool]):
    def remember(self, trace_id: bytes, keep: bool) -> None:
        self[trace_id] = keep
        self.trim()

    def trim(self) -> None:
        """Forget the oldest beyond REMEMBERED_TRACES (after setting items directly)."""
        while len(self) > REMEMBERED_TRACES:
            self.popitem(last=False)


class SamplingGate:
    """The user-space half: decides the deferred traces, drops the spans sent only for
    linking, keeps the shed traces the kernel sent for an error or a slow request whole, and
    applies the adaptive policy. Feed it what the linker releases (a trace's spans with its
    local root)."""

    def __init__(self, config: SamplerConfig, overload: OverloadController | None = None,
                 slow_ns: Callable[[int], int | None] = lambda _kind: None) -> None:
        """overload: the share of kept traces shed now, which deferred traces obey too;
        slow_ns: what makes a span of a kind slow (kept however much is shed)."""
        self.config = config
        self.dropped = 0  # spans sampled out here, shed ones included (the kernel counts its own)
        self.shed = 0  # of those, shed by the overload policy
        self.rescued = 0  # spans of shed traces kept for an error or a slow request
        self._overload = overload
        self._slow_ns = slow_ns
        self._decided = _Remembered()
        self._adaptive = AdaptiveSampler(config.adaptive) if config.adaptive else None

    def filter(self, spans: list[Span]) -> list[Span]:
        decided = self._decided
        undecided: dict[bytes, list[Span]] = {}
        shed_traces: set[bytes] = set()  # traces shed, here or in the kernel
        for span in spans:  # what the kernel decided, for the other spans of its traces
            sampling = span.sampling
            if sampling == "deferred":
                if span.trace_id not in decided:
                    undecided.setdefault(span.trace_id, []).append(span)
                continue
            if sampling == "shed":
                shed_traces.add(span.trace_id)
                if span.trace_id in decided:
                    continue  # it says no only until its trace's rescued root says yes
            decided[span.trace_id] = sampling in _KEPT  # per span: no method call
        decided.trim()
        shed_traces |= self._decide_deferred(undecided)
        kept = []
        shed = rescued = 0
        for span in spans:
            sampling = span.sampling
            keep = sampling in _KEPT or (sampling in _DECIDED_BY_TRACE and \
                decided.get(span.trace_id, False))
            if keep:
                kept.append(span)
                rescued += sampling == "rescued"
            elif span.trace_id in shed_traces:
                shed += 1
        if self._adaptive is not None:
            kept = self._adaptive.filter(kept)
        self.dropped += len(spans) - len(kept)
        self.shed += shed
        self.rescued += rescued
        return kept

    def _decide_deferred(self, undecided: dict[bytes, list[Span]]) -> set[bytes]:
        """Deferred traces whose caller was not found: decided by the root rule, and shed as
        the kernel sheds unless one of their spans is an error or slow. Returns the shed."""
        shed = set()
        for trace_id, members in undecided.items():
            if trace_id in self._decided:  # by a span of the kernel's later in the batch
                continue
            keep = self.config.keeps_root(trace_id)
            if keep and self._overload is not None and not self._overload.keeps(trace_id) \
                    and not any(map(self.notable, members)):
                keep = False
                shed.add(trace_id)
            self._decided.remember(trace_id, keep)
        return shed

    def notable(self, span: Span) -> bool:
        """An error, or a span slower than its kind's threshold: kept however much is shed."""
        if span.status == "ERROR":
            return True
        slow = self._slow_ns(span.record_kind)
        return slow is not None and span.monotonic_end_ns - span.monotonic_start_ns >= slow


class AdaptiveSampler:
    """Per trace, at its local root: keep errors and slow ones, and a capped rate of the
    rest (a token bucket). The linker releases a trace's spans with its root."""

    WINDOW = 512  # durations kept per route for its percentile
    MIN_SAMPLES = 50  # below this a route has no percentile yet

    def __init__(self, policy: AdaptivePolicy) -> None:
        self.policy = policy
        self._tokens = policy.rate
        self._refilled = time.monotonic()
        self._decided = _Remembered()
        self._durations: dict[tuple[object, str], collections.deque[int]] = {}
        self._thresholds: dict[tuple[object, str], int] = {}

    def filter(self, spans: list[Span]) -> list[Span]:
        traces: dict[bytes, list[Span]] = {}
        for span in spans:
            traces.setdefault(span.trace_id, []).append(span)
        kept = []
        for trace_id, members in traces.items():
            root = next((s for s in members if s.parent_span_id is None or s.remote_parent),
                        None)
            keep = self._decided.get(trace_id)
            if keep is None:
                keep = self._decide(root, members) if root is not None else True
                self._decided.remember(trace_id, keep)
            if keep:
                kept += members
        return kept

    def _decide(self, root: Span, members: list[Span]) -> bool:
        slow = self._is_slow(root)
        if slow or any(s.status == "ERROR" for s in members):
            return True
        now = time.monotonic()
        self._tokens = min(self.policy.rate, self._tokens + (now - self._refilled)
                           * self.policy.rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _is_slow(self, root: Span) -> bool:
        duration = root.duration_ns
        if self.policy.slow_ns is not None:
            return duration >= self.policy.slow_ns
        route = (root.resource.key, root.name)
        window = self._durations.setdefault(route, collections.deque(maxlen=self.WINDOW))
        threshold = self._thresholds.get(route)
        window.append(duration)
        if len(window) >= self.MIN_SAMPLES and len(window) % 32 == 0:
            threshold = self._thresholds[route] = quantile(window,
                                                           self.policy.slow_quantile or 0.99)
        return threshold is not None and duration >= threshold
