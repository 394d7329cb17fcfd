/* Sampling, decided in the kernel: a span of an unsampled trace costs its probe hits and
 * nothing more. The decision is made once per trace where it begins in this process and
 * travels with the goroutine context (struct trace_ctx.decision) to every span of the trace.
 *
 * SAMPLER_ROOT, for a trace that begins here: 0 never, 1 always, 2 by its id (traceidratio:
 * kept when the trace id's last 8 bytes, read big-endian and shifted right by one, are below
 * SAMPLER_BOUND = ratio x 2^63, the rule of OpenTelemetry's SDKs, so that every process and
 * SDK given the same ratio decides a trace alike). SAMPLER_PARENT_BASED: an incoming
 * traceparent's sampled flag decides (parentbased_*); without it the root rule applies to the
 * incoming trace id.
 *
 * A server span whose caller is on this host (on any host with LINK_ACROSS_HOSTS) may be the
 * child of a traced client span in another process, whose decision only gotrace sees once it
 * links the two (gotrace/pipeline/linking.py): such a span is sent DEFERRED, and so is its
 * trace here, unless gotrace has found that no traced client sits at the connection's other
 * end (untraced_peers). Conversely, a client span of an unsampled trace to this host (any
 * host) is still sent, without a decision, so that its callee's spans are linked and dropped
 * with it.
 */
#ifndef GOTRACE_SAMPLING_H
#define GOTRACE_SAMPLING_H

#include "record.h"
#include "counters.h"

struct ip_key {
    __u8 addr[16];  /* IPv4 as ::ffff:a.b.c.d */
};

struct peer_key {
    __u8 peer_addr[16];
    __u16 peer_port;
    __u16 local_port;
    __u32 _pad;
};

/* Both filled by gotrace: this host's addresses; connections whose peer is not traced, with
 * when a request last came on each (CLOCK_MONOTONIC). A mark idle for UNTRACED_PEER_IDLE_NS
 * is not trusted: its 4-tuple may belong to a new connection (ports are reused once the old
 * one's TIME_WAIT is over, 60 s on Linux), and gotrace finds out again. */
BPF_HASH(host_addresses, struct ip_key, __u8, 1024);
BPF_TABLE("lru_hash", struct peer_key, __u64, untraced_peers, 65536);
/* UNTRACED_PEER_IDLE_NS: gotrace/pipeline/linking.py's, which trusts its own marks as long. */

/* The trace id's last 8 bytes, read big-endian and shifted right by one: the trace-id rule
 * keeps a trace when this is below ratio x 2^63. */
static __always_inline __u64 trace_id_rank(const __u8 *trace_id) {
    __u64 low = 0;
    __builtin_memcpy(&low, trace_id + 8, 8);
    return __builtin_bswap64(low) >> 1;
}

static __always_inline int trace_id_sampled(const __u8 *trace_id) {
#if SAMPLER_ROOT == 2
    return trace_id_rank(trace_id) < (__u64)SAMPLER_BOUND;
#else
    return SAMPLER_ROOT;
#endif
}

/* Overload shedding (bpf/shedding.h): while gotrace cannot keep up it sheds the traces the
 * sampler kept whose rank is at least shed_bound (0: none), by the same rule, so that every
 * process given the same bound agrees on a trace, and a lower bound keeps a subset of what a
 * higher one keeps. */
BPF_ARRAY(shed_bound, __u64, 1);

/* The kernel sheds on its own when the ring buffer fills, so that a gotrace starved of CPU
 * (it reads nothing, and decides nothing) loses no error or slow request: past half full, the
 * bound falls with the room left, to none at nine tenths, the last tenth kept for the spans
 * of requests already under way and for the errors and slow requests of shed traces. The
 * backlog is the records sent (bpf/span.h counts them) less those gotrace has taken (it
 * writes that count after each read), in slots of a whole record: records go out without
 * their trailing zeros (bpf/span.h sent_size), so the buffer is in fact less full than that
 * says, and shedding begins early rather than late. */
BPF_ARRAY(records_out, __u64, 1);
BPF_ARRAY(records_taken, __u64, 1);
#define RING_SLOTS (RINGBUF_PAGES * 4096ULL / ((sizeof(struct span_record) + 15) & ~7ULL))
#define SHED_FROM (RING_SLOTS / 2)
#define SHED_ALL_AT (RING_SLOTS * 9 / 10)
#define RANK_ONE (1ULL << 63)

static __always_inline __u64 backlog_bound(void) {
    __u32 zero = 0;
    __u64 *out = records_out.lookup(&zero), *taken = records_taken.lookup(&zero);
    if (!out || !taken || *out <= *taken)
        return 0;
    __u64 backlog = *out - *taken;
    if (backlog <= SHED_FROM)
        return 0;
    if (backlog >= SHED_ALL_AT)
        return 1;
    return RANK_ONE / (SHED_ALL_AT - SHED_FROM) * (SHED_ALL_AT - backlog);
}

