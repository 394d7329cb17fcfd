/* gorilla/mux's route: (*Router).ServeHTTP calls requestWithRoute(r, route *Route) once it
 * matched a route, on the goroutine of the request's handler, route in RBX. A route and its
 * path template do not change once registered, so the template is referenced there
 * (bpf/route_site.h route_now): route.regexp.path.template, sub-routers' prefixes
 * included. A request no route matched (its 404 and 405) has none. One uprobe hit per
 * matched request.
 */

#include "counters.h"
#include "route_site.h"

int gorilla_mux_route(struct pt_regs *ctx) {
    count_hit(PROBE_GORILLA_MUX_ROUTE);
    __u64 path = read_u64(GO_ARG2(ctx) + OFF_github_com_gorilla_mux_Route_routeConf
                          + OFF_github_com_gorilla_mux_routeConf_regexp
                          + OFF_github_com_gorilla_mux_routeRegexpGroup_path);
    if (path)
        route_now(GO_G(ctx), path + OFF_github_com_gorilla_mux_routeRegexp_template);
    return 0;
}
