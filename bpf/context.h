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
    __u32 version;   /* odd: not a context (being rewritten, or its span ended) */
    __u32 _pad;
};

/* LRU: the entry of a span whose end is never seen (a panic) goes in time; a goroutine id never
 * comes back to overwrite it.
 *
 * A goroutine that serves span after span (net/http's HTTP/1 connection) keeps its entry and
 * rewrites it in place: an LRU map's update and delete cost several times a lookup. Other
 * goroutines may read the entry meanwhile (a goroutine it started, through parentGoid), so
 * it is versioned like a sequence lock: odd while rewritten or once its span ended, a copy
 * counts only when the version was even and unchanged around it. */
BPF_TABLE("lru_hash", struct go_key, struct trace_ctx, goroutine_ctx, MAX_GOROUTINES);

#define CTX_BARRIER() asm volatile("" ::: "memory")

/* The live context at key copied into out; 0 when there is none. */
static __always_inline struct trace_ctx *live_context(struct go_key *key, struct trace_ctx *out) {
    struct trace_ctx *found = goroutine_ctx.lookup(key);
    if (!found)
        return 0;
    __u32 version = *(volatile __u32 *)&found->version;
    if (version & 1)
        return 0;
    CTX_BARRIER();
    __builtin_memcpy(out, found, sizeof(*out));
    CTX_BARRIER();
    return *(volatile __u32 *)&found->version == version ? out : 0;
}

/* The context a span begun on goroutine g (id goid) is a child of, copied into out; 0 when
 * none. With ANCESTRY_PARENT_GOID (Go >= 1.21, no newproc1 probe), a goroutine without a
 * context of its own takes its creator's, found through g.parentGoid: the span the creator
 * works for now. */
static __always_inline struct trace_ctx *goroutine_context(__u64 g, __u64 goid,
                                                           struct trace_ctx *out) {
    struct go_key key = go_key(goid);
    struct trace_ctx *found = live_context(&key, out);
#ifdef ANCESTRY_PARENT_GOID
    if (!found) {
        key.id = read_u64(g + OFF_runtime_g_parentGoid);
        found = live_context(&key, out);
    }
#endif
    return found;
}

/* The span's own context in c (its version left as it is). */
static __always_inline void span_context(struct trace_ctx *c, struct span_record *rec) {
    __builtin_memcpy(c->trace_id, rec->trace_id, 16);
    __builtin_memcpy(c->span_id, rec->span_id, 8);
    c->depth = 0;
    c->decision = rec->flags & SPAN_F_DECISION;
}

/* The goroutine now works for this span: its calls and the goroutines it starts are
 * children of it until end_span_context. Its entry is rewritten in place when it has one. */
static __always_inline void enter_span_context(struct span_record *rec) {
    struct go_key key = go_key(rec->goid);
    struct trace_ctx *own = goroutine_ctx.lookup(&key);
    if (!own) {
        struct trace_ctx fresh = {};
        span_context(&fresh, rec);
        goroutine_ctx.update(&key, &fresh);
        return;
    }
    __u32 version = own->version | 1;
    own->version = version;
    CTX_BARRIER();
    span_context(own, rec);
    CTX_BARRIER();
    own->version = version + 1;
}

/* The goroutine's span ended. keep: the goroutine goes on to serve more spans, so its entry
 * stays, marked ended, to be rewritten by the next; else it goes. */
static __always_inline void end_span_context(__u64 goid, int keep) {
    struct go_key key = go_key(goid);
    if (!keep) {
        goroutine_ctx.delete(&key);
        return;
    }
    struct trace_ctx *own = goroutine_ctx.lookup(&key);
    if (own)
        own->version |= 1;
}

#endif
