/* database/sql CLIENT spans, whatever the driver: one per query, exec, prepared statement
 * execution, commit and rollback, at the package's public methods (entry + RET: 2 hits).
 *
 * The public methods, not the internal queryDC/execDC: those run only once a connection was
 * obtained, so a database that is down would give no span, and a retry after a bad
 * connection two. None of these is inlined by any Go from 1.19 to 1.26, and their registers
 * are the same in all:
 *   (*DB|*Conn|*Tx).QueryContext/ExecContext(recv, ctx, query string, args ...any):
 *       recv RAX, query RDI:RSI;
 *   (*Stmt).QueryContext/ExecContext(s, ctx, args ...any): s RAX (the text is s.query);
 *   (*DB|*Conn).BeginTx(recv, ctx, opts): recv RAX;
 *   (*Tx).Commit(tx), (*Tx).rollback(tx, discardConn bool): tx RAX, discardConn BL.
 * Returns: QueryContext (*Rows RAX, error RBX:RCX); ExecContext (Result RAX:RBX, error
 * RCX:RDI); BeginTx (*Tx RAX, error RBX:RCX); Commit and rollback (error RAX:RBX).
 *
 * The connection (its driver, by the dynamic type of driverConn.ci, and its socket) is known
 * at the entry for a Tx, a Conn and a Stmt bound to either, else at the RET from the result:
 * Rows.dc, or the driverResult's Locker (the *driverConn). A call that got no connection
 * names the driver by the DB's connector.
 *
 * sql.ErrNoRows comes from Row.Scan, after QueryContext returned: a QueryRow that found
 * nothing is a successful query here, as the conventions want.
 */

#include "goabi.h"
#include "counters.h"
#include "span.h"
#include "conn.h"
#include "db_call.h"

#define OP_BEGIN (BYTE_AT('B', 0) | BYTE_AT('E', 1) | BYTE_AT('G', 2) | BYTE_AT('I', 3) | \
                  BYTE_AT('N', 4))
#define OP_COMMIT (BYTE_AT('C', 0) | BYTE_AT('O', 1) | BYTE_AT('M', 2) | BYTE_AT('M', 3) | \
                   BYTE_AT('I', 4) | BYTE_AT('T', 5))
#define OP_ROLLBACK (BYTE_AT('R', 0) | BYTE_AT('O', 1) | BYTE_AT('L', 2) | BYTE_AT('L', 3) | \
                     BYTE_AT('B', 4) | BYTE_AT('A', 5) | BYTE_AT('C', 6) | BYTE_AT('K', 7))

/* The server each DB's calls last went to: a call that failed before it had a connection (the
 * driver's error) or after it released it names the server by that. */
struct sql_server {
    __u8 addr[16];
    __u16 port;
    __u16 _pad[3];
};
BPF_HASH(sql_servers, struct go_key, struct sql_server, 1024);  /* by *DB */

static __always_inline void sql_server_of_pool(struct span_record *rec) {
    __u64 pool = db_call_of(rec)->pool;
    if (!pool)
        return;
    struct go_key key = go_key(pool);
    if (rec->flags & SPAN_F_HAS_CONN) {
        struct sql_server server = {.port = rec->peer_port};
        __builtin_memcpy(server.addr, rec->peer_addr, sizeof(server.addr));
        sql_servers.update(&key, &server);
        return;
    }
    struct sql_server *known = sql_servers.lookup(&key);
    if (known) {
        __builtin_memcpy(rec->peer_addr, known->addr, sizeof(rec->peer_addr));
        rec->peer_port = known->port;
    }
}

/* The driver's connection dc (a *driverConn): its type names the driver; below it, the
 * socket (bpf/conn.h follows the driver's own types to it). */
static __always_inline void sql_read_driver_conn(struct span_record *rec, __u64 dc) {
    if (!dc || rec->flags & SPAN_F_HAS_CONN)
        return;
    __u64 ci = dc + OFF_database_sql_driverConn_ci;
    __u32 type = itab_type(read_u64(ci));
    if (type)
        db_call_of(rec)->driver_type = type;
    read_conn(rec, ci);
}

/* A DB's driver, by its connector's type: the driver's own connector, or database/sql's
 * dsnConnector around a driver without one (then the driver's type); and the database's
 * name, or the data source name that holds it, where the connector keeps one. */
