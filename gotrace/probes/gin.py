"""gin: http.route from the route gin matched (its FullPath); one uprobe hit per request."""

from __future__ import annotations

from gotrace.probes.base import Attachment, Probe
from gotrace.probes.features import REQUEST_CONTEXT

PROBE = Probe(
    library="gin",
    attachments=(
        Attachment("github.com/gin-gonic/gin.(*Engine).handleHTTPRequest", "entry", "gin_route"),
    ),
    fields=("github.com/gin-gonic/gin.Context.fullPath",
            "github.com/gin-gonic/gin.Context.Request"),
    features=(REQUEST_CONTEXT,),
    # The route belongs to the net/http server probe's span (bpf/route_site.h).
    requires=("nethttp_server",),
)
