"""Writing a report file, from a capture file or from spans already in memory."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from gotrace.errors import GotraceError
from gotrace.report.analysis import DEFAULT_SLOWEST, analyze
from gotrace.report.capture import load_capture
from gotrace.report.page import render
from gotrace.spans import Span


def default_output(capture: str | os.PathLike[str]) -> Path:
    """spans.jsonl -> spans.html, next to the capture."""
    return Path(capture).with_suffix(".html")


def write_report(spans_or_path: Sequence[Span] | str | os.PathLike[str], out_path: str | Path,
                 *, slowest: int = DEFAULT_SLOWEST, source: str | None = None) -> Path:
    """Write the HTML report of a JSON-lines capture (a path) or of spans; returns out_path.

    source names the spans on the page (default: the capture's path, or "spans"). Problems
    with the input or the output are GotraceErrors.
    """
    out = Path(out_path)
    if isinstance(spans_or_path, str | os.PathLike):
        capture = Path(spans_or_path)
        if out.exists() and capture.exists() and out.samefile(capture):
            raise GotraceError(f"{out}: the report would overwrite the capture")
        spans = load_capture(capture)
        label = source or str(capture)
    else:
        spans, label = spans_or_path, source or "spans"
    page = render(analyze(spans, label, slowest))
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as e:
        raise GotraceError(f"cannot write report to {out}: {e.strerror or e}") from None
    return out
