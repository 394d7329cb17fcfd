/* decode_records: the loop of gotrace.pipeline.decode.decode_in_python in C. What belongs to
   the probes and the fact sources stays in Python: the probe's request_attributes (unless
   declared as rules, gotrace.probes.attribute_rules, which are applied here), the fact
   sources' attributes, the endpoint's first span (decode._endpoint), events (decode._offer),
   the process's resource and the records held for a shed trace. Those are called with a
   RecordView of the record's bytes: RecordFields' attributes (gotrace.record_view), each
   made when asked for (a span's code reads a few of a record's thirty fields). The layout,
   the kinds and the constants come from decode._NativeTables, parsed once. */
#include "fastpath.h"
#include "names.h"

#include <stdint.h>
#include <string.h>
#include <structmember.h>

#define MAX_FIELDS 64
#define MAX_KINDS 64  /* span kinds are 1-63 (gotrace.records.boundary_macros) */
#define MAX_RANGES 32
#define SPAN_FIELDS 22
#define MAX_RULES 16

/* attribute_rules.When */
enum { WHEN_ALWAYS, WHEN_POSITIVE, WHEN_NON_NEGATIVE, WHEN_NON_ZERO };

/* An attribute_rules.AttributeRule, from its native_rules tuple. */
typedef struct {
    PyObject *name;
    int field;  /* its index in Tables.field */
    int text, when, query;
    unsigned long flags;
} Rule;

/* decode._Endpoint's fields, by position. */
enum {
    ENDPOINT_NAME, ENDPOINT_STATUS, ENDPOINT_SHARED, ENDPOINT_SHARED_USUAL, ENDPOINT_USUAL,
    ENDPOINT_LOCAL_ADDRESS, ENDPOINT_PEER_ADDRESS, ENDPOINT_FIELDS
};

typedef struct {
    Py_ssize_t offset, size;
    int code;  /* the struct code: an integer's, or 's' for bytes */
} Field;

typedef struct {
    PyObject *shape;  /* the SpanShape, borrowed from the tables; NULL: not a span kind */
    PyObject *request_attributes, *span_name, *span_kind, *metric;
    int rules;  /* request_attributes' rules, applied here; -1: it is called instead */
    Rule rule[MAX_RULES];
    int ranges;  /* the endpoint key's byte ranges */
    Py_ssize_t start[MAX_RANGES], end[MAX_RANGES];
    /* The last record of the kind and its key, reused for the next one of the same endpoint
       (most are): an equal key, with its hash already computed. */
    PyObject *last_record, *last_key;
} Shape;

/* RecordFields positions of the fields the loop reads itself. */
typedef struct {
    int kind, pid, flags, parked, start_ns, end_ns, trace_id, span_id, parent_span_id,
        local_port, peer_port, stream_id, tcp_identity;
} Positions;

typedef struct {
    Py_ssize_t record_size;
    PyTypeObject *connection;
    int fields;
    Field field[MAX_FIELDS];
    PyObject *field_index;  /* field name -> its Field's index (an int) */
    Positions at;
    Shape shape[MAX_KINDS];
    PyTypeObject *span;
    Py_ssize_t span_slot[SPAN_FIELDS];  /* where each of Span's fields is in a Span */
    PyObject *sampling, *new_endpoint, *offer;  /* borrowed from the tables */
    unsigned long sampling_flags, has_parent, remote_parent, connected, shed, named_per_request,
        caller_untraced;
} Tables;

/* One call's arguments and what it keeps while it runs. */
typedef struct {
    Tables *t;
    PyObject *raw, *resource_of, *offset, *facts, *with_query, *held, *endpoints;
    PyObject *sources;  /* facts as a list or tuple */
    PyObject *attributes;  /* a list: each source's bound attributes method */
    PyObject *resources;  /* pid -> resource or None, asked once a batch */
    PyObject *spans;
    PyObject *empty;  /* "" */
    int queries;  /* with_query is true: query strings are exported */
} Batch;

static void tables_clear(Tables *t)
{
    Py_CLEAR(t->field_index);
    for (int kind = 0; kind < MAX_KINDS; kind++) {
        Py_CLEAR(t->shape[kind].request_attributes);
        Py_CLEAR(t->shape[kind].span_name);
        Py_CLEAR(t->shape[kind].span_kind);
        Py_CLEAR(t->shape[kind].metric);
        Py_CLEAR(t->shape[kind].last_record);
        Py_CLEAR(t->shape[kind].last_key);
        for (int i = 0; i < t->shape[kind].rules; i++)
            Py_CLEAR(t->shape[kind].rule[i].name);
        t->shape[kind].rules = 0;
    }
}

