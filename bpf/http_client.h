/* An HTTP client request's span, whichever transport sends it: net/http's Transport (HTTP/1,
 * or HTTP/2 through its bundled copy of golang.org/x/net/http2) or golang.org/x/net/http2's
 * own Transport. Both take a net/http *Request and return a *Response and an error, and
 * run the request on the caller's goroutine: the span is kept by that goroutine from the
 * round trip's entry to its RETs, and a probe where the request meets its connection adds
 * the connection in between.
 *
 * An HTTP/2 response's body names its stream: the transport's transportResponseBody{cs}
 * (a one-pointer struct, which an interface holds as the *clientStream itself), or a
 * gzipReader around it when the transport asked for gzip. A response without a body
 * (NoBody: HEAD, 204, 304, an empty one) names none: its span has no stream id.
 */
#ifndef GOTRACE_HTTP_CLIENT_H
#define GOTRACE_HTTP_CLIENT_H

#include "goabi.h"
#include "counters.h"
#include "span.h"
#include "conn.h"

BPF_HASH(http_client_inflight, struct go_key, struct span_record, MAX_INFLIGHT);  /* by g */

/* The windows (bpf/goabi.h) read: the request's fields and its URL's at the entry, the
 * response's at the return. */
#define CLIENT_REQUEST_WINDOW MAX3(END_OF(OFF_net_http_Request_Method, struct go_string), \
                                   END_OF(OFF_net_http_Request_URL, __u64), \
                                   END_OF(OFF_net_http_Request_ContentLength, __u64))
#define CLIENT_URL_WINDOW MAX2(MAX2(END_OF(OFF_net_url_URL_Scheme, struct go_string), \
                                    END_OF(OFF_net_url_URL_Host, struct go_string)), \
                               MAX2(END_OF(OFF_net_url_URL_Path, struct go_string), \
                                    END_OF(OFF_net_url_URL_RawQuery, struct go_string)))
#define CLIENT_RESPONSE_WINDOW MAX3(END_OF(OFF_net_http_Response_StatusCode, __u64), \
                                    END_OF(OFF_net_http_Response_ContentLength, __u64), \
                                    END_OF(OFF_net_http_Response_Body, struct go_iface))
_Static_assert(CLIENT_REQUEST_WINDOW <= WINDOW_SIZE && CLIENT_URL_WINDOW <= WINDOW_SIZE &&
               CLIENT_RESPONSE_WINDOW <= WINDOW_SIZE,
               "a window of net/http's structs is too large");

/* The span of the request req that goroutine g sends begins. */
static __always_inline struct span_record *http_client_begin(__u64 g, __u64 req) {
    struct span_record *rec = new_record(SPAN_KIND_HTTP_CLIENT, g);
    if (!rec)
        return 0;
    __u8 *r = read_window(0, req, CLIENT_REQUEST_WINDOW);
    if (!r)
        return 0;
    rec->request_body_size = (__s64)WINDOW_U64(r, OFF_net_http_Request_ContentLength);
    COPY_GO_STRING(rec->method, WINDOW_STRING(r, OFF_net_http_Request_Method));
    __u8 *url = read_window(1, WINDOW_U64(r, OFF_net_http_Request_URL), CLIENT_URL_WINDOW);
    if (url) {
        COPY_GO_STRING(rec->scheme, WINDOW_STRING(url, OFF_net_url_URL_Scheme));
        COPY_GO_STRING(rec->host, WINDOW_STRING(url, OFF_net_url_URL_Host));
        COPY_GO_STRING(rec->path, WINDOW_STRING(url, OFF_net_url_URL_Path));
        if (COPY_GO_STRING(rec->query, WINDOW_STRING(url, OFF_net_url_URL_RawQuery)) > 0)
            rec->flags |= SPAN_F_HAS_QUERY;
    }
    begin_span(rec, g);
    struct go_key by_g = go_key(g);
    if (http_client_inflight.update(&by_g, rec) != 0)
        count_drop(DROP_INFLIGHT_FULL);
    return rec;
}

