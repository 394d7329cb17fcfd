"""Redis through gopkg.in/redis.v5: one CLIENT span per command and per pipeline or
transaction (bpf/redis.c; two hits each). The command's arguments are never read: the query
text is the command with a '?' per argument; a pipeline's, its commands' (the first eight)."""

from __future__ import annotations

import struct

from gotrace.probes.base import Attachment, Probe
from gotrace.probes.db_attributes import DatabaseShape, DbCall
from gotrace.probes.http_attributes import (
    connection_attributes,
    connection_port,
    server_attributes,
    split_host_port,
)
from gotrace.probes.sql_text import (
    redis_batch_operation_name,
    redis_batch_query_text,
    redis_query_text,
)
from gotrace.procfs import read_memory
from gotrace.records import SpanRecord, char_field, text
from gotrace.spans import AttributeValue

REDIS = "gopkg.in/redis%2ev5"
V5 = "gopkg.in/redis.v5"
MAX_SHOWN_ARGUMENTS = 16  # a command's '?'s; "..." for more (MSET may have thousands)
PIPELINES = frozenset({"PIPELINE", "MULTI"})  # the probe's operations for a pipeline
# A pipeline's commands in the record's path field (bpf/redis.c struct redis_command_ref):
# where the name is, its length, the arguments' number.
_COMMAND_REF = struct.Struct("<QII")
MAX_COMMAND_NAME = 64
MAX_NAMES = 1024  # distinct names remembered; then forgotten all at once
_names: dict[tuple[int, int, int], str] = {}


def command_name(pid: int, address: int, length: int) -> str:
    """A command's name, read from the process once per distinct name ("" if unreadable)."""
    key = (pid, address, length)
    found = _names.get(key)
    if found is None:
        if len(_names) >= MAX_NAMES:
            _names.clear()
        data = read_memory(pid, address, length) if 0 < length <= MAX_COMMAND_NAME else None
        found = _names[key] = data.decode("utf-8", "replace") if data else ""
    return found


def pipeline_commands(rec: SpanRecord) -> list[tuple[str, int]]:
    """(name, argument count) of the pipeline's commands the record names."""
    commands = []
    for address, length, count in _COMMAND_REF.iter_unpack(char_field(rec, "path")):
        name = command_name(rec.pid, address, length) if address else ""
        if not name:
            break
        commands.append((name, count))
    return commands


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

    def operation(self, rec: SpanRecord) -> tuple[str | None, str | None]:
        """A command's name; a pipeline's "PIPELINE" or "MULTI", with its commands' name when
        they are all the same (all of them named in the record)."""
        named = text(rec.method)
        if named not in PIPELINES:
            return super().operation(rec)
        commands = pipeline_commands(rec)
        if not commands or len(commands) != DbCall(rec).batch_size:
            return named, None
        return redis_batch_operation_name([name for name, _ in commands],
                                          transaction=named == "MULTI"), None

    def request_attributes(self, rec: SpanRecord, with_query: bool
                           ) -> dict[str, AttributeValue]:
        attrs: dict[str, AttributeValue] = {"go.goroutine.id": rec.goid}
        command = text(rec.method)
        if command in PIPELINES:
            commands = pipeline_commands(rec)
            if commands:
                query = redis_batch_query_text(
                    [(name, min(count, MAX_SHOWN_ARGUMENTS)) for name, count in commands])
                more = len(commands) < DbCall(rec).batch_size
                attrs["db.query.text"] = query + "; ..." if more else query
        elif command:
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
