"""The one interface every exporter implements; the pipeline knows nothing else about them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gotrace.spans import Span


class Exporter(Protocol):
    """Delivers batches of finished spans somewhere.

    Called from one pipeline thread at a time, so implementations need no locking of their own.
    """

    def export(self, spans: Sequence[Span]) -> bool:
        """Deliver one batch; True when it was delivered, False when it should be retried.

        May raise instead of returning False, preferably a GotraceError whose message says
        why: the pipeline treats it like False and logs the message when the exporter starts
        failing.
        """
        ...

    def shutdown(self) -> None:
        """Release connections and files; export is not called again afterwards."""
        ...
