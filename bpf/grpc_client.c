/* grpc-go client spans: one per call made through a ClientConn.
 *
 * A call begins at (*ClientConn).Invoke (unary) or (*ClientConn).NewStream (streaming) and ends
 * in (*clientStream).finish, which grpc-go runs exactly once per call with the call's error.
 *   unary:  Invoke entry + finish entry = 2 hits. Invoke runs the whole call on the calling
 *           goroutine, so finish runs there too and the record waits under the goroutine.
 *   stream: NewStream entry + NewStream RET + finish entry = 3 hits. A stream may end on any
 *           goroutine (its reader's, or grpc's context watcher on cancel), so NewStream's RET
 *           moves the record from the goroutine to the *clientStream it returns.
 *
 * Invoke(cc, ctx, method string, ...): cc in RAX, method in RDI/RSI.
 * NewStream(cc, ctx, desc, method string, ...): cc in RAX, method in RSI/R8; returns the
 * ClientStream (itab RAX, data RBX = *clientStream) and an error (RCX, RDI).
 * finish(cs, err error): cs in RAX, err in RBX (itab) / RCX (data). io.EOF is a stream's
 * normal end; an RPC error is a *status.Error; the interface's itab says which, by type hash.
 */

#include "goabi.h"
#include "counters.h"
#include "span.h"
#include "conn.h"

BPF_HASH(grpc_client_calls, struct go_key, struct span_record, MAX_INFLIGHT);    /* by g */
BPF_HASH(grpc_client_streams, struct go_key, struct span_record, MAX_INFLIGHT);  /* by *clientStream */

#define GRPC_STATUS_UNKNOWN 2

static __always_inline int same_path(struct span_record *a, struct span_record *b) {
#pragma unroll
    for (int i = 0; i < SPAN_PATH_LEN / 8; i++) {
        if (((__u64 *)a->path)[i] != ((__u64 *)b->path)[i])
            return 0;
    }
    return 1;
}

static __always_inline int grpc_call_begins(struct pt_regs *ctx, __u64 method, __u64 method_len) {
    __u64 g = GO_G(ctx);
    struct span_record *rec = new_record(SPAN_KIND_GRPC_CLIENT, g);
    if (!rec)
        return 0;
    if (method_len > sizeof(rec->path) - 1)
        method_len = sizeof(rec->path) - 1;
    bpf_probe_read_user(rec->path, method_len & (sizeof(rec->path) - 1), (void *)method);
    /* The goroutine's previous call never reached finish: counted when it was another
     * method. The same method is taken for the entry running again because the stack grew
     * first (morestack restarts the function), so a lost call followed by the same method
     * goes uncounted. */
    struct go_key by_g = go_key(g);
    struct span_record *previous = grpc_client_calls.lookup(&by_g);
    if (previous && !same_path(previous, rec))
        count_drop(DROP_END_NOT_SEEN);
    READ_GO_STRING(rec->host, GO_ARG1(ctx) + OFF_google_golang_org_grpc_ClientConn_target);
    begin_span(rec, g);
    if (grpc_client_calls.update(&by_g, rec) != 0)
        count_drop(DROP_INFLIGHT_FULL);
    return 0;
}

int grpc_client_invoke(struct pt_regs *ctx) {
    count_hit(PROBE_GRPC_CLIENT_INVOKE);
    return grpc_call_begins(ctx, GO_ARG4(ctx), GO_ARG5(ctx));
}

int grpc_client_new_stream(struct pt_regs *ctx) {
    count_hit(PROBE_GRPC_CLIENT_NEW_STREAM);
    return grpc_call_begins(ctx, GO_ARG5(ctx), GO_ARG6(ctx));
}

