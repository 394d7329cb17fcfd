/* net/http client spans: (*Transport).roundTrip entry and RETs, plus the entry of
 * (*persistConn).roundTrip, which names the TCP connection the request goes out on.
 *
 * roundTrip(t *Transport, req *Request) (*Response, error): t in RAX, req in RBX;
 * returns the response in RAX and the error's itab in RBX.
 * persistConn.roundTrip(pc *persistConn, req *transportRequest): pc in RAX.
 */

#include "goabi.h"
#include "counters.h"
#include "span.h"
#include "conn.h"
#include "inject_handoff.h"

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
#define CLIENT_RESPONSE_WINDOW MAX2(END_OF(OFF_net_http_Response_StatusCode, __u64), \
                             END_OF(OFF_net_http_Response_ContentLength, __u64))
_Static_assert(CLIENT_REQUEST_WINDOW <= WINDOW_SIZE && CLIENT_URL_WINDOW <= WINDOW_SIZE &&
               CLIENT_RESPONSE_WINDOW <= WINDOW_SIZE,
               "a window of net/http's structs is too large");

int http_client_entry(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP_CLIENT_ENTRY);
    __u64 g = GO_G(ctx);
    struct span_record *rec = new_record(SPAN_KIND_HTTP_CLIENT, g);
    if (!rec)
        return 0;
    __u8 *r = read_window(0, GO_ARG2(ctx), CLIENT_REQUEST_WINDOW);
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
    return 0;
}

int http_client_conn(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP_CLIENT_CONN);
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = http_client_inflight.lookup(&by_g);
    if (!rec)
        return 0;
    read_conn(rec, GO_ARG1(ctx) + OFF_net_http_persistConn_conn);
    inject_hand_over(rec, GO_ARG2(ctx));  /* with --inject-traceparent */
    return 0;
}

int http_client_return(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP_CLIENT_RETURN);
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = http_client_inflight.lookup(&by_g);
    if (!rec)
        return 0;
    rec->end_ns = bpf_ktime_get_ns();
    __u8 *resp = read_window(0, GO_ARG1(ctx), CLIENT_RESPONSE_WINDOW);
    if (resp) {
        rec->status = (__u32)WINDOW_U64(resp, OFF_net_http_Response_StatusCode);
        rec->response_body_size = (__s64)WINDOW_U64(resp, OFF_net_http_Response_ContentLength);
    } else if (GO_ARG2(ctx)) {
        rec->flags |= SPAN_F_TRANSPORT_ERROR;
    }
    emit(rec);
    http_client_inflight.delete(&by_g);
    return 0;
}
