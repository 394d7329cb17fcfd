/* golang.org/x/net/http2 server spans: two uprobe hits per request, both on function
 * entries, on the goroutine that runs the stream's handler (bpf/http2_server.h).
 *
 * The span begins at (*serverConn).runHandler's entry: h2c and ServeConn call the program's
 * handler directly, and net/http's serverHandler.ServeHTTP runs only when net/http's server
 * handed the connection over (ConfigureServer); that ServeHTTP then leaves the request to
 * this probe (bpf/nethttp_server.c). It ends at (*responseWriter).handlerDone's entry.
 */

#include "http2_server.h"

#define XNET_H2_SERVER H2_SERVER_LAYOUT(OFF_golang_org_x_net_http2_responseWriter_rws, \
    OFF_golang_org_x_net_http2_responseWriterState_stream, \
    OFF_golang_org_x_net_http2_responseWriterState_req, \
    OFF_golang_org_x_net_http2_responseWriterState_conn, \
    OFF_golang_org_x_net_http2_responseWriterState_status, \
    OFF_golang_org_x_net_http2_responseWriterState_wroteBytes, \
    OFF_golang_org_x_net_http2_stream_id, OFF_golang_org_x_net_http2_serverConn_conn)

int xnet_http2_server_entry(struct pt_regs *ctx) {
    count_hit(PROBE_XNET_HTTP2_SERVER_ENTRY);
    __u64 g = GO_G(ctx);
    h2_server_begin(g, goroutine_id(g), GO_ARG2(ctx), GO_ARG3(ctx), XNET_H2_SERVER);
    return 0;
}

int xnet_http2_server_end(struct pt_regs *ctx) {
    count_hit(PROBE_XNET_HTTP2_SERVER_END);
    h2_server_end(GO_G(ctx), GO_ARG1(ctx), XNET_H2_SERVER);
    return 0;
}