static __always_inline void sql_read_connector(struct span_record *rec, __u64 db) {
    struct go_iface connector = {};
    if (!db || bpf_probe_read_user(&connector, sizeof(connector),
                                   (void *)(db + OFF_database_sql_DB_connector)))
        return;
    struct db_call *call = db_call_of(rec);
    call->pool = db;
    __u32 type = itab_type(connector.tab);
    call->driver_type = type;
    if (!connector.data)
        return;
    if (type == TYPEHASH_database_sql_dsnConnector) {
        call->driver_type =
            itab_type(read_u64(connector.data + OFF_database_sql_dsnConnector_driver));
        bpf_probe_read_user(&call->source, sizeof(call->source),
                            (void *)(connector.data + OFF_database_sql_dsnConnector_dsn));
        call->source_kind = DB_SOURCE_DSN;
    }
#if defined(TYPEHASH_ptr_github_com_jackc_pgx_v4_stdlib_driverConnector) && \
    defined(OFF_github_com_jackc_pgx_v4_stdlib_driverConnector_name)
    if (type == TYPEHASH_ptr_github_com_jackc_pgx_v4_stdlib_driverConnector) {
        bpf_probe_read_user(&call->source, sizeof(call->source),
                            (void *)(connector.data +
                                     OFF_github_com_jackc_pgx_v4_stdlib_driverConnector_name));
        call->source_kind = DB_SOURCE_DSN;
    }
#endif
#if defined(TYPEHASH_ptr_github_com_go_sql_driver_mysql_connector) && \
    defined(OFF_github_com_go_sql_driver_mysql_connector_cfg) && \
    defined(OFF_github_com_go_sql_driver_mysql_Config_DBName)
    if (type == TYPEHASH_ptr_github_com_go_sql_driver_mysql_connector) {
        __u64 cfg = read_u64(connector.data + OFF_github_com_go_sql_driver_mysql_connector_cfg);
        if (cfg) {
            bpf_probe_read_user(&call->source, sizeof(call->source),
                                (void *)(cfg + OFF_github_com_go_sql_driver_mysql_Config_DBName));
            call->source_kind = DB_SOURCE_NAME;
        }
    }
#endif
}

/* A call begins on goroutine g: its text or its operation, its DB (the connector and the
 * pool's server), and its driver connection dc where the call already has one. The record is
 * kept under the goroutine until a RET ends it; the entry runs again when the goroutine's
 * stack grew first, and the second record replaces the first. */
static __always_inline int sql_call_begins(__u64 g, struct go_string text, __u64 operation,
                                           __u64 db, __u64 dc) {
    struct span_record *rec = new_record(SPAN_KIND_SQL_CLIENT, g);
    if (!rec)
        return 0;
    if (operation)
        db_set_operation(rec, operation);
    else
        db_set_text(rec, text);
    sql_read_connector(rec, db);
    sql_read_driver_conn(rec, dc);
    begin_span(rec, g);
    struct go_key by_g = go_key(g);
    if (sql_calls.update(&by_g, rec) != 0)
        count_drop(DROP_INFLIGHT_FULL);
    return 0;
}

static __always_inline struct go_string go_string_args(struct pt_regs *ctx) {
    struct go_string text = {.ptr = GO_ARG4(ctx), .len = (__s64)GO_ARG5(ctx)};
    return text;
}

#define NO_TEXT ((struct go_string){})  /* a call that names its operation */

/* A Conn's DB and driver connection; none in a program without a (*Conn) method. */
#ifdef OFF_database_sql_Conn_dc
#define CONN_DB(conn) read_u64((conn) + OFF_database_sql_Conn_db)
#define CONN_DC(conn) read_u64((conn) + OFF_database_sql_Conn_dc)
#else
#define CONN_DB(conn) 0
#define CONN_DC(conn) 0
#endif
#define TX_DB(tx) read_u64((tx) + OFF_database_sql_Tx_db)
#define TX_DC(tx) read_u64((tx) + OFF_database_sql_Tx_dc)

int sql_db_call(struct pt_regs *ctx) {
    count_hit(PROBE_SQL_DB_CALL);
    return sql_call_begins(GO_G(ctx), go_string_args(ctx), 0, GO_ARG1(ctx), 0);
}

int sql_conn_call(struct pt_regs *ctx) {
    count_hit(PROBE_SQL_CONN_CALL);
    __u64 conn = GO_ARG1(ctx);
    return sql_call_begins(GO_G(ctx), go_string_args(ctx), 0, CONN_DB(conn), CONN_DC(conn));
}

int sql_tx_call(struct pt_regs *ctx) {
    count_hit(PROBE_SQL_TX_CALL);
    __u64 tx = GO_ARG1(ctx);
    return sql_call_begins(GO_G(ctx), go_string_args(ctx), 0, TX_DB(tx), TX_DC(tx));
}

/* A transaction begins on the pool, or on a Conn. */
int sql_db_begin(struct pt_regs *ctx) {
    count_hit(PROBE_SQL_DB_BEGIN);
    return sql_call_begins(GO_G(ctx), NO_TEXT, OP_BEGIN, GO_ARG1(ctx), 0);
}

int sql_conn_begin(struct pt_regs *ctx) {
    count_hit(PROBE_SQL_CONN_BEGIN);
    __u64 conn = GO_ARG1(ctx);
    return sql_call_begins(GO_G(ctx), NO_TEXT, OP_BEGIN, CONN_DB(conn), CONN_DC(conn));
}

