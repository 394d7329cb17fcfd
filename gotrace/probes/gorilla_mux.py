"""gorilla/mux: http.route from the matched route's path template; one uprobe hit per matched
request."""

from __future__ import annotations

from gotrace.probes.base import Attachment, Probe

PROBE = Probe(
    library="gorilla_mux",
    attachments=(
        Attachment("github.com/gorilla/mux.requestWithRoute", "entry", "gorilla_mux_route"),
    ),
    fields=("github.com/gorilla/mux.Route.routeConf", "github.com/gorilla/mux.routeConf.regexp",
            "github.com/gorilla/mux.routeRegexpGroup.path",
            "github.com/gorilla/mux.routeRegexp.template"),
    # The route belongs to the net/http server probe's span (bpf/route_site.h).
    requires=("nethttp_server",),
)
