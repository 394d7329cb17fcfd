/* otlp_encode: the span loop of gotrace.export.otlp_wire.TraceRequestEncoder.encode_in_python
   in C. What that encoder caches stays in Python: this reads its caches (_scope, _strings,
   _int_heads) and calls its methods on a miss (_resource, _common_part, _string_attribute,
   _int_heads_of), for an attribute value of another type (_attribute), and for a span whose
   ids or times are not what the Python code's fixed sizes assume (_span_bytes). */
#include "fastpath.h"
#include "buffer.h"
#include "names.h"

#include <stdint.h>

#define TAG_REQUEST_RESOURCE_SPANS 0x0A
#define TAG_RESOURCE_SPANS_SCOPE_SPANS 0x12
#define TAG_SCOPE_SPANS_SPANS 0x12
#define TAG_ATTRIBUTE 0x4A
#define TAG_KV_KEY 0x0A
#define TAG_KV_VALUE 0x12
#define TAG_ANY_BOOL 0x10
#define TAG_ANY_INT 0x18
#define TAG_ANY_DOUBLE 0x21
#define TRACE_ID_SIZE 16
#define SPAN_ID_SIZE 8
/* Trace and span ids with their tags and lengths, and the two fixed64 times with tags. */
#define IDS_SIZE (2 + TRACE_ID_SIZE + 2 + SPAN_ID_SIZE + 9 + 9)
#define PARENT_SIZE (2 + SPAN_ID_SIZE)

typedef struct {
    PyObject *scope, *strings, *int_heads;  /* bytes, dict, dict */
    PyObject *resource, *common_part, *string_attribute, *int_heads_of, *attribute, *span_bytes;
} Encoder;

typedef struct {
    PyObject *resource;  /* a strong reference; groups are told apart by identity */
    Buf spans;
} Group;

static void encoder_clear(Encoder *e)
{
    Py_CLEAR(e->scope);
    Py_CLEAR(e->strings);
    Py_CLEAR(e->int_heads);
    Py_CLEAR(e->resource);
    Py_CLEAR(e->common_part);
    Py_CLEAR(e->string_attribute);
    Py_CLEAR(e->int_heads_of);
    Py_CLEAR(e->attribute);
    Py_CLEAR(e->span_bytes);
}

static int encoder_get(Encoder *e, PyObject *encoder)
{
    memset(e, 0, sizeof(*e));
    if (!(e->scope = PyObject_GetAttr(encoder, NAMES._scope))
        || !(e->strings = PyObject_GetAttr(encoder, NAMES._strings))
        || !(e->int_heads = PyObject_GetAttr(encoder, NAMES._int_heads))
        || !(e->resource = PyObject_GetAttr(encoder, NAMES._resource))
        || !(e->common_part = PyObject_GetAttr(encoder, NAMES._common_part))
        || !(e->string_attribute = PyObject_GetAttr(encoder, NAMES._string_attribute))
        || !(e->int_heads_of = PyObject_GetAttr(encoder, NAMES._int_heads_of))
        || !(e->attribute = PyObject_GetAttr(encoder, NAMES._attribute))
        || !(e->span_bytes = PyObject_GetAttr(encoder, NAMES._span_bytes)))
        return -1;
    if (!PyBytes_Check(e->scope) || !PyDict_Check(e->strings) || !PyDict_Check(e->int_heads)) {
        PyErr_SetString(PyExc_TypeError, "otlp_encode: the encoder's caches are not as expected");
        return -1;
    }
    return 0;
}

/* Appends bytes returned by a Python method (a new reference, or NULL on error), then
   drops it. */
static int put_result(Buf *out, PyObject *result)
{
    if (result == NULL)
        return -1;
    if (!PyBytes_Check(result)) {
        PyErr_Format(PyExc_TypeError, "otlp_encode: expected bytes, not %.100s",
                     Py_TYPE(result)->tp_name);
        Py_DECREF(result);
        return -1;
    }
    int failed = buf_put(out, PyBytes_AS_STRING(result), PyBytes_GET_SIZE(result));
    Py_DECREF(result);
    return failed;
}

