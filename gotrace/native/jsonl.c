/* jsonl_lines: gotrace.export.jsonl.lines_in_python in C, the text of json.dumps with its
   defaults (ensure_ascii, ", " and ": " separators, floats as repr, NaN and Infinity). A span
   holding a value json would write otherwise (another type, a subclass) is written by the
   span_line function passed in, which is the Python reference for one span. */
#include "fastpath.h"
#include "buffer.h"
#include "names.h"

#include <math.h>

static const char HEX[] = "0123456789abcdef";

/* What the put_ functions return: written, left to span_line, or -1 on an error. */
#define WRITTEN 1
#define NOT_MINE 0

/* Writes \uXXXX at out; returns the bytes written. */
static int write_escape(char *out, unsigned int unit)
{
    out[0] = '\\';
    out[1] = 'u';
    out[2] = HEX[unit >> 12];
    out[3] = HEX[(unit >> 8) & 15];
    out[4] = HEX[(unit >> 4) & 15];
    out[5] = HEX[unit & 15];
    return 6;
}

/* A code point json writes as itself. */
#define PLAIN(c) ((c) >= ' ' && (c) <= '~' && (c) != '"' && (c) != '\\')

/* Writes code point c at out as json's ensure_ascii does; returns the bytes written. */
static int write_char(char *out, Py_UCS4 c)
{
    if (PLAIN(c)) {
        out[0] = (char)c;
        return 1;
    }
    char short_escape = 0;
    switch (c) {
    case '"': short_escape = '"'; break;
    case '\\': short_escape = '\\'; break;
    case '\n': short_escape = 'n'; break;
    case '\r': short_escape = 'r'; break;
    case '\t': short_escape = 't'; break;
    case '\b': short_escape = 'b'; break;
    case '\f': short_escape = 'f'; break;
    }
    if (short_escape) {
        out[0] = '\\';
        out[1] = short_escape;
        return 2;
    }
    if (c < 0x10000)
        return write_escape(out, c);
    c -= 0x10000;  /* beyond the BMP: a UTF-16 surrogate pair */
    return write_escape(out, 0xD800 | (c >> 10)) + write_escape(out + 6, 0xDC00 | (c & 0x3FF));
}

static int put_string(Buf *out, PyObject *text)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    /* At most 12 bytes a code point (a surrogate pair's escapes), and the quotes. */
    if (length > (PY_SSIZE_T_MAX - 2) / 12 || buf_reserve(out, 12 * length + 2) < 0) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        return -1;
    }
    char *at = out->data + out->len;
    *at++ = '"';
    if (kind == PyUnicode_1BYTE_KIND) {
        const unsigned char *chars = data;
        for (Py_ssize_t i = 0; i < length; i++) {
            if (PLAIN(chars[i]))
                *at++ = (char)chars[i];
            else
                at += write_char(at, chars[i]);
        }
    } else {
        for (Py_ssize_t i = 0; i < length; i++)
            at += write_char(at, PyUnicode_READ(kind, data, i));
    }
    *at++ = '"';
    out->len = at - out->data;
    return 0;
}

static int put_int(Buf *out, PyObject *value)
{
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (n == -1 && PyErr_Occurred())
        return -1;
    if (!overflow) {
        char digits[24];
        char *first = digits + sizeof(digits);
        unsigned long long magnitude = n < 0 ? 0ull - (unsigned long long)n
                                             : (unsigned long long)n;
        do {
            *--first = (char)('0' + magnitude % 10);
            magnitude /= 10;
        } while (magnitude);
        if (n < 0)
            *--first = '-';
        return buf_put(out, first, digits + sizeof(digits) - first);
    }
    PyObject *text = PyLong_Type.tp_repr(value);
    if (text == NULL)
        return -1;
    Py_ssize_t size;
    const char *bytes = PyUnicode_AsUTF8AndSize(text, &size);
    int failed = bytes == NULL || buf_put(out, bytes, size);
    Py_DECREF(text);
    return failed ? -1 : 0;
}

