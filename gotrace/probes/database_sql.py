"""database/sql: one CLIENT span per query, exec, prepared statement execution, begin, commit
and rollback, whatever the driver (bpf/database_sql.c; two hits per call)."""

from __future__ import annotations

from gotrace.probes.base import Attachment, Probe
from gotrace.probes.db_attributes import (
    ERROR_CODE_FIELDS,
    ERROR_CODE_TYPES,
    DatabaseShape,
)

SQL = "database/sql"
ANY_DRIVER = DatabaseShape(None)  # the database is named by the driver's type
# Drivers' connectors that name the database (bpf/database_sql.c sql_read_connector).
NAMESPACE_FIELDS = ("github.com/jackc/pgx/v4/stdlib.driverConnector.name",
                    "github.com/go-sql-driver/mysql.connector.cfg",
                    "github.com/go-sql-driver/mysql.Config.DBName")
NAMESPACE_TYPES = ("*github.com/jackc/pgx/v4/stdlib.driverConnector",
                   "*github.com/go-sql-driver/mysql.connector")

# (receiver, method) -> (entry program, return program)
CALLS = {
    ("DB", "QueryContext"): ("sql_db_call", "sql_rows_return"),
    ("DB", "ExecContext"): ("sql_db_call", "sql_result_return"),
    ("Conn", "QueryContext"): ("sql_conn_call", "sql_rows_return"),
    ("Conn", "ExecContext"): ("sql_conn_call", "sql_result_return"),
    ("Tx", "QueryContext"): ("sql_tx_call", "sql_rows_return"),
    ("Tx", "ExecContext"): ("sql_tx_call", "sql_result_return"),
    ("Stmt", "QueryContext"): ("sql_stmt_call", "sql_rows_return"),
    ("Stmt", "ExecContext"): ("sql_stmt_call", "sql_result_return"),
    ("DB", "BeginTx"): ("sql_db_begin", "sql_tx_return"),
    ("Conn", "BeginTx"): ("sql_conn_begin", "sql_tx_return"),
    ("Tx", "Commit"): ("sql_commit", "sql_error_return"),
    ("Tx", "rollback"): ("sql_rollback", "sql_error_return"),
}

# Go's linker drops the methods a program never calls: each is attached where it exists.
ATTACHMENTS = tuple(
    Attachment(f"{SQL}.(*{receiver}).{method}", where, program, optional=True)
    for (receiver, method), programs in CALLS.items()
    for where, program in zip(("entry", "return"), programs, strict=True))

PROBE = Probe(
    library="database_sql",
    attachments=ATTACHMENTS,
    fields=(
        "database/sql.DB.connector", "database/sql.dsnConnector.driver",
        "database/sql.dsnConnector.dsn", "database/sql.Tx.db",
        "database/sql.driverConn.ci", "database/sql.Rows.dc",
        "database/sql.driverResult.Locker", "database/sql.Tx.dc", "database/sql.Tx.done",
        "database/sql.Stmt.query", "database/sql.Stmt.cg",
        "database/sql.Stmt.db", "internal/abi.ITab.Hash",
    ),
    # A program that never uses a Tx or a Conn may not have their types.
    optional_fields=("database/sql.Conn.dc", "database/sql.Conn.db", *ERROR_CODE_FIELDS,
                     *NAMESPACE_FIELDS),
    types=("database/sql.dsnConnector", "database/sql.driverResult"),
    optional_types=("*database/sql.Tx", "*database/sql.Conn", *ERROR_CODE_TYPES,
                    *NAMESPACE_TYPES),
    record_kinds=(ANY_DRIVER.span_shape("SQL_CLIENT"),),
)