/* Span.attributes' key and an AnyValue (tag and payload) as a Span.attributes field. */
static int put_key_value(Buf *out, PyObject *key, const unsigned char *any, int any_size)
{
    Py_ssize_t key_size;
    const char *key_bytes = PyUnicode_AsUTF8AndSize(key, &key_size);
    PyObject *surrogates = NULL;
    if (key_bytes == NULL) {  /* lone surrogates, written as Python's "surrogatepass" does */
        PyErr_Clear();
        surrogates = PyUnicode_AsEncodedString(key, "utf-8", "surrogatepass");
        if (surrogates == NULL)
            return -1;
        key_bytes = PyBytes_AS_STRING(surrogates);
        key_size = PyBytes_GET_SIZE(surrogates);
    }
    uint64_t kv_size = 1 + varint_size((uint64_t)key_size) + (uint64_t)key_size + 2
        + (uint64_t)any_size;
    int failed = buf_byte(out, TAG_ATTRIBUTE) || buf_varint(out, kv_size)
        || buf_byte(out, TAG_KV_KEY) || buf_varint(out, (uint64_t)key_size)
        || buf_put(out, key_bytes, key_size) || buf_byte(out, TAG_KV_VALUE)
        || buf_byte(out, (unsigned char)any_size) || buf_put(out, any, any_size);
    Py_XDECREF(surrogates);
    return failed ? -1 : 0;
}

static int put_string(Encoder *e, Buf *out, PyObject *key, PyObject *value)
{
    PyObject *cache_key = PyTuple_Pack(2, key, value);
    if (cache_key == NULL)
        return -1;
    PyObject *encoded = PyDict_GetItemWithError(e->strings, cache_key);
    Py_DECREF(cache_key);
    if (encoded != NULL) {
        Py_INCREF(encoded);
        return put_result(out, encoded);
    }
    if (PyErr_Occurred())
        return -1;
    return put_result(out, PyObject_CallFunctionObjArgs(e->string_attribute, key, value, NULL));
}

/* A non-negative int64: its key's cached heads (by the varint's length), then the varint. */
static int put_small_int(Encoder *e, Buf *out, PyObject *key, uint64_t value)
{
    PyObject *heads = PyDict_GetItemWithError(e->int_heads, key);
    if (heads != NULL) {
        Py_INCREF(heads);
    } else {
        if (PyErr_Occurred())
            return -1;
        heads = PyObject_CallOneArg(e->int_heads_of, key);
        if (heads == NULL)
            return -1;
    }
    unsigned char number[10];
    int size = varint_write(number, value);
    PyObject *head = PyTuple_Check(heads) && PyTuple_GET_SIZE(heads) > size
        ? PyTuple_GET_ITEM(heads, size) : NULL;
    int failed;
    if (head == NULL || !PyBytes_Check(head)) {
        PyErr_SetString(PyExc_TypeError, "otlp_encode: an int attribute's heads are not bytes");
        failed = -1;
    } else {
        failed = buf_put(out, PyBytes_AS_STRING(head), PyBytes_GET_SIZE(head))
            || buf_put(out, number, size);
    }
    Py_DECREF(heads);
    return failed ? -1 : 0;
}

