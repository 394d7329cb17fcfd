"""Redis through gopkg.in/redis.v5: one CLIENT span per command and per pipeline or
transaction (bpf/redis.c; two hits each). The command's arguments are never read: the query
text is the command with a '?' per argument."""

from __future__ import annotations

from gotrace.probes.base import Attachment, Probe
from gotrace.probes.db_attributes import DatabaseShape, DbCall
from gotrace.probes.http_attributes import (
    connection_attributes,
    connection_port,
    server_attributes,
    split_host_port,
)
from gotrace.probes.sql_text import redis_query_text
from gotrace.records import SpanRecord, text
from gotrace.spans import AttributeValue

REDIS = "gopkg.in/redis%2ev5"
V5 = "gopkg.in/redis.v5"
MAX_SHOWN_ARGUMENTS = 16  # a command's '?'s; "..." for more (MSET may have thousands)
PIPELINES = frozenset({"PIPELINE", "MULTI"})  # the probe's operations for a pipeline


class RedisShape(DatabaseShape):
    """Redis spans: the server as the client was configured (its Addr), the command's text
    without its arguments' values."""

    def __init__(self) -> None:
        super().__init__("redis")

    @staticmethod
    def server_attributes(rec: SpanRecord) -> dict[str, AttributeValue]:
        attrs = server_attributes(*split_host_port(text(rec.host), scheme=""))
        attrs.update(connection_attributes(rec, "peer"))
        return attrs

    @staticmethod
    def status_code(rec: SpanRecord) -> str | None:
        """A reply error's code: the first word of its text when it is one (WRONGTYPE, ERR);
        nothing else of the text is kept."""
        word = text(rec.query).partition(" ")[0]
        return word if word.isalpha() and word.isupper() else None

    def request_attributes(self, rec: SpanRecord, with_query: bool
                           ) -> dict[str, AttributeValue]:
        attrs: dict[str, AttributeValue] = {"go.goroutine.id": rec.goid}
        command = text(rec.method).upper()
        if command and command not in PIPELINES:
            count = DbCall(rec).arg_count
            query = redis_query_text(command, min(count, MAX_SHOWN_ARGUMENTS))
            attrs["db.query.text"] = query + " ..." if count > MAX_SHOWN_ARGUMENTS else query
        attrs.update(connection_port(rec, "local"))
        return attrs


SHAPE = RedisShape()

PROBE = Probe(
    library="redis",
    attachments=(
        Attachment(f"{REDIS}.(*baseClient).defaultProcess", "entry", "redis_command"),
        Attachment(f"{REDIS}.(*baseClient).defaultProcess", "return", "redis_command_return"),
        Attachment(f"{REDIS}.(*baseClient).pipelineProcessCmds", "entry", "redis_pipeline_begins",
                   optional=True),
        Attachment(f"{REDIS}.(*baseClient).pipelineProcessCmds", "return",
                   "redis_pipeline_return", optional=True),
        Attachment(f"{REDIS}.(*baseClient).txPipelineProcessCmds", "entry",
                   "redis_transaction_begins", optional=True),
        Attachment(f"{REDIS}.(*baseClient).txPipelineProcessCmds", "return",
                   "redis_pipeline_return", optional=True),
    ),
    fields=(
        f"{V5}.baseClient.opt", f"{V5}.Options.Addr", f"{V5}.Options.DB",
        f"{V5}.baseCmd._args",
        f"{V5}/internal/pool.Conn.netConn", "internal/abi.ITab.Hash",
    ),
    types=(f"{V5}/internal.RedisError",),
    record_kinds=(SHAPE.span_shape("REDIS_CLIENT"),),
)