static int is_unsigned_code(int code)
{
    return code == 'B' || code == 'H' || code == 'I' || code == 'Q';
}

static int field_size_matches(int code, Py_ssize_t size)
{
    switch (code) {
    case 'b': case 'B': return size == 1;
    case 'h': case 'H': return size == 2;
    case 'i': case 'I': return size == 4;
    case 'q': case 'Q': return size == 8;
    case 's': return size >= 0;
    }
    return 0;
}

/* Reads record_view.FIELDS, and where the fields the loop reads are among them. */
static int parse_fields(Tables *t, PyObject *fields)
{
    struct { const char *name; int *position; int is_unsigned; } wanted[] = {
        {"kind", &t->at.kind, 1}, {"pid", &t->at.pid, 1}, {"flags", &t->at.flags, 1},
        {"parked", &t->at.parked, 1}, {"start_ns", &t->at.start_ns, 1},
        {"end_ns", &t->at.end_ns, 1}, {"trace_id", &t->at.trace_id, 0},
        {"span_id", &t->at.span_id, 0}, {"parent_span_id", &t->at.parent_span_id, 0},
        {"local_port", &t->at.local_port, 0}, {"peer_port", &t->at.peer_port, 0},
        {"stream_id", &t->at.stream_id, 0}, {"tcp_identity", &t->at.tcp_identity, 0},
    };
    const size_t n_wanted = sizeof(wanted) / sizeof(wanted[0]);
    for (size_t w = 0; w < n_wanted; w++)
        *wanted[w].position = -1;
    if (PyTuple_GET_SIZE(fields) > MAX_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "decode tables: too many record fields");
        return -1;
    }
    t->fields = (int)PyTuple_GET_SIZE(fields);
    if ((t->field_index = PyDict_New()) == NULL)
        return -1;
    for (int i = 0; i < t->fields; i++) {
        PyObject *name;
        Field *f = &t->field[i];
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(fields, i), "UnCn:record field", &name,
                              &f->offset, &f->code, &f->size))
            return -1;
        PyObject *index = PyLong_FromLong(i);
        int failed = index == NULL || PyDict_SetItem(t->field_index, name, index) < 0;
        Py_XDECREF(index);
        if (failed)
            return -1;
        if (!field_size_matches(f->code, f->size) || f->offset < 0
            || f->offset + f->size > t->record_size) {
            PyErr_Format(PyExc_ValueError, "decode tables: record field %U unreadable", name);
            return -1;
        }
        for (size_t w = 0; w < n_wanted; w++)
            if (PyUnicode_CompareWithASCIIString(name, wanted[w].name) == 0) {
                if (wanted[w].is_unsigned && !is_unsigned_code(f->code)) {
                    PyErr_Format(PyExc_ValueError, "decode tables: %U is not unsigned", name);
                    return -1;
                }
                *wanted[w].position = i;
            }
    }
    for (size_t w = 0; w < n_wanted; w++)
        if (*wanted[w].position < 0) {
            PyErr_Format(PyExc_ValueError, "decode tables: no record field %s", wanted[w].name);
            return -1;
        }
    return 0;
}

/* The shape's request_attributes rules, when it has them (attribute_rules.RuleAttributes'
   native_rules): (name, field, text, when, flags, query) each. */
static int parse_rules(Tables *t, Shape *s)
{
    s->rules = -1;
    PyObject *rules = PyObject_GetAttr(s->request_attributes, NAMES.native_rules);
    if (rules == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    int result = -1;
    if (!PyTuple_Check(rules) || PyTuple_GET_SIZE(rules) > MAX_RULES) {
        PyErr_SetString(PyExc_ValueError, "decode tables: native_rules is no tuple of rules");
        goto done;
    }
    s->rules = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(rules); i++) {
        Rule *r = &s->rule[i];
        PyObject *name, *field;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(rules, i), "O!O!pikp:rule", &PyUnicode_Type,
                              &name, &PyUnicode_Type, &field, &r->text, &r->when, &r->flags,
                              &r->query))
            goto done;
        PyObject *index = PyDict_GetItemWithError(t->field_index, field);
        if (index == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "decode tables: no record field %R", field);
            goto done;
        }
        r->field = (int)PyLong_AsLong(index);
        const Field *f = &t->field[r->field];
        if (r->when < WHEN_ALWAYS || r->when > WHEN_NON_ZERO || (r->text != (f->code == 's'))
            || (r->text && r->when != WHEN_ALWAYS)) {
            PyErr_Format(PyExc_ValueError, "decode tables: rule for %R does not fit its field",
                         name);
            goto done;
        }
        r->name = Py_NewRef(name);
        s->rules++;
    }
    result = 0;
