/* grpc-go client spans for unary calls: (*ClientConn).Invoke entry and RETs, two hits.
 *
 * Invoke(cc, ctx context.Context, method string, args, reply, opts...) error: cc in RAX,
 * ctx in RBX/RCX, method in RDI (pointer) and RSI (length). It returns the error's itab in
 * RAX and data in RBX: nil for OK, else a *status.Error carrying the code, one hop away
 * (Error.e, grpc-go 1.33) or two (Error.s then Status.s, later versions).
 */

BPF_HASH(grpc_client_inflight, __u64, struct span_record, MAX_INFLIGHT);

#define GRPC_STATUS_UNKNOWN 2

int grpc_client_entry(struct pt_regs *ctx) {
    count_hit(PROBE_GRPC_CLIENT_ENTRY);
    __u64 g = GO_G(ctx);
    struct span_record *rec = new_record(SPAN_KIND_GRPC_CLIENT, g);
    if (!rec)
        return 0;
    __u64 method_len = GO_ARG5(ctx);
    if (method_len > sizeof(rec->path) - 1)
        method_len = sizeof(rec->path) - 1;
    bpf_probe_read_user(rec->path, method_len & (sizeof(rec->path) - 1), (void *)GO_ARG4(ctx));
    READ_GO_STRING(rec->host, GO_ARG1(ctx) + OFF_google_golang_org_grpc_ClientConn_target);
    begin_span(rec, g);
    if (grpc_client_inflight.update(&g, rec) != 0)
        count_drop(DROP_INFLIGHT_FULL);
    return 0;
}

static __always_inline __u32 grpc_error_code(__u64 err) {
    __u64 proto = 0;
#if defined(OFF_google_golang_org_grpc_internal_status_Error_s)
    __u64 status = read_u64(err + OFF_google_golang_org_grpc_internal_status_Error_s);
    if (status)
        proto = read_u64(status + OFF_google_golang_org_grpc_internal_status_Status_s);
#else
    proto = read_u64(err + OFF_google_golang_org_grpc_internal_status_Error_e);
#endif
    if (!proto)
        return GRPC_STATUS_UNKNOWN;
    __s32 code = GRPC_STATUS_UNKNOWN;
    bpf_probe_read_user(&code, sizeof(code),
                        (void *)(proto + OFF_google_golang_org_genproto_googleapis_rpc_status_Status_Code));
    return (__u32)code;
}

int grpc_client_return(struct pt_regs *ctx) {
    count_hit(PROBE_GRPC_CLIENT_RETURN);
    __u64 g = GO_G(ctx);
    struct span_record *rec = grpc_client_inflight.lookup(&g);
    if (!rec)
        return 0;
    rec->end_ns = bpf_ktime_get_ns();
    __u64 err = GO_ARG2(ctx);
    rec->status = GO_ARG1(ctx) && err ? grpc_error_code(err) : 0;
    emit(rec);
    grpc_client_inflight.delete(&g);
    return 0;
}
