/* An HTTP server request's span, whichever server reads the request: net/http's HTTP/1
 * connection (bpf/nethttp_server.c), its bundled HTTP/2 server or golang.org/x/net/http2's
 * (bpf/http2_server.h). All of them hand the handler a net/http *Request; they differ in the
 * writer, the connection and where the handler's response is complete.
 *
 * A request's span is kept by the goroutine that runs its handler, from the probe where
 * it begins to the one where the response is complete, both on that goroutine.
 */
#ifndef GOTRACE_HTTP_SERVER_H
#define GOTRACE_HTTP_SERVER_H

#include "goabi.h"
#include "counters.h"
#include "route.h"
#include "span.h"
#include "traceparent.h"

struct http_server_inflight {
    struct span_record rec;
    __u64 request;   /* 0 once the span ended */
    __u64 response;  /* the writer the span's end names; 0 until the span began, and after */
    __u64 state;     /* HTTP/2: the writer's *responseWriterState, with the status and size */
    struct route_source route;  /* a router's object with the route, read at the end */
    /* HTTP/1: what an earlier request told of the connection this g's goroutine serves, so
     * that the next need not read the writer to know it (bpf/nethttp_server.c): that
     * goroutine's id, the writer's itab (net/http's *response's) and the *conn. */
    __u64 conn_goid;
    __u64 writer_itab;
    __u64 conn;
};

/* By g, whose entry stays once its span ended and is rewritten in place by the next span the
 * g runs (an update and a delete per request cost more than the rest of a lookup's work):
 * net/http's HTTP/1 connection serves request after request on one goroutine, and Go reuses
 * the g of an exited goroutine for the next it starts (HTTP/2's handler goroutines). Go never
 * frees a g, so the entries are at most the goroutines that ever ran at once; the LRU evicts
 * the entries of g's that serve no more (a live one only when more than MAX_INFLIGHT g's ran
 * requests). */
BPF_TABLE("lru_hash", struct go_key, struct http_server_inflight, http_server_inflight,
          MAX_INFLIGHT);
BPF_PERCPU_ARRAY(http_server_blank, struct http_server_inflight, 1);  /* zeros, never written */

/* The windows (bpf/goabi.h) of a request: its fields, its URL's path and query. */
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
#define SERVER_URL_WINDOW MAX2(END_OF(OFF_net_url_URL_Path, struct go_string), \
                        END_OF(OFF_net_url_URL_RawQuery, struct go_string))
_Static_assert(SERVER_REQUEST_WINDOW <= WINDOW_SIZE && SERVER_URL_WINDOW <= WINDOW_SIZE,
               "a window of net/http's Request or url.URL is too large");

#define SCHEME_HTTPS 0x7370747468ULL  /* "https" as a little-endian word */

/* The entry of goroutine g for request req about to begin, or 0 when it began already: the
 * entry runs again when the stack grew first (morestack restarts the function), and the
 * span must not become its own parent. The span is live once http_server_begin names its
 * writer. */
static __always_inline struct http_server_inflight *
http_server_prepare_found(struct go_key *by_g, struct http_server_inflight *st, __u64 req) {
    if (st && st->request == req)
        return 0;
    if (!st) {
        __u32 zero = 0;
        struct http_server_inflight *blank = http_server_blank.lookup(&zero);
        if (!blank || http_server_inflight.update(by_g, blank) != 0) {
            count_drop(DROP_INFLIGHT_FULL);
            return 0;
        }
        st = http_server_inflight.lookup(by_g);
        if (!st)
            return 0;
    }
    st->request = req;
    st->response = 0;
    st->state = 0;
    st->route.object = 0;
    return st;
}

/* http_server_prepare_found, looking g's entry up. */
static __always_inline struct http_server_inflight *http_server_prepare(__u64 g, __u64 req) {
    struct go_key by_g = go_key(g);
    return http_server_prepare_found(&by_g, http_server_inflight.lookup(&by_g), req);
}

