/* The functions of gotrace.native._fastpath, one source file each (module.c lists them). */
#ifndef GOTRACE_NATIVE_FASTPATH_H
#define GOTRACE_NATIVE_FASTPATH_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

PyObject *fastpath_ring_take(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *fastpath_otlp_encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *fastpath_jsonl_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *fastpath_decode_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
int fastpath_decode_ready(void);  /* decode_records' types, before its first call */

#endif
