/* golang.org/x/net/http2 client spans, for programs whose http.Client uses that package's
 * Transport itself (h2c with AllowHTTP, HTTP/2-only clients): (*Transport).RoundTripOpt's
 * entry and RETs, plus (*ClientConn).roundTrip's entry, which names the connection
 * (bpf/http_client.h). RoundTripOpt(t, req *http.Request, opt): req in RBX; it returns the
 * response in RAX and the error's itab in RBX.
 *
 * Behind net/http's Transport (ConfigureTransport) the request's span is net/http's, begun
 * before RoundTripOpt: this probe then only names its connection.
 */

#include "http_client.h"

/* The requests whose span this probe began (the goroutine's), not net/http's. */
BPF_HASH(xnet_http2_client_own, struct go_key, __u64, MAX_INFLIGHT);  /* by g: the *Request */

int xnet_http2_client_entry(struct pt_regs *ctx) {
    count_hit(PROBE_XNET_HTTP2_CLIENT_ENTRY);
    __u64 g = GO_G(ctx);
    struct go_key by_g = go_key(g);
    if (http_client_inflight.lookup(&by_g))
        return 0;  /* net/http's, or this one's again after the stack grew (morestack) */
    __u64 req = GO_ARG2(ctx);
    if (http_client_begin(g, req))
        xnet_http2_client_own.update(&by_g, &req);
    return 0;
}

int xnet_http2_client_conn(struct pt_regs *ctx) {
    count_hit(PROBE_XNET_HTTP2_CLIENT_CONN);
    h2_client_conn(GO_G(ctx), GO_ARG1(ctx), XNET_H2_CLIENT);
    return 0;
}

int xnet_http2_client_return(struct pt_regs *ctx) {
    count_hit(PROBE_XNET_HTTP2_CLIENT_RETURN);
    struct go_key by_g = go_key(GO_G(ctx));
    if (!xnet_http2_client_own.lookup(&by_g))
        return 0;
    xnet_http2_client_own.delete(&by_g);
    struct span_record *rec = http_client_inflight.lookup(&by_g);
    if (rec)
        http_client_end(rec, &by_g, GO_ARG1(ctx), GO_ARG2(ctx));
    return 0;
}