done:
    Py_DECREF(rules);
    return result;
}

/* Reads one (kind, shape, endpoint key ranges) of the tables. */
static int parse_shape(Tables *t, PyObject *entry)
{
    Py_ssize_t kind;
    PyObject *shape, *ranges;
    if (!PyArg_ParseTuple(entry, "nOO!:shape", &kind, &shape, &PyTuple_Type, &ranges))
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(ranges);
    if (kind < 0 || kind >= MAX_KINDS || n < 1 || n > MAX_RANGES) {
        PyErr_Format(PyExc_ValueError, "decode tables: kind %zd or its %zd key ranges", kind, n);
        return -1;
    }
    Shape *s = &t->shape[kind];
    s->shape = shape;
    s->ranges = (int)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(ranges, i), "nn:key range", &s->start[i],
                              &s->end[i]))
            return -1;
        if (s->start[i] < 0 || s->start[i] > s->end[i] || s->end[i] > t->record_size) {
            PyErr_SetString(PyExc_ValueError, "decode tables: a key range outside the record");
            return -1;
        }
    }
    if (!(s->request_attributes = PyObject_GetAttr(shape, NAMES.request_attributes))
        || !(s->span_name = PyObject_GetAttr(shape, NAMES.name))
        || !(s->span_kind = PyObject_GetAttr(shape, NAMES.kind))
        || !(s->metric = PyObject_GetAttr(shape, NAMES.metric)))
        return -1;
    return parse_rules(t, s);
}

/* Where Span keeps each of its fields (its slots' member descriptors). A Span is built by
   storing them there, which is all its dataclass __init__ does (checked: no __post_init__). */
static int parse_span_slots(Tables *t, PyObject *names)
{
    if (PyTuple_GET_SIZE(names) != SPAN_FIELDS
        || PyObject_HasAttrString((PyObject *)t->span, "__post_init__")) {
        PyErr_SetString(PyExc_ValueError, "decode tables: Span is not the one decode.c builds");
        return -1;
    }
    for (int i = 0; i < SPAN_FIELDS; i++) {
        PyObject *slot = PyObject_GetAttr((PyObject *)t->span, PyTuple_GET_ITEM(names, i));
        if (slot == NULL)
            return -1;
        int is_slot = Py_IS_TYPE(slot, &PyMemberDescr_Type)
                      && ((PyMemberDescrObject *)slot)->d_member->type == T_OBJECT_EX;
        if (is_slot)
            t->span_slot[i] = ((PyMemberDescrObject *)slot)->d_member->offset;
        Py_DECREF(slot);
        if (!is_slot) {
            PyErr_SetString(PyExc_TypeError, "decode tables: a Span field is not a slot");
            return -1;
        }
    }
    return 0;
}

/* Reads decode._NativeTables. */
static int parse_tables(Tables *t, PyObject *tables)
{
    PyObject *fields, *shapes, *span_fields;
    memset(t, 0, sizeof(*t));
    if (!PyArg_ParseTuple(tables, "nO!O!O!kkkkkkkO!O!O!OO:decode tables", &t->record_size,
                          &PyTuple_Type, &fields,
                          &PyTuple_Type, &shapes, &PyDict_Type, &t->sampling,
                          &t->sampling_flags, &t->has_parent, &t->remote_parent, &t->connected,
                          &t->shed, &t->named_per_request, &t->caller_untraced, &PyType_Type, &t->span, &PyTuple_Type, &span_fields,
                          &PyType_Type, &t->connection, &t->new_endpoint, &t->offer))
        return -1;
    if (parse_span_slots(t, span_fields) < 0)
        return -1;
    if (!PyType_IsSubtype(t->connection, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "decode tables: Connection is a tuple");
        return -1;
    }
    if (parse_fields(t, fields) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(shapes); i++)
        if (parse_shape(t, PyTuple_GET_ITEM(shapes, i)) < 0)
            return -1;
    return 0;
}

