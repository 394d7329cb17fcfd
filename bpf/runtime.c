/* Goroutine ancestry, where a goroutine's creator is not enough (bpf/context.h
 * goroutine_context): Go < 1.21, which has no g.parentGoid, or --goroutine-ancestry, which
 * follows up to MAX_GOROUTINE_DEPTH hops and keeps the span a goroutine was started under. One
 * hit per goroutine creation, at newproc1's RETs; built only with ANCESTRY_NEWPROC.
 *
 * runtime.newproc1(fn, callergp *g, ...) *g runs on the system stack (every caller, Go
 * 1.19-1.26, wraps it in systemstack), so R14 holds the M's g0 there and the M's curg is still
 * the goroutine that called go: callergp, recovered at the RET as g0.m.curg, where the
 * argument registers no longer hold it. The new g comes back in RAX, its goid already set.
 */

#include "goabi.h"
#include "context.h"
#include "counters.h"
#include "span.h"

#ifdef ANCESTRY_NEWPROC
int newproc_return(struct pt_regs *ctx) {
    count_hit(PROBE_NEWPROC_RETURN);
    __u64 m = read_u64(GO_G(ctx) + OFF_runtime_g_m);
    __u64 creator = m ? read_u64(m + OFF_runtime_m_curg) : 0;
    if (!creator)
        return 0;
    struct go_key key = go_key(goroutine_id(creator));
    struct trace_ctx child;
    if (!live_context(&key, &child) || child.depth >= MAX_GOROUTINE_DEPTH)
        return 0;
    child.depth++;
    child.version = 0;
    key.id = goroutine_id(GO_ARG1(ctx));
    put_overflow_context(&key, &child);
    return 0;
}
#endif

/* Stop-the-world pauses and GC cycles, per process: rare, so each is a record of its own.
 * stopTheWorldWithSema and startTheWorldWithSema run on the system stack of the M that stops
 * the world; one process has one stop at a time, so a stop in progress waits under the
 * process.
 *
 * Pauses are measured as the runtime accounts them (gctrace, work.pauseNS), from
 * stopTheWorldWithSema's entry to:
 *   - sweep termination (the stop during which a cycle starts: gcControllerState.startCycle
 *     runs inside it): the time startTheWorldWithSema returns (RAX, every Go release
 *     1.19-1.26), its nanotime() once the Ps run again, before it wakes idle Ms;
 *   - any other stop (mark termination, ...): startTheWorldWithSema's entry, as the runtime
 *     takes the end of mark termination before restarting the world.
 * nanotime is CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns. */

struct stw_pending {
    __u64 start;
    __u64 restart_called;
    __u64 sweep_termination;
};

BPF_HASH(stw_started, __u32, struct stw_pending, 4096);

static __always_inline void emit_event(__u16 kind, __u64 start, __u64 end, __u64 g) {
    struct span_record *rec = new_record(kind, g);
    if (!rec)
        return;
    rec->start_ns = start;
    rec->end_ns = end;
    emit(rec);
}

int stw_begin(struct pt_regs *ctx) {
    count_hit(PROBE_STW_BEGIN);
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct stw_pending pending = {.start = bpf_ktime_get_ns()};
    stw_started.update(&tgid, &pending);
    return 0;
}

int stw_restart_called(struct pt_regs *ctx) {
    count_hit(PROBE_STW_RESTART_CALLED);
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct stw_pending *pending = stw_started.lookup(&tgid);
    if (pending && !pending->restart_called)
        pending->restart_called = bpf_ktime_get_ns();
    return 0;
}

int stw_end(struct pt_regs *ctx) {
    count_hit(PROBE_STW_END);
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct stw_pending *pending = stw_started.lookup(&tgid);
    if (!pending)
        return 0;
    __u64 now = bpf_ktime_get_ns();
    __u64 end = pending->restart_called ? pending->restart_called : now;
    __u64 restarted = GO_ARG1(ctx);
    if (pending->sweep_termination && restarted >= pending->start && restarted <= now)
        end = restarted;
    emit_event(EVENT_KIND_STW_PAUSE, pending->start, end, GO_G(ctx));
    stw_started.delete(&tgid);
    return 0;
}

/* A cycle's start, once: the entry runs again at once when the stack grew first (morestack
 * restarts the function), and no two cycles start within GC_CYCLE_MIN_GAP_NS. */
#define GC_CYCLE_MIN_GAP_NS 100000
BPF_HASH(gc_cycle_last, __u32, __u64, 4096);

int gc_cycle(struct pt_regs *ctx) {
    count_hit(PROBE_GC_CYCLE);
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct stw_pending *pending = stw_started.lookup(&tgid);
    if (pending)
        pending->sweep_termination = 1;
    __u64 now = bpf_ktime_get_ns();
    __u64 *last = gc_cycle_last.lookup(&tgid);
    if (last && now - *last < GC_CYCLE_MIN_GAP_NS)
        return 0;
    gc_cycle_last.update(&tgid, &now);
    emit_event(EVENT_KIND_GC_CYCLE, now, now, GO_G(ctx));
    return 0;
}
