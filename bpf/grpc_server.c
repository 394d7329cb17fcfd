/* grpc-go server spans: two uprobe hits per RPC, unary or streaming.
 *
 * (*Server).handleStream(s, t ServerTransport, stream, ...) runs once per RPC on the RPC's
 * goroutine: s (the *Server) in RAX, t in RBX (itab) and RCX (*http2Server), stream in RDI.
 * The stream is a *transport.Stream, or (grpc-go >= 1.69) a *transport.ServerStream that
 * embeds the Stream first, so the Stream's fields are at the same offsets from it.
 * (*http2Server).WriteStatus / writeStatus(t, stream, st *status.Status) ends the RPC on the
 * same goroutine: st in RCX; st.s is the *spb.Status with the code.
 * An incoming traceparent is in the stream's context, under metadata's incoming key.
 *
 * Through (*Server).ServeHTTP, t is a *serverHandlerTransport instead, the stream's id is 0,
 * and the RPC runs on a goroutine started by net/http's HTTP/2 handler goroutine: its span
 * is that request's child (bpf/http2_server.h). Its status is written by
 * (*serverHandlerTransport).WriteStatus / writeStatus, with the same arguments.
 */

#include "goabi.h"
#include "counters.h"
#include "span.h"
#include "served_conn.h"
#include "traceparent.h"
#include "gocontext.h"

#if defined(HAS_TRACEPARENT) && defined(HAS_GOCONTEXT) && \
    defined(TYPEHASH_google_golang_org_grpc_metadata_mdIncomingKey) && \
    defined(OFF_google_golang_org_grpc_internal_transport_Stream_ctx)
#define GRPC_METADATA_TRACEPARENT 1
#endif

/* By g, kept once the RPC ended and rewritten in place by the next RPC on that g: Go reuses
 * the g of an exited goroutine for the next it starts (as bpf/http_server.h's entries). Live
 * while start_ns is set. */
BPF_TABLE("lru_hash", struct go_key, struct span_record, grpc_server_inflight, MAX_INFLIGHT);

/* The stream's id and method, and its context when the traceparent is read from it, read at
 * once (a window, bpf/goabi.h). */
#define STREAM_ID_METHOD_END \
    MAX2(END_OF(OFF_google_golang_org_grpc_internal_transport_Stream_id, __u32), \
         END_OF(OFF_google_golang_org_grpc_internal_transport_Stream_method, struct go_string))
#ifdef GRPC_METADATA_TRACEPARENT
#define STREAM_WINDOW \
    MAX2(STREAM_ID_METHOD_END, \
         END_OF(OFF_google_golang_org_grpc_internal_transport_Stream_ctx, struct go_iface))
#else
#define STREAM_WINDOW STREAM_ID_METHOD_END
#endif
_Static_assert(STREAM_WINDOW <= WINDOW_SIZE, "a window of grpc-go's Stream is too large");

#if defined(OFF_runtime_g_parentGoid) && defined(OFF_google_golang_org_grpc_Server_opts) && \
    defined(OFF_google_golang_org_grpc_serverOptions_numServerWorkers)
#define GRPC_SERVED_CONNS 1
#endif

/* The RPC's connection, the net.Conn of the *http2Server. Without stream workers (the
 * NumStreamWorkers option), every RPC's goroutine is started by its connection's goroutine,
 * whose id the runtime keeps as the RPC goroutine's parentGoid: the addresses are then read
 * once per connection (bpf/served_conn.h). A stream worker serves RPCs of any connection,
 * and its creator serves none: with workers, they are read for every RPC. An entry of the
 * parentGoid's for this transport is looked for first, before the option is read: only a
 * connection's goroutine without workers makes one, and its goroutine id and the transport
 * it serves name that connection for good. Returns that goroutine's id when the connection
 * has an entry, else 0. */
static __always_inline __u64 rpc_conn(struct span_record *rec, __u64 g, __u64 server,
                                      __u64 transport) {
    __u64 conn = transport + OFF_google_golang_org_grpc_internal_transport_http2Server_conn;
#ifdef GRPC_SERVED_CONNS
    struct go_key creator = go_key(read_u64(g + OFF_runtime_g_parentGoid));
    int tls;
    if (known_served_conn(rec, &creator, transport, &tls, TCP_END_SERVER))
        return creator.id;
    __u32 workers = 0;
    if (bpf_probe_read_user(&workers, sizeof(workers),
                            (void *)(server + OFF_google_golang_org_grpc_Server_opts +
                                     OFF_google_golang_org_grpc_serverOptions_numServerWorkers))
            == 0 && workers == 0) {
        remember_served_conn(rec, &creator, transport, conn, TCP_END_SERVER);
        return creator.id;
    }
#endif
    read_conn_as(rec, conn, TCP_END_SERVER, 0);
    return 0;
}

