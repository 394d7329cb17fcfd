/* gin's route: (*Engine).handleHTTPRequest(engine, c *Context) runs once per request, on the
 * goroutine of the request's handler, with c in RBX. Before it calls the handlers gin sets
 * c.fullPath to the matched route's template, groups included ("" when no route matched:
 * its 404 and 405). c goes back to gin's pool once the request is handled, so the route is
 * read when the response is complete, while c.Request is still ours (bpf/route.h). One
 * uprobe hit per request.
 */

#include "counters.h"
#include "route_site.h"

int gin_route(struct pt_regs *ctx) {
    count_hit(PROBE_GIN_ROUTE);
    struct route_source src = {
        .object = GO_ARG2(ctx),
        .route_off = OFF_github_com_gin_gonic_gin_Context_fullPath,
        .parts = 1,
        .names_off = OFF_github_com_gin_gonic_gin_Context_Request,
        .names = ROUTE_NAMES_REQUEST,
    };
    route_later(GO_G(ctx), src);
    return 0;
}
