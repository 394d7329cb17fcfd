/* The one record that crosses from the kernel to gotrace: a finished span.
 *
 * Shared by every probe; decoded in user space by gotrace/records.py, whose ctypes mirror is
 * checked against this header by tests/test_records.py (compiled with gcc, offsets compared).
 * Fixed-width types only, every field naturally aligned, no implicit padding.
 */
#ifndef GOTRACE_RECORD_H
#define GOTRACE_RECORD_H

/* Its constants come as -D macros from gotrace/records.py (boundary_macros), their one
 * definition: SPAN_KIND_<NAME> (numbered from the probes' declarations), EVENT_KIND_<NAME>,
 * SPAN_F_<FLAG>, TCP_ID_<FLAG>, SCHED_SLOT_<NAME> and SCHED_SLOTS, DROP_<REASON> and
 * DROP_REASONS, the SPAN_*_LEN of the text fields; SERVER_KINDS and CLIENT_KINDS are bit masks of the span
 * kinds by role, and FIRST_EVENT_KIND is where runtime and network events begin. */
/* The trace's sampling decision: kept, left to gotrace, or shed (bpf/shedding.h). */
#define SPAN_F_DECISION (SPAN_F_SAMPLED | SPAN_F_DEFERRED | SPAN_F_SHED)
#define IS_SPAN_KIND(kind) ((kind) < FIRST_EVENT_KIND)
#define IS_SERVER_KIND(kind) ((kind) < 64 && (((__u64)SERVER_KINDS >> (kind)) & 1))
#define IS_CLIENT_KIND(kind) ((kind) < 64 && (((__u64)CLIENT_KINDS >> (kind)) & 1))

struct span_record {
    __u64 start_ns;          /* CLOCK_MONOTONIC */
    __u64 end_ns;
    __u8 trace_id[16];
    __u8 span_id[8];
    __u8 parent_span_id[8];
    __u64 goid;
    __s64 request_body_size;   /* -1 when unknown */
    __s64 response_body_size;  /* -1 when unknown */
    __u32 pid;
    __u16 kind;                /* SPAN_KIND_* */
    __u16 flags;               /* SPAN_F_* */
    __u32 status;              /* HTTP status code, or gRPC status code */
    __u16 local_port;
    __u16 peer_port;
    __u8 local_addr[16];       /* IPv4 as ::ffff:a.b.c.d */
    __u8 peer_addr[16];
    __u8 proto_major;
    __u8 proto_minor;
    __u16 parked;              /* a kept shed trace's root: its spans held (bpf/shedding.h) */
    __u32 stream_id;           /* HTTP/2 stream of a gRPC call, 0 when none */
    /* {isn_client, isn_server, position, TCP_ID_* flags}: the TCP connection as both ends
     * name it (bpf/conn.h read_tcp_identity; zeros unless KERNEL_TCP_IDENTITY) */
    __u32 tcp_identity[4];
    char method[SPAN_METHOD_LEN];
    char scheme[SPAN_SCHEME_LEN];
    char host[SPAN_HOST_LEN];
    char route[SPAN_ROUTE_LEN];
    /* The last fields, so that a record goes out without its trailing zeros (span.h) */
    char path[SPAN_PATH_LEN];  /* URL path, or gRPC full method "/pkg.Service/Method" */
    char query[SPAN_QUERY_LEN];
    __u64 sched_ns[SCHED_SLOTS];  /* the span's goroutine, during the span (SPAN_F_SCHED) */
};

#endif
