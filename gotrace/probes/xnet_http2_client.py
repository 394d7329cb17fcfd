"""golang.org/x/net/http2 client (its own Transport, h2c with AllowHTTP included): CLIENT
spans of the net/http client probe's shape; three uprobe hits per request, like net/http's."""

from __future__ import annotations

from gotrace.probes.base import Attachment, Probe

ROUND_TRIP = "golang.org/x/net/http2.(*Transport).RoundTripOpt"
CONN_ROUND_TRIP = "golang.org/x/net/http2.(*ClientConn).roundTrip"

PROBE = Probe(
    library="xnet_http2_client",
    attachments=(
        Attachment(ROUND_TRIP, "entry", "xnet_http2_client_entry"),
        Attachment(CONN_ROUND_TRIP, "entry", "xnet_http2_client_conn"),
        Attachment(ROUND_TRIP, "return", "xnet_http2_client_return"),
    ),
    fields=(
        "golang.org/x/net/http2.ClientConn.tconn",
        "golang.org/x/net/http2.clientStream.ID",
        "golang.org/x/net/http2.transportResponseBody.cs",
        "golang.org/x/net/http2.gzipReader.body",
    ),
    types=("golang.org/x/net/http2.transportResponseBody",
           "*golang.org/x/net/http2.gzipReader"),
    # The request, the response and the span's shape are the net/http client probe's.
    requires=("nethttp_client",),
)
