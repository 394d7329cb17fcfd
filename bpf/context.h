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
    __u64 version;   /* a slot's state (below); 0 in the overflow map */
};

/* A span's own goroutine keeps its context in a slot of an array, chosen by its key: an LRU
 * map's update and delete for a goroutine per request (grpc-go's RPCs) cost about four times
 * what taking and freeing a slot, written in place, does (bench/REPORT.md). The slot's
 * version says its state:
 *   version % 4 == 0  free (as every slot starts): no span, or its span ended
 *                  1  the live context of the goroutine named by key
 *                  2  being written
 * Every change adds to it, so a reader copies a context only when the version said live and
 * was unchanged around the copy (a sequence lock). Only the owner writes its live slot; a
 * free one is taken with a compare-and-swap, so that two goroutines cannot take it at once.
 * A goroutine whose slot holds another's live context (or is being written) keeps its
 * context in the overflow map instead. A slot whose span's end is never seen (a panic
 * net/http recovers, a process exiting meanwhile) stays live: the goroutines whose key falls
 * on it later use the overflow map, as those whose key meets a live span's slot do. */
struct ctx_slot {
    struct go_key key;
    struct trace_ctx ctx;
};
#define CTX_SLOT_FREE 0
#define CTX_SLOT_LIVE 1
#define CTX_SLOT_STATE(version) ((version) & 3)
_Static_assert((MAX_GOROUTINES & (MAX_GOROUTINES - 1)) == 0, "slots are indexed by a mask");
BPF_ARRAY(ctx_slots, struct ctx_slot, MAX_GOROUTINES);

/* The overflow, and the contexts goroutines inherit (ANCESTRY_NEWPROC), whose end nobody
 * sees: LRU, so that those go in time. overflow_entries counts the entries put in less those
 * deleted (an evicted one stays counted): while it is 0, a reader does not look there. */
BPF_TABLE("lru_hash", struct go_key, struct trace_ctx, overflow_ctx, MAX_GOROUTINES);
BPF_ARRAY(overflow_entries, __s64, 1);

#define CTX_BARRIER() asm volatile("" ::: "memory")
#define CTX_VERSION(slot) (*(volatile __u64 *)&(slot)->ctx.version)

static __always_inline struct ctx_slot *context_slot(struct go_key *key) {
    /* Goroutine ids count up: their low bits spread a process's goroutines over the slots. */
    __u32 i = (__u32)(key->id ^ (__u64)key->tgid * 0x9e3779b1ULL) & (MAX_GOROUTINES - 1);
    return ctx_slots.lookup(&i);
}

static __always_inline int same_key(struct go_key *a, struct go_key *b) {
    return a->id == b->id && a->tgid == b->tgid;
}

/* Whether the slot, at version, holds key's live context: only key's goroutine writes it. */
static __always_inline int live_for(struct ctx_slot *slot, __u64 version, struct go_key *key) {
    return CTX_SLOT_STATE(version) == CTX_SLOT_LIVE && same_key(&slot->key, key);
}

/* The count of overflow entries, when there may be any; else 0. */
static __always_inline __s64 *overflow_in_use(void) {
    __u32 zero = 0;
    __s64 *n = overflow_entries.lookup(&zero);
    return n && *n > 0 ? n : 0;
}

/* The context at key in the overflow map, which is put there whole, never rewritten. */
static __always_inline struct trace_ctx *overflow_context(struct go_key *key,
                                                          struct trace_ctx *out) {
    if (!overflow_in_use())
        return 0;
    struct trace_ctx *found = overflow_ctx.lookup(key);
    if (!found)
        return 0;
    __builtin_memcpy(out, found, sizeof(*out));
    return out;
}

static __always_inline void put_overflow_context(struct go_key *key, struct trace_ctx *c) {
    if (overflow_ctx.insert(key, c) != 0) {
        overflow_ctx.update(key, c);  /* one of a span whose end was not seen, replaced */
        return;
    }
    __u32 zero = 0;
    __s64 *n = overflow_entries.lookup(&zero);
    if (n)
        __sync_fetch_and_add(n, 1);
}

static __always_inline void delete_overflow_context(struct go_key *key) {
    __s64 *n = overflow_in_use();
    if (n && overflow_ctx.delete(key) == 0)
        __sync_fetch_and_add(n, -1);
}

/* The live context at key copied into out; 0 when there is none. */
static __always_inline struct trace_ctx *live_context(struct go_key *key, struct trace_ctx *out) {
    struct ctx_slot *slot = context_slot(key);
    if (!slot)
        return 0;
    __u64 version = CTX_VERSION(slot);
    if (CTX_SLOT_STATE(version) == CTX_SLOT_LIVE) {
        CTX_BARRIER();
        int own = same_key(&slot->key, key);
        __builtin_memcpy(out, &slot->ctx, sizeof(*out));
        CTX_BARRIER();
        if (own && CTX_VERSION(slot) == version)
            return out;
    }
    return overflow_context(key, out);
}

/* Mark the slot being written for key, when key may write it: its own live slot (a span
 * whose end was not seen), or a free one, taken. 1 with *publish, the version that publishes
 * what is written then; 0 when the slot is not key's to write. */
static __always_inline int take_slot(struct ctx_slot *slot, struct go_key *key,
                                     __u64 *publish) {
    __u64 version = CTX_VERSION(slot);
    if (live_for(slot, version, key)) {
        CTX_VERSION(slot) = version + 1;
        *publish = version + 4;
        return 1;
    }
    if (CTX_SLOT_STATE(version) != CTX_SLOT_FREE ||
        __sync_val_compare_and_swap(&slot->ctx.version, version, version + 2) != version)
        return 0;
    *publish = version + 5;
    return 1;
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
 * children of it until end_span_context. */
static __always_inline void enter_span_context(struct span_record *rec) {
    struct go_key key = go_key(rec->goid);
    struct ctx_slot *slot = context_slot(&key);
    if (!slot)
        return;
    __u64 publish;
    if (!take_slot(slot, &key, &publish)) {
        struct trace_ctx own = {};
        span_context(&own, rec);
        put_overflow_context(&key, &own);
        return;
    }
    CTX_BARRIER();
    slot->key = key;
    span_context(&slot->ctx, rec);
    CTX_BARRIER();
    CTX_VERSION(slot) = publish;
}

/* The goroutine's span ended: its slot is free again, and a context it keeps in the
 * overflow map goes (one it inherited, ANCESTRY_NEWPROC, or one kept there for a span
 * whose end was not seen). */
static __always_inline void end_span_context(__u64 goid) {
    struct go_key key = go_key(goid);
    struct ctx_slot *slot = context_slot(&key);
    if (slot) {
        __u64 version = CTX_VERSION(slot);
        if (live_for(slot, version, &key))
            CTX_VERSION(slot) = version + 3;
    }
    delete_overflow_context(&key);
}

#endif
