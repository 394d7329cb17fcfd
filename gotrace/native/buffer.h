/* A growable byte buffer, the output of every encoder in this module. */
#ifndef GOTRACE_NATIVE_BUFFER_H
#define GOTRACE_NATIVE_BUFFER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static inline void buf_free(Buf *b)
{
    PyMem_Free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Room for `extra` more bytes; -1 with MemoryError set when there is none. */
static inline int buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const void *bytes, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, bytes, (size_t)n);
    b->len += n;
    return 0;
}

static inline int buf_byte(Buf *b, unsigned char c)
{
    if (buf_reserve(b, 1) < 0)
        return -1;
    b->data[b->len++] = (char)c;
    return 0;
}

/* A C string literal, without its terminating NUL. */
#define BUF_LITERAL(b, s) buf_put((b), (s), (Py_ssize_t)sizeof(s) - 1)

/* The bytes of a protobuf varint (1-10). */
static inline int varint_size(uint64_t n)
{
    int size = 1;
    while (n >= 0x80) {
        n >>= 7;
        size++;
    }
    return size;
}

/* Writes n as a protobuf varint at out (varint_size(n) bytes); returns their count. */
static inline int varint_write(unsigned char *out, uint64_t n)
{
    int i = 0;
    while (n >= 0x80) {
        out[i++] = (unsigned char)(n & 0x7F) | 0x80;
        n >>= 7;
    }
    out[i++] = (unsigned char)n;
    return i;
}

static inline int buf_varint(Buf *b, uint64_t n)
{
    if (buf_reserve(b, 10) < 0)
        return -1;
    b->len += varint_write((unsigned char *)b->data + b->len, n);
    return 0;
}

#endif
