/* Goroutine context: the span each goroutine works for, so that its calls and the goroutines
 * it starts join that span's trace. Kept by goroutine id; how a goroutine finds its creator's
 * depends on the ancestry macro (gotrace/probes/runtime.py).
 */
#ifndef GOTRACE_CONTEXT_H
#define GOTRACE_CONTEXT_H

#include "goabi.h"
#include "record.h"

/* The span a goroutine works for, keyed by goroutine id (never reused, so an entry cannot be
 * taken over by a later goroutine): its own server span, or, with ANCESTRY_NEWPROC, inherited
 * from the goroutine that started it (bpf/runtime.c). */
struct trace_ctx {
    __u8 trace_id[16];
    __u8 span_id[8];
    __u32 depth;  /* goroutine hops from the span's own goroutine */
    __u32 decision;  /* the trace's SPAN_F_DECISION flags */
};

/* LRU: the entry of a span whose end is never seen (a panic) goes in time; a goroutine id never
 * comes back to overwrite it. */
BPF_TABLE("lru_hash", struct go_key, struct trace_ctx, goroutine_ctx, MAX_GOROUTINES);


/* The context a span begun on goroutine g (id goid) is a child of, if any. With
 * ANCESTRY_PARENT_GOID (Go >= 1.21, no newproc1 probe), a goroutine without a context of its own
 * takes its creator's, found through g.parentGoid: the span the creator works for now. */
static __always_inline struct trace_ctx *goroutine_context(__u64 g, __u64 goid) {
    struct go_key key = go_key(goid);
    struct trace_ctx *found = goroutine_ctx.lookup(&key);
#ifdef ANCESTRY_PARENT_GOID
    if (!found) {
        key.id = read_u64(g + OFF_runtime_g_parentGoid);
        found = goroutine_ctx.lookup(&key);
    }
#endif
    return found;
}

/* The goroutine now works for this span: its calls and the goroutines it starts are
 * children of it until end_span_context. */
static __always_inline void enter_span_context(struct span_record *rec) {
    struct trace_ctx own = {};
    __builtin_memcpy(own.trace_id, rec->trace_id, 16);
    __builtin_memcpy(own.span_id, rec->span_id, 8);
    own.decision = rec->flags & SPAN_F_DECISION;
    struct go_key key = go_key(rec->goid);
    goroutine_ctx.update(&key, &own);
}

static __always_inline void end_span_context(__u64 goid) {
    struct go_key key = go_key(goid);
    goroutine_ctx.delete(&key);
}

#endif
