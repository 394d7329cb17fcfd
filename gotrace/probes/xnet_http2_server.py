"""golang.org/x/net/http2 server (h2c, ServeConn, ConfigureServer): the requests of programs
that serve HTTP/2 with that package, as HTTP SERVER spans of the net/http server probe's
shape; two uprobe hits per request."""

from __future__ import annotations

from gotrace.probes.base import Attachment, Probe

RUN_HANDLER = "golang.org/x/net/http2.(*serverConn).runHandler"
HANDLER_DONE = "golang.org/x/net/http2.(*responseWriter).handlerDone"

PROBE = Probe(
    library="xnet_http2_server",
    attachments=(
        Attachment(RUN_HANDLER, "entry", "xnet_http2_server_entry"),
        Attachment(HANDLER_DONE, "entry", "xnet_http2_server_end"),
    ),
    fields=(
        "golang.org/x/net/http2.responseWriter.rws",
        "golang.org/x/net/http2.responseWriterState.stream",
        "golang.org/x/net/http2.responseWriterState.req",
        "golang.org/x/net/http2.responseWriterState.conn",
        "golang.org/x/net/http2.responseWriterState.status",
        "golang.org/x/net/http2.responseWriterState.wroteBytes",
        "golang.org/x/net/http2.stream.id",
        "golang.org/x/net/http2.serverConn.conn",
    ),
    optional_fields=("runtime.g.parentGoid",),
    # The request, its traceparent and the span's shape are the net/http server probe's.
    requires=("nethttp_server",),
)
