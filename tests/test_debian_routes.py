"""Route templates on real Go programs from Debian's archive, traced as installed (Go 1.19,
stripped, no module versions), one per router family:

- aptly 1.5 (`aptly api serve`): gin 1.8.1, routes in a group, UseRawPath;
- docker-registry 2.8: gorilla/mux 1.8.0, templates with long regular expressions
  (reported without them: `{name}`), StrictSlash redirects;
- prometheus-pushgateway 1.5: prometheus/common's route over httprouter 1.3.0, which keeps no
  template (matched in its tree), with a second router behind http.StripPrefix.

Every request's server span must carry the template the program's router matched, and none
where no route did.
"""

from __future__ import annotations

import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from debian_programs import (
    APTLY_REQUESTS,
    PUSHGATEWAY_REQUESTS,
    PUSHGATEWAY_STRIPPED_REQUESTS,
    REGISTRY_REQUESTS,
    RoutedRequest,
    aptly,
    pushgateway,
    registry,
    registry_push,
    send_all,
)
from otlp_receiver import OtlpReceiver
from tracing import gotrace, otlp_args, probe_hits, stop

from gotrace.probes.http_routes import without_expressions

Program = Callable[[Path], AbstractContextManager[tuple[object, str]]]
# (program, what to send it, the route probe its requests hit)
PROGRAMS: dict[str, tuple[Program, Callable[[str], list[RoutedRequest]], str]] = {
    "aptly-gin": (aptly, lambda addr: send_all(addr, APTLY_REQUESTS), "gin_route"),
    "docker-registry-gorilla": (
        registry, lambda addr: send_all(addr, REGISTRY_REQUESTS) + registry_push(addr),
        "gorilla_mux_route"),
    "pushgateway-httprouter": (
        pushgateway,
        lambda addr: send_all(addr, PUSHGATEWAY_REQUESTS + PUSHGATEWAY_STRIPPED_REQUESTS),
        "httprouter_route"),
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.mark.parametrize("program", PROGRAMS)
def test_route_templates_of_a_debian_program(tmp_path, receiver, program):
    start, requests_of, route_probe = PROGRAMS[program]
    receiver.clear()
    with start(tmp_path) as (proc, addr), \
            gotrace(tmp_path, "trace", "--pid", str(proc.pid), "--stats",
                    *otlp_args(receiver)) as tracer:
        sent = requests_of(addr)
        spans = receiver.wait_for(len(sent), timeout=30)
        _, err = stop(tracer)
    port = int(addr.rsplit(":", 1)[1])
    got = Counter((s["attributes"]["http.request.method"], s["attributes"]["url.path"],
                   s["attributes"].get("http.route"), s["name"])
                  for s in spans if s["kind"] == "SERVER"
                  and s["attributes"].get("server.port") == port)
    expected = Counter()
    for request in sent:
        route = without_expressions(request.route) if request.route else None
        name = f"{request.method} {route}" if route else request.method
        expected[(request.method, urllib.parse.unquote(request.path), route, name)] += 1
    assert got == expected, err
    assert probe_hits(err)[route_probe] >= sum(1 for r in sent if r.route)
