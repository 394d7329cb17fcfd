/* Overload shedding, at the end of a span of a shed trace (bpf/sampling.h decides which
 * traces are shed, where they begin; gotrace/pipeline/overload.py how many).
 *
 * Errors and slow requests are kept whole: a shed trace's spans wait in the kernel
 * (parked_spans) until its local root ends; if the root or any of them is an error or slow
 * by its kind's rule (shed_rules, from the probes' declarations and gotrace's slow
 * thresholds), the root goes out with SPAN_F_SHED | SPAN_F_SAMPLED and the number of spans
 * held (its record's parked), which gotrace then takes from parked_spans; otherwise every
 * span is counted as DROP_SHED and the held ones are left for the LRU to forget. A client span to this host goes out at once, without a
 * decision, so that linking can drop its callee's spans alike (or keep them with a rescued
 * trace). Spans of a shed trace that end after its root follow the root's fate.
 */
#ifndef GOTRACE_SHEDDING_H
#define GOTRACE_SHEDDING_H

#include "record.h"
#include "counters.h"
#include "sampling.h"

#define MAX_PARKED_PER_TRACE 16  /* spans of one shed trace held for its root; more are shed */
#define PARKED_SPANS 4096        /* held spans of all shed traces */
#define SHED_TRACES 16384        /* shed traces remembered, until their late spans are seen */

/* When a span is an error or slow, by span kind: filled by gotrace. */
struct shed_rule {
    __u64 slow_ns;          /* 0: no duration makes it slow */
    __u64 error_statuses;   /* bit n: status n (< 64) is an error */
    __u32 error_min_status; /* 0: none; else a status at least this is an error */
    __u32 error_transport;  /* SPAN_F_TRANSPORT_ERROR makes it an error */
};

struct shed_trace {
    __u32 parked;     /* spans parked so far (the next one's index) */
    __u32 rescued;    /* an error or a slow span was seen: the trace is kept */
    __u32 root_done;  /* its local root has ended: later spans follow rescued */
    __u32 _pad;
};

struct trace_key {
    __u8 trace_id[16];
};

struct parked_key {
    __u8 trace_id[16];
    __u32 index;
    __u32 _pad;
};

BPF_ARRAY(shed_rules, struct shed_rule, 64);
BPF_TABLE("lru_hash", struct trace_key, struct shed_trace, shed_traces, SHED_TRACES);
BPF_TABLE("lru_hash", struct parked_key, struct span_record, parked_spans, PARKED_SPANS);

/* An error or slow, by the rule of the span's kind. */
static __always_inline int worth_keeping(struct span_record *rec) {
    __u32 kind = rec->kind;
    struct shed_rule *rule = shed_rules.lookup(&kind);
    if (!rule)
        return 0;
    if (rule->error_transport && (rec->flags & SPAN_F_TRANSPORT_ERROR))
        return 1;
    if (rule->error_min_status && rec->status >= rule->error_min_status)
        return 1;
    if (rec->status < 64 && ((rule->error_statuses >> rec->status) & 1))
        return 1;
    return rule->slow_ns && rec->end_ns - rec->start_ns >= rule->slow_ns;
}

/* A finished span of a shed trace: whether it goes to the ring buffer now. */
static __always_inline int shed_span_goes_out(struct span_record *rec) {
    int notable = worth_keeping(rec);
    struct trace_key key = {};
    __builtin_memcpy(key.trace_id, rec->trace_id, 16);
    struct shed_trace *trace = shed_traces.lookup(&key);
    if (!(rec->flags & SPAN_F_HAS_PARENT) || (rec->flags & SPAN_F_REMOTE_PARENT)) {
        /* The local root: the trace is decided. Its held spans stay where they are: gotrace
         * takes those of a kept trace, and the LRU forgets the others. */
        int keep = notable || (trace && trace->rescued);
        if (trace) {
            trace->root_done = 1;
            trace->rescued = keep;
            rec->parked = keep ? (trace->parked < MAX_PARKED_PER_TRACE ?
                                  trace->parked : MAX_PARKED_PER_TRACE) : 0;
        }
        if (keep) {
            rec->flags |= SPAN_F_SAMPLED;
            return 1;
        }
        count_drop(DROP_SHED);
        return 0;
    }
    if (IS_CLIENT_KIND(rec->kind) && peer_may_be_traced(rec))
        return 1;  /* undecided: its callee is linked to it, and decided with its trace */
    if (!trace) {
        struct shed_trace fresh = {};
        shed_traces.insert(&key, &fresh);
        trace = shed_traces.lookup(&key);
    }
    if (trace && notable)
        trace->rescued = 1;
    if (trace && trace->root_done) {
        if (trace->rescued) {
            rec->flags |= SPAN_F_SAMPLED;
            return 1;
        }
    } else if (trace) {
        /* Not atomic (this BPF target cannot use an atomic add's result): two spans of one
         * trace ending at the same instant on two CPUs may take one slot, and the later
         * overwrite the earlier. */
        __u32 index = trace->parked;
        trace->parked = index + 1;
        if (index < MAX_PARKED_PER_TRACE) {
            struct parked_key parked = {.index = index};
            __builtin_memcpy(parked.trace_id, rec->trace_id, 16);
            parked_spans.update(&parked, rec);
        }
    }
    /* Counted as shed when held too: gotrace counts back those it takes. */
    count_drop(DROP_SHED);
    return 0;
}

#endif
