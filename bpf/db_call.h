/* A database client call's span, whatever the client library: what its record carries.
 *
 * - path: the first SPAN_PATH_LEN - 1 bytes of the statement's text (a Redis command: its
 *   name), copied when the call begins;
 * - route: a struct db_call (below): the text's address in the traced process, from which
 *   gotrace reads a longer statement once per distinct statement (most are string constants,
 *   which live as long as the program; gotrace checks the bytes it reads begin with the copy,
 *   gotrace/probes/db_attributes.py), and the dynamic types that name the database and the
 *   error;
 * - method: the operation when the call itself names it (COMMIT, ROLLBACK; a Redis command);
 * - SPAN_F_TRANSPORT_ERROR: the call returned an error;
 * - the addresses: the TCP connection the call went out on, when the driver has one.
 */
#ifndef GOTRACE_DB_CALL_H
#define GOTRACE_DB_CALL_H

#include "goabi.h"
#include "record.h"
#include "span.h"

struct db_call {
    struct go_string text;  /* the statement in the traced process */
    __u32 driver_type;      /* hash of the driver's connection (or connector) type */
    __u32 error_type;       /* hash of the returned error's dynamic type; 0: none */
    __u32 batch_size;       /* statements sent at once (a batch, a pipeline); 0: one */
    __u32 arg_count;        /* a Redis command's arguments */
    __u64 pool;             /* the client (a *sql.DB) whose server the call went to */
    struct go_string source;  /* the database's name, or a DSN naming it (source_kind) */
    __u32 source_kind;        /* DB_SOURCE_* */
    __u32 _pad;
};
_Static_assert(sizeof(struct db_call) == SPAN_ROUTE_LEN, "struct db_call fills the route field");

/* database/sql's calls in flight, by goroutine (bpf/database_sql.c): a driver that is also a
 * client library of its own (pgx) runs its calls inside them. */
BPF_HASH(sql_calls, struct go_key, struct span_record, MAX_INFLIGHT);

/* What db_call.source is: nothing, the database's name, a data source name that holds it
 * (with the password: gotrace reads only the name out of it), or a database's number. */
#define DB_SOURCE_NONE 0
#define DB_SOURCE_NAME 1
#define DB_SOURCE_DSN 2
#define DB_SOURCE_INDEX 3  /* a numbered database (Redis's): the number in source.len */

static __always_inline struct db_call *db_call_of(struct span_record *rec) {
    return (struct db_call *)rec->route;
}

/* The statement's text: a copy of its beginning, and where the whole is. */
static __always_inline void db_set_text(struct span_record *rec, struct go_string text) {
    COPY_GO_STRING(rec->path, text);
    db_call_of(rec)->text = text;
}

/* A driver's error with the database's own code (db.response.status_code): PostgreSQL's
 * SQLSTATE (five characters) from lib/pq or pgconn into scheme, MySQL's error number into
 * status. The types and fields are optional: each where the binary has the driver. */
static __always_inline void db_error_code(struct span_record *rec, __u32 type, __u64 data) {
    if (!data)
        return;
#if defined(TYPEHASH_ptr_github_com_lib_pq_Error) && defined(OFF_github_com_lib_pq_Error_Code)
    if (type == TYPEHASH_ptr_github_com_lib_pq_Error)
        READ_GO_STRING(rec->scheme, data + OFF_github_com_lib_pq_Error_Code);
#endif
#if defined(TYPEHASH_ptr_github_com_jackc_pgconn_PgError) && \
    defined(OFF_github_com_jackc_pgconn_PgError_Code)
    if (type == TYPEHASH_ptr_github_com_jackc_pgconn_PgError)
        READ_GO_STRING(rec->scheme, data + OFF_github_com_jackc_pgconn_PgError_Code);
#endif
#if defined(TYPEHASH_ptr_github_com_go_sql_driver_mysql_MySQLError) && \
    defined(OFF_github_com_go_sql_driver_mysql_MySQLError_Number)
    if (type == TYPEHASH_ptr_github_com_go_sql_driver_mysql_MySQLError) {
        __u16 number = 0;
        bpf_probe_read_user(&number, sizeof(number),
                            (void *)(data + OFF_github_com_go_sql_driver_mysql_MySQLError_Number));
        rec->status = number;
    }
#endif
}

/* The call returned the error (itab, data): none when itab is 0. */
static __always_inline void db_set_error(struct span_record *rec, __u64 itab, __u64 data) {
    if (!itab)
        return;
    rec->flags |= SPAN_F_TRANSPORT_ERROR;
    __u32 type = itab_type(itab);
    db_call_of(rec)->error_type = type;
    db_error_code(rec, type, data);
}

/* The operation a call names by itself: up to 8 bytes of text, as a constant word. */
static __always_inline void db_set_operation(struct span_record *rec, __u64 word) {
    __builtin_memcpy(rec->method, &word, sizeof(word));
}

#endif