/* The gRPC status code of an error interface value (itab, data). */
static __always_inline __u32 grpc_error_code(__u64 itab, __u64 err) {
    if (!itab || !err)
        return 0;
    __u32 type = itab_type(itab);
    if (type == TYPEHASH_ptr_errors_errorString) {
        struct go_string s = {};
        bpf_probe_read_user(&s, sizeof(s), (void *)(err + OFF_errors_errorString_s));
        char text[4] = {};
        if (s.len == 3 && bpf_probe_read_user(text, 3, (void *)s.ptr) == 0 &&
            text[0] == 'E' && text[1] == 'O' && text[2] == 'F')
            return 0;  /* io.EOF: the stream ended normally */
        return GRPC_STATUS_UNKNOWN;
    }
    if (type != TYPEHASH_ptr_google_golang_org_grpc_internal_status_Error)
        return GRPC_STATUS_UNKNOWN;
#if defined(OFF_google_golang_org_grpc_internal_status_Error_e)
    __u64 proto = read_u64(err + OFF_google_golang_org_grpc_internal_status_Error_e);
#else
    __u64 proto = 0;
    __u64 status = read_u64(err + OFF_google_golang_org_grpc_internal_status_Error_s);
    if (status)
        proto = read_u64(status + OFF_google_golang_org_grpc_internal_status_Status_s);
#endif
    if (!proto)
        return 0;  /* a nil *spb.Status is OK */
    return read_u32(proto + OFF_google_golang_org_genproto_googleapis_rpc_status_Status_Code);
}

int grpc_client_stream_returned(struct pt_regs *ctx) {
    count_hit(PROBE_GRPC_CLIENT_STREAM_RETURNED);
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = grpc_client_calls.lookup(&by_g);
    if (!rec)
        return 0;  /* finish already ended it (a stream that failed to start) */
    struct go_key cs = go_key(GO_ARG2(ctx));
    if (GO_ARG3(ctx) || !cs.id) {
        rec->end_ns = bpf_ktime_get_ns();
        rec->status = GO_ARG3(ctx) ? grpc_error_code(GO_ARG3(ctx), GO_ARG4(ctx))
                                   : GRPC_STATUS_UNKNOWN;
        emit(rec);
    } else if (grpc_client_streams.update(&cs, rec) != 0) {
        count_drop(DROP_INFLIGHT_FULL);
    }
    grpc_client_calls.delete(&by_g);
    return 0;
}

/* The call's TCP connection and HTTP/2 stream id, from its current attempt (whose transport
 * and stream are read at once, a window: bpf/goabi.h). */
#define ATTEMPT_WINDOW MAX2(END_OF(OFF_google_golang_org_grpc_csAttempt_t, struct go_iface), \
                            END_OF(OFF_google_golang_org_grpc_csAttempt_s, __u64))
_Static_assert(ATTEMPT_WINDOW <= WINDOW_SIZE, "a window of grpc-go's csAttempt is too large");

static __always_inline void read_attempt(struct span_record *rec, __u64 cs) {
    __u64 attempt = read_u64(cs + OFF_google_golang_org_grpc_clientStream_attempt);
    __u8 *a = read_window(0, attempt, ATTEMPT_WINDOW);
    if (!a)
        return;
    /* csAttempt.t: a transport.ClientTransport interface; its data is the *http2Client. */
    __u64 transport = WINDOW_U64(a, OFF_google_golang_org_grpc_csAttempt_t + 8);
    __u64 stream = WINDOW_U64(a, OFF_google_golang_org_grpc_csAttempt_s);
    if (transport)
        read_conn_as(rec, transport + OFF_google_golang_org_grpc_internal_transport_http2Client_conn,
                     TCP_END_CLIENT, 0);
    if (stream)
        rec->stream_id = read_u32(stream + OFF_google_golang_org_grpc_internal_transport_Stream_id);
}

int grpc_client_finish(struct pt_regs *ctx) {
    count_hit(PROBE_GRPC_CLIENT_FINISH);
    struct go_key cs = go_key(GO_ARG1(ctx));
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = grpc_client_streams.lookup(&cs);
    int streaming = rec != 0;
    if (!rec)
        rec = grpc_client_calls.lookup(&by_g);
    if (!rec)
        return 0;  /* a call begun before gotrace attached, or finish called again */
    rec->end_ns = bpf_ktime_get_ns();
    rec->status = grpc_error_code(GO_ARG2(ctx), GO_ARG3(ctx));
    read_attempt(rec, cs.id);
    emit(rec);
    if (streaming)
        grpc_client_streams.delete(&cs);
    else
        grpc_client_calls.delete(&by_g);
    return 0;
}
