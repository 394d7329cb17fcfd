"""Linker on hand-made spans: orders of arrival, reuse of a connection, limits."""

from __future__ import annotations

import itertools

from gotrace.pipeline.linking import Linker
from gotrace.spans import Connection, Resource, Span

_ids = itertools.count(1)
FRONT = ("127.0.0.1", 40000, "127.0.0.1", 8080)  # the client's end of a connection
LOCAL = frozenset({"127.0.0.1"})


def span(kind: str, start: int, end: int, *, trace: bytes | None = None,
         parent: Span | None = None, conn: tuple | None = None, stream: int = 0) -> Span:
    n = next(_ids)
    return Span(trace_id=parent.trace_id if parent else (trace or n.to_bytes(16, "big")),
                span_id=n.to_bytes(8, "big"),
                parent_span_id=parent.span_id if parent else None, name=kind, kind=kind,
                start_time_unix_nano=start, end_time_unix_nano=end,
                monotonic_start_ns=start, monotonic_end_ns=end,
                resource=Resource({"service.name": "s"}),
                connection=Connection(*conn) if conn else None, stream_id=stream)


def reverse(conn: tuple) -> tuple:
    return (conn[2], conn[3], conn[0], conn[1])


def chain(offset: int = 0, stream: int = 0):
    """A client call (no parent) and the server span it caused, with a child of its own."""
    client = span("CLIENT", offset + 10, offset + 100, conn=FRONT, stream=stream)
    server = span("SERVER", offset + 20, offset + 90, conn=reverse(FRONT), stream=stream)
    child = span("CLIENT", offset + 30, offset + 40, parent=server)
    return client, server, child


def test_server_first_then_client_links_the_whole_subtree():
    linker = Linker(LOCAL)
    client, server, child = chain()
    assert linker.add([child, server], now_ns=0) == []  # held, waiting for the client
    out = linker.add([client], now_ns=1)
    assert {id(s) for s in out} == {id(client), id(server), id(child)}
    assert server.parent_span_id == client.span_id
    assert server.trace_id == child.trace_id == client.trace_id
    assert linker.stats.linked == 1 and linker.held == 0


def test_client_first_then_server_links():
    linker = Linker(LOCAL)
    client, server, child = chain()
    assert linker.add([client], now_ns=0) == [client]
    out = linker.add([child, server], now_ns=1)
    assert len(out) == 2 and server.parent_span_id == client.span_id
    assert child.trace_id == client.trace_id


def test_keep_alive_requests_on_one_connection_do_not_merge():
    linker = Linker(LOCAL)
    first, second = chain(0), chain(1000)
    out = linker.add([first[2], first[1], second[2], second[1], second[0], first[0]], 5)
    assert len(out) == 6
    assert first[1].parent_span_id == first[0].span_id
    assert second[1].parent_span_id == second[0].span_id
    assert first[1].trace_id != second[1].trace_id


def test_http2_streams_are_told_apart_by_id():
    linker = Linker(LOCAL)
    a, b = chain(0, stream=1), chain(0, stream=3)  # concurrent, same connection
    linker.add([a[1], b[1], a[2], b[2]], 0)
    linker.add([b[0], a[0]], 1)
    assert a[1].parent_span_id == a[0].span_id and b[1].parent_span_id == b[0].span_id


def test_three_tiers_in_any_order_become_one_trace():
    linker = Linker(LOCAL)
    front_server = span("SERVER", 0, 1000)  # no connection: a root nobody links
    front_client = span("CLIENT", 10, 900, parent=front_server, conn=FRONT)
    middle_server = span("SERVER", 20, 800, conn=reverse(FRONT))
    back_conn = ("127.0.0.1", 40001, "127.0.0.1", 9090)
    middle_client = span("CLIENT", 30, 700, parent=middle_server, conn=back_conn)
    back_server = span("SERVER", 40, 600, conn=reverse(back_conn))
    out = linker.add([back_server, middle_client, middle_server, front_client, front_server],
                     0)
    out += linker.flush()
    assert len(out) == 5
    assert {s.trace_id for s in out} == {front_server.trace_id}
    assert back_server.parent_span_id == middle_client.span_id
    assert middle_server.parent_span_id == front_client.span_id


def test_unmatched_server_is_released_unlinked_after_the_wait():
    linker = Linker(LOCAL, wait_ns=100)
    _, server, child = chain()
    trace = server.trace_id
    assert linker.add([child, server], now_ns=0) == []
    assert linker.expire(now_ns=99) == []
    assert len(linker.expire(now_ns=100)) == 2
    assert server.parent_span_id is None and server.trace_id == trace
    assert linker.stats.unmatched == 1
    late = span("CLIENT", 50, 60, parent=server)  # a goroutine's call ending afterwards
    assert linker.add([late], now_ns=101) == [late]


