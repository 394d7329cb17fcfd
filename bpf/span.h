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

static __always_inline void random_bytes(__u8 *dst, int words) {
    #pragma unroll
    for (int i = 0; i < 4; i++) {
        if (i < words) {
            __u32 r = bpf_get_prandom_u32();
            __builtin_memcpy(dst + 4 * i, &r, 4);
        }
    }
}

/* Start a span's identity: a child of parent, or the root of a new trace. */
static __always_inline void begin_span_under(struct span_record *rec, struct trace_ctx *parent) {
    random_bytes(rec->span_id, 2);
    if (parent) {
        __builtin_memcpy(rec->trace_id, parent->trace_id, 16);
        __builtin_memcpy(rec->parent_span_id, parent->span_id, 8);
        rec->flags |= SPAN_F_HAS_PARENT | (parent->decision & SPAN_F_DECISION);
    } else {
        random_bytes(rec->trace_id, 4);
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

/* Stamp a zeroed record with what every span has. */
static __always_inline void init_record(struct span_record *rec, __u16 kind, __u64 g) {
    __builtin_memset(rec, 0, sizeof(*rec));
    rec->start_ns = bpf_ktime_get_ns();
    rec->kind = kind;
    rec->pid = bpf_get_current_pid_tgid() >> 32;
    rec->goid = goroutine_id(g);
    rec->request_body_size = -1;
    rec->response_body_size = -1;
    if (IS_SPAN_KIND(kind))
        sched_span_begin(rec);
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
    if (spans.ringbuf_output(rec, sizeof(*rec), flags) != 0) {
        count_drop(DROP_RINGBUF_FULL);
        return;
    }
    __u64 *out = records_out.lookup(&zero);
    if (out)
        __sync_fetch_and_add(out, 1);
}

#endif
