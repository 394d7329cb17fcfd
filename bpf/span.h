/* A span's record from its beginning to the ring buffer: identity (a child of the goroutine's
 * context, or a new trace with the sampler's decision), the scheduler's accounting, and
 * emission.
 */
#ifndef GOTRACE_SPAN_H
#define GOTRACE_SPAN_H

#include "goabi.h"
#include "record.h"
#include "counters.h"
#include "context.h"
#include "sampling.h"
#include "shedding.h"
#include "sched.h"

BPF_RINGBUF_OUTPUT(spans, RINGBUF_PAGES);
#define WAKEUP_EVERY 512  /* records of one CPU: a small part of the RINGBUF_PAGES buffer */
BPF_PERCPU_ARRAY(records_sent, __u64, 1);
BPF_PERCPU_ARRAY(scratch_record, struct span_record, 1);
BPF_PERCPU_ARRAY(blank_records, struct span_record, 1);  /* zeros, never written */

/* Ids: splitmix64 over a per-CPU state, seeded once from the kernel's generator. Its output is
 * uniform (the trace-id sampling rule needs that) and never repeats within a CPU's 2^64 steps;
 * a helper call per 32 random bits (six for a root span) cost more (bench/REPORT.md). */
BPF_PERCPU_ARRAY(id_state, __u64, 1);

static __always_inline __u64 next_id_word(__u64 *state) {
    __u64 z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* words random 64-bit words into dst. */
static __always_inline void random_words(__u8 *dst, int words) {
    __u32 zero = 0;
    __u64 *state = id_state.lookup(&zero);
    if (!state)
        return;
    if (!*state)
        *state = (__u64)bpf_get_prandom_u32() << 32 | bpf_get_prandom_u32();
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        if (i < words) {
            __u64 r = next_id_word(state);
            __builtin_memcpy(dst + 8 * i, &r, 8);
        }
    }
}

/* Start a span's identity: a child of parent, or the root of a new trace. */
static __always_inline void begin_span_under(struct span_record *rec, struct trace_ctx *parent) {
    random_words(rec->span_id, 1);
    if (parent) {
        __builtin_memcpy(rec->trace_id, parent->trace_id, 16);
        __builtin_memcpy(rec->parent_span_id, parent->span_id, 8);
        rec->flags |= SPAN_F_HAS_PARENT | (parent->decision & SPAN_F_DECISION);
    } else {
        random_words(rec->trace_id, 2);
        rec->flags |= root_decision(rec);
    }
}

/* A child of the goroutine's context when it has one. A server span begins the work of its
 * request in this process: its goroutine serves the connection or the call, and inherits
 * nothing (the lookups are skipped; its parent, if any, is remote). */
static __always_inline void begin_span(struct span_record *rec, __u64 g) {
    struct trace_ctx parent;
    begin_span_under(rec, IS_SERVER_KIND(rec->kind) ? 0
                                                    : goroutine_context(g, rec->goid, &parent));
}

/* A child of the goroutine's context whatever the span's kind: a server span nested in
 * another of this process (gRPC served inside net/http's HTTP/2 request). */
static __always_inline void begin_span_in_context(struct span_record *rec, __u64 g) {
    struct trace_ctx parent;
    begin_span_under(rec, goroutine_context(g, rec->goid, &parent));
}

/* Stamp a zeroed record with what every span has; goid: its goroutine's id. */
static __always_inline void init_goroutine_record(struct span_record *rec, __u16 kind,
                                                  __u64 goid) {
    __builtin_memset(rec, 0, sizeof(*rec));
    rec->start_ns = bpf_ktime_get_ns();
    rec->kind = kind;
    rec->pid = bpf_get_current_pid_tgid() >> 32;
    rec->goid = goid;
    rec->request_body_size = -1;
    rec->response_body_size = -1;
    if (IS_SPAN_KIND(kind))
        sched_span_begin(rec);
}

/* The same, for the goroutine whose g is g. */
static __always_inline void init_record(struct span_record *rec, __u16 kind, __u64 g) {
    init_goroutine_record(rec, kind, goroutine_id(g));
}

/* A fresh record in per-CPU scratch space (a record is too big for the BPF stack). */
static __always_inline struct span_record *new_record(__u16 kind, __u64 g) {
    __u32 zero = 0;
    struct span_record *rec = scratch_record.lookup(&zero);
    if (rec)
        init_record(rec, kind, g);
    return rec;
}

/* Zeros to make a map's entry from, where a record is then built in place. */
static __always_inline struct span_record *blank_record(void) {
    __u32 zero = 0;
    return blank_records.lookup(&zero);
}

/* The record's length without its trailing zeros, which gotrace puts back (gotrace/kernel/
 * ringbuf.py): the ring buffer's copy costs by the byte (bench/REPORT.md), and most records
 * end in an empty query and sched_ns after a path of a few words. Exact: only zeros are left
 * out. */
#define PATH_WORDS (SPAN_PATH_LEN / 8)
#define TAIL_WORDS ((sizeof(struct span_record) - __builtin_offsetof(struct span_record, query)) / 8)
_Static_assert(__builtin_offsetof(struct span_record, query) ==
                   __builtin_offsetof(struct span_record, path) + SPAN_PATH_LEN &&
               __builtin_offsetof(struct span_record, path) % 8 == 0 &&
               sizeof(struct span_record) % 8 == 0,
               "path, then query and the rest, end the record in whole words");

static __always_inline __u32 sent_size(struct span_record *rec) {
    __u64 *tail = (__u64 *)rec->query, any = 0;
    #pragma unroll
    for (int i = 0; i < TAIL_WORDS; i++)
        any |= tail[i];
    if (any)
        return sizeof(*rec);
    __u64 *path = (__u64 *)rec->path;
    __u32 words = 0;
    #pragma unroll
    for (int i = 0; i < PATH_WORDS; i++)
        if (path[i])
            words = i + 1;
    return __builtin_offsetof(struct span_record, path) + words * 8;
}

/* A finished span or an event: to gotrace, unless sampled out or shed. */
static __always_inline void emit(struct span_record *rec) {
    if (IS_SPAN_KIND(rec->kind)) {
        if (rec->flags & SPAN_F_SHED ? !shed_span_goes_out(rec) : sampled_out(rec))
            return;
        sched_span_end(rec);
    }
    /* gotrace is not woken for every record: a wakeup is an inter-processor interrupt, which
     * in a virtual machine costs microseconds (a VM exit). It polls every 250 ms, and is
     * woken by every WAKEUP_EVERY-th record of a CPU, long before the buffer fills. */
    __u32 zero = 0;
    __u64 *sent = records_sent.lookup(&zero);
    __u64 flags = sent && (++*sent % WAKEUP_EVERY) == 0 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
    if (spans.ringbuf_output(rec, sent_size(rec), flags) != 0) {
        count_drop(DROP_RINGBUF_FULL);
        return;
    }
    __u64 *out = records_out.lookup(&zero);
    if (out)
        __sync_fetch_and_add(out, 1);
}

#endif
