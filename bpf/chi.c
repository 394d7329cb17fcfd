/* chi's route: (*node).FindRoute(n, rctx *Context, method, path) runs on the goroutine of the
 * request's handler once per router level (the top router, then each mounted sub-router,
 * with the same rctx in RBX). Each level appends the pattern it matched to
 * rctx.RoutePatterns; their join is the route (gotrace/probes/http_routes.py joins them as
 * chi's RoutePattern does). rctx goes back to chi's pool once the request is handled, so the
 * patterns are read when the response is complete, while rctx's parent context is still our
 * request's (bpf/route.h). One uprobe hit per router level.
 */

#include "counters.h"
#include "route_site.h"

int chi_route(struct pt_regs *ctx) {
    count_hit(PROBE_CHI_ROUTE);
    struct route_source src = {
        .object = GO_ARG2(ctx),
        .route_off = OFF_github_com_go_chi_chi_v5_Context_RoutePatterns,
        .parts = ROUTE_PARTS,
        .names_off = OFF_github_com_go_chi_chi_v5_Context_parentCtx,
        .names = ROUTE_NAMES_CONTEXT,
    };
    route_later(GO_G(ctx), src);
    return 0;
}
