"""The Prometheus text exposition format (version 0.0.4): what /metrics answers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gotrace.metrics.histograms import Histogram
from gotrace.metrics.red import Labels

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class CounterFamily:
    name: str  # ends in _total
    help: str
    samples: Sequence[tuple[Labels, int]]


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels_text(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape_label_value(value)}"'
                          for name, value in labels) + "}"


def _number(value: float) -> str:
    return "+Inf" if value == math.inf else repr(float(value))


def _header(name: str, help_text: str, kind: str) -> list[str]:
    help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def counter_lines(family: CounterFamily) -> list[str]:
    lines = _header(family.name, family.help, "counter")
    lines.extend(f"{family.name}{_labels_text(labels)} {value}"
                 for labels, value in family.samples)
    return lines


def histogram_lines(name: str, help_text: str, bounds: Sequence[float],
                    series: Sequence[tuple[Labels, Histogram]]) -> list[str]:
    """A histogram family: cumulative `_bucket` lines ending with le="+Inf", `_sum`, `_count`."""
    lines = _header(name, help_text, "histogram")
    for labels, histogram in series:
        cumulative = 0
        for bound, count in zip((*bounds, math.inf), histogram.buckets, strict=True):
            cumulative += count
            le = _labels_text((*labels, ("le", _number(bound))))
            lines.append(f"{name}_bucket{le} {cumulative}")
        lines.append(f"{name}_sum{_labels_text(labels)} {_number(histogram.sum)}")
        lines.append(f"{name}_count{_labels_text(labels)} {histogram.count}")
    return lines


def document(lines: Sequence[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()