/* An unsigned field of the record (parse_fields checked its code). */
static uint64_t read_unsigned(const Field *f, const char *record)
{
    const char *at = record + f->offset;
    switch (f->code) {
    case 'B': { uint8_t v; memcpy(&v, at, 1); return v; }
    case 'H': { uint16_t v; memcpy(&v, at, 2); return v; }
    case 'I': { uint32_t v; memcpy(&v, at, 4); return v; }
    default: { uint64_t v; memcpy(&v, at, 8); return v; }
    }
}

static int64_t read_signed(const Field *f, const char *record)
{
    const char *at = record + f->offset;
    switch (f->code) {
    case 'b': { int8_t v; memcpy(&v, at, 1); return v; }
    case 'h': { int16_t v; memcpy(&v, at, 2); return v; }
    case 'i': { int32_t v; memcpy(&v, at, 4); return v; }
    default: { int64_t v; memcpy(&v, at, 8); return v; }
    }
}

/* A field's value as struct.unpack gives it (record_view's "=" byte order: the native). */
static PyObject *field_value(const Field *f, const char *record)
{
    if (f->code == 's')
        return PyBytes_FromStringAndSize(record + f->offset, f->size);
    if (is_unsigned_code(f->code))
        return PyLong_FromUnsignedLongLong(read_unsigned(f, record));
    return PyLong_FromLongLong(read_signed(f, record));
}

/* A tuple of a namedtuple type, as its _make builds it: the type's own __new__ only packs its
   arguments into the tuple. Steals the references of items (NULL: already failed). */
static PyObject *named_tuple(PyTypeObject *type, PyObject **items, Py_ssize_t n)
{
    PyObject *tuple = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (items[i] == NULL)
            goto done;
    tuple = type->tp_alloc(type, n);
    if (tuple != NULL)
        for (Py_ssize_t i = 0; i < n; i++) {
            PyTuple_SET_ITEM(tuple, i, items[i]);
            items[i] = NULL;
        }
done:
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(items[i]);
    return tuple;
}

/* A field of a record by its position in RecordFields (a new reference). */
static PyObject *field_at(const Tables *t, int position, const char *record)
{
    return field_value(&t->field[position], record);
}

/* What Python code is given of a record: its fields as attributes, with RecordFields' names
   and values, each made when asked for. Holds the record's bytes. */
typedef struct {
    PyObject_HEAD
    PyObject *data;
    const Tables *t;  /* the parsed tables, which live as long as the module */
} RecordView;

