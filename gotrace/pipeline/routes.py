"""Route templates inferred from URL paths, for HTTP server spans that no router named
(opt-in: `--infer-routes`).

A span with an `http.route` (a ServeMux pattern, a router's template) is left alone. For one
without, each path segment that looks like an identifier becomes `{id}`, so that
`/users/42/orders/7` and `/users/43/orders/8` share the route `/users/{id}/orders/{id}`: the
span gets that `http.route`, `gotrace.route.inferred = true` and the name `GET /users/{id}/...`.

A segment is an identifier (see is_identifier) when it is
- a number: digits with no letters (`42`, `3.14`, `2024-01-31`, `1.21.0`);
- a UUID, or hexadecimal: 16 or more hex digits (`sha256` sums, trace ids), or 8 or more
  with both digits and letters (`5f3a9c1e`);
- anything with a run of four or more digits (`INV-000123`, `2024-01-31T10:00:00Z`,
  `report_2023.pdf`);
- a token in which letters and digits alternate (four times, or twice in 16 characters or
  more: base62/base64url keys, `app.3f2a9c1b.js`);
- an e-mail address.
Plain words stay, also with a digit here and there (`v1`, `oauth2`, `i18n`, `h2c`,
`how-to-install-go-1-21`).

A service has at most max_routes inferred routes, the first ones seen: a span whose
template would be one more gets OTHER_ROUTE, counted in `folded`. A 404 answer makes no
route (it takes one another answer made, else OTHER_ROUTE): the random paths of scanners
would otherwise fill the cap before the service's own routes are seen. The templates of
recent paths are cached (a bounded LRU), so a repeated path costs a dictionary look-up.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from gotrace.spans import AttributeValue, SharedAttributes, Span

PLACEHOLDER = "{id}"
OTHER_ROUTE = "/{other}"  # every span of a service past its cap
INFERRED = "gotrace.route.inferred"
ROUTE = "http.route"
PATH = "url.path"
STATUS = "http.response.status_code"
NOT_FOUND = 404  # makes no route of its own
DEFAULT_MAX_ROUTES = 100
PATH_CACHE_SIZE = 8192  # paths whose template is remembered (least recently used go first)
_MAX_NAMED = 4096  # (shared attributes, name, route) combinations kept; then forgotten at once

_DIGIT = re.compile(r"[0-9]")
_LETTER = re.compile(r"[A-Za-z]")
_DIGIT_RUN = re.compile(r"[0-9]{4}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SWITCH = re.compile(r"(?=[A-Za-z][0-9]|[0-9][A-Za-z])")  # where letters and digits meet
_EMAIL = re.compile(r"[^@\s/]+@[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def is_identifier(segment: str) -> bool:
    """Whether a path segment looks like an id rather than a word (see the module's doc)."""
    if "@" in segment and _EMAIL.fullmatch(segment) is not None:
        return True
    if _DIGIT.search(segment) is None:
        return len(segment) >= 16 and _HEX.fullmatch(segment) is not None
    if _LETTER.search(segment) is None or _DIGIT_RUN.search(segment) is not None:
        return True
    if _HEX.fullmatch(segment) is not None:
        return len(segment) >= 8
    if _UUID.fullmatch(segment) is not None:
        return True
    switches = len(_SWITCH.findall(segment))
    return switches >= 4 or (switches >= 2 and len(segment) >= 16)


def infer_template(path: str) -> str:
    """The path with every identifier segment replaced by PLACEHOLDER."""
    return "/".join(PLACEHOLDER if is_identifier(segment) else segment
                    for segment in path.split("/"))


class RouteInference:
    """Gives decoded HTTP server spans without a route an inferred one (see the module's
    doc). Not thread-safe: the tracer's decoding thread calls apply."""

    def __init__(self, max_routes: int = DEFAULT_MAX_ROUTES,
                 cache_size: int = PATH_CACHE_SIZE) -> None:
        self.max_routes = max_routes
        self._template = functools.lru_cache(maxsize=cache_size)(infer_template)
        self.routes: dict[str, set[str]] = {}  # service -> the inferred routes it has
        self.folded: dict[str, int] = {}  # service -> spans given OTHER_ROUTE past the cap
        # (the span's shared attributes, its name, the route) -> (its new name, new shared
        # attributes): the spans of one endpoint and route share them, as decoding made them
        # share the endpoint's (and exporters their encoding).
        self._named: dict[tuple[SharedAttributes, str, str], tuple[str, SharedAttributes]] = {}

    def apply(self, spans: Iterable[Span]) -> None:
        """Name each HTTP server span without an http.route by its path's template."""
        for span in spans:
            if span.kind != "SERVER":
                continue
            own = span.own_attributes
            path = own.get(PATH)
            shared = span.shared_attributes
            if not path or not isinstance(path, str) or ROUTE in shared.items or ROUTE in own:
                continue
            service = str(span.resource.attributes.get("service.name", ""))
            route = self.route(service, path, shared.items.get(STATUS) != NOT_FOUND)
            key = (shared, span.name, route)
            named = self._named.get(key)
            if named is None:
                named = self._name(key)
            span.name, span.shared_attributes = named

    def route(self, service: str, path: str, may_add: bool = True) -> str:
        """The path's template; OTHER_ROUTE when it is not one of the service's routes and
        may not become one (not may_add, or the service has max_routes already)."""
        template = self._template(path)
        known = self.routes.get(service)
        if known is None:
            known = self.routes[service] = set()
        if template in known:
            return template
        if may_add and len(known) < self.max_routes:
            known.add(template)
            return template
        self.folded[service] = self.folded.get(service, 0) + 1
        return OTHER_ROUTE

    def _name(self, key: tuple[SharedAttributes, str, str]) -> tuple[str, SharedAttributes]:
        if len(self._named) >= _MAX_NAMED:
            self._named.clear()
        shared, name, route = key
        items: dict[str, AttributeValue] = {**shared.items, ROUTE: route, INFERRED: True}
        named = self._named[key] = (f"{name} {route}", SharedAttributes(items))
        return named

    def overflow(self) -> dict[str, int]:
        """folded for every service with inferred routes (0 for most): a copy, as the
        metrics server reads it from its own thread."""
        folded = dict(self.folded)
        return {service: folded.get(service, 0) for service in list(self.routes)}

    def summary(self) -> str:
        """For --stats: the inferred routes per service, and what went past the cap."""
        if not self.routes:
            return "none"
        return ", ".join(
            f"{service or 'unknown_service'} {len(known)}"
            + (f" ({self.folded[service]} spans as {OTHER_ROUTE})"
               if self.folded.get(service) else "")
            for service, known in sorted(self.routes.items()))