/* An HTTP/2 transport's names, the bundled copy's or x/net's: the type hashes of its
 * transportResponseBody and *gzipReader, the offsets of gzipReader.body, clientStream.ID and
 * ClientConn.tconn. */
struct h2_client_layout {
    __u32 body_type, gzip_type;
    __u32 gzip_body, stream_id, conn_netconn;
};
#ifdef NETHTTP_HTTP2_CLIENT  /* the nethttp_client probe's http2 feature */
#define BUNDLED_H2_CLIENT ((struct h2_client_layout){ \
    TYPEHASH_net_http_http2transportResponseBody, TYPEHASH_ptr_net_http_http2gzipReader, \
    OFF_net_http_http2gzipReader_body, OFF_net_http_http2clientStream_ID, \
    OFF_net_http_http2ClientConn_tconn})
_Static_assert(OFF_net_http_http2transportResponseBody_cs == 0,
               "http2transportResponseBody is no longer its *http2clientStream");
#endif
#ifdef WITH_XNET_HTTP2_CLIENT
#define XNET_H2_CLIENT ((struct h2_client_layout){ \
    TYPEHASH_golang_org_x_net_http2_transportResponseBody, \
    TYPEHASH_ptr_golang_org_x_net_http2_gzipReader, OFF_golang_org_x_net_http2_gzipReader_body, \
    OFF_golang_org_x_net_http2_clientStream_ID, OFF_golang_org_x_net_http2_ClientConn_tconn})
_Static_assert(OFF_golang_org_x_net_http2_transportResponseBody_cs == 0,
               "x/net's transportResponseBody is no longer its *clientStream");
#endif

/* (*ClientConn).roundTrip(cc, req), cc in RAX: goroutine g's request goes out as a stream of
 * cc's connection (again, on another one, when the transport retries it). */
static __always_inline void h2_client_conn(__u64 g, __u64 cc, struct h2_client_layout layout) {
    struct go_key by_g = go_key(g);
    struct span_record *rec = http_client_inflight.lookup(&by_g);
    if (!rec)
        return;
    rec->proto_major = 2;
    read_conn_as(rec, cc + layout.conn_netconn, TCP_END_CLIENT, 0);
}

/* The stream id the response body names (above), 0 when it names none. */
static __always_inline __u32 h2_response_stream(struct go_iface body,
                                                struct h2_client_layout layout) {
    __u32 type = itab_type(body.tab);
    if (type == layout.gzip_type) {
        if (bpf_probe_read_user(&body, sizeof(body), (void *)(body.data + layout.gzip_body)))
            return 0;
        type = itab_type(body.tab);
    }
    return type == layout.body_type && body.data ? read_u32(body.data + layout.stream_id) : 0;
}

/* The round trip returned (resp in RAX, the error's itab in RBX): the span ends. */
static __always_inline void http_client_end(struct span_record *rec, struct go_key *by_g,
                                            __u64 resp, __u64 err) {
    rec->end_ns = bpf_ktime_get_ns();
    __u8 *r = read_window(0, resp, CLIENT_RESPONSE_WINDOW);
    if (r) {
        rec->status = (__u32)WINDOW_U64(r, OFF_net_http_Response_StatusCode);
        rec->response_body_size = (__s64)WINDOW_U64(r, OFF_net_http_Response_ContentLength);
#if defined(NETHTTP_HTTP2_CLIENT) || defined(WITH_XNET_HTTP2_CLIENT)
        if (rec->proto_major == 2) {
            struct go_iface body = *(struct go_iface *)(r + OFF_net_http_Response_Body);
#ifdef NETHTTP_HTTP2_CLIENT
            rec->stream_id = h2_response_stream(body, BUNDLED_H2_CLIENT);
#endif
#ifdef WITH_XNET_HTTP2_CLIENT
            if (!rec->stream_id)
                rec->stream_id = h2_response_stream(body, XNET_H2_CLIENT);
#endif
        }
#endif
    } else if (err) {
        rec->flags |= SPAN_F_TRANSPORT_ERROR;
    }
    emit(rec);
    http_client_inflight.delete(by_g);
}

#endif