static int put_attribute(Encoder *e, Buf *out, PyObject *key, PyObject *value)
{
    PyTypeObject *type = Py_TYPE(value);
    if (type == &PyUnicode_Type)
        return put_string(e, out, key, value);
    if (type == &PyLong_Type) {
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (n == -1 && PyErr_Occurred())
            return -1;
        if (overflow)  /* beyond int64: protobuf cannot carry it */
            return 0;
        if (n >= 0)
            return put_small_int(e, out, key, (uint64_t)n);
        if (PyUnicode_CheckExact(key)) {  /* ten bytes: the 64-bit two's complement */
            unsigned char any[11] = {TAG_ANY_INT};
            return put_key_value(out, key, any, 1 + varint_write(any + 1, (uint64_t)n));
        }
    } else if (type == &PyBool_Type && PyUnicode_CheckExact(key)) {
        unsigned char any[2] = {TAG_ANY_BOOL, value == Py_True};
        return put_key_value(out, key, any, 2);
    } else if (type == &PyFloat_Type && PyUnicode_CheckExact(key)) {
        unsigned char any[9] = {TAG_ANY_DOUBLE};
        if (PyFloat_Pack8(PyFloat_AS_DOUBLE(value), (char *)any + 1, 1) < 0)
            return -1;
        return put_key_value(out, key, any, 9);
    }
    return put_result(out, PyObject_CallFunctionObjArgs(e->attribute, key, value, NULL));
}

static int put_attributes(Encoder *e, Buf *out, PyObject *attributes)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(attributes, &pos, &key, &value)) {
        Py_INCREF(key);  /* held while Python code may run */
        Py_INCREF(value);
        int failed = put_attribute(e, out, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (failed)
            return -1;
    }
    return 0;
}

/* A span's own fields; a reference to each (NULL when not read). */
typedef struct {
    PyObject *trace_id, *span_id, *parent, *start, *end, *shared, *encoded, *own;
} SpanFields;

static void fields_clear(SpanFields *f)
{
    Py_CLEAR(f->trace_id);
    Py_CLEAR(f->span_id);
    Py_CLEAR(f->parent);
    Py_CLEAR(f->start);
    Py_CLEAR(f->end);
    Py_CLEAR(f->shared);
    Py_CLEAR(f->encoded);
    Py_CLEAR(f->own);
}

static int has_size(PyObject *id, Py_ssize_t size)
{
    return PyBytes_CheckExact(id) && PyBytes_GET_SIZE(id) == size;
}

