/* Scheduler-wait accounting (opt-in, --sched-wait): per goroutine, the time spent runnable but
 * not running and blocked by reason, summed since its first span began. A span copies its
 * goroutine's sums when it begins and records the difference when it ends.
 *
 * Only goroutines that began a span are followed (sched_accounts); bpf/sched.c moves their
 * state on every runtime.casgstatus and on the system calls of the thread running them.
 */
#ifndef GOTRACE_SCHED_H
#define GOTRACE_SCHED_H

#include "goabi.h"
#include "record.h"

#ifdef SCHED_WAIT

#define SCHED_RUNNING 0xff  /* not waiting: nothing accrues */

struct sched_account {
    __u64 since;                  /* when `current` began */
    __u64 total_ns[SCHED_SLOTS];  /* SCHED_SLOT_* sums */
    __u8 current;                 /* a SCHED_SLOT_*, or SCHED_RUNNING */
    __u8 _pad[7];
};

BPF_TABLE("lru_hash", struct go_key, struct sched_account, sched_accounts, MAX_GOROUTINES);
/* The followed goroutine each thread runs (tid -> goid), for its system calls. */
BPF_TABLE("lru_hash", __u32, __u64, sched_thread_goroutine, 4096);

/* Close the interval the goroutine was in at `now`, and begin `next`. */
static __always_inline void sched_switch(struct sched_account *acct, __u8 next, __u64 now) {
    __u8 current = acct->current;
    if (current < SCHED_SLOTS && now > acct->since)
        acct->total_ns[current] += now - acct->since;
    acct->current = next;
    acct->since = now;
}

static __always_inline void sched_span_begin(struct span_record *rec) {
    struct go_key key = go_key(rec->goid);
    struct sched_account *acct = sched_accounts.lookup(&key);
    if (!acct) {
        struct sched_account fresh = {.current = SCHED_RUNNING};
        sched_accounts.update(&key, &fresh);
        acct = sched_accounts.lookup(&key);
        if (!acct)
            return;
    }
    /* The goroutine runs on this thread now (the probe fired on it). */
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    sched_thread_goroutine.update(&tid, &rec->goid);
    __builtin_memcpy(rec->sched_ns, acct->total_ns, sizeof(rec->sched_ns));
    rec->flags |= SPAN_F_SCHED;
}

static __always_inline void sched_span_end(struct span_record *rec) {
    if (!(rec->flags & SPAN_F_SCHED))
        return;
    struct go_key key = go_key(rec->goid);
    struct sched_account *acct = sched_accounts.lookup(&key);
    if (!acct) {  /* evicted (more goroutines followed than MAX_GOROUTINES) */
        rec->flags &= ~SPAN_F_SCHED;
        return;
    }
    #pragma unroll
    for (int i = 0; i < SCHED_SLOTS; i++)
        rec->sched_ns[i] = acct->total_ns[i] - rec->sched_ns[i];
}

#else
#define sched_span_begin(rec)
#define sched_span_end(rec)
#endif

#endif
