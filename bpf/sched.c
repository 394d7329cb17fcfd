/* Scheduler wait (opt-in, --sched-wait): what the goroutines that serve spans wait for.
 *
 * runtime.casgstatus(gp *g, oldval, newval uint32) is the runtime's one way to change a
 * goroutine's state (Go 1.19-1.26), called on every change of every goroutine: one hit each,
 * which is this feature's cost. For a followed goroutine (bpf/sched.h):
 *   -> _Grunnable: waits for a P (runnable); -> _Gwaiting: blocked, the reason class taken
 *   from g.waitreason (set before the change), by the masks of WAIT_CLASS_* macros built from
 *   the binary's own runtime.waitReasonStrings; -> _Grunning / _Gsyscall: accrues nothing.
 * System calls are timed by the raw_syscalls tracepoints on the thread running the goroutine:
 * Go 1.26 enters and leaves most system calls without casgstatus.
 */

#include "goabi.h"
#include "counters.h"
#include "sched.h"

#define G_RUNNABLE 1
#define G_RUNNING 2
#define G_SYSCALL 3
#define G_WAITING 4
#define G_PREEMPTED 9

/* Masks hold 63 reasons each (gotrace/facts/scheduler.py wait_class_macros). */
static __always_inline int in_mask(__u64 lo, __u64 hi, __u8 reason) {
    if (reason < 63)
        return (lo >> reason) & 1;
    return reason < 126 ? (hi >> (reason - 63)) & 1 : 0;
}

static __always_inline __u8 blocked_slot(__u8 reason) {
    if (in_mask(WAIT_CLASS_NETWORK_LO, WAIT_CLASS_NETWORK_HI, reason))
        return SCHED_SLOT_NETWORK;
    if (in_mask(WAIT_CLASS_CHANNEL_LO, WAIT_CLASS_CHANNEL_HI, reason))
        return SCHED_SLOT_CHANNEL;
    if (in_mask(WAIT_CLASS_LOCK_LO, WAIT_CLASS_LOCK_HI, reason))
        return SCHED_SLOT_LOCK;
    if (in_mask(WAIT_CLASS_SLEEP_LO, WAIT_CLASS_SLEEP_HI, reason))
        return SCHED_SLOT_SLEEP;
    return SCHED_SLOT_OTHER;
}

int sched_casgstatus(struct pt_regs *ctx) {
    count_hit(PROBE_SCHED_CASGSTATUS);
    __u64 gp = GO_ARG1(ctx);
    __u64 goid = goroutine_id(gp);
    struct go_key key = go_key(goid);
    struct sched_account *acct = sched_accounts.lookup(&key);
    if (!acct)
        return 0;
    __u32 oldval = (__u32)GO_ARG2(ctx);
    __u32 newval = (__u32)GO_ARG3(ctx);
    __u8 next = SCHED_RUNNING;
    if (newval == G_RUNNABLE || newval == G_PREEMPTED) {
        next = SCHED_SLOT_RUNNABLE;
    } else if (newval == G_WAITING) {
        __u8 reason = 0;
        bpf_probe_read_user(&reason, 1, (void *)(gp + OFF_runtime_g_waitreason));
        next = blocked_slot(reason);
    }
    sched_switch(acct, next, bpf_ktime_get_ns());
    /* Running starts and stops on the thread that runs the goroutine. */
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    if (newval == G_RUNNING)
        sched_thread_goroutine.update(&tid, &goid);
    else if (oldval == G_RUNNING && newval != G_SYSCALL)
        sched_thread_goroutine.delete(&tid);
    return 0;
}

static __always_inline struct sched_account *thread_account(void) {
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    __u64 *goid = sched_thread_goroutine.lookup(&tid);
    if (!goid)
        return 0;
    struct go_key key = go_key(*goid);  /* the thread is the goroutine's process's */
    return sched_accounts.lookup(&key);
}

TRACEPOINT_PROBE(raw_syscalls, sys_enter) {
    struct sched_account *acct = thread_account();
    if (acct && acct->current == SCHED_RUNNING)
        sched_switch(acct, SCHED_SLOT_SYSCALL, bpf_ktime_get_ns());
    return 0;
}

TRACEPOINT_PROBE(raw_syscalls, sys_exit) {
    struct sched_account *acct = thread_account();
    if (acct && acct->current == SCHED_SLOT_SYSCALL)
        sched_switch(acct, SCHED_RUNNING, bpf_ktime_get_ns());
    return 0;
}