/* Reads a span's fields: 1 when this code writes it, 0 when _span_bytes must, -1 on error. */
static int fields_get(SpanFields *f, PyObject *span, uint64_t *start, uint64_t *end)
{
    memset(f, 0, sizeof(*f));
    if (!(f->trace_id = PyObject_GetAttr(span, NAMES.trace_id))
        || !(f->span_id = PyObject_GetAttr(span, NAMES.span_id))
        || !(f->parent = PyObject_GetAttr(span, NAMES.parent_span_id))
        || !(f->start = PyObject_GetAttr(span, NAMES.start_time_unix_nano))
        || !(f->end = PyObject_GetAttr(span, NAMES.end_time_unix_nano))
        || !(f->shared = PyObject_GetAttr(span, NAMES.shared_attributes))
        || !(f->encoded = PyObject_GetAttr(f->shared, NAMES.encoded))
        || !(f->own = PyObject_GetAttr(span, NAMES.own_attributes)))
        return -1;
    if (!has_size(f->trace_id, TRACE_ID_SIZE) || !has_size(f->span_id, SPAN_ID_SIZE)
        || (f->parent != Py_None && !has_size(f->parent, SPAN_ID_SIZE))
        || !PyLong_CheckExact(f->start) || !PyLong_CheckExact(f->end)
        || !PyDict_CheckExact(f->encoded) || !PyDict_CheckExact(f->own))
        return 0;
    *start = PyLong_AsUnsignedLongLong(f->start);
    if (!PyErr_Occurred())
        *end = PyLong_AsUnsignedLongLong(f->end);
    if (PyErr_Occurred()) {  /* outside uint64: the Python code says how it fails */
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* Name, kind, shared attributes, status and flags: SharedAttributes.encoded, or _common_part. */
static PyObject *common_part(Encoder *e, PyObject *span, PyObject *encoded)
{
    PyObject *name = PyObject_GetAttr(span, NAMES.name);
    PyObject *kind = PyObject_GetAttr(span, NAMES.kind);
    PyObject *status = PyObject_GetAttr(span, NAMES.status);
    PyObject *message = PyObject_GetAttr(span, NAMES.status_message);
    PyObject *key = name && kind && status && message
        ? PyTuple_Pack(4, name, kind, status, message) : NULL;
    Py_XDECREF(name);
    Py_XDECREF(kind);
    Py_XDECREF(status);
    Py_XDECREF(message);
    if (key == NULL)
        return NULL;
    PyObject *common = PyDict_GetItemWithError(encoded, key);
    Py_DECREF(key);
    if (common != NULL)
        return Py_NewRef(common);
    if (PyErr_Occurred())
        return NULL;
    return PyObject_CallOneArg(e->common_part, span);
}

static void put_fixed64(unsigned char *out, uint64_t n)
{
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(n >> (8 * i));
}

/* ScopeSpans.spans' tag and length, and the Span; own is scratch space. */
static int put_span(Encoder *e, Buf *out, Buf *own, PyObject *span)
{
    SpanFields f;
    uint64_t start = 0, end = 0;
    int native = fields_get(&f, span, &start, &end);
    if (native <= 0) {
        fields_clear(&f);
        return native < 0 ? -1 : put_result(out, PyObject_CallOneArg(e->span_bytes, span));
    }
    PyObject *common = common_part(e, span, f.encoded);
    own->len = 0;
    int failed = common == NULL || !PyBytes_Check(common) || put_attributes(e, own, f.own);
    if (common != NULL && !PyBytes_Check(common))
        PyErr_SetString(PyExc_TypeError, "otlp_encode: a span's common part is not bytes");
    if (!failed) {
        int has_parent = f.parent != Py_None;
        uint64_t size = IDS_SIZE + (has_parent ? PARENT_SIZE : 0)
            + (uint64_t)PyBytes_GET_SIZE(common) + (uint64_t)own->len;
        failed = buf_reserve(out, 11 + (Py_ssize_t)size);
        if (!failed) {
            unsigned char *at = (unsigned char *)out->data + out->len;
            *at++ = TAG_SCOPE_SPANS_SPANS;
            at += varint_write(at, size);
            *at++ = 0x0A;  /* trace_id = 1 */
            *at++ = TRACE_ID_SIZE;
            memcpy(at, PyBytes_AS_STRING(f.trace_id), TRACE_ID_SIZE);
            at += TRACE_ID_SIZE;
            *at++ = 0x12;  /* span_id = 2 */
            *at++ = SPAN_ID_SIZE;
            memcpy(at, PyBytes_AS_STRING(f.span_id), SPAN_ID_SIZE);
            at += SPAN_ID_SIZE;
            if (has_parent) {
                *at++ = 0x22;  /* parent_span_id = 4 */
                *at++ = SPAN_ID_SIZE;
                memcpy(at, PyBytes_AS_STRING(f.parent), SPAN_ID_SIZE);
                at += SPAN_ID_SIZE;
            }
            *at++ = 0x39;  /* start_time_unix_nano = 7, fixed64 */
            put_fixed64(at, start);
            at += 8;
            *at++ = 0x41;  /* end_time_unix_nano = 8, fixed64 */
            put_fixed64(at, end);
            at += 8;
            memcpy(at, PyBytes_AS_STRING(common), (size_t)PyBytes_GET_SIZE(common));
            at += PyBytes_GET_SIZE(common);
            memcpy(at, own->data, (size_t)own->len);
            at += own->len;
            out->len = (Py_ssize_t)(at - (unsigned char *)out->data);
        }
    }
    Py_XDECREF(common);
    fields_clear(&f);
    return failed ? -1 : 0;
}

/* The group of a span's resource, by identity; a new one at the end when none is. */
static Group *group_of(Group **groups, Py_ssize_t *count, Py_ssize_t *last, PyObject *resource)
{
    if (*count && (*groups)[*last].resource == resource)
        return &(*groups)[*last];
    for (Py_ssize_t i = 0; i < *count; i++) {
        if ((*groups)[i].resource == resource) {
            *last = i;
            return &(*groups)[i];
        }
    }
    Group *grown = PyMem_Realloc(*groups, sizeof(Group) * (size_t)(*count + 1));
    if (grown == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    *groups = grown;
    *last = (*count)++;
    Group *group = &grown[*last];
    group->resource = Py_NewRef(resource);
    memset(&group->spans, 0, sizeof(group->spans));
    return group;
}

/* ResourceSpans for each group: resource, then scope_spans (the scope and the spans). */
static PyObject *request(Encoder *e, Group *groups, Py_ssize_t count)
{
    PyObject **resources = PyMem_Calloc((size_t)count + 1, sizeof(PyObject *));
    if (resources == NULL)
        return PyErr_NoMemory();
    PyObject *result = NULL;
    Py_ssize_t scope_size = PyBytes_GET_SIZE(e->scope);
    uint64_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        resources[i] = PyObject_CallOneArg(e->resource, groups[i].resource);
        if (resources[i] == NULL)
            goto done;
        if (!PyBytes_Check(resources[i])) {
            PyErr_SetString(PyExc_TypeError, "otlp_encode: a resource's encoding is not bytes");
            goto done;
        }
        uint64_t scope_spans = (uint64_t)scope_size + (uint64_t)groups[i].spans.len;
        uint64_t inner = (uint64_t)PyBytes_GET_SIZE(resources[i]) + 1
            + varint_size(scope_spans) + scope_spans;
        total += 1 + varint_size(inner) + inner;
    }
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (result == NULL)
        goto done;
    unsigned char *at = (unsigned char *)PyBytes_AS_STRING(result);
    for (Py_ssize_t i = 0; i < count; i++) {
        uint64_t scope_spans = (uint64_t)scope_size + (uint64_t)groups[i].spans.len;
        Py_ssize_t resource_size = PyBytes_GET_SIZE(resources[i]);
        uint64_t inner = (uint64_t)resource_size + 1 + varint_size(scope_spans) + scope_spans;
        *at++ = TAG_REQUEST_RESOURCE_SPANS;
        at += varint_write(at, inner);
        memcpy(at, PyBytes_AS_STRING(resources[i]), (size_t)resource_size);
        at += resource_size;
        *at++ = TAG_RESOURCE_SPANS_SCOPE_SPANS;
        at += varint_write(at, scope_spans);
        memcpy(at, PyBytes_AS_STRING(e->scope), (size_t)scope_size);
        at += scope_size;
        memcpy(at, groups[i].spans.data, (size_t)groups[i].spans.len);
        at += groups[i].spans.len;
    }
done:
    for (Py_ssize_t i = 0; i < count; i++)
        Py_XDECREF(resources[i]);
    PyMem_Free(resources);
    return result;
}

PyObject *fastpath_otlp_encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "otlp_encode(encoder, spans)");
        return NULL;
    }
    PyObject *spans = PySequence_Fast(args[1], "otlp_encode: spans must be iterable");
    if (spans == NULL)
        return NULL;
    Encoder e;
    Group *groups = NULL;
    Py_ssize_t count = 0, last = 0;
    Buf own = {0};
    PyObject *result = NULL;
    if (encoder_get(&e, args[0]) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(spans); i++) {
        PyObject *span = PySequence_Fast_GET_ITEM(spans, i);
        PyObject *resource = PyObject_GetAttr(span, NAMES.resource);
        if (resource == NULL)
            goto done;
        Group *group = group_of(&groups, &count, &last, resource);
        Py_DECREF(resource);
        if (group == NULL || put_span(&e, &group->spans, &own, span) < 0)
            goto done;
    }
    result = request(&e, groups, count);
done:
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_DECREF(groups[i].resource);
        buf_free(&groups[i].spans);
    }
    PyMem_Free(groups);
    buf_free(&own);
    encoder_clear(&e);
    Py_DECREF(spans);
    return result;
}
