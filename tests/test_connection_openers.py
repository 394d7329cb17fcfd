"""Which process opened a connection, from the TCP tracepoint program (bpf/tcp_events.c):
same-host linking trusts it to skip waiting for a client span that cannot come."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from gotrace.facts.network import NetworkFacts
from gotrace.kernel.tcp_events import TcpEventSource
from gotrace.pipeline.decode import MonotonicClock, decode_records
from gotrace.probes import CLIENT_KINDS
from gotrace.spans import Connection

CONNECT = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1]))).close()"


def test_the_opener_of_a_connection_is_the_connecting_process():
    raw: list[bytes] = []
    source = TcpEventSource.start(raw.extend).result()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        own = socket.create_connection(("127.0.0.1", port))
        own_accepted, _ = listener.accept()
        child = subprocess.Popen([sys.executable, "-c", CONNECT, str(port)])
        child_accepted, _ = listener.accept()
        assert child.wait(timeout=30) == 0
        time.sleep(0.2)
        source.poll()
    finally:
        source.close()
    facts = NetworkFacts(CLIENT_KINDS)
    decode_records(raw, lambda _pid: None, MonotonicClock(), (facts,))

    def seen_accepting(sock: socket.socket) -> Connection:
        local, peer = sock.getsockname(), sock.getpeername()
        return Connection(local[0], local[1], peer[0], peer[1])

    assert facts.opener(seen_accepting(own_accepted)) == os.getpid()
    assert facts.opener(seen_accepting(child_accepted)) == child.pid
    # The connecting end's own view is not an accepted connection.
    local, peer = own.getsockname(), own.getpeername()
    assert facts.opener(Connection(local[0], local[1], peer[0], peer[1])) is None
    for sock in (own, own_accepted, child_accepted, listener):
        sock.close()
