/* --inject-traceparent (opt-in): continue traces across hosts by writing the CLIENT span's
 * context into outgoing HTTP/1 requests as a "Traceparent" header line.
 *
 * net/http writes a request on the connection's writer goroutine, not the caller's:
 *   persistConn.roundTrip entry (bpf/nethttp_client.c, the caller's goroutine) notes the
 *     *Request it hands over, with the span's ids (inject_by_request);
 *   (*Request).write entry (writer goroutine): that request is being written now, unless
 *     it carries a traceparent of its own;
 *   Header.writeSubset entry: the request line and Host are in the connection's
 *     bufio.Writer, the header lines come next. The line is copied into the writer's buffer
 *     after what is there and the writer's length advanced: the program's own memory, owned
 *     by this goroutine at this moment, nothing allocated. Skipped (and counted) when the
 *     buffer lacks room.
 * Two hits per request more, only with the flag.
 */

#include "goabi.h"
#include "counters.h"
#include "inject_handoff.h"
#include "traceparent.h"

#define TP_HEADER_LEN 70  /* "Traceparent: " 13 + 55 + "\r\n" */

BPF_TABLE("lru_hash", struct go_key, struct trace_ctx, inject_writing, MAX_INFLIGHT);  /* by g */

struct inject_line {
    char text[TP_HEADER_LEN + 2];
};
BPF_PERCPU_ARRAY(inject_scratch, struct inject_line, 1);
BPF_PERCPU_ARRAY(inject_probe_record, struct span_record, 1);

int http_inject_request_write(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP_INJECT_REQUEST_WRITE);
    struct go_key req = go_key(GO_ARG1(ctx));
    struct trace_ctx *ids = inject_by_request.lookup(&req);
    if (!ids)
        return 0;
    __u64 g = GO_G(ctx);
#ifdef HAS_TRACEPARENT
    /* Is one there already? Read into a record of this probe's own: new_record would begin
     * a span's scheduler accounting (--sched-wait) on the writer goroutine. */
    __u32 zero = 0;
    struct span_record *probe = inject_probe_record.lookup(&zero);
    if (probe) {
        probe->flags = 0;
        read_traceparent(probe, read_u64(req.id + OFF_net_http_Request_Header));
        if (probe->flags & SPAN_F_REMOTE_PARENT) {
            inject_by_request.delete(&req);
            return 0;  /* the program set its own: keep it */
        }
    }
#endif
    struct go_key by_g = go_key(g);
    inject_writing.update(&by_g, ids);
    inject_by_request.delete(&req);
    return 0;
}

static __always_inline char hex_digit(__u8 v) {
    return v < 10 ? '0' + v : 'a' + v - 10;
}

/* Four bytes as eight lowercase hex digits, in memory order (one store, no loop over the
 * destination: byte stores into map memory in a loop overflow the BPF stack). */
static __always_inline __u64 hex4(const __u8 *b) {
    __u64 w = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        w |= (__u64)(__u8)hex_digit(b[i] >> 4) << (16 * i);
        w |= (__u64)(__u8)hex_digit(b[i] & 0xf) << (16 * i + 8);
    }
    return w;
}

int http_inject_header(struct pt_regs *ctx) {
    count_hit(PROBE_HTTP_INJECT_HEADER);
    struct go_key by_g = go_key(GO_G(ctx));
    struct trace_ctx *ids = inject_writing.lookup(&by_g);
    if (!ids)
        return 0;
    __u32 zero = 0;
    struct inject_line *line = inject_scratch.lookup(&zero);
    if (!line) {
        inject_writing.delete(&by_g);
        return 0;
    }
    /* "Traceparent: 00-" as two little-endian words (no string constants in BPF). */
    *(__u64 *)line->text = BYTE_AT('T', 0) | BYTE_AT('r', 1) | BYTE_AT('a', 2) | BYTE_AT('c', 3) |
                           BYTE_AT('e', 4) | BYTE_AT('p', 5) | BYTE_AT('a', 6) | BYTE_AT('r', 7);
    *(__u64 *)(line->text + 8) = BYTE_AT('e', 0) | BYTE_AT('n', 1) | BYTE_AT('t', 2) | BYTE_AT(':', 3) |
                                 BYTE_AT(' ', 4) | BYTE_AT('0', 5) | BYTE_AT('0', 6) | BYTE_AT('-', 7);
#pragma unroll
    for (int k = 0; k < 4; k++)
        *(__u64 *)(line->text + 16 + 8 * k) = hex4(ids->trace_id + 4 * k);
    line->text[48] = '-';
#pragma unroll
    for (int k = 0; k < 2; k++)
        *(__u64 *)(line->text + 49 + 8 * k) = hex4(ids->span_id + 4 * k);
    line->text[65] = '-';
    line->text[66] = '0';
    line->text[67] = '1';
    line->text[68] = '\r';
    line->text[69] = '\n';
    inject_writing.delete(&by_g);

    /* writeSubset(h Header, w io.Writer, ...): h in RAX, w's itab in RBX, data in RCX. */
    __u64 itab = GO_ARG2(ctx), bw = GO_ARG3(ctx);
    if (itab_type(itab) != TYPEHASH_ptr_bufio_Writer) {
        count_drop(DROP_INJECT_SKIPPED);
        return 0;
    }
    struct go_slice buf = {};
    bpf_probe_read_user(&buf, sizeof(buf), (void *)(bw + OFF_bufio_Writer_buf));
    __s64 n = (__s64)read_u64(bw + OFF_bufio_Writer_n);
    if (!buf.ptr || n < 0 || buf.len - n < TP_HEADER_LEN ||
        bpf_probe_write_user((void *)(buf.ptr + n), line->text, TP_HEADER_LEN) != 0) {
        count_drop(DROP_INJECT_SKIPPED);
        return 0;
    }
    n += TP_HEADER_LEN;
    bpf_probe_write_user((void *)(bw + OFF_bufio_Writer_n), &n, sizeof(n));
    return 0;
}
