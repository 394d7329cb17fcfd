/* net/http server spans: two uprobe hits per request, both on function entries.
 *
 * serverHandler.ServeHTTP(sh, w ResponseWriter, r *Request) runs once per request on the
 * connection's goroutine: sh in RAX, w in RBX (itab) and RCX (*response), r in RDI.
 * Its entry: request facts, the connection, the span's identity, the goroutine's context.
 *
 * The span ends where the connection's goroutine goes on once the handler returned: at the
 * entry of (*response).finishRequest(w), or of (*response).Hijack(w) when the handler takes
 * the connection over (a WebSocket upgrade: the HTTP exchange ends there). There: status,
 * body size and the matched pattern (set by ServeMux during the call), then the finished
 * span goes out. Not at ServeHTTP's RETs: the kernel single-steps a RET under a uprobe, a
 * second trap that costs about as much as the first (gobin/disasm.py entry_probe_site).
 */

#include "goabi.h"
#include "counters.h"
#include "http_server.h"
#include "served_conn.h"
#ifdef NETHTTP_HTTP2  /* the http2 feature (gotrace/probes/nethttp_server.py) */
#include "http2_server.h"
#define BUNDLED_H2_SERVER H2_SERVER_LAYOUT(OFF_net_http_http2responseWriter_rws, \
    OFF_net_http_http2responseWriterState_stream, OFF_net_http_http2responseWriterState_req, \
    OFF_net_http_http2responseWriterState_conn, OFF_net_http_http2responseWriterState_status, \
    OFF_net_http_http2responseWriterState_wroteBytes, OFF_net_http_http2stream_id, \
    OFF_net_http_http2serverConn_conn)
#endif

/* The connection's addresses: net/http serves an HTTP/1 connection on one goroutine, this
 * one (bpf/served_conn.h). At the handler's start: the request's position in the stream
 * (bpf/conn.h). */
static __always_inline void server_conn(struct span_record *rec, __u64 conn) {
    if (read_served_conn(rec, rec->goid, conn, conn + OFF_net_http_conn_rwc,
                         TCP_END_SERVER | TCP_AT_POSITION))
        *(__u64 *)rec->scheme = SCHEME_HTTPS;
}

/* The windows (bpf/goabi.h) read: at the entry, the response's req and conn; at the end,
 * its status and size. */
#define SERVER_RESPONSE_WINDOW MAX2(END_OF(OFF_net_http_response_req, __u64), \
                             END_OF(OFF_net_http_response_conn, __u64))
#define SERVER_RESPONSE_END_WINDOW MAX2(END_OF(OFF_net_http_response_status, __u64), \
                                 END_OF(OFF_net_http_response_written, __u64))
_Static_assert(SERVER_RESPONSE_WINDOW <= WINDOW_SIZE && SERVER_RESPONSE_END_WINDOW <= WINDOW_SIZE,
               "a window of net/http's response is too large");

#define METHOD_PRI 0x495250U  /* "PRI" and its NUL as a little-endian word */

/* ServeHTTP with a writer other than HTTP/1's *response, whose type the itab's hash tells. */
static __always_inline void serve_other_writer(__u64 g, __u64 goid, __u64 itab, __u64 w,
                                               __u64 req) {
    __u32 type = itab_type(itab);
#ifdef NETHTTP_HTTP2
    if (type == TYPEHASH_ptr_net_http_http2responseWriter) {
        h2_server_begin(g, goid, w, req, BUNDLED_H2_SERVER);
        return;
    }
#endif
#if defined(WITH_XNET_HTTP2_SERVER) && defined(TYPEHASH_ptr_golang_org_x_net_http2_responseWriter)
    if (type == TYPEHASH_ptr_golang_org_x_net_http2_responseWriter)
        return;  /* its span began at x/net's runHandler (bpf/xnet_http2_server.c) */
#endif
    count_drop(DROP_UNSUPPORTED_WRITER);
}

/* HTTP/1's connection, from the writer w (itab, data): net/http's *response when its req is r.
 * HTTP/2 brings another writer type, whose memory must not be read as a *response. The
 * goroutine serving an HTTP/1 connection serves only it, with one *response itab: once an
 * earlier request on it told them (known), they need not be read. False for another writer;
 * else the *conn in *conn. */
static __always_inline int http1_conn(struct http_server_inflight *known, __u64 goid,
                                      __u64 itab, __u64 w, __u64 req, __u64 *conn) {
    if (known && itab && known->writer_itab == itab && known->conn_goid == goid) {
        *conn = known->conn;
        return 1;
    }
    __u8 *window = read_window(1, w, SERVER_RESPONSE_WINDOW);
    if (!window || WINDOW_U64(window, OFF_net_http_response_req) != req)
        return 0;
    *conn = WINDOW_U64(window, OFF_net_http_response_conn);
    return 1;
}

int http_server_entry(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP_SERVER_ENTRY);
    __u64 g = GO_G(ctx);
    __u64 req = GO_ARG4(ctx);
    __u64 itab = GO_ARG2(ctx), writer = GO_ARG3(ctx);
    __u64 goid = goroutine_id(g);
    struct go_key by_g = go_key(g);
    struct http_server_inflight *known = http_server_inflight.lookup(&by_g);
    __u64 conn = 0;
    if (!http1_conn(known, goid, itab, writer, req, &conn)) {
        serve_other_writer(g, goid, itab, writer, req);
        return 0;
    }
    struct http_server_inflight *st = http_server_prepare_found(&by_g, known, req);
    if (!st)
        return 0;
    st->conn_goid = goid;
    st->writer_itab = itab;
    st->conn = conn;
    struct span_record *rec = &st->rec;
    __u64 header;
    if (!read_server_request(rec, goid, req, &header))
        return 0;
    /* "PRI *" is HTTP/2's connection preface read as a request: the connection turns to
     * HTTP/2 (h2c with prior knowledge), whose requests have spans of their own. */
    if (*(__u32 *)rec->method == METHOD_PRI && rec->proto_major == 2)
        return 0;
    if (conn)
        server_conn(rec, conn);
    __u16 flags_before = rec->flags;
    http_server_begin(st, g, header, writer);
    note_caller_untraced(rec, flags_before, conn ? goid : 0, conn);
    return 0;
}

static __always_inline int end_request(struct pt_regs *ctx, int hijacked) {
    __u64 g = GO_G(ctx);
    struct http_server_inflight *st = http_server_ending(g, GO_ARG1(ctx));
    if (!st)
        return 0;
    __u8 *w = read_window(1, st->response, SERVER_RESPONSE_END_WINDOW);
    __u64 status = w ? WINDOW_U64(w, OFF_net_http_response_status) : 0;
    /* No WriteHeader: net/http sends 200, unless the handler took the connection. */
    http_server_finish(st, status || hijacked ? (__u32)status : 200,
                       w ? (__s64)WINDOW_U64(w, OFF_net_http_response_written) : -1);
    return 0;
}

int http_server_end(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP_SERVER_END);
    return end_request(ctx, 0);
}

int http_server_hijacked(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP_SERVER_HIJACKED);
    return end_request(ctx, 1);
}

#ifdef NETHTTP_HTTP2
int http2_server_end(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP2_SERVER_END);
    h2_server_end(GO_G(ctx), GO_ARG1(ctx), BUNDLED_H2_SERVER);
    return 0;
}
#endif