/* A new record with the request's facts, for goroutine goid; the Header map's address in
 * *header (0 when the binary's Request has none we read). False when the request cannot be
 * read. Uses both window slots. */
static __always_inline int read_server_request(struct span_record *rec, __u64 goid, __u64 req,
                                               __u64 *header) {
    __u8 *r = read_window(0, req, SERVER_REQUEST_WINDOW);
    if (!r)
        return 0;
    init_goroutine_record(rec, SPAN_KIND_HTTP_SERVER, goid);
    rec->request_body_size = (__s64)WINDOW_U64(r, OFF_net_http_Request_ContentLength);
    COPY_GO_STRING(rec->method, WINDOW_STRING(r, OFF_net_http_Request_Method));
    COPY_GO_STRING(rec->host, WINDOW_STRING(r, OFF_net_http_Request_Host));
    rec->proto_major = (__u8)WINDOW_U64(r, OFF_net_http_Request_ProtoMajor);
    rec->proto_minor = (__u8)WINDOW_U64(r, OFF_net_http_Request_ProtoMinor);
#ifdef OFF_net_http_Request_Header
    *header = WINDOW_U64(r, OFF_net_http_Request_Header);
#else
    *header = 0;
#endif
    __u8 *url = read_window(1, WINDOW_U64(r, OFF_net_http_Request_URL), SERVER_URL_WINDOW);
    if (url) {
        COPY_GO_STRING(rec->path, WINDOW_STRING(url, OFF_net_url_URL_Path));
        if (COPY_GO_STRING(rec->query, WINDOW_STRING(url, OFF_net_url_URL_RawQuery)) > 0)
            rec->flags |= SPAN_F_HAS_QUERY;
    }
    return 1;
}

/* The span begins: its identity (continuing an incoming traceparent), kept until its end,
 * which the response through writer makes, and the goroutine's context for the calls the
 * handler makes. */
static __always_inline void http_server_begin(struct http_server_inflight *st, __u64 g,
                                              __u64 header, __u64 writer) {
    struct span_record *rec = &st->rec;
    begin_span(rec, g);
#ifdef HAS_TRACEPARENT
    if (header)
        read_traceparent(rec, header);
#endif
    st->response = writer;
    enter_span_context(rec);
}

/* The span of goroutine g's request answered through writer, if that is its writer. */
static __always_inline struct http_server_inflight *http_server_ending(__u64 g, __u64 writer) {
    struct go_key by_g = go_key(g);
    struct http_server_inflight *st = http_server_inflight.lookup(&by_g);
    return st && writer && st->response == writer ? st : 0;
}

/* The route: as a router probe named it (bpf/route_site.h), else the pattern ServeMux
 * matched (set in the request during the handler's call): Request.Pattern since Go 1.23,
 * the matched *pattern's text in Go 1.22. */
static __always_inline void read_route(struct http_server_inflight *st) {
    struct span_record *rec = &st->rec;
    if (rec->flags & (SPAN_F_ROUTE_REFS | SPAN_F_ROUTE_TREE))
        return;
    if (st->route.object) {
        read_route_source(rec, &st->route, st->request);
        return;
    }
#if defined(OFF_net_http_Request_Pattern)
    READ_GO_STRING(rec->route, st->request + OFF_net_http_Request_Pattern);
#elif defined(OFF_net_http_Request_pat) && defined(OFF_net_http_pattern_str)
    __u64 pattern = read_u64(st->request + OFF_net_http_Request_pat);
    if (pattern)
        READ_GO_STRING(rec->route, pattern + OFF_net_http_pattern_str);
#endif
}

/* The response is complete: status (0 when none was written), body size and route, then
 * the span goes out. */
static __always_inline void http_server_finish(struct http_server_inflight *st, __u32 status,
                                               __s64 written) {
    struct span_record *rec = &st->rec;
    rec->end_ns = bpf_ktime_get_ns();
    rec->status = status;
    rec->response_body_size = written;
    read_route(st);
    emit(rec);
    st->request = 0;
    st->response = 0;
    end_span_context(rec->goid);
}

#endif
