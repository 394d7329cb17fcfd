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

struct http_server_inflight {
    struct span_record rec;
    __u64 request;
    __u64 response;
};

BPF_HASH(http_server_inflight, __u64, struct http_server_inflight, MAX_INFLIGHT);
BPF_PERCPU_ARRAY(http_server_scratch, struct http_server_inflight, 1);

int http_server_entry(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP_SERVER_ENTRY);
    __u64 g = GO_G(ctx);
    /* The entry runs again when the stack grew first (morestack restarts the function): the
     * span began already, and must not become its own parent. */
    struct http_server_inflight *current = http_server_inflight.lookup(&g);
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
    if (read_u64(st->response + OFF_net_http_response_req) != req) {
        count_drop(DROP_UNSUPPORTED_WRITER);
        return 0;
    }
    init_record(rec, SPAN_KIND_HTTP_SERVER, g);
    rec->request_body_size = (__s64)read_u64(req + OFF_net_http_Request_ContentLength);
    READ_GO_STRING(rec->method, req + OFF_net_http_Request_Method);
    READ_GO_STRING(rec->host, req + OFF_net_http_Request_Host);
    rec->proto_major = (__u8)read_u64(req + OFF_net_http_Request_ProtoMajor);
    rec->proto_minor = (__u8)read_u64(req + OFF_net_http_Request_ProtoMinor);
    __u64 url = read_u64(req + OFF_net_http_Request_URL);
    if (url) {
        READ_GO_STRING(rec->path, url + OFF_net_url_URL_Path);
        if (READ_GO_STRING(rec->query, url + OFF_net_url_URL_RawQuery) > 0)
            rec->flags |= SPAN_F_HAS_QUERY;
    }
    __u64 conn = read_u64(st->response + OFF_net_http_response_conn);
    if (conn)
        read_conn(rec, conn + OFF_net_http_conn_rwc);
    begin_span(rec, g);
#if defined(HAS_TRACEPARENT) && defined(OFF_net_http_Request_Header)
    read_traceparent(rec, read_u64(req + OFF_net_http_Request_Header));
#endif
    if (http_server_inflight.update(&g, st) != 0) {
        count_drop(DROP_INFLIGHT_FULL);
        return 0;
    }
    enter_span_context(rec);
    return 0;
}

static __always_inline int end_request(struct pt_regs *ctx, int hijacked) {
    __u64 g = GO_G(ctx);
    struct http_server_inflight *st = http_server_inflight.lookup(&g);
    if (!st || st->response != GO_ARG1(ctx))
        return 0;
    struct span_record *rec = &st->rec;
    rec->end_ns = bpf_ktime_get_ns();
    __u64 status = read_u64(st->response + OFF_net_http_response_status);
    /* No WriteHeader: net/http sends 200, unless the handler took the connection. */
    rec->status = status || hijacked ? (__u32)status : 200;
    rec->response_body_size = (__s64)read_u64(st->response + OFF_net_http_response_written);
#ifdef OFF_net_http_Request_Pattern
    READ_GO_STRING(rec->route, st->request + OFF_net_http_Request_Pattern);
#endif
    emit(rec);
    http_server_inflight.delete(&g);
    end_span_context(g);
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
