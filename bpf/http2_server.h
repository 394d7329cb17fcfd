/* HTTP/2 server requests: net/http's bundled server and golang.org/x/net/http2's are one
 * code under two sets of names, so this is written once over the offsets of either
 * (H2_SERVER_LAYOUT).
 *
 * Both serve each stream's request on a goroutine of its own, started by the connection's
 * serve loop: (*serverConn).runHandler(sc, rw *responseWriter, req *Request, handler) with
 * sc in RAX, rw in RBX and req in RCX. The handler is net/http's serverHandler.ServeHTTP
 * when net/http's server hands the connection over (TLS with ALPN h2, and x/net's
 * ConfigureServer), or any handler (h2c, ServeConn). When the handler has returned, the
 * same goroutine calls (*responseWriter).handlerDone(w), w in RAX: the span's end, before
 * the writer's state goes back to its pool.
 *
 * rw.rws is the stream's *responseWriterState: its stream (with the stream id), its
 * request, its *serverConn (whose conn is the net.Conn), and at the end the status written
 * (0 when the handler wrote none: net/http then sends 200) and the body bytes written.
 */
#ifndef GOTRACE_HTTP2_SERVER_H
#define GOTRACE_HTTP2_SERVER_H

#include "http_server.h"
#include "served_conn.h"

struct h2_server_layout {
    __u32 writer_rws;  /* responseWriter.rws */
    __u32 state_stream, state_req, state_conn, state_status, state_wrote;
    __u32 state_window;  /* the state's window: the largest of those fields' ends (about
                          * 110 bytes; a read beyond WINDOW_SIZE would not load) */
    __u32 stream_id;  /* stream.id */
    __u32 conn_netconn;  /* serverConn.conn */
};

/* A layout from the offsets of responseWriter.rws; responseWriterState's stream, req, conn,
 * status and wroteBytes; stream.id; serverConn.conn. */
#define H2_SERVER_LAYOUT(rws, stream, req, conn, status, wrote, id, netconn) \
    ((struct h2_server_layout){ \
        .writer_rws = rws, .state_stream = stream, .state_req = req, .state_conn = conn, \
        .state_status = status, .state_wrote = wrote, \
        .state_window = MAX3(MAX3(END_OF(stream, __u64), END_OF(req, __u64), \
                                  END_OF(conn, __u64)), \
                             END_OF(status, __u64), END_OF(wrote, __u64)), \
        .stream_id = id, .conn_netconn = netconn})

/* The connection's addresses. With g.parentGoid (Go >= 1.21) the goroutine that started
 * this one, the connection's serve loop, keys the connection's entry in served_conns, so
 * they are read once per connection; before, for every request. *serve_loop: that
 * goroutine's id, 0 without an entry. */
static __always_inline int h2_server_conn(struct span_record *rec, __u64 g, __u64 sc,
                                          __u32 conn_netconn, __u64 *serve_loop) {
#ifdef OFF_runtime_g_parentGoid
    *serve_loop = read_u64(g + OFF_runtime_g_parentGoid);
    return read_served_conn(rec, *serve_loop, sc, sc + conn_netconn, TCP_END_SERVER);
#else
    *serve_loop = 0;
    return read_conn_as(rec, sc + conn_netconn, TCP_END_SERVER, 0);
#endif
}

/* The span of the request req that goroutine g (id goid) serves through writer w begins. */
static __always_inline void h2_server_begin(__u64 g, __u64 goid, __u64 w, __u64 req,
                                            struct h2_server_layout layout) {
    struct http_server_inflight *st = http_server_prepare(g, req);
    if (!st)
        return;
    __u64 state = read_u64(w + layout.writer_rws);
    __u8 *s = read_window(0, state, layout.state_window);
    if (!s || WINDOW_U64(s, layout.state_req) != req) {
        count_drop(DROP_UNSUPPORTED_WRITER);
        return;
    }
    __u64 stream = WINDOW_U64(s, layout.state_stream);
    __u64 sc = WINDOW_U64(s, layout.state_conn);
    st->state = state;
    struct span_record *rec = &st->rec;
    __u64 header;
    if (!read_server_request(rec, goid, req, &header))
        return;
    rec->stream_id = read_u32(stream + layout.stream_id);
    __u64 serve_loop = 0;
    if (sc && h2_server_conn(rec, g, sc, layout.conn_netconn, &serve_loop))
        *(__u64 *)rec->scheme = SCHEME_HTTPS;
    __u16 flags_before = rec->flags;
    http_server_begin(st, g, header, w);
    note_caller_untraced(rec, flags_before, serve_loop, sc);
}

/* handlerDone(w)'s entry on goroutine g: the span ends with the status and size written. */
static __always_inline void h2_server_end(__u64 g, __u64 w, struct h2_server_layout layout) {
    struct http_server_inflight *st = http_server_ending(g, w);
    if (!st)
        return;
    __u8 *s = read_window(0, st->state, layout.state_window);
    __u64 status = s ? WINDOW_U64(s, layout.state_status) : 0;
    http_server_finish(st, status ? (__u32)status : 200,
                       s ? (__s64)WINDOW_U64(s, layout.state_wrote) : -1);
}

#endif