/* A prepared statement: its text, and its connection when it belongs to a Tx or a Conn
 * (Stmt.cg); a DB's statement finds one per execution (read at the RET). */
int sql_stmt_call(struct pt_regs *ctx) {
    count_hit(PROBE_SQL_STMT_CALL);
    __u64 stmt = GO_ARG1(ctx);
    struct go_string text = {};
    bpf_probe_read_user(&text, sizeof(text), (void *)(stmt + OFF_database_sql_Stmt_query));
    struct go_iface cg = {};
    bpf_probe_read_user(&cg, sizeof(cg), (void *)(stmt + OFF_database_sql_Stmt_cg));
    __u32 grabber = itab_type(cg.tab);
    __u64 dc = 0;
#ifdef TYPEHASH_ptr_database_sql_Tx
    if (grabber == TYPEHASH_ptr_database_sql_Tx && cg.data)
        dc = TX_DC(cg.data);
#endif
#ifdef TYPEHASH_ptr_database_sql_Conn
    if (grabber == TYPEHASH_ptr_database_sql_Conn && cg.data)
        dc = CONN_DC(cg.data);
#endif
    return sql_call_begins(GO_G(ctx), text, 0, read_u64(stmt + OFF_database_sql_Stmt_db), dc);
}

int sql_commit(struct pt_regs *ctx) {
    count_hit(PROBE_SQL_COMMIT);
    __u64 tx = GO_ARG1(ctx);
    return sql_call_begins(GO_G(ctx), NO_TEXT, OP_COMMIT, TX_DB(tx), TX_DC(tx));
}

/* tx.rollback(discardConn). Two calls are not rollbacks: the idiomatic `defer tx.Rollback()`
 * after a Commit (the Tx is done: it returns ErrTxDone at once), and discardConn, the
 * rollback of a Tx whose context was cancelled, which database/sql runs on a goroutine of
 * its own (no request's span would be its parent). */
int sql_rollback(struct pt_regs *ctx) {
    count_hit(PROBE_SQL_ROLLBACK);
    __u64 tx = GO_ARG1(ctx);
    if ((GO_ARG2(ctx) & 0xff) || read_u32(tx + OFF_database_sql_Tx_done))
        return 0;
    return sql_call_begins(GO_G(ctx), NO_TEXT, OP_ROLLBACK, TX_DB(tx), TX_DC(tx));
}

/* The call returned: the driver connection at dc_at if the result names one (0: none), and
 * the error (itab, data). */
static __always_inline int sql_call_returned(struct pt_regs *ctx, __u64 dc_at, __u64 error_itab,
                                             __u64 error_data) {
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = sql_calls.lookup(&by_g);
    if (!rec)
        return 0;
    if (dc_at)
        sql_read_driver_conn(rec, read_u64(dc_at));
    rec->end_ns = bpf_ktime_get_ns();
    db_set_error(rec, error_itab, error_data);
    sql_server_of_pool(rec);
    emit(rec);
    sql_calls.delete(&by_g);
    return 0;
}

/* QueryContext returned (*Rows RAX, error RBX:RCX). */
int sql_rows_return(struct pt_regs *ctx) {
    count_hit(PROBE_SQL_ROWS_RETURN);
    __u64 rows = GO_ARG1(ctx);
    return sql_call_returned(ctx, rows ? rows + OFF_database_sql_Rows_dc : 0, GO_ARG2(ctx),
                             GO_ARG3(ctx));
}

/* ExecContext returned (Result RAX:RBX, error RCX:RDI): database/sql's driverResult holds
 * the *driverConn as its sync.Locker (an interface: the pointer is its data word). */
int sql_result_return(struct pt_regs *ctx) {
    count_hit(PROBE_SQL_RESULT_RETURN);
    __u64 result = GO_ARG2(ctx);
    int ours = itab_type(GO_ARG1(ctx)) == TYPEHASH_database_sql_driverResult && result;
    return sql_call_returned(
        ctx, ours ? result + OFF_database_sql_driverResult_Locker + sizeof(__u64) : 0,
        GO_ARG3(ctx), GO_ARG4(ctx));
}

/* BeginTx returned (*Tx RAX, error RBX:RCX). */
int sql_tx_return(struct pt_regs *ctx) {
    count_hit(PROBE_SQL_TX_RETURN);
    __u64 tx = GO_ARG1(ctx);
    return sql_call_returned(ctx, tx ? tx + OFF_database_sql_Tx_dc : 0, GO_ARG2(ctx),
                             GO_ARG3(ctx));
}

/* Commit or rollback returned (error RAX:RBX). */
int sql_error_return(struct pt_regs *ctx) {
    count_hit(PROBE_SQL_ERROR_RETURN);
    return sql_call_returned(ctx, 0, GO_ARG1(ctx), GO_ARG2(ctx));
}
