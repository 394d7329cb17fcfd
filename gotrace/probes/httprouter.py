"""julienschmidt/httprouter: http.route by matching the request's path in the router's tree
(gotrace/probes/route_tree.py); one uprobe hit per request."""

from __future__ import annotations

from gotrace.probes.base import Attachment, Probe

NODE = "github.com/julienschmidt/httprouter.node"

PROBE = Probe(
    library="httprouter",
    attachments=(Attachment("github.com/julienschmidt/httprouter.(*node).getValue", "entry",
                            "httprouter_route"),),
    fields=tuple(f"{NODE}.{name}"
                 for name in ("path", "wildChild", "nType", "indices", "children", "handle")),
    # The route belongs to the net/http server probe's span (bpf/route_site.h).
    requires=("nethttp_server",),
)
