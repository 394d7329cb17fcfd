"""chi: http.route from the patterns chi matched (its RoutePattern); one uprobe hit per router
level of a request (a flat router: one)."""

from __future__ import annotations

import dataclasses

from gotrace.probes.base import Attachment, Probe
from gotrace.probes.features import REQUEST_CONTEXT

PROBE = Probe(
    library="chi",
    attachments=(Attachment("github.com/go-chi/chi/v5.(*node).FindRoute", "entry", "chi_route"),),
    fields=("github.com/go-chi/chi/v5.Context.RoutePatterns",
            "github.com/go-chi/chi/v5.Context.parentCtx"),
    # parentCtx is how a pooled routing context names its request: without the context
    # layout, chi's routes cannot be told apart from another request's.
    features=(dataclasses.replace(REQUEST_CONTEXT, required=True),),
    # The route belongs to the net/http server probe's span (bpf/route_site.h).
    requires=("nethttp_server",),
)
