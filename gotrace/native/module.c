/* gotrace.native._fastpath: the per-span decode and export paths in C. Each function has a
   pure-Python reference (named in gotrace/native/__init__.py) that it must match byte for
   byte. */
#include "fastpath.h"
#include "names.h"

struct fastpath_names NAMES;

/* Interns NAMES, before any function of the module runs. */
static int init_names(void)
{
#define FASTPATH_INTERN(n) \
    if ((NAMES.n = PyUnicode_InternFromString(#n)) == NULL) \
        return -1;
    FASTPATH_NAMES(FASTPATH_INTERN)
#undef FASTPATH_INTERN
    return 0;
}

static PyMethodDef methods[] = {
    {"ring_take", (PyCFunction)(void (*)(void))fastpath_ring_take, METH_FASTCALL,
     "ring_take(consumer_page, data, page, mask, min_size, limit) -> list[bytes]: the committed records of a "
     "BPF ring buffer, as gotrace.kernel.ringbuf.take_in_python."},
    {"otlp_encode", (PyCFunction)(void (*)(void))fastpath_otlp_encode, METH_FASTCALL,
     "otlp_encode(encoder, spans) -> bytes: an ExportTraceServiceRequest, as "
     "gotrace.export.otlp_wire.TraceRequestEncoder.encode_in_python."},
    {"jsonl_lines", (PyCFunction)(void (*)(void))fastpath_jsonl_lines, METH_FASTCALL,
     "jsonl_lines(spans, span_line) -> str: one JSON object per span and line, as "
     "gotrace.export.jsonl.lines_in_python; span_line(span) writes the spans it cannot."},
    {"decode_records", (PyCFunction)(void (*)(void))fastpath_decode_records, METH_FASTCALL,
     "decode_records(tables, raw, resource_of, offset, facts, with_query, held, endpoints) -> "
     "list[Span]: gotrace.pipeline.decode.decode_in_python with its _NativeTables first."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastpath", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    if (init_names() < 0 || fastpath_decode_ready() < 0)
        return NULL;
    return PyModule_Create(&module);
}
