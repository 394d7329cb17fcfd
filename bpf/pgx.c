/* pgx v4's own API: one CLIENT span per Query, Exec and batch (entry + RET: 2 hits).
 *
 * (*Conn).Query and (*Conn).Exec(c, ctx, sql string, args ...any): c RAX, sql RDI:RSI.
 * Query returns (Rows RAX:RBX, error RCX:RDI): the Rows, a *connRows, already holds an error
 * found before the first row (a failed prepare or bind) and, when sql named a prepared
 * statement, the statement's text. Exec returns (CommandTag RAX:RBX:RCX, error RDI:RSI).
 * A batch: (*Conn).SendBatch(c, ctx, b *Batch) sends all its statements; the span ends when
 * the application closes the results, (*batchResults).Close() returning the first error
 * (RAX:RBX).
 *
 * database/sql's pgx driver (pgx/v4/stdlib) runs its calls through these same methods, inside
 * a database/sql span of the same goroutine: they are not calls of their own then.
 */

#include "goabi.h"
#include "counters.h"
#include "span.h"
#include "conn.h"
#include "db_call.h"

BPF_HASH(pgx_calls, struct go_key, struct span_record, MAX_INFLIGHT);  /* by g */

static __always_inline int pgx_begin(__u64 g, __u64 conn, struct go_string text) {
    struct go_key by_g = go_key(g);
    if (sql_calls.lookup(&by_g))
        return 0;  /* database/sql's call, through pgx/v4/stdlib */
    struct span_record *rec = new_record(SPAN_KIND_PGX_CLIENT, g);
    if (!rec)
        return 0;
    db_set_text(rec, text);
    __u64 pg = read_u64(conn + OFF_github_com_jackc_pgx_v4_Conn_pgConn);
    if (pg) {
        read_conn(rec, pg + OFF_github_com_jackc_pgconn_PgConn_conn);
#if defined(OFF_github_com_jackc_pgconn_PgConn_config) && \
    defined(OFF_github_com_jackc_pgconn_Config_Database)
        __u64 config = read_u64(pg + OFF_github_com_jackc_pgconn_PgConn_config);
        struct db_call *call = db_call_of(rec);
        if (config && !bpf_probe_read_user(&call->source, sizeof(call->source),
                                           (void *)(config +
                                                    OFF_github_com_jackc_pgconn_Config_Database)))
            call->source_kind = DB_SOURCE_NAME;
#endif
    }
    begin_span(rec, g);
    if (pgx_calls.update(&by_g, rec) != 0)
        count_drop(DROP_INFLIGHT_FULL);
    return 0;
}

int pgx_call(struct pt_regs *ctx) {
    count_hit(PROBE_PGX_CALL);
    struct go_string text = {.ptr = GO_ARG4(ctx), .len = (__s64)GO_ARG5(ctx)};
    return pgx_begin(GO_G(ctx), GO_ARG1(ctx), text);
}

/* SendBatch(c, ctx, b): the first statement's text stands for the batch. */
int pgx_send_batch(struct pt_regs *ctx) {
    count_hit(PROBE_PGX_SEND_BATCH);
    struct go_slice items = {};
    bpf_probe_read_user(&items, sizeof(items),
                        (void *)(GO_ARG4(ctx) + OFF_github_com_jackc_pgx_v4_Batch_items));
    if (items.len <= 0)
        return 0;  /* nothing is sent */
    struct go_string text = {};
    __u64 first = read_u64(items.ptr);
    if (first)
        bpf_probe_read_user(&text, sizeof(text),
                            (void *)(first + OFF_github_com_jackc_pgx_v4_batchItem_query));
    pgx_begin(GO_G(ctx), GO_ARG1(ctx), text);
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = pgx_calls.lookup(&by_g);
    if (rec)
        db_call_of(rec)->batch_size = (__u32)items.len;  /* marks the call a batch */
    return 0;
}

static __always_inline void pgx_end(struct span_record *rec, struct go_key *by_g,
                                    struct go_iface error) {
    rec->end_ns = bpf_ktime_get_ns();
    db_set_error(rec, error.tab, error.data);
    emit(rec);
    pgx_calls.delete(by_g);
}

/* Query returned (Rows RAX:RBX, error RCX:RDI). */
int pgx_query_return(struct pt_regs *ctx) {
    count_hit(PROBE_PGX_QUERY_RETURN);
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = pgx_calls.lookup(&by_g);
    if (!rec)
        return 0;
    struct go_iface error = {.tab = GO_ARG3(ctx), .data = GO_ARG4(ctx)};
    __u64 rows = GO_ARG2(ctx);
    if (itab_type(GO_ARG1(ctx)) == TYPEHASH_ptr_github_com_jackc_pgx_v4_connRows && rows) {
        if (!error.tab)
            bpf_probe_read_user(&error, sizeof(error),
                                (void *)(rows + OFF_github_com_jackc_pgx_v4_connRows_err));
        struct go_string text = {};
        bpf_probe_read_user(&text, sizeof(text),
                            (void *)(rows + OFF_github_com_jackc_pgx_v4_connRows_sql));
        if (text.len > 0 && (text.ptr != db_call_of(rec)->text.ptr ||
                             text.len != db_call_of(rec)->text.len)) {
            __builtin_memset(rec->path, 0, sizeof(rec->path));
            db_set_text(rec, text);  /* a prepared statement's, named by the call */
        }
    }
    pgx_end(rec, &by_g, error);
    return 0;
}

/* Exec returned (CommandTag RAX:RBX:RCX, error RDI:RSI). */
int pgx_exec_return(struct pt_regs *ctx) {
    count_hit(PROBE_PGX_EXEC_RETURN);
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = pgx_calls.lookup(&by_g);
    struct go_iface error = {.tab = GO_ARG4(ctx), .data = GO_ARG5(ctx)};
    if (rec)
        pgx_end(rec, &by_g, error);
    return 0;
}

/* The batch's results were closed (error RAX:RBX). */
int pgx_batch_closed(struct pt_regs *ctx) {
    count_hit(PROBE_PGX_BATCH_CLOSED);
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = pgx_calls.lookup(&by_g);
    struct go_iface error = {.tab = GO_ARG1(ctx), .data = GO_ARG2(ctx)};
    if (rec && db_call_of(rec)->batch_size)
        pgx_end(rec, &by_g, error);
    return 0;
}
