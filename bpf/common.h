/* Shared by every gotrace BPF program: Go ABI access, goroutine context, span output.
 *
 * Offsets of Go struct fields arrive as -D macros named OFF_<field name>, resolved from the
 * traced binary (never assumed). Go's register ABI (amd64, Go >= 1.17): arguments in
 * RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11; the current goroutine's g in R14.
 */
#include <uapi/linux/ptrace.h>
#include "record.h"
#ifdef SCHED_WAIT
/* In bpf/sched.h, which follows this file in the program text (BCC rewrites map calls only
 * in the main text, so shared code is concatenated, not included). */
static __always_inline void sched_span_begin(struct span_record *rec);
static __always_inline void sched_span_end(struct span_record *rec);
#else
#define sched_span_begin(rec)
#define sched_span_end(rec)
#endif
/* In bpf/sampling.h, which follows this file in the program text. */
static __always_inline __u16 root_decision(struct span_record *rec);
static __always_inline int sampled_out(struct span_record *rec);

#define GO_G(ctx) ((ctx)->r14)
#define GO_ARG1(ctx) ((ctx)->ax)
#define GO_ARG2(ctx) ((ctx)->bx)
#define GO_ARG3(ctx) ((ctx)->cx)
#define GO_ARG4(ctx) ((ctx)->di)
#define GO_ARG5(ctx) ((ctx)->si)
#define GO_ARG6(ctx) ((ctx)->r8)

struct go_string {
    __u64 ptr;
    __s64 len;
};

struct go_iface {
    __u64 tab;
    __u64 data;
};

struct go_slice {
    __u64 ptr;
    __s64 len;
    __s64 cap;
};

/* Goroutine ids, g structs and other Go heap addresses repeat from one process to another
 * (goids count from 1 in each; before Go 1.26 the heap begins at one fixed address), and the
 * processes of one binary share its program and maps: a key made of one names its process. */
struct go_key {
    __u64 id;  /* a goid, a g, or another Go heap address */
    __u32 tgid;
    __u32 _pad;
};

static __always_inline struct go_key go_key(__u64 id) {
    struct go_key key = {.id = id, .tgid = bpf_get_current_pid_tgid() >> 32};
    return key;
}

/* The span a goroutine works for, keyed by goroutine id (never reused, so an entry cannot be
 * taken over by a later goroutine): its own server span, or, with ANCESTRY_NEWPROC, inherited
 * from the goroutine that started it (bpf/runtime.c). */
struct trace_ctx {
    __u8 trace_id[16];
    __u8 span_id[8];
    __u32 depth;  /* goroutine hops from the span's own goroutine */
    __u32 decision;  /* the trace's SPAN_F_DECISION flags */
};

BPF_RINGBUF_OUTPUT(spans, RINGBUF_PAGES);
#define WAKEUP_EVERY 128  /* records of one CPU: a small part of the RINGBUF_PAGES buffer */
BPF_PERCPU_ARRAY(records_sent, __u64, 1);
/* Hits per probe program, indexed by PROBE_* ids given by the probe modules. */
BPF_PERCPU_ARRAY(probe_hits, __u64, MAX_PROBES);
/* Requests not turned into spans in the kernel, by reason (DROP_*). */
#define DROP_RINGBUF_FULL 0
#define DROP_INFLIGHT_FULL 1
#define DROP_UNSUPPORTED_WRITER 2  /* not net/http's HTTP/1 response (e.g. HTTP/2 over TLS) */
#define DROP_END_NOT_SEEN 3        /* a call began again before its end was seen */
#define DROP_INJECT_SKIPPED 4      /* --inject-traceparent: no room, or not a buffered writer */
#define DROP_SAMPLED_OUT 5         /* not lost: the sampler said no (bpf/sampling.h) */
#define DROP_REASONS 6
BPF_PERCPU_ARRAY(kernel_drops, __u64, DROP_REASONS);
BPF_PERCPU_ARRAY(scratch_record, struct span_record, 1);
/* LRU: the entry of a span whose end is never seen (a panic) goes in time; a goroutine id never
 * comes back to overwrite it. */
BPF_TABLE("lru_hash", struct go_key, struct trace_ctx, goroutine_ctx, MAX_GOROUTINES);

static __always_inline void count_hit(__u32 probe) {
    __u64 *n = probe_hits.lookup(&probe);
    if (n)
        (*n)++;
}

static __always_inline void count_drop(__u32 reason) {
    __u64 *n = kernel_drops.lookup(&reason);
    if (n)
        (*n)++;
}

static __always_inline __u64 read_u64(__u64 addr) {
    __u64 v = 0;
    bpf_probe_read_user(&v, sizeof(v), (void *)addr);
    return v;
}