def test_after_waiting_in_vain_a_connection_is_not_held_while_requests_keep_coming():
    linker = Linker(LOCAL, wait_ns=100)
    _, first, _ = chain()
    assert linker.add([first], now_ns=0) == []
    assert linker.expire(now_ns=100) == [first]
    assert linker.untraced_peers == [(first.connection, first.monotonic_start_ns)]
    second = span("SERVER", 5_000_000_000, 5_000_000_090, conn=reverse(FRONT))
    assert linker.add([second], now_ns=101) == [second]  # at once, unlinked
    # Idle for longer than the kernel trusts such a mark: held again (a new connection may
    # have the 4-tuple).
    later = span("SERVER", 16_000_000_000, 16_000_000_090, conn=reverse(FRONT))
    assert linker.add([later], now_ns=102) == []


def test_a_server_span_the_kernel_found_uncalled_leaves_at_once_with_its_children():
    """The kernel flags a server span whose connection it was told has no traced client:
    released as it comes, with the children of its trace that came before it, and its late
    children follow it at once."""
    linker = Linker(LOCAL)
    _, server, child = chain()
    server.caller_untraced = True
    assert linker.add([child], now_ns=0) == []  # its root has not come
    assert {id(s) for s in linker.add([server], now_ns=1)} == {id(server), id(child)}
    assert linker.held == 0 and linker.stats.unmatched == 0 and linker.untraced_peers == []
    late = span("CLIENT", 50, 60, parent=server)
    assert linker.add([late], now_ns=2) == [late]


def test_an_uncalled_server_span_continuing_a_renamed_trace_joins_it():
    """A traced caller's trace was linked into its own caller's here, then its id left this
    host in a traceparent and came back through a program gotrace does not trace: the server
    span continuing it takes the id the trace has now."""
    linker = Linker(LOCAL)
    client, server, child = chain()
    linked_away = server.trace_id
    linker.add([child, server, client], now_ns=0)
    assert server.trace_id == client.trace_id != linked_away
    back = span("SERVER", 200, 300, trace=linked_away, conn=reverse(FRONT))
    back.parent_span_id, back.remote_parent, back.caller_untraced = b"\x01" * 8, True, True
    assert linker.add([back], now_ns=1) == [back]
    assert back.trace_id == client.trace_id


def test_a_remote_peer_is_never_held():
    linker = Linker(LOCAL)
    server = span("SERVER", 0, 10, conn=("10.0.0.1", 8080, "192.0.2.7", 5555))
    assert linker.add([server], now_ns=0) == [server]


def test_a_client_that_started_after_the_server_does_not_match():
    """A 4-tuple reused by a later connection: the earlier server span is not its child."""
    linker = Linker(LOCAL, wait_ns=100)
    server = span("SERVER", 20, 90, conn=reverse(FRONT))
    later_client = span("CLIENT", 95, 200, conn=FRONT)
    linker.add([server, later_client], now_ns=0)
    assert server.parent_span_id is None


def test_the_kernel_hears_of_an_untraced_connection_once_not_per_span():
    """Roots of one connection expire in a row; the kernel gets one mark. A deferred span on a
    connection known to be untraced means the kernel forgot it (or the mark is on its way):
    it is told again, at most once a second."""
    linker = Linker(LOCAL, wait_ns=100)
    roots = [span("SERVER", 10 * i, 10 * i + 5, conn=reverse(FRONT)) for i in range(50)]
    assert linker.add(roots, now_ns=0) == []
    assert len(linker.expire(now_ns=100)) == 50
    assert linker.untraced_peers == [(roots[0].connection, roots[0].monotonic_start_ns)]
    linker.untraced_peers.clear()
    soon = span("SERVER", 600_000_000, 600_000_005, conn=reverse(FRONT))
    soon.sampling = "deferred"
    assert linker.add([soon], now_ns=101) == [soon]
    assert linker.untraced_peers == []
    later = span("SERVER", 1_200_000_000, 1_200_000_005, conn=reverse(FRONT))
    later.sampling = "deferred"
    assert linker.add([later], now_ns=102) == [later]
    assert linker.untraced_peers == [(later.connection, later.monotonic_start_ns)]


def test_a_connection_an_untraced_process_opened_is_never_held():
    """The TCP tracepoint saw who opened it: no client span will come, so the kernel is told
    with the first span rather than after a wait."""
    asked = []

    def opened_untraced(conn: Connection) -> bool:
        asked.append(conn)
        return conn.peer_port == 40000

    linker = Linker(LOCAL, wait_ns=100, opened_untraced=opened_untraced)
    _, server, _ = chain()
    assert linker.add([server], now_ns=0) == [server]
    assert linker.untraced_peers == [(server.connection, server.monotonic_start_ns)]
    assert linker.stats.unmatched == 0
    # A connection a traced process (or one gotrace did not see open) opened waits as before.
    other = span("SERVER", 20, 90, conn=reverse(("127.0.0.1", 40001, "127.0.0.1", 8080)))
    assert linker.add([other], now_ns=0) == []
    assert asked == [server.connection, other.connection]
