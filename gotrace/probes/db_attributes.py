"""OpenTelemetry database semantic conventions for the database client probes' records
(bpf/db_call.h): the database named by its driver's package, the statement's text read in
full and its literals left out, the operation and collection parsed from it, the error's
type.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gotrace.metrics.red import DurationMetric, RedMetric
from gotrace.probes.base import CLIENT_REQUEST_FIELDS, ErrorRule, SpanShape
from gotrace.probes.db_namespace import namespace
from gotrace.probes.http_attributes import connection_attributes, connection_port
from gotrace.probes.sql_text import (
    operation_and_collection,
    query_summary,
    redact_sql,
    redis_operation_name,
    span_name,
)
from gotrace.probes.type_names import package_of, type_name
from gotrace.procfs import read_memory
from gotrace.records import F_HAS_CONN, F_TRANSPORT_ERROR, SpanRecord, char_field, ip_text, text
from gotrace.spans import AttributeValue

# struct db_call, in the record's route field.
# text, driver_type, error_type, batch_size, arg_count, pool, source, source_kind
_DB_CALL = struct.Struct("<QqIIIIQQqI")

# A driver's (or client's) package -> db.system.name. A package not listed is "other_sql":
# database/sql says only that it speaks SQL.
SYSTEMS = {
    "github.com/lib/pq": "postgresql",
    "github.com/jackc/pgx": "postgresql",
    "github.com/jackc/pgconn": "postgresql",
    "github.com/go-sql-driver/mysql": "mysql",
    "github.com/mattn/go-sqlite3": "sqlite",
    "modernc.org/sqlite": "sqlite",
    "github.com/denisenkom/go-mssqldb": "microsoft.sql_server",
    "github.com/microsoft/go-mssqldb": "microsoft.sql_server",
    "github.com/sijms/go-ora": "oracle.db",
    "github.com/godror/godror": "oracle.db",
    "github.com/ClickHouse/clickhouse-go": "clickhouse",
    "github.com/ibmdb/go_ibm_db": "ibm.db2",
    "github.com/trinodb/trino-go-client": "trino",
    "gopkg.in/redis": "redis",
    "github.com/go-redis/redis": "redis",
    "github.com/redis/go-redis": "redis",
}
OTHER_SQL = "other_sql"

MAX_STATEMENT = 1 << 16  # longer text is cut here
MAX_STATEMENTS = 4096  # distinct statements remembered; then forgotten all at once
_statements: dict[tuple[int, int, int, bytes], str] = {}

# The drivers' errors that carry the database's own code (bpf/db_call.h db_error_code): read
# where the binary has the driver.
PGCONN_ERROR_CODE = ("github.com/jackc/pgconn.PgError.Code",)  # pgx's
PGCONN_ERROR = ("*github.com/jackc/pgconn.PgError",)
ERROR_CODE_FIELDS = ("github.com/lib/pq.Error.Code", *PGCONN_ERROR_CODE,
                     "github.com/go-sql-driver/mysql.MySQLError.Number")
ERROR_CODE_TYPES = ("*github.com/lib/pq.Error", *PGCONN_ERROR,
                    "*github.com/go-sql-driver/mysql.MySQLError")

DB_CLIENT_METRIC = RedMetric(
    DurationMetric("db.client.operation.duration", "Duration of database client operations."),
    ("db.system.name", "db.operation.name", "db.collection.name", "error.type"))


class DbCall:
    """The record's struct db_call."""

    __slots__ = ("arg_count", "batch_size", "driver_type", "error_type", "pool",
                 "source_address", "source_kind", "source_length", "text_address",
                 "text_length")

    def __init__(self, rec: SpanRecord) -> None:
        (self.text_address, self.text_length, self.driver_type, self.error_type,
         self.batch_size, self.arg_count, self.pool, self.source_address, self.source_length,
         self.source_kind) = _DB_CALL.unpack_from(char_field(rec, "route"))


def system_name(type_hash: int, default: str = OTHER_SQL) -> str:
    """db.system.name from the type that names the driver, by its package (or the package it
    is under: github.com/jackc/pgx/v4/stdlib is pgx's)."""
    name = type_name(type_hash)
    if name is None:
        return default
    package = package_of(name)
    while package:
        if system := SYSTEMS.get(package):
            return system
        package = package.rpartition("/")[0]
    return default


def statement(rec: SpanRecord) -> str:
    """The statement's whole text: the kernel's copy, or beyond its length the text read
    from the process (once per distinct statement), when it still begins as the copy did."""
    copy = char_field(rec, "path").partition(b"\0")[0]
    call = DbCall(rec)
    if call.text_length <= len(copy) or not call.text_address:
        return copy.decode("utf-8", "replace")
    key = (rec.pid, call.text_address, call.text_length, copy)
    found = _statements.get(key)
    if found is None:
        if len(_statements) >= MAX_STATEMENTS:
            _statements.clear()
        data = read_memory(rec.pid, call.text_address, min(call.text_length, MAX_STATEMENT))
        # The text of a statement built at run time may be gone by now: keep the copy then.
        whole = data if data is not None and data.startswith(copy) else copy
        found = _statements[key] = whole.decode("utf-8", "replace")
    return found