static int put_float(Buf *out, double value)
{
    if (isnan(value))
        return BUF_LITERAL(out, "NaN");
    if (isinf(value))
        return value > 0 ? BUF_LITERAL(out, "Infinity") : BUF_LITERAL(out, "-Infinity");
    char *text = PyOS_double_to_string(value, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL)
        return -1;
    int failed = buf_put(out, text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
    return failed;
}

static int put_value(Buf *out, PyObject *value)
{
    PyTypeObject *type = Py_TYPE(value);
    int failed;
    if (type == &PyUnicode_Type)
        failed = put_string(out, value);
    else if (value == Py_None)
        failed = BUF_LITERAL(out, "null");
    else if (value == Py_True)
        failed = BUF_LITERAL(out, "true");
    else if (value == Py_False)
        failed = BUF_LITERAL(out, "false");
    else if (type == &PyLong_Type)
        failed = put_int(out, value);
    else if (type == &PyFloat_Type)
        failed = put_float(out, PyFloat_AS_DOUBLE(value));
    else
        return NOT_MINE;
    return failed ? -1 : WRITTEN;
}

/* `"key": value`, after ", " unless it is the first member (*count members so far). */
static int put_member(Buf *out, Py_ssize_t *count, PyObject *key, PyObject *value)
{
    if (!PyUnicode_CheckExact(key))
        return NOT_MINE;
    if ((*count > 0 && BUF_LITERAL(out, ", ") < 0) || put_string(out, key) < 0
        || BUF_LITERAL(out, ": ") < 0)
        return -1;
    ++*count;
    return put_value(out, value);
}

/* The members of {**first, **then} (then may be NULL): those of first, with the value of then
   under the same key, then those of then whose keys first lacks. */
static int put_members(Buf *out, Py_ssize_t *count, PyObject *first, PyObject *then)
{
    if (!PyDict_CheckExact(first) || (then != NULL && !PyDict_CheckExact(then)))
        return NOT_MINE;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(first, &pos, &key, &value)) {
        if (then != NULL) {
            PyObject *replaced = PyDict_GetItemWithError(then, key);
            if (replaced == NULL && PyErr_Occurred())
                return -1;
            if (replaced != NULL)
                value = replaced;
        }
        int done = put_member(out, count, key, value);
        if (done != WRITTEN)
            return done;
    }
    pos = 0;
    while (then != NULL && PyDict_Next(then, &pos, &key, &value)) {
        int present = PyDict_Contains(first, key);
        if (present < 0)
            return -1;
        if (present)
            continue;
        int done = put_member(out, count, key, value);
        if (done != WRITTEN)
            return done;
    }
    return WRITTEN;
}

/* The members of a dict that many spans share, written once for a jsonl_lines call. The
   reference held keeps the dict from being freed and its address reused meanwhile. */
typedef struct {
    PyObject *dict;
    Buf members;
} Rendered;

/* Their resources' attributes, for spans of up to this many processes interleaved. */
#define RESOURCES_KEPT 8

typedef struct {
    Rendered kept[RESOURCES_KEPT];
    int next;  /* the one to replace */
} Resources;

static void resources_free(Resources *r)
{
    for (int i = 0; i < RESOURCES_KEPT; i++) {
        Py_CLEAR(r->kept[i].dict);
        buf_free(&r->kept[i].members);
    }
}

static int render(Resources *r, PyObject *dict, Rendered **found)
{
    for (int i = 0; i < RESOURCES_KEPT; i++) {
        if (r->kept[i].dict == dict) {
            *found = &r->kept[i];
            return WRITTEN;
        }
    }
    Rendered *slot = &r->kept[r->next];
    Py_CLEAR(slot->dict);
    slot->members.len = 0;
    Py_ssize_t count = 0;
    int done = put_members(&slot->members, &count, dict, NULL);
    if (done == WRITTEN) {
        slot->dict = Py_NewRef(dict);
        r->next = (r->next + 1) % RESOURCES_KEPT;
        *found = slot;
    }
    return done;
}

