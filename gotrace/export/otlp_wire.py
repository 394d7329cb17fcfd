"""Spans to the OTLP protobuf wire format (an ExportTraceServiceRequest), written directly.

Encoding through the OpenTelemetry SDK (ReadableSpan objects, then protobuf message objects)
cost several times more CPU than everything else gotrace does per span. Here every field tag
is a constant, a process's resource and the instrumentation scope are encoded once and
reused, the attributes an endpoint's spans share (Span.shared_attributes) are encoded once
for all of them, and other string attributes are encoded once per key and value. Field
numbers are those of opentelemetry-proto's collector/trace/v1/trace_service.proto,
trace/v1/trace.proto and common/v1/common.proto.

What is written matches what the SDK exporters sent: span flags say the parent is not remote,
a status on every span (its message only on ERROR), and an attribute whose value protobuf
cannot carry (an int beyond int64) left out.

The per-span loop runs in C (gotrace.native's otlp_encode); TraceRequestEncoder.encode_in_python
is its reference, and what it falls back to when the compiled module is not built.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from gotrace import native
from gotrace.spans import AttributeValue, Resource, Span

# Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32; a tag is field << 3 | type.
_REQUEST_RESOURCE_SPANS = 0x0A  # ExportTraceServiceRequest.resource_spans = 1
_RESOURCE_SPANS_RESOURCE = 0x0A  # ResourceSpans.resource = 1
_RESOURCE_SPANS_SCOPE_SPANS = 0x12  # ResourceSpans.scope_spans = 2
_RESOURCE_ATTRIBUTES = 0x0A  # Resource.attributes = 1
_SCOPE_SPANS_SCOPE = 0x0A  # ScopeSpans.scope = 1
_SCOPE_SPANS_SPANS = 0x12  # ScopeSpans.spans = 2
_SCOPE_NAME, _SCOPE_VERSION = 0x0A, 0x12  # InstrumentationScope.name = 1, version = 2
_KV_KEY, _KV_VALUE = 0x0A, 0x12  # KeyValue.key = 1, value = 2
_ANY_STRING, _ANY_BOOL, _ANY_INT, _ANY_DOUBLE = 0x0A, 0x10, 0x18, 0x21  # AnyValue 1, 2, 3, 4
_STATUS_MESSAGE, _STATUS_CODE = 0x12, 0x18  # Status.message = 2, code = 3

# Span: trace_id = 1, span_id = 2 (fixed-size bytes, so their length bytes are constant too),
# parent_span_id = 4, name = 5, kind = 6, start/end_time_unix_nano = 7/8 (fixed64),
# attributes = 9, status = 15, flags = 16 (fixed32).
_TRACE_ID = b"\x0a\x10"
_SPAN_ID = b"\x12\x08"
_PARENT_SPAN_ID = b"\x22\x08"
_NAME = 0x2A
_KINDS = {"INTERNAL": b"\x30\x01", "SERVER": b"\x30\x02", "CLIENT": b"\x30\x03"}
_TIMES = struct.Struct("<BQBQ")  # 0x39 start, 0x41 end
_ATTRIBUTE = 0x4A
_ATTRIBUTE_TAG = b"\x4a"
_STATUS = 0x7A
_STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}
_FLAGS = b"\x85\x01" + struct.pack("<I", 0x100)  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_DOUBLE = struct.Struct("<d")

_2_63 = 1 << 63
_SMALL_VARINTS = [bytes((n,)) for n in range(0x80)]
_MAX_CACHED_STRINGS = 4096  # distinct string attributes kept encoded; then cleared
_MAX_COMMON_PARTS = 64  # per SharedAttributes: (name, kind, status) pieces kept encoded
_SPAN_HEAD = bytes((_SCOPE_SPANS_SPANS,))
_IDS_SIZE = 2 + 16 + 2 + 8 + _TIMES.size  # trace and span ids with their tags, the times
_PARENT_SIZE = 2 + 8


def varint(n: int) -> bytes:
    """An unsigned varint; a negative int64 as its 64-bit two's complement (ten bytes)."""
    if 0 <= n < 0x80:
        return _SMALL_VARINTS[n]
    if 0 < n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if 0 < n < 0x200000:  # ports, goroutine ids: the common longer ones, without a loop
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14))
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (a string, bytes or an embedded message)."""
    return bytes((tag,)) + varint(len(payload)) + payload


def _any_value(value: AttributeValue) -> bytes | None:
    """An AnyValue's bytes; None for what it cannot hold."""
    if isinstance(value, bool):  # before int: bool is an int
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        # Compared, not `in range(...)`: range walks every element for an int subclass (IntEnum).
        return bytes((_ANY_INT,)) + varint(value) if -_2_63 <= value < _2_63 else None
    if isinstance(value, float):
        return bytes((_ANY_DOUBLE,)) + _DOUBLE.pack(value)
    if isinstance(value, str):
        return field(_ANY_STRING, value.encode("utf-8", "surrogatepass"))
    return None


