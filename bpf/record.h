/* The one record that crosses from the kernel to gotrace: a finished span.
 *
 * Shared by every probe; decoded in user space by gotrace/records.py, whose ctypes mirror is
 * checked against this header by tests/test_records.py (compiled with gcc, offsets compared).
 * Fixed-width types only, every field naturally aligned, no implicit padding.
 */
#ifndef GOTRACE_RECORD_H
#define GOTRACE_RECORD_H

#define SPAN_KIND_HTTP_SERVER 1
#define SPAN_KIND_HTTP_CLIENT 2
#define SPAN_KIND_GRPC_SERVER 3
#define SPAN_KIND_GRPC_CLIENT 4
/* Runtime events, not spans: what gotrace/runtime_facts.py attributes to spans. */
#define EVENT_KIND_STW_PAUSE 100  /* a stop-the-world pause: start_ns..end_ns */
#define EVENT_KIND_GC_CYCLE 101   /* a GC cycle began at start_ns */
#define EVENT_KIND_TCP_RETRANSMIT 102  /* a segment of the connection resent, at start_ns */
#define EVENT_KIND_TCP_CONNECT 103     /* the connection's handshake: start_ns..end_ns */

/* flags */
#define SPAN_F_HAS_PARENT 1       /* parent_span_id is set */
#define SPAN_F_REMOTE_PARENT 2    /* the parent came from an incoming traceparent */
#define SPAN_F_TRANSPORT_ERROR 4  /* a client call ended with an error, no response */
#define SPAN_F_HAS_CONN 8         /* the addresses below are known */
#define SPAN_F_HAS_QUERY 16       /* the URL had a query string (not exported by default) */
#define SPAN_F_SCHED 32           /* sched_ns holds the goroutine's scheduler waits (--sched-wait) */
/* The trace's sampling decision (bpf/sampling.h): kept; or left to gotrace, which learns the
 * trace of a same-host caller only when it links the spans. A span with neither is a client
 * call of an unsampled trace to this host, sent only so that its callee is linked (and
 * dropped) alike. */
#define SPAN_F_SAMPLED 64
#define SPAN_F_DEFERRED 128
#define SPAN_F_DECISION (SPAN_F_SAMPLED | SPAN_F_DEFERRED)
/* A Unix socket (bpf/conn.h): local_addr and peer_addr hold the kernel's struct sock address
 * and the inode number (as `ss -x` shows it; 0 while unknown) of the span's socket and of its
 * peer, 8 bytes each; the ports are 0. */
#define SPAN_F_UNIX 256

#define SPAN_METHOD_LEN 16
#define SPAN_PATH_LEN 128
#define SPAN_HOST_LEN 64
#define SPAN_ROUTE_LEN 64
#define SPAN_SCHEME_LEN 8
#define SPAN_QUERY_LEN 128
/* sched_ns slots: time runnable but not running, then blocked by reason (bpf/sched.h). */
#define SCHED_SLOT_RUNNABLE 0
#define SCHED_SLOT_NETWORK 1
#define SCHED_SLOT_CHANNEL 2
#define SCHED_SLOT_LOCK 3
#define SCHED_SLOT_SLEEP 4
#define SCHED_SLOT_SYSCALL 5
#define SCHED_SLOT_OTHER 6
#define SCHED_SLOTS 7

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
    __u16 _pad;
    __u32 stream_id;           /* HTTP/2 stream of a gRPC call, 0 when none */
    char method[SPAN_METHOD_LEN];
    char scheme[SPAN_SCHEME_LEN];
    char host[SPAN_HOST_LEN];
    char path[SPAN_PATH_LEN];  /* URL path, or gRPC full method "/pkg.Service/Method" */
    char route[SPAN_ROUTE_LEN];
    char query[SPAN_QUERY_LEN];
    __u64 sched_ns[SCHED_SLOTS];  /* the span's goroutine, during the span (SPAN_F_SCHED) */
};

#endif
