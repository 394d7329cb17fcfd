/* kvwire (a test-only library, testapps/kvwire): one SERVER span per request served and one
 * CLIENT span per call, each from a function's entry to its RETs.
 *
 * handle(s *kvServer, cs *connState, req *kvRequest) *kvReply: cs in RBX, req in RCX; the
 * reply comes back in RAX. call(c *kvClient, req *kvRequest) (*kvReply, error): c in RAX,
 * req in RBX; the reply in RAX, the error's itab in RBX.
 */

#include "goabi.h"
#include "counters.h"
#include "span.h"
#include "conn.h"

BPF_HASH(kv_server_calls, struct go_key, struct span_record, MAX_INFLIGHT);  /* by g */
BPF_HASH(kv_client_calls, struct go_key, struct span_record, MAX_INFLIGHT);  /* by g */

#define KV_STATUS_BAD 2  /* the call failed before a reply */

static __always_inline void kv_request(struct span_record *rec, __u64 req) {
    READ_GO_STRING(rec->method, req + OFF_main_kvRequest_Op);
    READ_GO_STRING(rec->path, req + OFF_main_kvRequest_Key);
}

int kv_server_entry(struct pt_regs *ctx) {
    count_hit(PROBE_KV_SERVER_ENTRY);
    __u64 g = GO_G(ctx);
    struct span_record *rec = new_record(SPAN_KIND_KV_SERVER, g);
    if (!rec)
        return 0;
    kv_request(rec, GO_ARG3(ctx));
    read_conn(rec, GO_ARG2(ctx) + OFF_main_connState_conn);
    begin_span(rec, g);
    enter_span_context(rec);
    struct go_key by_g = go_key(g);
    if (kv_server_calls.update(&by_g, rec) != 0)
        count_drop(DROP_INFLIGHT_FULL);
    return 0;
}

int kv_server_return(struct pt_regs *ctx) {
    count_hit(PROBE_KV_SERVER_RETURN);
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = kv_server_calls.lookup(&by_g);
    if (!rec)
        return 0;
    rec->end_ns = bpf_ktime_get_ns();
    __u64 reply = GO_ARG1(ctx);
    rec->status = reply ? (__u32)read_u64(reply + OFF_main_kvReply_Status) : KV_STATUS_BAD;
    end_span_context(rec->goid);
    emit(rec);
    kv_server_calls.delete(&by_g);
    return 0;
}

int kv_client_entry(struct pt_regs *ctx) {
    count_hit(PROBE_KV_CLIENT_ENTRY);
    __u64 g = GO_G(ctx);
    struct span_record *rec = new_record(SPAN_KIND_KV_CLIENT, g);
    if (!rec)
        return 0;
    kv_request(rec, GO_ARG2(ctx));
    read_conn(rec, GO_ARG1(ctx) + OFF_main_kvClient_conn);
    begin_span(rec, g);
    struct go_key by_g = go_key(g);
    if (kv_client_calls.update(&by_g, rec) != 0)
        count_drop(DROP_INFLIGHT_FULL);
    return 0;
}

int kv_client_return(struct pt_regs *ctx) {
    count_hit(PROBE_KV_CLIENT_RETURN);
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = kv_client_calls.lookup(&by_g);
    if (!rec)
        return 0;
    rec->end_ns = bpf_ktime_get_ns();
    __u64 reply = GO_ARG1(ctx);
    if (GO_ARG2(ctx) || !reply) {
        rec->flags |= SPAN_F_TRANSPORT_ERROR;
        rec->status = KV_STATUS_BAD;
    } else {
        rec->status = (__u32)read_u64(reply + OFF_main_kvReply_Status);
    }
    emit(rec);
    kv_client_calls.delete(&by_g);
    return 0;
}
