"""Building blocks of the page: elements whose text is always escaped, and human units.

Span names, routes and service names come from the traced programs, so nothing taken from a
capture may reach the page unescaped: `element` escapes every attribute value and every child
that is not already `Markup` (the output of another `element`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping

AttrValue = str | int | float | bool | None


class Markup(str):
    """HTML produced by `element`: inserted as is where plain strings are escaped."""

    __slots__ = ()


def _attribute(value: str | int | float | bool) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return html.escape(str(value))


def _attributes(attrs: Mapping[str, AttrValue] | None) -> str:
    """` name="value"` for each attribute; those whose value is None are left out."""
    return "".join(f' {name}="{_attribute(value)}"'
                   for name, value in (attrs or {}).items() if value is not None)


def element(tag: str, attrs: Mapping[str, AttrValue] | None = None, *children: str) -> Markup:
    """`<tag attrs>children</tag>`."""
    body = "".join(child if isinstance(child, Markup) else html.escape(child)
                   for child in children)
    return Markup(f"<{tag}{_attributes(attrs)}>{body}</{tag}>")


def void_element(tag: str, attrs: Mapping[str, AttrValue]) -> Markup:
    """An element that has no end tag in HTML (meta)."""
    return Markup(f"<{tag}{_attributes(attrs)}>")


def format_duration(ns: float) -> str:
    """At most three significant figures, in the largest unit that keeps the number at least
    1, without trailing zeros: "850 µs", "12.3 ms", "2 s"."""
    unit, value = "ns", float(ns)
    for name, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale * 0.9995:  # 999.6 µs is "1 ms", not "1000 µs"
            unit, value = name, ns / scale
            break
    digits = 2 if value < 10 else 1 if value < 100 else 0
    number = f"{value:.{digits}f}"
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return f"{number} {unit}"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