/* The decision for a trace the sampler kept: SPAN_F_SAMPLED, or SPAN_F_SHED while shed. */
static __always_inline __u16 kept_decision(const __u8 *trace_id) {
    __u32 zero = 0;
    __u64 *set = shed_bound.lookup(&zero);
    __u64 bound = set ? *set : 0, by_backlog = backlog_bound();
    if (by_backlog && (!bound || by_backlog < bound))
        bound = by_backlog;
    return bound && trace_id_rank(trace_id) >= bound ? SPAN_F_SHED : SPAN_F_SAMPLED;
}

static __always_inline int is_loopback(const __u8 *a) {
    __u64 hi = 0, lo = 0;
    __builtin_memcpy(&hi, a, 8);
    __builtin_memcpy(&lo, a + 8, 8);
    if (hi != 0)
        return 0;
    /* ::1, or ::ffff:127.0.0.0/8 (bytes 10-11 0xff, byte 12 127), little-endian words */
    return lo == 0x0100000000000000ULL || (lo & 0xffffffffULL) == 0xffff0000ULL &&
           ((lo >> 32) & 0xff) == 127;
}

/* Whether a traced process may be at the span's connection's other end: one on this host;
 * with LINK_ACROSS_HOSTS (gotrace trace --link-store), one anywhere, since agents on other
 * hosts link their spans through the store and the trace's decision then travels with the
 * caller's span (gotrace/pipeline/cross_host.py). */
static __always_inline int peer_may_be_traced(struct span_record *rec) {
    if (rec->flags & SPAN_F_UNIX)
        return 1;
    if (!(rec->flags & SPAN_F_HAS_CONN))
        return 0;
#ifdef LINK_ACROSS_HOSTS
    return 1;
#endif
    if (is_loopback(rec->peer_addr))
        return 1;
    __u64 *peer = (__u64 *)rec->peer_addr, *local = (__u64 *)rec->local_addr;
    if (peer[0] == local[0] && peer[1] == local[1])
        return 1;
    struct ip_key key = {};
    __builtin_memcpy(key.addr, rec->peer_addr, 16);
    return host_addresses.lookup(&key) != 0;
}

static __always_inline __u16 root_decision(struct span_record *rec) {
    __u16 caller = 0;  /* SPAN_F_CALLER_UNTRACED when the connection's mark says so */
    if (IS_SERVER_KIND(rec->kind) && peer_may_be_traced(rec)) {
        /* Set already when the served connection remembers the mark (bpf/served_conn.h). */
        int untraced = rec->flags & SPAN_F_CALLER_UNTRACED;
        __u64 *seen = 0;
        if (!untraced) {
            struct peer_key key = {.peer_port = rec->peer_port, .local_port = rec->local_port};
            __builtin_memcpy(key.peer_addr, rec->peer_addr, 16);
            if (rec->flags & SPAN_F_UNIX)  /* the peer's sock names it; its inode may come later */
                __builtin_memset(key.peer_addr + 8, 0, 8);
            seen = untraced_peers.lookup(&key);
            untraced = seen && rec->start_ns - *seen <= (__u64)UNTRACED_PEER_IDLE_NS;
        }
        /* Past half full, deciding here beats a ring buffer full of undecided spans: a
         * traced caller's trace may then lack this span, if shed. */
        if (!untraced && !backlog_bound())
            return SPAN_F_DEFERRED;
        if (seen)
            *seen = rec->start_ns;
        if (untraced)
            caller = SPAN_F_CALLER_UNTRACED;
    }
    return caller | (trace_id_sampled(rec->trace_id) ? kept_decision(rec->trace_id) : 0);
}

/* Once an incoming traceparent (flags: its last field) set the trace id and the parent. */
static __always_inline void remote_decision(struct span_record *rec, __u8 flags) {
#if SAMPLER_PARENT_BASED
    int keep = flags & 1;
#else
    int keep = trace_id_sampled(rec->trace_id);
#endif
    rec->flags = (rec->flags & ~SPAN_F_DECISION) | (keep ? kept_decision(rec->trace_id) : 0);
}

/* Whether a finished span of a trace not shed goes no further (counted). */
static __always_inline int sampled_out(struct span_record *rec) {
    if (rec->flags & (SPAN_F_SAMPLED | SPAN_F_DEFERRED))
        return 0;
    if (IS_CLIENT_KIND(rec->kind) && peer_may_be_traced(rec))
        return 0;
    count_drop(DROP_SAMPLED_OUT);
    return 1;
}

#endif
