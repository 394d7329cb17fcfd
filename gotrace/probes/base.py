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


@dataclass(frozen=True)
class SpanShape:
    """How one record kind becomes a span: name, kind and attributes."""

    kind: Literal["SERVER", "CLIENT", "INTERNAL"]
    name: Callable[[SpanRecord], str]
    attributes: Callable[[SpanRecord, bool], dict[str, AttributeValue]]  # (record, with_query)
    is_error: Callable[[SpanRecord], bool]


@dataclass(frozen=True)
class Probe:
    library: str
    attachments: tuple[Attachment, ...]
    fields: tuple[str, ...]  # fields the C needs; without one, the probe cannot run
    optional_fields: tuple[str, ...] = ()  # read only where the binary has them
    types: tuple[str, ...] = ()  # types whose runtime hash the C compares (TYPEHASH_ macros)
    optional_types: tuple[str, ...] = ()
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
