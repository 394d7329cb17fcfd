/* echo's route: (*Router).Find(r, method, path string, c Context) runs once per request on
 * the goroutine of the request's handler: path in RDI and RSI, c's data (an *echo.context)
 * in R9. Find sets c.path to the matched route's path as registered, groups included, and
 * leaves it the request's path (the string Find was given) when no route matched: that one
 * is not a route (bpf/route.h not_route). c goes back to echo's pool once the request is
 * handled, so the route is read when the response is complete, while c.request is still
 * ours. One uprobe hit per request.
 */

#include "counters.h"
#include "route_site.h"

int echo_route(struct pt_regs *ctx) {
    count_hit(PROBE_ECHO_ROUTE);
    struct route_source src = {
        .object = GO_ARG7(ctx),
        .not_route = GO_ARG4(ctx),
        .route_off = OFF_github_com_labstack_echo_v4_context_path,
        .parts = 1,
        .names_off = OFF_github_com_labstack_echo_v4_context_request,
        .names = ROUTE_NAMES_REQUEST,
    };
    route_later(GO_G(ctx), src);
    return 0;
}
