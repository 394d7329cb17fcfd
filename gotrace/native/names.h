/* Attribute names read from Python objects (gotrace.spans' Span, SharedAttributes, Resource,
   an OTLP encoder, a SpanShape, fact sources), interned once. */
#ifndef GOTRACE_NATIVE_NAMES_H
#define GOTRACE_NATIVE_NAMES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define FASTPATH_NAMES(X) \
    X(trace_id) X(span_id) X(parent_span_id) X(name) X(kind) X(status) X(status_message) \
    X(start_time_unix_nano) X(end_time_unix_nano) X(resource) X(own_attributes) \
    X(shared_attributes) X(encoded) X(items) X(attributes) X(jsonl) \
    X(_scope) X(_strings) X(_int_heads) X(_resource) X(_common_part) X(_string_attribute) \
    X(_int_heads_of) X(_attribute) X(_span_bytes) \
    X(latest_event_ns) X(extend) X(request_attributes) X(metric) X(native_rules)

#define FASTPATH_DECLARE(n) PyObject *n;
struct fastpath_names { FASTPATH_NAMES(FASTPATH_DECLARE) };
#undef FASTPATH_DECLARE

extern struct fastpath_names NAMES;

#endif
