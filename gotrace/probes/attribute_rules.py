"""A span's own attributes (SpanShape.request_attributes) declared as rules, each an attribute
taken from one field of the record as it is: gotrace.native applies them without calling
Python for every span, and RuleAttributes itself, applying them in Python, is the reference
that the compiled decoder's tests compare with."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gotrace.records import SpanRecord, text
from gotrace.spans import AttributeValue


class When(enum.IntEnum):
    """When an integer field gives its attribute (gotrace/native/decode.c has the same)."""

    ALWAYS = 0
    POSITIVE = 1
    NON_NEGATIVE = 2
    NON_ZERO = 3


@dataclass(frozen=True)
class AttributeRule:
    name: str  # the attribute
    field: str  # the record's field (gotrace/record_view.py RecordFields)
    text: bool = False  # a char field, as text up to its first NUL (always given)
    when: When = When.ALWAYS  # an integer field's condition on its value
    flags: int = 0  # only when the record has every one of these SPAN_F_* flags
    query: bool = False  # only when query strings are exported (--include-query)

    def __post_init__(self) -> None:
        if self.text and self.when != When.ALWAYS:
            raise ValueError(f"{self.name}: a text field has no condition on its value")


def _holds(when: When, value: int) -> bool:
    if when == When.POSITIVE:
        return value > 0
    if when == When.NON_NEGATIVE:
        return value >= 0
    if when == When.NON_ZERO:
        return value != 0
    return True


class RuleAttributes:
    """request_attributes made of rules, in their order."""

    def __init__(self, *rules: AttributeRule) -> None:
        self.rules = rules
        # What gotrace/native/decode.c parses, once: (name, field, text, when, flags, query).
        self.native_rules = tuple((r.name, r.field, r.text, int(r.when), r.flags, r.query)
                                  for r in rules)

    def __call__(self, rec: SpanRecord, with_query: bool) -> dict[str, AttributeValue]:
        attrs: dict[str, AttributeValue] = {}
        flags = rec.flags
        for rule in self.rules:
            if (rule.query and not with_query) or flags & rule.flags != rule.flags:
                continue
            value = getattr(rec, rule.field)
            if rule.text:
                attrs[rule.name] = text(value)
            elif _holds(rule.when, value):
                attrs[rule.name] = value
        return attrs