/* A JSON object: the members given already written (head), then those put_members writes. */
static int put_object(Buf *out, const char *head, Py_ssize_t head_size, PyObject *first,
                      PyObject *then)
{
    Py_ssize_t count = head_size > 0;
    if (buf_byte(out, '{') < 0 || buf_put(out, head, head_size) < 0)
        return -1;
    int done = first == NULL ? WRITTEN : put_members(out, &count, first, then);
    if (done != WRITTEN)
        return done;
    return buf_byte(out, '}') < 0 ? -1 : WRITTEN;
}

/* The members of an endpoint's shared attributes (items, not empty), kept as bytes in its
   SharedAttributes.encoded under "jsonl" for all its spans (an exporter's to use, spans.py):
   WRITTEN with *members set (a new reference), or NOT_MINE, or -1. */
static int shared_members(PyObject *shared, PyObject *items, PyObject **members)
{
    PyObject *encoded = PyObject_GetAttr(shared, NAMES.encoded);
    if (encoded == NULL)
        return -1;
    int done = -1;
    Buf text = {0};
    if (!PyDict_CheckExact(encoded)) {
        done = NOT_MINE;
        goto done;
    }
    PyObject *kept = PyDict_GetItemWithError(encoded, NAMES.jsonl);
    if (kept != NULL && PyBytes_CheckExact(kept)) {
        *members = Py_NewRef(kept);
        done = WRITTEN;
        goto done;
    }
    if (PyErr_Occurred())
        goto done;
    Py_ssize_t count = 0;
    if ((done = put_members(&text, &count, items, NULL)) != WRITTEN)
        goto done;
    *members = PyBytes_FromStringAndSize(text.data, text.len);
    if (*members == NULL || PyDict_SetItem(encoded, NAMES.jsonl, *members) < 0) {
        Py_CLEAR(*members);
        done = -1;
    }
done:
    buf_free(&text);
    Py_DECREF(encoded);
    return done;
}

/* 1 when no key of own is one of shared's, 0 when one is, -1 on error. */
static int apart(PyObject *shared, PyObject *own)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(own, &pos, &key, &value)) {
        int present = PyDict_Contains(shared, key);
        if (present)
            return present < 0 ? -1 : 0;
    }
    return 1;
}

static int put_hex(Buf *out, PyObject *id)
{
    if (!PyBytes_CheckExact(id))
        return NOT_MINE;
    Py_ssize_t size = PyBytes_GET_SIZE(id);
    const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(id);
    if (buf_reserve(out, 2 * size + 2) < 0)
        return -1;
    char *at = out->data + out->len;
    *at++ = '"';
    for (Py_ssize_t i = 0; i < size; i++) {
        *at++ = HEX[bytes[i] >> 4];
        *at++ = HEX[bytes[i] & 15];
    }
    *at++ = '"';
    out->len = at - out->data;
    return WRITTEN;
}

typedef int (*writer)(Buf *, PyObject *);

/* Writes head, then value with write; takes over the reference to value (NULL: an error). */
static int put_field(Buf *out, const char *head, PyObject *value, writer write)
{
    if (value == NULL)
        return -1;
    int done = buf_put(out, head, (Py_ssize_t)strlen(head)) < 0 ? -1 : write(out, value);
    Py_DECREF(value);
    return done;
}

static int put_parent(Buf *out, PyObject *parent)
{
    return parent == Py_None ? (BUF_LITERAL(out, "null") < 0 ? -1 : WRITTEN)
                             : put_hex(out, parent);
}

/* Span.attributes: the shared ones, then the span's own. */
static int put_attributes(Buf *out, PyObject *span)
{
    PyObject *shared = PyObject_GetAttr(span, NAMES.shared_attributes);
    if (shared == NULL)
        return -1;
    PyObject *items = PyObject_GetAttr(shared, NAMES.items);
    PyObject *own = PyObject_GetAttr(span, NAMES.own_attributes);
    PyObject *members = NULL;
    int done = -1;
    if (items == NULL || own == NULL)
        goto done;
    if (!PyDict_CheckExact(items) || !PyDict_CheckExact(own)) {
        done = NOT_MINE;
    } else if (PyDict_GET_SIZE(items) == 0) {
        done = put_object(out, NULL, 0, own, NULL);
    } else if ((done = apart(items, own)) == 1) {
        done = shared_members(shared, items, &members);
        if (done == WRITTEN)
            done = put_object(out, PyBytes_AS_STRING(members), PyBytes_GET_SIZE(members), own,
                              NULL);
    } else if (done == 0) {  /* own values replace shared ones: the merge, span by span */
        done = put_object(out, NULL, 0, items, own);
    }
done:
    Py_XDECREF(members);
    Py_XDECREF(items);
    Py_XDECREF(own);
    Py_DECREF(shared);
    return done;
}

