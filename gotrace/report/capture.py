"""Reading a capture: the JSON lines `gotrace trace --jsonl` writes, back into Spans.

Every problem is a GotraceError naming the file and, for a bad line, its number: a capture
is often cut short (the tracer was killed mid-write) or edited by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar, get_args

from gotrace.errors import GotraceError
from gotrace.spans import Resource, Span, SpanKind, StatusCode

_KINDS = frozenset(get_args(SpanKind))
_STATUSES = frozenset(get_args(StatusCode))
_JSON_NAMES: dict[type, str] = {int: "integer", str: "string", dict: "object"}
T = TypeVar("T")


class _BadRecord(ValueError):
    """One line is not a span record; the message says why."""


def load_capture(path: str | Path) -> list[Span]:
    """Every span of a JSON-lines capture, in file order; blank lines are skipped."""
    try:
        with open(path, "rb") as stream:
            lines = stream.read().splitlines()
    except OSError as e:
        raise GotraceError(f"cannot read capture {path}: {e.strerror or e}") from None
    spans = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            spans.append(_span(json.loads(line.decode("utf-8"))))
        except UnicodeDecodeError:
            raise GotraceError(f"{path}:{number}: not UTF-8 text") from None
        except json.JSONDecodeError as e:
            raise GotraceError(f"{path}:{number}: not JSON ({e.msg})") from None
        except RecursionError:
            raise GotraceError(f"{path}:{number}: JSON nested too deeply") from None
        except _BadRecord as e:
            raise GotraceError(f"{path}:{number}: not a span record: {e}") from None
    if not spans:
        raise GotraceError(f"{path}: no spans in the capture")
    return spans


def _span(record: Any) -> Span:
    if not isinstance(record, dict):
        raise _BadRecord("expected a JSON object")
    start = _field(record, "start_time_unix_nano", int)
    end = _field(record, "end_time_unix_nano", int)
    if end < start:
        raise _BadRecord("end_time_unix_nano is before start_time_unix_nano")
    parent = record.get("parent_span_id")
    return Span(
        trace_id=_hex_id(record, "trace_id", 16),
        span_id=_hex_id(record, "span_id", 8),
        parent_span_id=None if parent is None else _hex_id(record, "parent_span_id", 8),
        name=_field(record, "name", str),
        kind=_choice(record, "kind", _KINDS),
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        status=_choice(record, "status", _STATUSES),
        own_attributes=_field(record, "attributes", dict),
        resource=Resource(_field(record, "resource", dict)),
    )


def _field(record: dict[str, Any], key: str, kind: type[T]) -> T:
    if key not in record:
        raise _BadRecord(f"no {key}")
    value = record[key]
    # bool is an int to Python, never to a capture.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _BadRecord(f"{key} is not a JSON {_JSON_NAMES[kind]}")
    return value


def _hex_id(record: dict[str, Any], key: str, size: int) -> bytes:
    text = _field(record, key, str)
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != size or len(text) != 2 * size:
        raise _BadRecord(f"{key} is not {2 * size} hex digits")
    return value


def _choice(record: dict[str, Any], key: str, allowed: frozenset[str]) -> Any:
    value = _field(record, key, str)
    if value not in allowed:
        raise _BadRecord(f"{key} {value!r} is not one of {', '.join(sorted(allowed))}")
    return value