static void view_dealloc(RecordView *self)
{
    Py_XDECREF(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *view_getattro(RecordView *self, PyObject *name)
{
    PyObject *index = PyDict_GetItemWithError(self->t->field_index, name);
    if (index != NULL)
        return field_at(self->t, (int)PyLong_AsLong(index), PyBytes_AS_STRING(self->data));
    if (PyErr_Occurred())
        return NULL;
    return PyObject_GenericGetAttr((PyObject *)self, name);
}

static PyTypeObject RecordViewType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gotrace.native._fastpath.RecordView",
    .tp_doc = "A span record's fields as attributes, as gotrace.record_view.RecordFields has "
              "them, each made when read.",
    .tp_basicsize = sizeof(RecordView),
    .tp_dealloc = (destructor)view_dealloc,
    .tp_getattro = (getattrofunc)view_getattro,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

int fastpath_decode_ready(void)
{
    return PyType_Ready(&RecordViewType);
}

/* The record's view (a new reference). */
static PyObject *record_view(const Tables *t, PyObject *data)
{
    RecordView *view = PyObject_New(RecordView, &RecordViewType);
    if (view != NULL) {
        view->data = Py_NewRef(data);
        view->t = t;
    }
    return (PyObject *)view;
}

/* An event to decode._offer. */
static int offer_event(Batch *b, PyObject *data)
{
    PyObject *rec = record_view(b->t, data);
    if (rec == NULL)
        return -1;
    PyObject *done = PyObject_CallFunctionObjArgs(b->t->offer, b->facts, rec, NULL);
    Py_DECREF(rec);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* The resource of the process (borrowed; None for an unknown one), resource_of asked once a
   batch. */
static PyObject *resource_of_pid(Batch *b, uint64_t pid_value)
{
    PyObject *pid = PyLong_FromUnsignedLongLong(pid_value);
    if (pid == NULL)
        return NULL;
    PyObject *resource = PyDict_GetItemWithError(b->resources, pid);
    if (resource == NULL && !PyErr_Occurred()) {
        PyObject *asked = PyObject_CallOneArg(b->resource_of, pid);
        if (asked != NULL && PyDict_SetItem(b->resources, pid, asked) == 0)
            resource = asked;  /* the dict holds it */
        Py_XDECREF(asked);
    }
    Py_DECREF(pid);
    return resource;
}

/* decode.ENDPOINT_KEYS' key: one bytes for one range, else a tuple of them. */
static PyObject *new_endpoint_key(const Shape *s, const char *record)
{
    if (s->ranges == 1)
        return PyBytes_FromStringAndSize(record + s->start[0], s->end[0] - s->start[0]);
    PyObject *key = PyTuple_New(s->ranges);
    for (int i = 0; key != NULL && i < s->ranges; i++) {
        PyObject *part = PyBytes_FromStringAndSize(record + s->start[i], s->end[i] - s->start[i]);
        if (part == NULL)
            Py_CLEAR(key);
        else
            PyTuple_SET_ITEM(key, i, part);
    }
    return key;
}

static int same_endpoint(const Shape *s, const char *record, const char *other)
{
    for (int i = 0; i < s->ranges; i++)
        if (memcmp(record + s->start[i], other + s->start[i], s->end[i] - s->start[i]) != 0)
            return 0;
    return 1;
}

/* The record's endpoint key (a new reference). */
static PyObject *endpoint_key(Shape *s, PyObject *data)
{
    const char *record = PyBytes_AS_STRING(data);
    if (s->last_record == NULL || !same_endpoint(s, record, PyBytes_AS_STRING(s->last_record))) {
        PyObject *key = new_endpoint_key(s, record);
        if (key == NULL)
            return NULL;
        Py_XSETREF(s->last_key, key);
        Py_XSETREF(s->last_record, Py_NewRef(data));
    }
    return Py_NewRef(s->last_key);
}

/* The endpoint's _Endpoint (a new reference): cached, or worked out by decode._endpoint. A
   record whose span's name depends on the request (named_per_request) has it in the key. */
static PyObject *endpoint_of(Batch *b, Shape *s, PyObject *rec, PyObject *data, uint64_t flags)
{
    PyObject *key = endpoint_key(s, data);
    if (key == NULL)
        return NULL;
    if (flags & b->t->named_per_request) {
        PyObject *name = PyObject_CallOneArg(s->span_name, rec);
        PyObject *named = name == NULL ? NULL : PyTuple_Pack(2, key, name);
        Py_XDECREF(name);
        Py_SETREF(key, named);
        if (key == NULL)
            return NULL;
    }
    PyObject *endpoint = PyDict_GetItemWithError(b->endpoints, key);
    if (endpoint != NULL)
        Py_INCREF(endpoint);
    else if (!PyErr_Occurred())
        endpoint = PyObject_CallFunctionObjArgs(b->t->new_endpoint, b->endpoints, s->shape,
                                                rec, key, b->facts, NULL);
    Py_DECREF(key);
    if (endpoint != NULL && (!PyTuple_Check(endpoint)
                             || PyTuple_GET_SIZE(endpoint) != ENDPOINT_FIELDS)) {
        PyErr_SetString(PyExc_TypeError, "decode_records: an endpoint is not an _Endpoint");
        Py_CLEAR(endpoint);
    }
    return endpoint;
}

/* Whether a fact source may know something of a span that started at start_ns: its
   latest_event_ns is None or not before start_ns. 1, 0, or -1 on an error. */
static int may_know(PyObject *source, PyObject *start_ns)
{
    PyObject *latest = PyObject_GetAttr(source, NAMES.latest_event_ns);
    if (latest == NULL)
        return -1;
    int before = latest == Py_None ? 0 : PyObject_RichCompareBool(latest, start_ns, Py_LT);
    Py_DECREF(latest);
    return before < 0 ? -1 : !before;
}

/* Adds what the fact sources know of the span to own; returns the span's shared attributes
   (borrowed from the endpoint): the endpoint's with the usual facts, or without them when a
   source knew something and own has them all. */
static PyObject *add_facts(Batch *b, PyObject *rec, PyObject *start_ns, PyObject *endpoint,
                           PyObject *own)
{
    PyObject *shared = PyTuple_GET_ITEM(endpoint, ENDPOINT_SHARED_USUAL);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(b->attributes); i++) {
        int ask = may_know(PySequence_Fast_GET_ITEM(b->sources, i), start_ns);
        if (ask <= 0) {
            if (ask < 0)
                return NULL;
            continue;
        }
        PyObject *found = PyObject_CallOneArg(PyList_GET_ITEM(b->attributes, i), rec);
        if (found == NULL)
            return NULL;
        int failed = 0;
        if (found != Py_None) {
            if (shared == PyTuple_GET_ITEM(endpoint, ENDPOINT_SHARED_USUAL)) {
                shared = PyTuple_GET_ITEM(endpoint, ENDPOINT_SHARED);
                failed = PyDict_Update(own, PyTuple_GET_ITEM(endpoint, ENDPOINT_USUAL)) < 0;
            }
            failed = failed || PyDict_Update(own, found) < 0;
        }
        Py_DECREF(found);
        if (failed)
            return NULL;
    }
    return shared;
}

/* For a kept shed trace's root, appends the records the kernel held for it to raw (the loop
   decodes them after it). */
static int take_held(Batch *b, uint64_t flags, const char *record)
{
    const Positions *at = &b->t->at;
    if (!(flags & b->t->shed) || !read_unsigned(&b->t->field[at->parked], record)
        || b->held == Py_None)
        return 0;
    PyObject *trace_id = field_at(b->t, at->trace_id, record);
    PyObject *parked = field_at(b->t, at->parked, record);
    PyObject *records = trace_id == NULL || parked == NULL ? NULL
        : PyObject_CallFunctionObjArgs(b->held, trace_id, parked, NULL);
    Py_XDECREF(trace_id);
    Py_XDECREF(parked);
    if (records == NULL)
        return -1;
    PyObject *done = PyObject_CallMethodOneArg(b->raw, NAMES.extend, records);
    Py_DECREF(records);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* The span's Connection, or None when the record names none (a new reference). */
static PyObject *connection(const Tables *t, const char *record, uint64_t flags,
                            PyObject *endpoint)
{
    if (!(flags & t->connected))
        Py_RETURN_NONE;
    PyObject *items[4] = {Py_NewRef(PyTuple_GET_ITEM(endpoint, ENDPOINT_LOCAL_ADDRESS)),
                          field_at(t, t->at.local_port, record),
                          Py_NewRef(PyTuple_GET_ITEM(endpoint, ENDPOINT_PEER_ADDRESS)),
                          field_at(t, t->at.peer_port, record)};
    return named_tuple(t->connection, items, 4);
}

/* The Span: its fields as decode_in_python passes them to Span(), stored in its slots. */
static PyObject *make_span(Batch *b, const Shape *s, const char *record, uint64_t flags,
                           PyObject *endpoint, PyObject *resource, PyObject *own,
                           PyObject *shared)
{
    const Tables *t = b->t;
    const Positions *at = &t->at;
    /* The fields of the record a Span holds, made here (new references). */
    enum { TRACE_ID, SPAN_ID, PARENT, START, END, STREAM, KIND, TCP_IDENTITY, MADE };
    PyObject *made[MADE] = {
        field_at(t, at->trace_id, record), field_at(t, at->span_id, record),
        flags & t->has_parent ? field_at(t, at->parent_span_id, record) : Py_NewRef(Py_None),
        field_at(t, at->start_ns, record), field_at(t, at->end_ns, record),
        field_at(t, at->stream_id, record), field_at(t, at->kind, record),
        field_at(t, at->tcp_identity, record),
    };
    PyObject *span = NULL;
    PyObject *sampling_key = PyLong_FromUnsignedLong(flags & t->sampling_flags);
    PyObject *start_time = NULL, *end_time = NULL, *conn = NULL;
    for (int i = 0; i < MADE; i++)
        if (made[i] == NULL)
            goto done;
    start_time = PyNumber_Add(made[START], b->offset);
    end_time = PyNumber_Add(made[END], b->offset);
    conn = connection(t, record, flags, endpoint);
    if (sampling_key == NULL || start_time == NULL || end_time == NULL || conn == NULL)
        goto done;
    PyObject *sampling = PyDict_GetItemWithError(t->sampling, sampling_key);
    if (sampling == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, sampling_key);
        goto done;
    }
    PyObject *args[SPAN_FIELDS] = {
        made[TRACE_ID],
        made[SPAN_ID],
        made[PARENT],
        PyTuple_GET_ITEM(endpoint, ENDPOINT_NAME),
        s->span_kind,
        start_time,
        end_time,
        resource,
        PyTuple_GET_ITEM(endpoint, ENDPOINT_STATUS),
        b->empty,  /* status_message */
        own,
        shared,
        conn,
        made[STREAM],
        flags & t->remote_parent ? Py_True : Py_False,
        made[START],  /* monotonic_start_ns */
        made[END],  /* monotonic_end_ns */
        sampling,
        s->metric,
        made[KIND],  /* record_kind */
        made[TCP_IDENTITY],
        flags & t->caller_untraced ? Py_True : Py_False,
    };
    span = t->span->tp_alloc(t->span, 0);
    for (int i = 0; span != NULL && i < SPAN_FIELDS; i++)
        *(PyObject **)((char *)span + t->span_slot[i]) = Py_NewRef(args[i]);
done:
    for (int i = 0; i < MADE; i++)
        Py_XDECREF(made[i]);
    Py_XDECREF(sampling_key);
    Py_XDECREF(start_time);
    Py_XDECREF(end_time);
    Py_XDECREF(conn);
    return span;
}

/* The span's own attributes by its shape's rules: attribute_rules.RuleAttributes.__call__. */
static PyObject *rule_attributes(const Batch *b, const Shape *s, const char *record,
                                 uint64_t flags)
{
    PyObject *attrs = PyDict_New();
    for (int i = 0; attrs != NULL && i < s->rules; i++) {
        const Rule *r = &s->rule[i];
        if ((r->query && !b->queries) || (flags & r->flags) != r->flags)
            continue;
        const Field *f = &b->t->field[r->field];
        if (!r->text && r->when != WHEN_ALWAYS) {
            int is_unsigned = is_unsigned_code(f->code);
            uint64_t u = is_unsigned ? read_unsigned(f, record) : 0;
            int64_t v = is_unsigned ? 0 : read_signed(f, record);
            int holds = r->when == WHEN_NON_ZERO ? (is_unsigned ? u != 0 : v != 0)
                        : r->when == WHEN_POSITIVE ? (is_unsigned ? u != 0 : v > 0)
                        : (is_unsigned || v >= 0);
            if (!holds)
                continue;
        }
        const char *at = record + f->offset;
        PyObject *value = r->text ? PyUnicode_DecodeUTF8(at, strnlen(at, f->size), "replace")
                                  : field_value(f, record);
        if (value == NULL || PyDict_SetItem(attrs, r->name, value) < 0)
            Py_CLEAR(attrs);
        Py_XDECREF(value);
    }
    return attrs;
}

/* A record of a known process and kind to its span, appended to the batch's spans. */
static int decode_span(Batch *b, Shape *s, PyObject *resource, PyObject *data)
{
    const Tables *t = b->t;
    PyObject *endpoint = NULL, *own = NULL, *span = NULL;
    int result = -1;
    const char *record = PyBytes_AS_STRING(data);
    PyObject *rec = record_view(t, data);
    if (rec == NULL)
        return -1;
    uint64_t flags = read_unsigned(&t->field[t->at.flags], record);
    if (!(endpoint = endpoint_of(b, s, rec, data, flags)))
        goto done;
    own = s->rules >= 0 ? rule_attributes(b, s, record, flags)
                        : PyObject_CallFunctionObjArgs(s->request_attributes, rec, b->with_query,
                                                       NULL);
    if (own == NULL)
        goto done;
    if (!PyDict_Check(own)) {
        PyErr_SetString(PyExc_TypeError, "request_attributes returned no dict");
        goto done;
    }
    PyObject *start_ns = field_at(t, t->at.start_ns, record);
    PyObject *shared = start_ns == NULL ? NULL : add_facts(b, rec, start_ns, endpoint, own);
    Py_XDECREF(start_ns);
    if (shared == NULL || take_held(b, flags, record) < 0)
        goto done;
    span = make_span(b, s, record, flags, endpoint, resource, own, shared);
    if (span != NULL)
        result = PyList_Append(b->spans, span);
done:
    Py_DECREF(rec);
    Py_XDECREF(endpoint);
    Py_XDECREF(own);
    Py_XDECREF(span);
    return result;
}

/* One record of the batch: skipped, an event, or a span. */
static int decode_one(Batch *b, PyObject *data)
{
    Tables *t = b->t;
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "decode_records: a record is %.200s, not bytes",
                     Py_TYPE(data)->tp_name);
        return -1;
    }
    if (PyBytes_GET_SIZE(data) < t->record_size)
        return 0;
    const char *record = PyBytes_AS_STRING(data);
    uint64_t kind = read_unsigned(&t->field[t->at.kind], record);
    if (kind >= MAX_KINDS || t->shape[kind].shape == NULL)
        return offer_event(b, data);
    PyObject *resource = resource_of_pid(b, read_unsigned(&t->field[t->at.pid], record));
    if (resource == NULL)
        return -1;
    if (resource == Py_None)
        return 0;
    Py_INCREF(resource);  /* resource_of may be called again, and change the dict */
    int result = decode_span(b, &t->shape[kind], resource, data);
    Py_DECREF(resource);
    return result;
}