static __always_inline __u32 read_u32(__u64 addr) {
    __u32 v = 0;
    bpf_probe_read_user(&v, sizeof(v), (void *)addr);
    return v;
}

/* Copy a Go string (a struct go_string header) into dst (NUL-terminated, truncated to fit);
 * evaluates to the string's length. */
#define COPY_GO_STRING(dst, header)                                            \
    ({                                                                         \
        struct go_string __s = (header);                                       \
        __u64 __n = __s.len;                                                   \
        if (__n > sizeof(dst) - 1)                                             \
            __n = sizeof(dst) - 1;                                             \
        if (__s.ptr && __n > 0)                                                \
            bpf_probe_read_user((dst), __n & (sizeof(dst) - 1), (void *)__s.ptr); \
        __s.len;                                                               \
    })

/* Copy the Go string stored at str_addr into dst. */
#define READ_GO_STRING(dst, str_addr)                                          \
    ({                                                                         \
        struct go_string __h = {};                                             \
        bpf_probe_read_user(&__h, sizeof(__h), (void *)(str_addr));            \
        COPY_GO_STRING(dst, __h);                                              \
    })

/* Windows: each user-memory read is a helper call (about 0.2 µs in this VM), so a probe that
 * needs several fields of one struct reads its first bytes at once and picks the fields out
 * at their offsets, which are constants. A window's size is a constant expression too (the
 * largest field end it must hold), checked against WINDOW_SIZE when the program compiles. */
#define WINDOW_SIZE 512
#define END_OF(off, type) ((off) + sizeof(type))
#define MAX2(a, b) ((a) > (b) ? (a) : (b))
#define MAX3(a, b, c) MAX2(MAX2(a, b), c)
struct window {
    __u8 bytes[WINDOW_SIZE];
};
BPF_PERCPU_ARRAY(windows, struct window, 2);  /* a struct, and one it points to */

/* The first size bytes of the struct at addr, in window slot; 0 when unreadable. */
static __always_inline __u8 *read_window(__u32 slot, __u64 addr, __u32 size) {
    struct window *w = windows.lookup(&slot);
    if (!w || !addr || bpf_probe_read_user(w->bytes, size, (void *)addr) != 0)
        return 0;
    return w->bytes;
}

#define WINDOW_U64(w, off) (*(__u64 *)((w) + (off)))
#define WINDOW_STRING(w, off) (*(struct go_string *)((w) + (off)))

static __always_inline void random_bytes(__u8 *dst, int words) {
    #pragma unroll
    for (int i = 0; i < 4; i++) {
        if (i < words) {
            __u32 r = bpf_get_prandom_u32();
            __builtin_memcpy(dst + 4 * i, &r, 4);
        }
    }
}

static __always_inline __u64 goroutine_id(__u64 g) {
    return read_u64(g + OFF_runtime_g_goid);
}

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

/* Start a span's identity: a child of the goroutine's context when it has one. A server span
 * begins the work of its request in this process: its goroutine serves the connection or
 * the call, and inherits nothing (the lookups are skipped; its parent, if any, is remote). */
static __always_inline void begin_span(struct span_record *rec, __u64 g) {
    random_bytes(rec->span_id, 2);
    int server = rec->kind == SPAN_KIND_HTTP_SERVER || rec->kind == SPAN_KIND_GRPC_SERVER;
    struct trace_ctx *parent = server ? 0 : goroutine_context(g, rec->goid);
    if (parent) {
        __builtin_memcpy(rec->trace_id, parent->trace_id, 16);
        __builtin_memcpy(rec->parent_span_id, parent->span_id, 8);
        rec->flags |= SPAN_F_HAS_PARENT | (parent->decision & SPAN_F_DECISION);
    } else {
        random_bytes(rec->trace_id, 4);
        rec->flags |= root_decision(rec);
    }
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
    if (kind < EVENT_KIND_STW_PAUSE)
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

static __always_inline void emit(struct span_record *rec) {
    if (rec->kind < EVENT_KIND_STW_PAUSE) {
        if (sampled_out(rec))
            return;
        sched_span_end(rec);
    }
    /* gotrace is not woken for every record: a wakeup is an inter-processor interrupt, which
     * in a virtual machine costs microseconds (a VM exit). It polls every 250 ms, and is
     * woken by every WAKEUP_EVERY-th record of a CPU, long before the buffer fills. */
    __u32 zero = 0;
    __u64 *sent = records_sent.lookup(&zero);
    __u64 flags = sent && (++*sent % WAKEUP_EVERY) == 0 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
    if (spans.ringbuf_output(rec, sizeof(*rec), flags) != 0)
        count_drop(DROP_RINGBUF_FULL);
}
