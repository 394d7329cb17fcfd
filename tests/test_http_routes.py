"""End to end: http.route from the routers Go services use (gin, chi, gorilla/mux, httprouter
and echo, Debian's packages, built into testapps/routers), with static, parameterized,
catch-all and mounted routes, the routers' own 404 and 405 answers and a middleware that
replaces the request; on the oldest and newest Go, stripped (every Go, stripped and not, with
GOTRACE_MATRIX=full). The expected route of each request is what the router itself reported
to the handler (the X-Route header); the routers' own answers have none."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import Counter

import pytest
from conftest import FULL
from otlp_receiver import OtlpReceiver
from tracing import gotrace, otlp_args, probe_hits, routers, stop

from testapps import matrix

# (method, path): every route shape of testapps/routers, and the routers' own 404 and 405.
REQUESTS = (
    ("GET", "/health"), ("GET", "/users/42"), ("GET", "/users/missing"),
    ("GET", "/users/42/orders/7"), ("GET", "/files/a/b.txt"), ("GET", "/api/v1/items/9"),
    ("POST", "/api/v1/items"), ("GET", "/fail"), ("GET", "/nope"), ("GET", "/api/nope"),
    ("DELETE", "/health"), ("POST", "/users/42"), ("GET", "/api/v1/items"),
)
# The route probe's hits for these requests: one per request, except chi (one per router
# level the request reaches: /api/... goes through the mounted /api and /v1 routers),
# gorilla/mux (only requests it matched) and httprouter (405 answers look the path up in
# every method's tree; the first look-up is the request's).
ROUTE_PROGRAMS = {"gin": "gin_route", "chi": "chi_route", "gorilla": "gorilla_mux_route",
                  "httprouter": "httprouter_route", "echo": "echo_route"}


def routers_cells() -> list[matrix.Cell]:
    """The oldest and newest Go the five libraries build with: stripped on the oldest, PIE
    stripped on the newest; with GOTRACE_MATRIX=full, every Go, stripped and not."""
    gos = matrix.routers_go(matrix.go_versions())
    if FULL:
        return [matrix.Cell("routers", go, variant) for go in gos
                for variant in ("plain", "stripped")]
    return [matrix.Cell("routers", gos[0], "stripped"),
            matrix.Cell("routers", gos[-1], "pie-stripped")]


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as r:
        yield r


def send(addr: str, method: str, path: str) -> tuple[int, str | None]:
    """(status, the X-Route the handler answered with, None when the router answered)."""
    data = b"{}" if method == "POST" else None
    request = urllib.request.Request(f"http://{addr}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("X-Route")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("X-Route")


@pytest.mark.parametrize("routers_cell", routers_cells(), ids=str)
def test_route_templates_of_every_router(tmp_path, receiver, routers_cell):
    receiver.clear()
    with routers(matrix.build(routers_cell)) as (server, addrs), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--stats",
                    *otlp_args(receiver)) as tracer:
        expected = {}
        for router, addr in addrs.items():
            port = int(addr.rsplit(":", 1)[1])
            for method, path in REQUESTS:
                expected[(port, method, path)] = (router, *send(addr, method, path))
        spans = receiver.wait_for(len(expected), timeout=30)
        _, err = stop(tracer)
    assert len(spans) == len(expected), err
    answered_by_router = Counter()
    for span in spans:
        attrs = span["attributes"]
        key = (attrs["server.port"], attrs["http.request.method"], attrs["url.path"])
        router, status, route = expected.pop(key)
        assert attrs["http.response.status_code"] == status, (router, key)
        assert attrs.get("http.route") == route, (router, key, status)
        assert span["name"] == (f"{key[1]} {route}" if route else key[1]), (router, key)
        answered_by_router[router] += route is None
    assert not expected
    # Each router answered its 404s and 405s itself (no route), the handlers the rest.
    assert set(answered_by_router.values()) == {5}, answered_by_router
    hits = probe_hits(err)
    requests = len(REQUESTS)
    assert requests <= hits["gin_route"] <= requests + 2
    assert requests <= hits["echo_route"] <= requests + 2
    assert requests - 5 <= hits["gorilla_mux_route"] <= requests - 5 + 2  # matched ones only
    assert requests <= hits["httprouter_route"] <= 2 * requests
    assert requests < hits["chi_route"] <= 3 * requests  # mounted routers: one per level
