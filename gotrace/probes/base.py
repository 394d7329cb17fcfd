"""What a probe module declares, and the shared mechanics every probe relies on.

A probe reads like a declaration: which library it instruments (the symbols/<library>.toml
manifest and the bpf/<library>.c program share its name), which functions it attaches to
(entry or every RET), which struct fields its C reads, and how its records become spans.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from gotrace.records import SpanRecord
from gotrace.spans import AttributeValue

Where = Literal["entry", "return"]


@dataclass(frozen=True)
class Attachment:
    function: str  # the manifest's function name
    where: Where  # at the entry, or at every RET instruction
    program: str  # the BPF C function
    # A method only some programs call: Go's linker drops methods no interface call names,
    # and where the function is absent there is nothing to probe.
    optional: bool = False


# Record fields that differ from one request to the next on the same endpoint; the rest
# (process, kind, flags, status, addresses, method, host, route, ...) name an endpoint, and
# their attributes are worked out once per endpoint and shared (gotrace/decode.py). Of a
# connection's ports, the caller's changes with each connection.
REQUEST_FIELDS = frozenset({
    "start_ns", "end_ns", "trace_id", "span_id", "parent_span_id", "goid",
    "request_body_size", "response_body_size", "stream_id", "sched_ns",
})
SERVER_REQUEST_FIELDS = REQUEST_FIELDS | {"peer_port"}
CLIENT_REQUEST_FIELDS = REQUEST_FIELDS | {"local_port"}
# HTTP paths carry ids (/users/42), queries anything; a gRPC path is the method.
HTTP_REQUEST_FIELDS = frozenset({"path", "query"})


@dataclass(frozen=True)
class SpanShape:
    """How one record kind becomes a span.

    name, endpoint_attributes and is_error read only the fields outside request_fields, so
    they are computed once for all the spans of an endpoint; request_attributes reads the
    rest. The two attribute sets never share a key (tests/test_records.py checks both).
    """

    kind: Literal["SERVER", "CLIENT", "INTERNAL"]
    name: Callable[[SpanRecord], str]
    endpoint_attributes: Callable[[SpanRecord], dict[str, AttributeValue]]
    request_attributes: Callable[[SpanRecord, bool], dict[str, AttributeValue]]  # with_query
    is_error: Callable[[SpanRecord], bool]
    request_fields: frozenset[str]


@dataclass(frozen=True)
class Probe:
    library: str
    attachments: tuple[Attachment, ...]
    fields: tuple[str, ...]  # fields the C needs; without one, the probe cannot run
    optional_fields: tuple[str, ...] = ()  # read only where the binary has them
    types: tuple[str, ...] = ()  # types whose runtime hash the C compares (TYPEHASH_ macros)
    optional_types: tuple[str, ...] = ()
    # Shared C in bpf/ that the probe's C uses, given once before every probe's C.
    headers: tuple[str, ...] = ()
    record_kinds: dict[int, SpanShape] = field(default_factory=dict)

    @property
    def source_file(self) -> str:
        return f"{self.library}.c"


def macro_name(go_name: str) -> str:
    """'net/http.Request.Method' -> 'OFF_net_http_Request_Method'."""
    return "OFF_" + re.sub(r"[^A-Za-z0-9]", "_", go_name)


def type_hash_macro(go_type: str) -> str:
    """'*context.valueCtx' -> 'TYPEHASH_ptr_context_valueCtx'."""
    return "TYPEHASH_" + re.sub(r"[^A-Za-z0-9]", "_", go_type.replace("*", "ptr_"))


def program_macro(program: str) -> str:
    """The hit-counter index of a BPF program: 'http_server_entry' -> 'PROBE_HTTP_SERVER_ENTRY'."""
    return "PROBE_" + program.upper()
