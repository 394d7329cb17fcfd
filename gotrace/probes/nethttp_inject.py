"""--inject-traceparent (opt-in): a Traceparent header line in outgoing HTTP/1 requests,
written into the connection's buffer by bpf/nethttp_inject.c, with the context the HTTP
client probe hands over (bpf/inject_handoff.h). Makes no spans of its own."""

from __future__ import annotations

from gotrace.probes.base import Attachment, Probe
from gotrace.probes.features import TRACEPARENT

REQUEST_WRITE = "net/http.(*Request).write"
WRITE_SUBSET = "net/http.Header.writeSubset"

PROBE = Probe(
    library="nethttp_inject",
    attachments=(
        Attachment(REQUEST_WRITE, "entry", "http_inject_request_write"),
        Attachment(WRITE_SUBSET, "entry", "http_inject_header"),
    ),
    fields=("net/http.transportRequest.Request", "bufio.Writer.buf", "bufio.Writer.n",
            "internal/abi.ITab.Hash", "net/http.Request.Header"),
    types=("*bufio.Writer",),
    opt_in=True,
    requires=("nethttp_client",),
    features=(TRACEPARENT,),  # to leave a request's own traceparent alone
)
