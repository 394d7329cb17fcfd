/* Goroutine ancestry: a goroutine started while its creator works for a span inherits that
 * span as its context, up to MAX_GOROUTINE_DEPTH hops.
 *
 * runtime.newproc1(fn, callergp *g, callerpc, ...) *g runs on the system stack, so R14 holds
 * the M's g0 there: the entry notes the creator's context under g0, each RET hands it to the
 * new g (RAX). Every goroutine creation passes the RET, so a reused g never keeps a stale
 * context.
 */

BPF_HASH(newproc_pending, __u64, struct trace_ctx, 4096);

int newproc_entry(struct pt_regs *ctx) {
    count_hit(PROBE_NEWPROC_ENTRY);
    __u64 creator = GO_ARG2(ctx);
    struct trace_ctx *parent = goroutine_ctx.lookup(&creator);
    __u64 g0 = GO_G(ctx);
    if (parent && parent->depth < MAX_GOROUTINE_DEPTH) {
        struct trace_ctx child = *parent;
        child.depth++;
        newproc_pending.update(&g0, &child);
    } else {
        newproc_pending.delete(&g0);
    }
    return 0;
}

int newproc_return(struct pt_regs *ctx) {
    count_hit(PROBE_NEWPROC_RETURN);
    __u64 g0 = GO_G(ctx);
    __u64 newg = GO_ARG1(ctx);
    struct trace_ctx *child = newproc_pending.lookup(&g0);
    if (child) {
        goroutine_ctx.update(&newg, child);
        newproc_pending.delete(&g0);
    } else {
        goroutine_ctx.delete(&newg);
    }
    return 0;
}