static int put_resource(Buf *out, Resources *resources, PyObject *span)
{
    PyObject *resource = PyObject_GetAttr(span, NAMES.resource);
    if (resource == NULL)
        return -1;
    PyObject *attributes = PyObject_GetAttr(resource, NAMES.attributes);
    Py_DECREF(resource);
    if (attributes == NULL)
        return -1;
    Rendered *rendered;
    int done = render(resources, attributes, &rendered);
    Py_DECREF(attributes);
    if (done != WRITTEN)
        return done;
    return put_object(out, rendered->members.data, rendered->members.len, NULL, NULL);
}

/* One span's line, as jsonl.span_record's keys in its order. */
static int put_span(Buf *out, Resources *resources, PyObject *span)
{
    int done;
#define FIELD(head, name, write) \
    if ((done = put_field(out, head, PyObject_GetAttr(span, NAMES.name), write)) != WRITTEN) \
        return done;
    FIELD("{\"trace_id\": ", trace_id, put_hex)
    FIELD(", \"span_id\": ", span_id, put_hex)
    FIELD(", \"parent_span_id\": ", parent_span_id, put_parent)
    FIELD(", \"name\": ", name, put_value)
    FIELD(", \"kind\": ", kind, put_value)
    FIELD(", \"start_time_unix_nano\": ", start_time_unix_nano, put_value)
    FIELD(", \"end_time_unix_nano\": ", end_time_unix_nano, put_value)
    FIELD(", \"status\": ", status, put_value)
#undef FIELD
    if (BUF_LITERAL(out, ", \"attributes\": ") < 0)
        return -1;
    if ((done = put_attributes(out, span)) != WRITTEN)
        return done;
    if (BUF_LITERAL(out, ", \"resource\": ") < 0)
        return -1;
    if ((done = put_resource(out, resources, span)) != WRITTEN)
        return done;
    return BUF_LITERAL(out, "}\n") < 0 ? -1 : WRITTEN;
}

/* A line from span_line(span), which must be a str. */
static int put_line_from(Buf *out, PyObject *span_line, PyObject *span)
{
    PyObject *line = PyObject_CallOneArg(span_line, span);
    if (line == NULL)
        return -1;
    Py_ssize_t size;
    const char *bytes = PyUnicode_Check(line) && PyUnicode_IS_ASCII(line)
        ? PyUnicode_AsUTF8AndSize(line, &size) : NULL;
    if (bytes == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "jsonl_lines: span_line must return an ASCII str");
    int failed = bytes == NULL || buf_put(out, bytes, size);
    Py_DECREF(line);
    return failed ? -1 : 0;
}

PyObject *fastpath_jsonl_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "jsonl_lines(spans, span_line)");
        return NULL;
    }
    PyObject *spans = PySequence_Fast(args[0], "jsonl_lines: spans must be iterable");
    if (spans == NULL)
        return NULL;
    Buf out = {0};
    Resources resources;
    memset(&resources, 0, sizeof(resources));
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(spans); i++) {
        PyObject *span = PySequence_Fast_GET_ITEM(spans, i);
        Py_ssize_t line_start = out.len;
        int done = put_span(&out, &resources, span);
        if (done == NOT_MINE) {
            out.len = line_start;
            done = put_line_from(&out, args[1], span) < 0 ? -1 : WRITTEN;
        }
        if (done < 0)
            goto done;
    }
    result = PyUnicode_New(out.len, 127);  /* json's ensure_ascii: ASCII only */
    if (result != NULL)
        memcpy(PyUnicode_DATA(result), out.data, (size_t)out.len);
done:
    resources_free(&resources);
    buf_free(&out);
    Py_DECREF(spans);
    return result;
}
