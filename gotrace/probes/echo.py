"""echo (v4): http.route from the route echo matched (its context's Path); one uprobe hit per
request."""

from __future__ import annotations

from gotrace.probes.base import Attachment, Probe
from gotrace.probes.features import REQUEST_CONTEXT

PROBE = Probe(
    library="echo",
    attachments=(Attachment("github.com/labstack/echo/v4.(*Router).Find", "entry", "echo_route"),),
    fields=("github.com/labstack/echo/v4.context.path",
            "github.com/labstack/echo/v4.context.request"),
    features=(REQUEST_CONTEXT,),
    # The route belongs to the net/http server probe's span (bpf/route_site.h).
    requires=("nethttp_server",),
)
