"""gotrace's per-span hot paths compiled to C (gotrace.native._fastpath, built from the C
sources here by scripts/build_native.sh, which every make target runs through setup.sh).

Each compiled function stands in for a pure-Python reference in the module that uses it, with
the same arguments and results, byte for byte (tests/test_native.py compares them):

    ring_take    gotrace.kernel.ringbuf.take_in_python
    otlp_encode  gotrace.export.otlp_wire.TraceRequestEncoder.encode_in_python
    jsonl_lines  gotrace.export.jsonl.lines_in_python
    decode_records  gotrace.pipeline.decode.decode_in_python (semantically: equal spans, the
                    same calls to the probes and fact sources)

Running from a source tree that was never set up, the references run instead, after one
logged warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

try:
    from gotrace.native import _fastpath
except ImportError as e:
    _fastpath = None
    _missing = str(e)

_log = logging.getLogger(__name__)
_warned = False

LOADED = _fastpath is not None

F = TypeVar("F", bound=Callable[..., Any])


def compiled(name: str, reference: F) -> F:
    """The compiled function of that name; reference when the module is not built."""
    global _warned
    if _fastpath is not None:
        return getattr(_fastpath, name)  # type: ignore[no-any-return]
    if not _warned:
        _warned = True
        _log.warning("gotrace.native is not built (%s); running the slower Python code "
                     "instead (make setup builds it)", _missing)
    return reference