def connection_server(rec: SpanRecord) -> dict[str, AttributeValue]:
    """server.address/port: the server's end of the connection the call went out on; without
    one, the server its client's other calls went to (bpf/database_sql.c)."""
    if not rec.flags & F_HAS_CONN and not rec.peer_port:
        return {}
    return {"server.address": ip_text(rec.peer_addr), "server.port": rec.peer_port,
            **connection_attributes(rec, "peer")}


MYSQL_SYSTEMS = frozenset({"mysql", "mariadb"})  # their lexical rules (sql_text.py)


@dataclass(frozen=True, slots=True)
class Statement:
    """What the conventions want of a statement's text, worked out once per statement."""

    redacted: str  # db.query.text by default: no literal left
    operation: str | None
    collection: str | None
    summary: str | None


_analysed: dict[tuple[str, bool], Statement] = {}


def analysed(whole: str, mysql: bool) -> Statement:
    key = (whole, mysql)
    found = _analysed.get(key)
    if found is None:
        if len(_analysed) >= MAX_STATEMENTS:
            _analysed.clear()
        found = _analysed[key] = Statement(redact_sql(whole, mysql=mysql),
                                           *operation_and_collection(whole, mysql=mysql),
                                           query_summary(whole, mysql=mysql))
    return found


class DatabaseShape:
    """How a database client probe's records become spans: the database named by the
    driver's type (system None: database/sql) or known from the library (pgx)."""

    def __init__(self, system: str | None) -> None:
        self.system = system

    def system_of(self, rec: SpanRecord) -> str:
        return self.system or system_name(DbCall(rec).driver_type)

    def statement_of(self, rec: SpanRecord) -> Statement | None:
        """The call's statement; None for a call that names its operation (COMMIT)."""
        if text(rec.method):
            return None
        return analysed(statement(rec), self.system_of(rec) in MYSQL_SYSTEMS)

    def operation(self, rec: SpanRecord) -> tuple[str | None, str | None]:
        """(db.operation.name, db.collection.name): the operation the call names, else the
        statement's."""
        found = self.statement_of(rec)
        if found is None:
            return redis_operation_name(text(rec.method)), None
        return found.operation, found.collection

    def endpoint_attributes(self, rec: SpanRecord) -> dict[str, AttributeValue]:
        """What every call of one statement to one server shares."""
        system = self.system_of(rec)
        attrs: dict[str, AttributeValue] = {"db.system.name": system}
        call = DbCall(rec)
        if name := namespace(rec.pid, call.source_kind, call.source_address,
                             call.source_length, system):
            attrs["db.namespace"] = name
        op, collection = self.operation(rec)
        if op:
            attrs["db.operation.name"] = op
        if collection:
            attrs["db.collection.name"] = collection
        found = self.statement_of(rec)
        if found is not None and found.summary:
            attrs["db.query.summary"] = found.summary
        if call.batch_size > 1:
            attrs["db.operation.batch.size"] = call.batch_size
        if rec.flags & F_TRANSPORT_ERROR:
            code = self.status_code(rec)
            if code:
                attrs["db.response.status_code"] = code
            attrs["error.type"] = code or type_name(DbCall(rec).error_type) or "_OTHER"
        attrs.update(self.server_attributes(rec))
        return attrs

    @staticmethod
    def server_attributes(rec: SpanRecord) -> dict[str, AttributeValue]:
        return connection_server(rec)

    @staticmethod
    def status_code(rec: SpanRecord) -> str | None:
        """db.response.status_code of a failed call: the database's code for the error (a
        SQLSTATE, a MySQL error number), when the driver's error carries one; error.type
        is that code too, else the error's Go type."""
        return str(rec.status) if rec.status else text(rec.scheme) or None

    def request_attributes(self, rec: SpanRecord, with_query: bool
                           ) -> dict[str, AttributeValue]:
        """The statement's text (its literals left out unless the user asked for them), the
        goroutine and this connection's own port."""
        attrs: dict[str, AttributeValue] = {"go.goroutine.id": rec.goid}
        found = self.statement_of(rec)
        if found is not None:
            attrs["db.query.text"] = statement(rec) if with_query else found.redacted
        attrs.update(connection_port(rec, "local"))
        return attrs

    def span_shape(self, record_kind: str) -> SpanShape:
        """The shape of a database client probe's records: CLIENT spans, an error when the
        call returned one, the database histogram."""
        return SpanShape(record_kind=record_kind, kind="CLIENT", name=self.span_name,
                         endpoint_attributes=self.endpoint_attributes,
                         request_attributes=self.request_attributes,
                         is_error=ErrorRule(transport=True), request_fields=CLIENT_REQUEST_FIELDS,
                         metric=DB_CLIENT_METRIC)

    def span_name(self, rec: SpanRecord) -> str:
        op, collection = self.operation(rec)
        found = self.statement_of(rec)
        return span_name(found.summary if found else None, op, collection, None,
                         self.system_of(rec))
