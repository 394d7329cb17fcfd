"""pgx v4's own API: one CLIENT span per Query (QueryRow), Exec (begin, commit and rollback
too) and batch (bpf/pgx.c; two hits per call)."""

from __future__ import annotations

from collections.abc import Collection

from gotrace.probes.base import Attachment, Probe
from gotrace.probes.db_attributes import (
    PGCONN_ERROR,
    PGCONN_ERROR_CODE,
    DatabaseShape,
)
from gotrace.resolve.layout import Layout

PGX = "github.com/jackc/pgx/v4"
POSTGRESQL = DatabaseShape("postgresql")
CALLS = (f"{PGX}.(*Conn).Query", f"{PGX}.(*Conn).Exec", f"{PGX}.(*Conn).SendBatch")
DRIVER_PACKAGE = f"{PGX}/stdlib."  # database/sql's pgx driver


def native_use(layout: Layout) -> bool:
    """Whether the program calls pgx's own API, not only through database/sql: the calls'
    callers outside pgx (symbols/pgx.toml) are not all the driver's."""
    return any(not caller.startswith(DRIVER_PACKAGE)
               for name in CALLS if (fn := layout.functions.get(name))
               for caller in fn.callers)


def for_binary(probe: Probe, layout: Layout,
               _opt_in: Collection[str]) -> tuple[Probe | None, dict[str, int]]:
    """The probe where the program uses pgx's own API. Through database/sql alone its calls
    are database/sql's spans, and its probes would only add two hits to each."""
    return (probe if native_use(layout) else None), {}

PROBE = Probe(
    library="pgx",
    attachments=(
        Attachment(f"{PGX}.(*Conn).Query", "entry", "pgx_call"),
        Attachment(f"{PGX}.(*Conn).Query", "return", "pgx_query_return"),
        Attachment(f"{PGX}.(*Conn).Exec", "entry", "pgx_call"),
        Attachment(f"{PGX}.(*Conn).Exec", "return", "pgx_exec_return"),
        Attachment(f"{PGX}.(*Conn).SendBatch", "entry", "pgx_send_batch", optional=True),
        Attachment(f"{PGX}.(*batchResults).Close", "return", "pgx_batch_closed", optional=True),
    ),
    fields=(
        f"{PGX}.Conn.pgConn", "github.com/jackc/pgconn.PgConn.conn", f"{PGX}.connRows.err",
        f"{PGX}.connRows.sql", f"{PGX}.Batch.items", f"{PGX}.batchItem.query",
        "internal/abi.ITab.Hash",
    ),
    optional_fields=(*PGCONN_ERROR_CODE, "github.com/jackc/pgconn.PgConn.config",
                     "github.com/jackc/pgconn.Config.Database"),
    types=(f"*{PGX}.connRows",),
    optional_types=PGCONN_ERROR,
    variant=for_binary,
    record_kinds=(POSTGRESQL.span_shape("PGX_CLIENT"),),
)
