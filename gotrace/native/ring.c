/* ring_take: gotrace.kernel.ringbuf.take_in_python in C (the layout is described there). */
#include "fastpath.h"

#include <stdint.h>
#include <string.h>

#define RING_BUSY (1u << 31)
#define RING_DISCARD (1u << 30)
#define RING_HEADER_SIZE 8

static int take(Py_buffer *consumer_page, Py_buffer *data, uint64_t page, uint64_t mask,
                uint64_t min_size, uint64_t limit, PyObject *records)
{
    if (consumer_page->len < 8 || data->len < 8 || ((uintptr_t)consumer_page->buf & 7)
        || ((uintptr_t)data->buf & 7)) {
        PyErr_SetString(PyExc_ValueError, "ring buffer positions: 8 aligned bytes each");
        return -1;
    }
    uint64_t *consumer_at = consumer_page->buf;
    const unsigned char *bytes = data->buf;
    uint64_t consumer = __atomic_load_n(consumer_at, __ATOMIC_RELAXED);
    uint64_t producer = __atomic_load_n((const uint64_t *)bytes, __ATOMIC_ACQUIRE);
    uint64_t end = (uint64_t)data->len;
    uint64_t taken = 0;
    while (consumer < producer && taken < limit) {
        uint64_t offset = page + (consumer & mask);
        if (offset + RING_HEADER_SIZE > end || (offset & 3)) {
            PyErr_SetString(PyExc_ValueError, "ring buffer record header outside its data");
            return -1;
        }
        uint32_t length = __atomic_load_n((const uint32_t *)(bytes + offset), __ATOMIC_ACQUIRE);
        if (length & RING_BUSY)
            break;
        uint64_t size = length & ~(RING_BUSY | RING_DISCARD);
        if (!(length & RING_DISCARD)) {
            uint64_t start = offset + RING_HEADER_SIZE;
            if (start + size > end) {
                PyErr_SetString(PyExc_ValueError, "ring buffer record outside its data");
                return -1;
            }
            PyObject *record = PyBytes_FromStringAndSize(
                NULL, (Py_ssize_t)(size < min_size ? min_size : size));
            if (record == NULL)
                return -1;
            memcpy(PyBytes_AS_STRING(record), bytes + start, size);
            if (size < min_size)
                memset(PyBytes_AS_STRING(record) + size, 0, min_size - size);
            int failed = PyList_Append(records, record);
            Py_DECREF(record);
            if (failed)
                return -1;
            taken++;
        }
        consumer += (size + RING_HEADER_SIZE + 7) & ~(uint64_t)7;
    }
    __atomic_store_n(consumer_at, consumer, __ATOMIC_RELEASE);
    return 0;
}

/* The Python integers args[0..n) as unsigned 64-bit numbers; -1 (an exception set) when
 * one is not. */
static int u64_args(PyObject *const *args, uint64_t *out, int n)
{
    for (int i = 0; i < n; i++) {
        out[i] = PyLong_AsUnsignedLongLong(args[i]);
        if (out[i] == (uint64_t)-1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

PyObject *fastpath_ring_take(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "ring_take(consumer_page, data, page, mask, min_size, limit)");
        return NULL;
    }
    uint64_t page_mask_min_limit[4];  /* page, mask, min_size, limit */
    if (u64_args(args + 2, page_mask_min_limit, 4) < 0)
        return NULL;
    uint64_t page = page_mask_min_limit[0], mask = page_mask_min_limit[1];
    uint64_t min_size = page_mask_min_limit[2], limit = page_mask_min_limit[3];
    Py_buffer consumer_page, data;
    if (PyObject_GetBuffer(args[0], &consumer_page, PyBUF_WRITABLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&consumer_page);
        return NULL;
    }
    PyObject *records = PyList_New(0);
    if (records != NULL && take(&consumer_page, &data, page, mask, min_size, limit, records) < 0)
        Py_CLEAR(records);
    PyBuffer_Release(&data);
    PyBuffer_Release(&consumer_page);
    return records;
}
