/* What the probes count in the kernel: their hits, and the requests not turned into spans
 * by reason (DROP_*, defined by gotrace/records.py KERNEL_DROP_REASONS).
 */
#ifndef GOTRACE_COUNTERS_H
#define GOTRACE_COUNTERS_H

/* Hits per probe program, indexed by the PROBE_* ids gotrace gives the programs. */
BPF_PERCPU_ARRAY(probe_hits, __u64, MAX_PROBES);
BPF_PERCPU_ARRAY(kernel_drops, __u64, DROP_REASONS);

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

#endif