/* Whether handleStream's transport (its itab) is grpc-go's serverHandlerTransport: the RPC
 * came through (*Server).ServeHTTP, from net/http's server. Else it is grpc-go's own
 * *http2Server, the only other ServerTransport. */
static __always_inline int served_by_net_http(__u64 itab) {
#ifdef TYPEHASH_ptr_google_golang_org_grpc_internal_transport_serverHandlerTransport
    return itab_type(itab) ==
        TYPEHASH_ptr_google_golang_org_grpc_internal_transport_serverHandlerTransport;
#else
    return 0;
#endif
}

int grpc_server_entry(struct pt_regs *ctx) {
    count_hit(PROBE_GRPC_SERVER_ENTRY);
    __u64 g = GO_G(ctx);
    struct go_key by_g = go_key(g);
    __u64 stream = GO_ARG4(ctx);
    __u8 *s = read_window(0, stream, STREAM_WINDOW);
    if (!s)
        return 0;
    __u32 stream_id = *(__u32 *)(s + OFF_google_golang_org_grpc_internal_transport_Stream_id);
#ifdef GRPC_METADATA_TRACEPARENT
    struct go_iface stream_ctx =
        *(struct go_iface *)(s + OFF_google_golang_org_grpc_internal_transport_Stream_ctx);
#endif
    /* The entry runs again when the stack grew first (morestack restarts the function): the
     * span began already, and must not become its own parent. */
    struct span_record *rec = grpc_server_inflight.lookup(&by_g);
    if (rec && rec->start_ns && rec->stream_id == stream_id)
        return 0;
    if (!rec) {
        struct span_record *blank = blank_record();
        if (!blank || grpc_server_inflight.update(&by_g, blank) != 0) {
            count_drop(DROP_INFLIGHT_FULL);
            return 0;
        }
        rec = grpc_server_inflight.lookup(&by_g);
        if (!rec)
            return 0;
    }
    init_record(rec, SPAN_KIND_GRPC_SERVER, g);
    COPY_GO_STRING(rec->path,
                   WINDOW_STRING(s, OFF_google_golang_org_grpc_internal_transport_Stream_method));
    rec->stream_id = stream_id;
    if (served_by_net_http(GO_ARG2(ctx))) {
        /* Inside net/http's HTTP/2 request, whose span has the connection, the stream and
         * the caller's traceparent: the RPC is its child. */
        begin_span_in_context(rec, g);
    } else {
        __u64 transport = GO_ARG3(ctx);
        __u64 conn_goid = transport ? rpc_conn(rec, g, GO_ARG1(ctx), transport) : 0;
        __u16 flags_before = rec->flags;
        begin_span(rec, g);
        note_caller_untraced(rec, flags_before, conn_goid, transport);
#ifdef GRPC_METADATA_TRACEPARENT
        read_traceparent(rec, context_value(
            stream_ctx, TYPEHASH_google_golang_org_grpc_metadata_mdIncomingKey));
#endif
    }
    enter_span_context(rec);
    return 0;
}

int grpc_server_status(struct pt_regs *ctx) {
    count_hit(PROBE_GRPC_SERVER_STATUS);
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = grpc_server_inflight.lookup(&by_g);
    if (!rec || !rec->start_ns)
        return 0;
    rec->end_ns = bpf_ktime_get_ns();
    __u64 st = GO_ARG3(ctx);
    __u64 proto = st ? read_u64(st + OFF_google_golang_org_grpc_internal_status_Status_s) : 0;
    __s32 code = 0;
    if (proto)
        bpf_probe_read_user(&code, sizeof(code),
                            (void *)(proto + OFF_google_golang_org_genproto_googleapis_rpc_status_Status_Code));
    rec->status = (__u32)code;
    emit(rec);
    rec->start_ns = 0;
    end_span_context(rec->goid);
    return 0;
}
