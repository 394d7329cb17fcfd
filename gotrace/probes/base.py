"""What a probe declares: everything gotrace needs to know of one instrumented library.

A library is its own files: the manifest <library>.toml (the names of its functions and fields
across versions), the C <library>.c (which includes the shared headers it uses) and the
declaration <library>.py, whose PROBE says which functions it attaches to (entry or every
RET), which of the manifest's fields and types its C reads (needed or optional), whether it
runs only when asked for (opt-in), what it requires (other probes, features computed from the
binary's layout), and how its records become spans and RED metrics. Nothing shared names a
library: planning, sampling, network facts and metrics learn all they need from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gotrace.metrics.red import RedMetric
from gotrace.records import F_TRANSPORT_ERROR, SpanRecord
from gotrace.spans import AttributeValue

if TYPE_CHECKING:
    from gotrace.resolve.layout import Layout

BPF_DIR = Path(__file__).resolve().parent.parent.parent / "bpf"

Where = Literal["entry", "return"]


@dataclass(frozen=True)
class Attachment:
    function: str  # the manifest's function name
    where: Where  # at the entry, or at every RET instruction
    program: str  # the BPF C function
    # A method only some programs call: Go's linker drops methods no interface call names,
    # and where the function is absent there is nothing to probe.
    optional: bool = False
    # Attached only where the probe's feature of this name resolves (its C is compiled then).
    feature: str | None = None


# Record fields that differ from one request to the next on the same endpoint; the rest
# (process, kind, flags, status, addresses, method, host, route, ...) name an endpoint, and
# their attributes are worked out once per endpoint and shared (gotrace/pipeline/decode.py). Of a
# connection's ports, the caller's changes with each connection.
REQUEST_FIELDS = frozenset({
    "start_ns", "end_ns", "trace_id", "span_id", "parent_span_id", "goid",
    "request_body_size", "response_body_size", "stream_id", "sched_ns", "tcp_identity",
})
SERVER_REQUEST_FIELDS = REQUEST_FIELDS | {"peer_port"}
CLIENT_REQUEST_FIELDS = REQUEST_FIELDS | {"local_port"}
# HTTP paths carry ids (/users/42), queries anything; a gRPC path is the method.
HTTP_REQUEST_FIELDS = frozenset({"path", "query"})


@dataclass(frozen=True)
class ErrorRule:
    """Which of a kind's spans are errors, from the record's status and transport-error flag:
    declared rather than computed, because the kernel applies it too (bpf/shedding.h keeps
    the errors of the traces it sheds)."""

    min_status: int = 0  # a status at least this is an error (0: none)
    statuses: frozenset[int] = frozenset()  # these statuses are errors (each below 64)
    transport: bool = False  # a call that ended without a response is an error

    def __post_init__(self) -> None:
        if any(not 0 <= status < 64 for status in self.statuses):
            raise ValueError(f"error statuses are 0-63, not {sorted(self.statuses)}")

    def __call__(self, rec: SpanRecord) -> bool:
        if self.transport and rec.flags & F_TRANSPORT_ERROR:
            return True
        if self.min_status and rec.status >= self.min_status:
            return True
        return rec.status in self.statuses

    @property
    def status_mask(self) -> int:
        """statuses as a bit mask, as the kernel reads them."""
        return sum(1 << status for status in self.statuses)


@dataclass(frozen=True)
class SpanShape:
    """How one record kind becomes a span.

    name, endpoint_attributes and is_error read only the fields outside request_fields, so
    they are computed once for all the spans of an endpoint; request_attributes reads the
    rest, for every span: best declared as rules (gotrace/probes/attribute_rules.py), which
    the compiled decoder applies without calling Python. The two attribute sets never share a
    key (tests/test_records.py checks both).
    """

    record_kind: str  # the C's name for it: SPAN_KIND_<record_kind>
    kind: Literal["SERVER", "CLIENT", "INTERNAL"]  # its role: sampling and linking use it
    name: Callable[[SpanRecord], str]
    endpoint_attributes: Callable[[SpanRecord], dict[str, AttributeValue]]
    request_attributes: Callable[[SpanRecord, bool], dict[str, AttributeValue]]  # with_query
    is_error: ErrorRule
    request_fields: frozenset[str]
    metric: RedMetric | None = None  # the RED histogram its spans feed, if any


# Macros computed from a binary's layout, or the reason they cannot be.
LayoutMacros = Callable[["Layout"], "dict[str, int] | str"]


@dataclass(frozen=True)
class Feature:
    """Macros a probe's C needs beyond its fields, computed from the binary's layout. Without
    a required one the probe cannot run; without another it runs without that feature, and
    `gotrace` names it among the refused as '<library>.<name>'."""

    name: str
    macros: LayoutMacros
    required: bool = False


# How a probe adapts itself to a binary and to what the user opted into: the probe that runs
# there (None: the binary does not need it) and the macros telling its C which way it was
# built.
Variant = Callable[["Probe", "Layout", Collection[str]], "tuple[Probe | None, dict[str, int]]"]


@dataclass(frozen=True)
class Probe:
    library: str
    attachments: tuple[Attachment, ...]
    fields: tuple[str, ...]  # fields the C needs; without one, the probe cannot run
    optional_fields: tuple[str, ...] = ()  # read only where the binary has them
    types: tuple[str, ...] = ()  # types whose runtime hash the C compares (TYPEHASH_ macros)
    optional_types: tuple[str, ...] = ()
    record_kinds: tuple[SpanShape, ...] = ()
    opt_in: bool = False  # runs only when its library is named among the opt-ins
    requires: tuple[str, ...] = ()  # libraries whose probes must run with it
    features: tuple[Feature, ...] = ()
    variant: Variant | None = None
    # Where its C (and manifest) are: bpf/ for gotrace's own, the declaration's directory for
    # a library on GOTRACE_PROBE_PATH.
    directory: Path = BPF_DIR

    @property
    def source(self) -> Path:
        return self.directory / f"{self.library}.c"

    def for_binary(self, layout: Layout, opt_in: Collection[str]
                   ) -> tuple[Probe | None, dict[str, int]]:
        """The probe as it runs on this binary (None: not needed there), and the macros of
        that choice."""
        return self.variant(self, layout, opt_in) if self.variant else (self, {})


def macro_name(go_name: str) -> str:
    """'net/http.Request.Method' -> 'OFF_net_http_Request_Method'."""
    return "OFF_" + re.sub(r"[^A-Za-z0-9]", "_", go_name)


def type_hash_macro(go_type: str) -> str:
    """'*context.valueCtx' -> 'TYPEHASH_ptr_context_valueCtx'."""
    return "TYPEHASH_" + re.sub(r"[^A-Za-z0-9]", "_", go_type.replace("*", "ptr_"))


def library_macro(library: str) -> str:
    """Defined for every probe that runs: 'nethttp_inject' -> 'WITH_NETHTTP_INJECT'."""
    return "WITH_" + re.sub(r"[^A-Za-z0-9]", "_", library).upper()


def program_macro(program: str) -> str:
    """The hit-counter index of a BPF program: 'http_server_entry' -> 'PROBE_HTTP_SERVER_ENTRY'."""
    return "PROBE_" + program.upper()
