"""JSON lines: one span per line, a stable flat schema for scripts and tests.

The lines are written in C (gotrace.native's jsonl_lines); lines_in_python is its reference.
The C code keeps an endpoint's shared attributes, written, in SharedAttributes.encoded under
"jsonl", for all the spans of the endpoint.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from gotrace import native
from gotrace.errors import GotraceError
from gotrace.spans import Span

STDOUT = "-"


def span_record(span: Span) -> dict[str, Any]:
    """The JSON object written for one span (exactly these keys)."""
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": None if span.parent_span_id is None else span.parent_span_id.hex(),
        "name": span.name,
        "kind": span.kind,
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "status": span.status,
        "attributes": dict(span.attributes),
        "resource": dict(span.resource.attributes),
    }


def span_line(span: Span) -> str:
    """One span's line; jsonl_lines writes with it the spans it leaves to Python (values of
    other types than str, int, float, bool and None, or of their subclasses)."""
    return json.dumps(span_record(span)) + "\n"


def lines_in_python(spans: Iterable[Span], line: Callable[[Span], str]) -> str:
    """Every span's line: the reference for gotrace.native's jsonl_lines."""
    return "".join(map(line, spans))


_lines = native.compiled("jsonl_lines", lines_in_python)


class JsonlExporter:
    """Writes spans to a file, replacing it ("-" = stdout); flushed after every batch."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._stream: TextIO
        if self._path == STDOUT:
            self._stream = sys.stdout
        else:
            try:
                self._stream = open(self._path, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as e:
                raise GotraceError(f"cannot write spans to {self._path}: "
                                   f"{e.strerror or e}") from None

    def export(self, spans: Sequence[Span]) -> bool:
        text = _lines(spans, span_line)
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # disk full, closed pipe, closed stream
            return False
        return True

    def shutdown(self) -> None:
        if self._path != STDOUT:
            self._stream.close()

    def __str__(self) -> str:
        return "jsonl stdout" if self._path == STDOUT else f"jsonl {self._path}"
