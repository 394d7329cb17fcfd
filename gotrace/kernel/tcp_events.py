"""The TCP tracepoint program (bpf/tcp_events.c) and its ring buffer: one for the whole
tracer, whatever the traced programs; gotrace/facts/network.py reads its events."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from concurrent.futures import Future

from gotrace.kernel.c_source import BPF_DIR, program_text
from gotrace.kernel.plan import kernel_boundary_macros
from gotrace.kernel.program import compile_bpf, open_ring

BPF_SOURCE = BPF_DIR / "tcp_events.c"


class TcpEventSource:
    """The tracepoint program and its ring buffer (compiled once per tracer)."""

    def __init__(self, on_records: Callable[[list[bytes]], None]) -> None:
        self.bpf = compile_bpf(program_text([BPF_SOURCE]), kernel_boundary_macros(),
                               "the TCP tracepoint program")
        self._ring = open_ring(self.bpf, "tcp_events")
        self._on_records = on_records
        self._lost = self.bpf["tcp_lost"]

    @classmethod
    def start(cls, on_records: Callable[[list[bytes]], None]) -> Future[TcpEventSource]:
        """Compile and load the program in a thread of its own, so that its compilation
        overlaps what the caller does meanwhile (resolving the first binary's layout).

        libbcc keeps the maps of every module in one unsynchronised table, so two compilations
        must not overlap: take the result before compiling anything else with BCC. A failure
        (a GotraceError) is raised there, in the caller's thread.
        """
        future: Future[TcpEventSource] = Future()

        def compile_and_load() -> None:
            try:
                future.set_result(cls(on_records))
            except Exception as e:  # handed over to whoever takes the result
                future.set_exception(e)

        threading.Thread(target=compile_and_load, name="gotrace-tcp-compile").start()
        return future

    def poll(self) -> None:
        self._on_records(self._ring.take())

    def lost(self) -> int:
        """Events the ring buffer had no room for."""
        return int(self._lost[ctypes.c_int(0)].value)

    def close(self) -> None:
        self._ring.close()
        self.bpf.cleanup()
