/* --inject-traceparent: the HTTP client probe hands each request's span context to the
 * inject probe (bpf/nethttp_inject.c), which writes it on the connection's writer goroutine.
 * Present only when the inject probe runs (WITH_NETHTTP_INJECT, set by gotrace for every
 * planned probe's library).
 */
#ifndef GOTRACE_INJECT_HANDOFF_H
#define GOTRACE_INJECT_HANDOFF_H

#include "goabi.h"
#include "record.h"
#include "context.h"

#ifdef WITH_NETHTTP_INJECT
/* The span context of each *Request handed to a connection's writer. */
BPF_TABLE("lru_hash", struct go_key, struct trace_ctx, inject_by_request, MAX_INFLIGHT);

/* persistConn.roundTrip(pc, req *transportRequest): the request about to be written is
 * rec's. */
static __always_inline void inject_hand_over(struct span_record *rec, __u64 transport_request) {
    struct go_key req =
        go_key(read_u64(transport_request + OFF_net_http_transportRequest_Request));
    if (req.id) {
        struct trace_ctx ids = {};
        __builtin_memcpy(ids.trace_id, rec->trace_id, 16);
        __builtin_memcpy(ids.span_id, rec->span_id, 8);
        inject_by_request.update(&req, &ids);
    }
}
#else
#define inject_hand_over(rec, transport_request)
#endif

#endif
