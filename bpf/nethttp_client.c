/* net/http client spans: (*Transport).roundTrip entry and RETs, plus the entry of
 * (*persistConn).roundTrip, which names the TCP connection the request goes out on.
 *
 * roundTrip(t *Transport, req *Request) (*Response, error): t in RAX, req in RBX;
 * returns the response in RAX and the error's itab in RBX.
 * persistConn.roundTrip(pc *persistConn, req *transportRequest): pc in RAX. An HTTP/2
 * request (the TLS handshake chose h2) goes to the bundled HTTP/2 transport instead, whose
 * (*http2ClientConn).roundTrip(cc, req) names the connection (bpf/http_client.h).
 */

#include "http_client.h"
#include "inject_handoff.h"

int http_client_entry(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP_CLIENT_ENTRY);
    http_client_begin(GO_G(ctx), GO_ARG2(ctx));
    return 0;
}

int http_client_conn(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP_CLIENT_CONN);
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = http_client_inflight.lookup(&by_g);
    if (!rec)
        return 0;
    /* At the round trip's start: the request's position in the stream (bpf/conn.h). */
    read_conn_as(rec, GO_ARG1(ctx) + OFF_net_http_persistConn_conn,
                 TCP_END_CLIENT | TCP_AT_POSITION, 0);
    inject_hand_over(rec, GO_ARG2(ctx));  /* with --inject-traceparent */
    return 0;
}

#ifdef NETHTTP_HTTP2_CLIENT  /* the http2 feature (gotrace/probes/nethttp_client.py) */
int http2_client_conn(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP2_CLIENT_CONN);
    h2_client_conn(GO_G(ctx), GO_ARG1(ctx), BUNDLED_H2_CLIENT);
    return 0;
}
#endif

int http_client_return(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP_CLIENT_RETURN);
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = http_client_inflight.lookup(&by_g);
    if (rec)
        http_client_end(rec, &by_g, GO_ARG1(ctx), GO_ARG2(ctx));
    return 0;
}