def key_value(key: str, value: AttributeValue) -> bytes | None:
    """A KeyValue's bytes; None when the value cannot be encoded."""
    encoded = _any_value(value)
    if encoded is None:
        return None
    return field(_KV_KEY, key.encode("utf-8", "surrogatepass")) + field(_KV_VALUE, encoded)


def _int_heads(key: str) -> tuple[bytes, ...]:
    """What precedes a non-negative int attribute's varint, by the varint's length (1-10):
    the attribute's tag and length, the key, and the value's AnyValue tags and length."""
    key_field = field(_KV_KEY, key.encode("utf-8", "surrogatepass"))
    return (b"", *(_ATTRIBUTE_TAG + varint(len(key_field) + 3 + n) + key_field
                   + bytes((_KV_VALUE, n + 1, _ANY_INT)) for n in range(1, 11)))


def _scope(name: str, version: str) -> bytes:
    scope = field(_SCOPE_NAME, name.encode()) + field(_SCOPE_VERSION, version.encode())
    return field(_SCOPE_SPANS_SCOPE, scope)


class TraceRequestEncoder:
    """Writes ExportTraceServiceRequest bytes for batches of spans.

    One per exporter (it caches what it encoded, and is not thread-safe; an exporter is only
    called from its own pipeline thread).

    gotrace.native's otlp_encode reads _scope, _strings and _int_heads, and calls the methods
    that fill them on a miss (_resource, _common_part, _string_attribute, _int_heads_of), and
    _attribute and _span_bytes for what it leaves to Python; it builds _common_key's key
    itself. Their names and meanings are shared with gotrace/native/otlp.c.
    """

    def __init__(self, scope_name: str, scope_version: str) -> None:
        self._scope = _scope(scope_name, scope_version)
        self._resources: dict[tuple[tuple[str, AttributeValue], ...], bytes] = {}
        self._strings: dict[tuple[str, str], bytes] = {}
        self._int_heads: dict[str, tuple[bytes, ...]] = {}

    def encode(self, spans: Iterable[Span]) -> bytes:
        """The request: spans grouped by resource, each group in the order of its first span."""
        return _encode(self, spans)

    def encode_in_python(self, spans: Iterable[Span]) -> bytes:
        """encode, in Python: the reference for gotrace.native's otlp_encode."""
        groups: dict[int, tuple[Resource, list[bytes]]] = {}
        encode_span = self._span
        for span in spans:
            group = groups.get(id(span.resource))
            if group is None:
                group = groups[id(span.resource)] = (span.resource, [])
            encode_span(span, group[1])
        parts = []
        for resource, encoded in groups.values():
            scope_spans = field(_RESOURCE_SPANS_SCOPE_SPANS, self._scope + b"".join(encoded))
            parts.append(field(_REQUEST_RESOURCE_SPANS, self._resource(resource) + scope_spans))
        return b"".join(parts)

    def _resource(self, resource: Resource) -> bytes:
        """ResourceSpans.resource, encoded once per distinct set of attributes."""
        key = resource.key
        encoded = self._resources.get(key)
        if encoded is None:
            if len(self._resources) >= 256:  # processes come and go over a long run
                self._resources.clear()
            attributes = (key_value(k, v) for k, v in key)
            encoded = self._resources[key] = field(_RESOURCE_SPANS_RESOURCE, b"".join(
                field(_RESOURCE_ATTRIBUTES, kv) for kv in attributes if kv is not None))
        return encoded

    def _span(self, span: Span, out: list[bytes]) -> None:
        """Appends ScopeSpans.spans' tag and length, and the Span, to out.

        Protobuf fields may come in any order: what the spans of one endpoint share (name,
        kind, shared attributes, status, flags) is one piece, encoded once per endpoint."""
        common = span.shared_attributes.encoded.get(self._common_key(span))
        if common is None:
            common = self._common_part(span)
        own = self._attributes(span.own_attributes.items())
        times = _TIMES.pack(0x39, span.start_time_unix_nano, 0x41, span.end_time_unix_nano)
        if span.parent_span_id is None:
            size = _IDS_SIZE + len(common) + len(own)
            out += (_SPAN_HEAD, varint(size), _TRACE_ID, span.trace_id, _SPAN_ID, span.span_id,
                    times, common, own)
        else:
            size = _IDS_SIZE + _PARENT_SIZE + len(common) + len(own)
            out += (_SPAN_HEAD, varint(size), _TRACE_ID, span.trace_id, _SPAN_ID, span.span_id,
                    _PARENT_SPAN_ID, span.parent_span_id, times, common, own)

    def _span_bytes(self, span: Span) -> bytes:
        """What _span appends, as one piece."""
        out: list[bytes] = []
        self._span(span, out)
        return b"".join(out)

    @staticmethod
    def _common_key(span: Span) -> tuple[str, str, str, str]:
        """What a span's common part is kept under, in SharedAttributes.encoded."""
        return (span.name, span.kind, span.status, span.status_message)

    def _common_part(self, span: Span) -> bytes:
        """_common(span), kept in the span's SharedAttributes.encoded."""
        encoded = span.shared_attributes.encoded
        if len(encoded) >= _MAX_COMMON_PARTS:
            encoded.clear()
        common = encoded[self._common_key(span)] = self._common(span)
        return common

    def _common(self, span: Span) -> bytes:
        """Name, kind, the shared attributes, status and flags of a span."""
        name = field(_NAME, span.name.encode("utf-8", "surrogatepass")) if span.name else b""
        return b"".join((name, _KINDS[span.kind],
                         self._attributes(span.shared_attributes.items.items()),
                         self._status(span), _FLAGS))

    def _attributes(self, items: Iterable[tuple[str, AttributeValue]]) -> bytes:
        strings, int_heads = self._strings, self._int_heads
        parts: list[bytes] = []
        for key, value in items:
            kind = type(value)
            if kind is str:
                encoded = strings.get((key, value))
                if encoded is None:
                    encoded = self._string_attribute(key, value)  # type: ignore[arg-type]
                parts.append(encoded)
            elif kind is int and 0 <= value < _2_63:  # type: ignore[operator]
                heads = int_heads.get(key)
                if heads is None:
                    heads = self._int_heads_of(key)
                number = _SMALL_VARINTS[value] if value < 0x80 else varint(value)  # type: ignore[operator, arg-type]
                parts += (heads[len(number)], number)
            else:
                parts.append(self._attribute(key, value))
        return b"".join(parts)

    def _string_attribute(self, key: str, value: str) -> bytes:
        """A str attribute, encoded and kept."""
        if len(self._strings) >= _MAX_CACHED_STRINGS:
            self._strings.clear()
        encoded = self._strings[key, value] = self._attribute(key, value)
        return encoded

    def _int_heads_of(self, key: str) -> tuple[bytes, ...]:
        """_int_heads(key), computed and kept."""
        heads = self._int_heads[key] = _int_heads(key)
        return heads

    @staticmethod
    def _attribute(key: str, value: AttributeValue) -> bytes:
        encoded = key_value(key, value)
        return b"" if encoded is None else field(_ATTRIBUTE, encoded)

    @staticmethod
    def _status(span: Span) -> bytes:
        code = _STATUS_CODES[span.status]
        body = b"" if code == 0 else bytes((_STATUS_CODE, code))
        if code == 2 and span.status_message:
            body = field(_STATUS_MESSAGE, span.status_message.encode("utf-8", "surrogatepass")) \
                + body
        return field(_STATUS, body)



_encode = native.compiled("otlp_encode", TraceRequestEncoder.encode_in_python)