static void batch_clear(Batch *b)
{
    Py_CLEAR(b->sources);
    Py_CLEAR(b->attributes);
    Py_CLEAR(b->resources);
    Py_CLEAR(b->spans);
    Py_CLEAR(b->empty);
}

/* The batch's own objects: the sources' attributes methods, the resources, the spans. */
static int batch_start(Batch *b)
{
    if (!(b->sources = PySequence_Fast(b->facts, "decode_records: facts is not a sequence"))
        || !(b->attributes = PyList_New(0)) || !(b->resources = PyDict_New())
        || !(b->spans = PyList_New(0)) || !(b->empty = PyUnicode_New(0, 0)))
        return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(b->sources); i++) {
        PyObject *method = PyObject_GetAttr(PySequence_Fast_GET_ITEM(b->sources, i),
                                            NAMES.attributes);
        int failed = method == NULL || PyList_Append(b->attributes, method) < 0;
        Py_XDECREF(method);
        if (failed)
            return -1;
    }
    return 0;
}

/* The tables parsed, once: decode._NATIVE_TABLES is a constant, and record views point to
   the parsed tables for good, so another tables object is refused rather than parsed over
   them. */
static Tables parsed;
static PyObject *parsed_from;

static Tables *cached_tables(PyObject *tables)
{
    if (tables == parsed_from)
        return &parsed;
    if (parsed_from != NULL) {
        PyErr_SetString(PyExc_ValueError, "decode_records: its tables were parsed from "
                                          "another object (decode._NATIVE_TABLES only)");
        return NULL;
    }
    if (parse_tables(&parsed, tables) < 0) {
        tables_clear(&parsed);
        return NULL;
    }
    parsed_from = Py_NewRef(tables);
    return &parsed;
}

