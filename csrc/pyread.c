/* microbp._pyread: the C that reads Python objects (CPython's stable ABI).

The C core (microbp.c, through cffi) sees only flat arrays; turning Python
lists into those arrays, one object at a time, is what is left of a training
step's Python work at small widths. This module does that part in C.

Every function here is a fast path with a Python twin that has the last word:
it returns None for anything but the plain case (exact lists, tuples, floats
and ints), and the caller then runs the Python code, which accepts the same
inputs, computes the same doubles and raises the errors that name the bad
entry. So nothing here raises for bad input: only MemoryError.

No Python code runs while a function reads its argument (only exact builtin
types are read, and reading them calls nothing), so with the GIL held no
other thread can change a list under it.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef Py_GIL_DISABLED
#error "microbp._pyread reads lists under the GIL; setup.py skips it on free-threaded builds"
#endif

/* A list's or tuple's length and items (borrowed), or -1 for anything else. */
static Py_ssize_t seq_items(PyObject *x, PyObject *(**item)(PyObject *, Py_ssize_t))
{
    if (PyList_CheckExact(x)) {
        *item = PyList_GetItem;
        return PyList_Size(x);
    }
    if (PyTuple_CheckExact(x)) {
        *item = PyTuple_GetItem;
        return PyTuple_Size(x);
    }
    return -1;
}

/* x as a double into *out: 1, or 0 when x is not an exact float or int, or an
   int too large for a double (the Python twin names it). */
static int number(PyObject *x, double *out)
{
    if (PyFloat_CheckExact(x)) {
        *out = PyFloat_AsDouble(x);
        return 1;
    }
    if (PyLong_CheckExact(x)) {
        double d = PyLong_AsDouble(x);        /* rounded like float(x) */
        if (d == -1.0 && PyErr_Occurred()) {  /* OverflowError */
            PyErr_Clear();
            return 0;
        }
        *out = d;
        return 1;
    }
    return 0;
}

/* rows_to_doubles(rows, width) -> bytes | None
   rows (a list or tuple of lists or tuples of `width` floats or ints) as
   the bytes of len(rows) * width doubles, row-major; None otherwise. */
static PyObject *rows_to_doubles(PyObject *self, PyObject *args)
{
    PyObject *rows, *w, *(*row_at)(PyObject *, Py_ssize_t);
    (void)self;
    if (!PyArg_UnpackTuple(args, "rows_to_doubles", 2, 2, &rows, &w))
        return NULL;
    if (!PyLong_CheckExact(w))
        Py_RETURN_NONE;
    Py_ssize_t width = PyLong_AsSsize_t(w), nr = seq_items(rows, &row_at);
    if (width == -1 && PyErr_Occurred())
        PyErr_Clear();                        /* too large: not a plain case */
    if (nr < 0 || width < 0 || (width && nr > PY_SSIZE_T_MAX / 8 / width))
        Py_RETURN_NONE;
    /* every row the right length before the output is allocated: a bad width
       (Batch(rows, width=10**15), or rows of mixed lengths) must get the
       Python code's ValueError, not a MemoryError for nr * width doubles */
    for (Py_ssize_t r = 0; r < nr; r++) {
        PyObject *(*entry_at)(PyObject *, Py_ssize_t);
        if (seq_items(row_at(rows, r), &entry_at) != width)
            Py_RETURN_NONE;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, nr * width * 8);
    if (out == NULL)
        return NULL;
    double *dst = (double *)PyBytes_AsString(out);
    for (Py_ssize_t r = 0; r < nr; r++) {
        PyObject *row = row_at(rows, r), *(*entry_at)(PyObject *, Py_ssize_t);
        if (seq_items(row, &entry_at) != width)   /* (checked above: sets entry_at) */
            goto other;
        for (Py_ssize_t j = 0; j < width; j++)
            if (!number(entry_at(row, j), dst++))
                goto other;
    }
    return out;
other:
    Py_DECREF(out);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"rows_to_doubles", rows_to_doubles, METH_VARARGS,
     "rows_to_doubles(rows, width) -> bytes | None: a list of rows of width floats or "
     "ints as the bytes of their doubles, row-major; None for anything else."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "microbp._pyread",
    "C that reads Python objects into flat arrays (fast paths; see csrc/pyread.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__pyread(void)
{
    return PyModule_Create(&module);
}
