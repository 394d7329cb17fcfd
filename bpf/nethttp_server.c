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
#include "span.h"
#include "served_conn.h"
#include "traceparent.h"

struct http_server_inflight {
    struct span_record rec;
    __u64 request;
    __u64 response;
};

BPF_HASH(http_server_inflight, struct go_key, struct http_server_inflight, MAX_INFLIGHT);  /* by g */
BPF_PERCPU_ARRAY(http_server_scratch, struct http_server_inflight, 1);

#define SCHEME_HTTPS 0x7370747468ULL  /* "https" as a little-endian word */

/* The connection's addresses: net/http serves an HTTP/1 connection on one goroutine, this
 * one (bpf/served_conn.h). */
static __always_inline void server_conn(struct span_record *rec, __u64 conn) {
    if (read_served_conn(rec, rec->goid, conn, conn + OFF_net_http_conn_rwc))
        *(__u64 *)rec->scheme = SCHEME_HTTPS;
}

/* The windows (bpf/goabi.h) read: at the entry, the response's req and conn, the request's
 * fields, the URL's path and query; at the end, the response's status and size. */
#define SERVER_RESPONSE_WINDOW MAX2(END_OF(OFF_net_http_response_req, __u64), \
                             END_OF(OFF_net_http_response_conn, __u64))
#ifdef OFF_net_http_Request_Header
#define SERVER_REQUEST_HEADER_END END_OF(OFF_net_http_Request_Header, __u64)
#else
#define SERVER_REQUEST_HEADER_END 0
#endif
#define SERVER_REQUEST_WINDOW MAX3(MAX3(END_OF(OFF_net_http_Request_Method, struct go_string), \
                                 END_OF(OFF_net_http_Request_Host, struct go_string), \
                                 END_OF(OFF_net_http_Request_URL, __u64)), \
                            MAX3(END_OF(OFF_net_http_Request_ProtoMajor, __u64), \
                                 END_OF(OFF_net_http_Request_ProtoMinor, __u64), \
                                 END_OF(OFF_net_http_Request_ContentLength, __u64)), \
                            SERVER_REQUEST_HEADER_END)
#define SERVER_RESPONSE_END_WINDOW MAX2(END_OF(OFF_net_http_response_status, __u64), \
                                 END_OF(OFF_net_http_response_written, __u64))
#define SERVER_URL_WINDOW MAX2(END_OF(OFF_net_url_URL_Path, struct go_string), \
                        END_OF(OFF_net_url_URL_RawQuery, struct go_string))
_Static_assert(SERVER_RESPONSE_WINDOW <= WINDOW_SIZE && SERVER_REQUEST_WINDOW <= WINDOW_SIZE &&
               SERVER_RESPONSE_END_WINDOW <= WINDOW_SIZE && SERVER_URL_WINDOW <= WINDOW_SIZE,
               "a window of net/http's structs is too large");

int http_server_entry(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP_SERVER_ENTRY);
    __u64 g = GO_G(ctx);
    struct go_key by_g = go_key(g);
    /* The entry runs again when the stack grew first (morestack restarts the function): the
     * span began already, and must not become its own parent. */
    struct http_server_inflight *current = http_server_inflight.lookup(&by_g);
    if (current && current->request == GO_ARG4(ctx))
        return 0;
    __u32 zero = 0;
    struct http_server_inflight *st = http_server_scratch.lookup(&zero);
    if (!st)
        return 0;
    struct span_record *rec = &st->rec;
    __u64 req = GO_ARG4(ctx);
    st->request = req;
    st->response = GO_ARG3(ctx);
    /* w must be net/http's HTTP/1 *response, whose req is r; HTTP/2 (over TLS) brings another
     * writer type, whose memory we must not read as a *response. */
    __u8 *w = read_window(1, st->response, SERVER_RESPONSE_WINDOW);
    if (!w || WINDOW_U64(w, OFF_net_http_response_req) != req) {
        count_drop(DROP_UNSUPPORTED_WRITER);
        return 0;
    }
    __u64 conn = WINDOW_U64(w, OFF_net_http_response_conn);
    __u8 *r = read_window(0, req, SERVER_REQUEST_WINDOW);
    if (!r)
        return 0;
    init_record(rec, SPAN_KIND_HTTP_SERVER, g);
    rec->request_body_size = (__s64)WINDOW_U64(r, OFF_net_http_Request_ContentLength);
    COPY_GO_STRING(rec->method, WINDOW_STRING(r, OFF_net_http_Request_Method));
    COPY_GO_STRING(rec->host, WINDOW_STRING(r, OFF_net_http_Request_Host));
    rec->proto_major = (__u8)WINDOW_U64(r, OFF_net_http_Request_ProtoMajor);
    rec->proto_minor = (__u8)WINDOW_U64(r, OFF_net_http_Request_ProtoMinor);
#if defined(HAS_TRACEPARENT) && defined(OFF_net_http_Request_Header)
    __u64 header = WINDOW_U64(r, OFF_net_http_Request_Header);
#endif
    __u8 *url = read_window(1, WINDOW_U64(r, OFF_net_http_Request_URL), SERVER_URL_WINDOW);
    if (url) {
        COPY_GO_STRING(rec->path, WINDOW_STRING(url, OFF_net_url_URL_Path));
        if (COPY_GO_STRING(rec->query, WINDOW_STRING(url, OFF_net_url_URL_RawQuery)) > 0)
            rec->flags |= SPAN_F_HAS_QUERY;
    }
    if (conn)
        server_conn(rec, conn);
    begin_span(rec, g);
#if defined(HAS_TRACEPARENT) && defined(OFF_net_http_Request_Header)
    read_traceparent(rec, header);
#endif
    if (http_server_inflight.update(&by_g, st) != 0) {
        count_drop(DROP_INFLIGHT_FULL);
        return 0;
    }
    enter_span_context(rec);
    return 0;
}

static __always_inline int end_request(struct pt_regs *ctx, int hijacked) {
    struct go_key by_g = go_key(GO_G(ctx));
    struct http_server_inflight *st = http_server_inflight.lookup(&by_g);
    if (!st || st->response != GO_ARG1(ctx))
        return 0;
    struct span_record *rec = &st->rec;
    rec->end_ns = bpf_ktime_get_ns();
    __u8 *w = read_window(1, st->response, SERVER_RESPONSE_END_WINDOW);
    __u64 status = w ? WINDOW_U64(w, OFF_net_http_response_status) : 0;
    /* No WriteHeader: net/http sends 200, unless the handler took the connection. */
    rec->status = status || hijacked ? (__u32)status : 200;
    if (w)
        rec->response_body_size = (__s64)WINDOW_U64(w, OFF_net_http_response_written);
#ifdef OFF_net_http_Request_Pattern
    READ_GO_STRING(rec->route, st->request + OFF_net_http_Request_Pattern);
#endif
    __u64 goid = rec->goid;
    emit(rec);
    http_server_inflight.delete(&by_g);
    end_span_context(goid);
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