/* decode_records(tables, raw, resource_of, offset, facts, with_query, held, endpoints):
   decode_in_python(raw, ...), with decode._NativeTables first. */
PyObject *fastpath_decode_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 8) {
        PyErr_Format(PyExc_TypeError, "decode_records takes 8 arguments, not %zd", nargs);
        return NULL;
    }
    Tables *tables = cached_tables(args[0]);
    if (tables == NULL)
        return NULL;
    Batch b = {.t = tables, .raw = args[1], .resource_of = args[2], .offset = args[3],
               .facts = args[4], .with_query = args[5], .held = args[6], .endpoints = args[7]};
    if (!PyList_Check(b.raw) || !PyDict_Check(b.endpoints)) {
        PyErr_SetString(PyExc_TypeError, "decode_records: raw is a list, endpoints a dict");
        return NULL;
    }
    PyObject *spans = NULL;
    if ((b.queries = PyObject_IsTrue(b.with_query)) < 0)
        return NULL;
    if (batch_start(&b) == 0) {
        int failed = 0;
        /* The list grows as held records are appended (take_held), and each record is
           kept alive while Python code that might change the list runs. */
        for (Py_ssize_t i = 0; !failed && i < PyList_GET_SIZE(b.raw); i++) {
            PyObject *data = PyList_GET_ITEM(b.raw, i);
            Py_INCREF(data);
            failed = decode_one(&b, data) < 0;
            Py_DECREF(data);
        }
        if (!failed) {
            spans = b.spans;
            b.spans = NULL;
        }
    }
    batch_clear(&b);
    return spans;
}
