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
    PyObject *out = PyBytes_FromStringAndSize(NULL, nr * width * 8);
    if (out == NULL)
        return NULL;
    double *dst = (double *)PyBytes_AsString(out);
    for (Py_ssize_t r = 0; r < nr; r++) {
        PyObject *row = row_at(rows, r), *(*entry_at)(PyObject *, Py_ssize_t);
        if (seq_items(row, &entry_at) != width)
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


/* -- the graph below a Value: walk() and add_grads() -----------------------

Twins of graph.topo + graph.flatten (walk) and of the loop that adds the
adjoints into each .grad (add_grads). A node is any object whose type has
metaclass `type`, reads `_a`, `_b`, `_op` and `_id` as plain slots (the
member descriptors of __slots__: reading them calls nothing), keeps object's
__getattribute__, __hash__ and __eq__ (a set of nodes is a set of
identities, as in topo) and has no __getattr__: Value and its subclasses
unless they override those. Each type is checked once per call, by looking
its names up along its __mro__, in the class dicts (as the interpreter does;
nothing is called).

So no Python code runs while walk() reads the links, ids and op codes, and
the nodes are held by strong references throughout. Only the last pass, the
values (`_data`, which a subclass such as Parameter may make a property),
can run Python code, and it comes last in flatten too: by then every link
has been read and the arrays are this function's own.
*/
#include <stdint.h>
#include <string.h>

static PyObject *s_a, *s_b, *s_op, *s_id, *s_data, *s_grad, *s_mro, *s_dict,
    *s_getattribute, *s_getattr, *s_setattr, *s_hash, *s_eq;
static PyObject *member_type;                   /* types.MemberDescriptorType */
static PyObject *obj_getattribute, *obj_setattr, *obj_hash, *obj_eq;  /* object's own */

enum { OTHER = 0, OK = 1, FAIL = -1 };          /* FAIL: an exception is set */

/* The attribute `name` of type t as the interpreter finds it (the first class
   of t.__mro__ whose dict has it): *out a new reference, or NULL when no
   class has it. OTHER for anything unusual (a metaclass other than type). */
static int type_lookup(PyObject *t, PyObject *name, PyObject **out)
{
    *out = NULL;
    PyObject *mro = PyObject_GetAttr(t, s_mro);
    if (mro == NULL)
        return FAIL;
    int r = OK;
    if (!PyTuple_CheckExact(mro))
        r = OTHER;
    Py_ssize_t n = r == OK ? PyTuple_Size(mro) : 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = PyTuple_GetItem(mro, i);
        if ((PyObject *)Py_TYPE(c) != (PyObject *)&PyType_Type) {
            r = OTHER;
            break;
        }
        PyObject *d = PyObject_GetAttr(c, s_dict);   /* a mappingproxy of the dict */
        if (d == NULL) {
            r = FAIL;
            break;
        }
        PyObject *x = PyObject_GetItem(d, name);      /* str keys: calls nothing */
        Py_DECREF(d);
        if (x != NULL) {
            *out = x;
            break;
        }
        if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
            r = FAIL;
            break;
        }
        PyErr_Clear();
    }
    Py_DECREF(mro);
    return r;
}

/* OK when every name of `names` is a plain slot of t (a member descriptor)
   and attribute access on t is object's own (and so is hashing and equality
   when `identity`, and setting attributes when `setting`); OTHER otherwise. */
static int plain_type(PyTypeObject *tp, PyObject *const *names, int nnames,
                      int identity, int setting)
{
    PyObject *t = (PyObject *)tp;
    if ((PyObject *)Py_TYPE(t) != (PyObject *)&PyType_Type)
        return OTHER;
    struct { PyObject *name, *want; int need; } rules[] = {
        {s_getattribute, obj_getattribute, 1}, {s_getattr, NULL, 1},
        {s_hash, obj_hash, identity}, {s_eq, obj_eq, identity},
        {s_setattr, obj_setattr, setting},
    };
    for (size_t k = 0; k < sizeof rules / sizeof rules[0]; k++) {
        if (!rules[k].need)
            continue;
        PyObject *x;
        int r = type_lookup(t, rules[k].name, &x);
        Py_XDECREF(x);                 /* compared by identity only; the types hold them */
        if (r != OK)
            return r;
        if (x != rules[k].want)
            return OTHER;
    }
    for (int k = 0; k < nnames; k++) {
        PyObject *x;
        int r = type_lookup(t, names[k], &x);
        if (r != OK)
            return r;
        int member = x != NULL && (PyObject *)Py_TYPE(x) == member_type;
        Py_XDECREF(x);
        if (!member)
            return OTHER;
    }
    return OK;
}

/* The types a call has accepted (strong references), a few at most. */
#define NTYPES 8
struct types {
    PyTypeObject *t[NTYPES];
    int n;
};

static void types_clear(struct types *ts)
{
    for (int k = 0; k < ts->n; k++)
        Py_DECREF((PyObject *)ts->t[k]);
    ts->n = 0;
}

static int accepted(struct types *ts, PyTypeObject *tp, PyObject *const *names, int nnames,
                    int identity, int setting)
{
    for (int k = 0; k < ts->n; k++)
        if (ts->t[k] == tp)
            return OK;
    if (ts->n == NTYPES)
        return OTHER;
    int r = plain_type(tp, names, nnames, identity, setting);
    if (r == OK) {
        Py_INCREF((PyObject *)tp);
        ts->t[ts->n++] = tp;
    }
    return r;
}

/* x (a new reference, consumed) as an int64 into *out: OTHER unless an exact int in range. */
static int take_int(PyObject *x, long long lo, long long hi, long long *out)
{
    if (x == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return FAIL;
        PyErr_Clear();
        return OTHER;
    }
    int r = OTHER, overflow;
    if (PyLong_CheckExact(x)) {
        long long v = PyLong_AsLongLongAndOverflow(x, &overflow);
        if (v == -1 && PyErr_Occurred())
            r = FAIL;
        else if (!overflow && v >= lo && v <= hi) {
            *out = v;
            r = OK;
        }
    }
    Py_DECREF(x);
    return r;
}

struct walk {
    PyObject **obj;             /* the nodes in the order topo finds them (owned) */
    int64_t *key;               /* their _id, then the sort keys */
    int32_t *op, *ca, *cb;      /* op codes; inputs as indices into obj (-1: none) */
    int32_t *stack;
    Py_ssize_t n, cap, sp;
    struct { PyObject *k; Py_ssize_t v; } *tab;   /* obj -> index, open addressing */
    size_t mask;
    struct types types;
};

static size_t hash_ptr(const void *p, size_t mask)
{
    uint64_t x = (uint64_t)(uintptr_t)p >> 4;
    x *= 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 24) & mask;
}

/* The index of o in the walk, or -1. */
static Py_ssize_t find(const struct walk *w, PyObject *o)
{
    for (size_t h = hash_ptr(o, w->mask);; h = (h + 1) & w->mask) {
        if (w->tab[h].k == o)
            return w->tab[h].v;
        if (w->tab[h].k == NULL)
            return -1;
    }
}

static int grow_table(struct walk *w)
{
    size_t cap = (w->mask + 1) * 2;
    if (cap > PY_SSIZE_T_MAX / sizeof w->tab[0])
        return PyErr_NoMemory(), FAIL;
    void *t = PyMem_Calloc(cap, sizeof w->tab[0]);
    if (t == NULL)
        return PyErr_NoMemory(), FAIL;
    PyMem_Free(w->tab);
    w->tab = t;
    w->mask = cap - 1;
    for (Py_ssize_t i = 0; i < w->n; i++) {
        size_t h = hash_ptr(w->obj[i], w->mask);
        while (w->tab[h].k != NULL)
            h = (h + 1) & w->mask;
        w->tab[h].k = w->obj[i];
        w->tab[h].v = i;
    }
    return OK;
}

static int grow(void **p, Py_ssize_t cap, size_t size)
{
    void *q = PyMem_Realloc(*p, (size_t)cap * size);
    if (q == NULL)
        return PyErr_NoMemory(), FAIL;
    *p = q;
    return OK;
}

static PyObject *link_names[4];                                  /* _a _b _op _id */

/* o (a new reference, consumed) as the next node: its id and op code read,
   pushed on the stack. *at its index. */
static int add_node(struct walk *w, PyObject *o, Py_ssize_t *at)
{
    int r = accepted(&w->types, Py_TYPE(o), link_names, 4, 1, 0);
    if (r != OK) {
        Py_DECREF(o);
        return r;
    }
    if (w->n == w->cap) {
        Py_ssize_t cap = w->cap ? w->cap * 2 : 1024;
        if (cap > INT32_MAX)
            cap = INT32_MAX;
        if (w->n == cap) {                     /* more nodes than int32 positions */
            Py_DECREF(o);
            return OTHER;
        }
        if (grow((void **)&w->obj, cap, sizeof *w->obj) != OK
            || grow((void **)&w->key, cap, sizeof *w->key) != OK
            || grow((void **)&w->op, cap, sizeof *w->op) != OK
            || grow((void **)&w->ca, cap, sizeof *w->ca) != OK
            || grow((void **)&w->cb, cap, sizeof *w->cb) != OK
            || grow((void **)&w->stack, cap, sizeof *w->stack) != OK) {
            Py_DECREF(o);
            return FAIL;
        }
        w->cap = cap;
    }
    Py_ssize_t i = w->n++;
    w->obj[i] = o;                             /* owned by the walk from here */
    w->ca[i] = w->cb[i] = -1;
    long long id, op;
    if ((r = take_int(PyObject_GetAttr(o, s_id), INT64_MIN, INT64_MAX, &id)) != OK
        || (r = take_int(PyObject_GetAttr(o, s_op), INT32_MIN, INT32_MAX, &op)) != OK)
        return r;
    w->key[i] = id;
    w->op[i] = (int32_t)op;
    if ((size_t)w->n * 3 > (w->mask + 1) * 2 && grow_table(w) != OK)
        return FAIL;
    size_t h = hash_ptr(o, w->mask);
    while (w->tab[h].k != NULL)
        h = (h + 1) & w->mask;
    w->tab[h].k = o;
    w->tab[h].v = i;
    w->stack[w->sp++] = (int32_t)i;
    *at = i;
    return OK;
}

/* The node o (a new reference, consumed): its index, added when new. */
static int node_index(struct walk *w, PyObject *o, int32_t *at)
{
    Py_ssize_t i = find(w, o);
    if (i >= 0) {
        Py_DECREF(o);
        *at = (int32_t)i;
        return OK;
    }
    int r = add_node(w, o, &i);
    *at = (int32_t)i;
    return r;
}

/* Depth first from the root, in topo's very order. */
static int dfs(struct walk *w, PyObject *root)
{
    Py_ssize_t i;
    Py_INCREF(root);
    int r = add_node(w, root, &i);
    while (r == OK && w->sp > 0) {
        i = w->stack[--w->sp];
        PyObject *v = w->obj[i], *a, *b;
        if ((a = PyObject_GetAttr(v, s_a)) == NULL)
            return PyErr_ExceptionMatches(PyExc_AttributeError) ? (PyErr_Clear(), OTHER) : FAIL;
        if ((b = PyObject_GetAttr(v, s_b)) == NULL) {
            Py_DECREF(a);
            return PyErr_ExceptionMatches(PyExc_AttributeError) ? (PyErr_Clear(), OTHER) : FAIL;
        }
        if (a == Py_None) {            /* a leaf (topo does not look at _b then) */
            r = b == Py_None ? OK : OTHER;
            Py_DECREF(a);
            Py_DECREF(b);
            continue;
        }
        int32_t ia, ib = -1;
        r = node_index(w, a, &ia);
        if (r != OK) {
            Py_DECREF(b);
            break;
        }
        w->ca[i] = ia;
        if (b == Py_None)
            Py_DECREF(b);
        else if ((r = node_index(w, b, &ib)) != OK)
            break;
        w->cb[i] = ib;
    }
    return r;
}

/* key[0..n) sorted by id, ties in walk order (a stable sort, as list.sort):
   each key becomes (id - min id) << 32 | its index, sorted by radix on the
   id bits. OTHER when the ids span 2**32 or more. */
static int sort_keys(struct walk *w)
{
    Py_ssize_t n = w->n;
    int64_t lo = w->key[0], hi = w->key[0];
    for (Py_ssize_t i = 1; i < n; i++) {
        if (w->key[i] < lo)
            lo = w->key[i];
        if (w->key[i] > hi)
            hi = w->key[i];
    }
    uint64_t span = (uint64_t)hi - (uint64_t)lo;
    if (span > UINT32_MAX)
        return OTHER;
    uint64_t *k = (uint64_t *)w->key;
    for (Py_ssize_t i = 0; i < n; i++)
        k[i] = ((uint64_t)w->key[i] - (uint64_t)lo) << 32 | (uint64_t)i;
    int bits = 0;
    while (bits < 32 && (span >> bits))
        bits++;
    if (bits == 0)
        return OK;
    int passes = (bits + 15) / 16, d = (bits + passes - 1) / passes;
    size_t nb = (size_t)1 << d;
    uint64_t *tmp = PyMem_Malloc((size_t)n * sizeof *tmp);
    size_t *count = PyMem_Malloc(nb * sizeof *count);
    if (tmp == NULL || count == NULL) {
        PyMem_Free(tmp);
        PyMem_Free(count);
        return PyErr_NoMemory(), FAIL;
    }
    uint64_t *src = k, *dst = tmp;
    for (int p = 0; p < passes; p++) {
        int shift = 32 + p * d;
        memset(count, 0, nb * sizeof *count);
        for (Py_ssize_t i = 0; i < n; i++)
            count[(src[i] >> shift) & (nb - 1)]++;
        size_t sum = 0;
        for (size_t j = 0; j < nb; j++) {
            size_t c = count[j];
            count[j] = sum;
            sum += c;
        }
        for (Py_ssize_t i = 0; i < n; i++)
            dst[count[(src[i] >> shift) & (nb - 1)]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != k)
        memcpy(k, src, (size_t)n * sizeof *k);
    PyMem_Free(tmp);
    PyMem_Free(count);
    return OK;
}

static void walk_free(struct walk *w)
{
    if (w->obj != NULL)
        for (Py_ssize_t i = 0; i < w->n; i++)
            Py_XDECREF(w->obj[i]);
    PyMem_Free(w->obj);
    PyMem_Free(w->key);
    PyMem_Free(w->op);
    PyMem_Free(w->ca);
    PyMem_Free(w->cb);
    PyMem_Free(w->stack);
    PyMem_Free(w->tab);
    types_clear(&w->types);
}

/* walk(root) -> (nodes, op, a, b, val) | None
   graph.topo(root) and graph.flatten of it in one pass: nodes the list topo
   gives, op/a/b the bytes of int32 arrays of flatten's lists, val the bytes
   of the doubles of its values. None for anything but the plain case (see
   above; also values that are not exact floats), for the Python code. */
static PyObject *walk(PyObject *self, PyObject *root)
{
    (void)self;
    struct walk w;
    memset(&w, 0, sizeof w);
    PyObject *res = NULL, *nodes = NULL, *ob = NULL, *ab = NULL, *bb = NULL, *vb = NULL;
    w.tab = PyMem_Calloc(1024, sizeof w.tab[0]);
    if (w.tab == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    w.mask = 1023;
    int r = dfs(&w, root);
    PyMem_Free(w.tab);                          /* the links are indices now */
    w.tab = NULL;
    if (r == OK)
        r = sort_keys(&w);
    if (r != OK)
        goto other;
    Py_ssize_t n = w.n;
    int32_t *pos = w.stack;                     /* walk index -> position */
    for (Py_ssize_t i = 0; i < n; i++)
        pos[(uint32_t)w.key[i]] = (int32_t)i;
    if ((ob = PyBytes_FromStringAndSize(NULL, n * 4)) == NULL
        || (ab = PyBytes_FromStringAndSize(NULL, n * 4)) == NULL
        || (bb = PyBytes_FromStringAndSize(NULL, n * 4)) == NULL
        || (vb = PyBytes_FromStringAndSize(NULL, n * 8)) == NULL)
        goto done;
    int32_t *po = (int32_t *)PyBytes_AsString(ob), *pa = (int32_t *)PyBytes_AsString(ab),
            *pb = (int32_t *)PyBytes_AsString(bb);
    double *pv = (double *)PyBytes_AsString(vb);
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t j = (uint32_t)w.key[i];
        po[i] = w.op[j];
        pa[i] = w.ca[j] < 0 ? -1 : pos[w.ca[j]];
        pb[i] = w.cb[j] < 0 ? -1 : pos[w.cb[j]];
    }
    /* the values last, as flatten reads them: _data may be a property */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *x = PyObject_GetAttr(w.obj[(uint32_t)w.key[i]], s_data);
        if (x == NULL) {
            PyErr_Clear();                      /* the Python code raises it again */
            goto other;
        }
        int plain = PyFloat_CheckExact(x);
        if (plain)
            pv[i] = PyFloat_AsDouble(x);
        Py_DECREF(x);
        if (!plain)
            goto other;
    }
    if ((nodes = PyList_New(n)) == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t j = (uint32_t)w.key[i];
        PyList_SetItem(nodes, i, w.obj[j]);    /* the walk's reference, moved */
        w.obj[j] = NULL;
    }
    res = PyTuple_Pack(5, nodes, ob, ab, bb, vb);
    goto done;
other:
    if (PyErr_Occurred())
        goto done;
    res = Py_None;
    Py_INCREF(res);
done:
    walk_free(&w);
    Py_XDECREF(nodes);
    Py_XDECREF(ob);
    Py_XDECREF(ab);
    Py_XDECREF(bb);
    Py_XDECREF(vb);
    return res;
}

/* add_grads(nodes, adj, start) -> int
   v.grad += adj[i] for nodes[i], i = start, start + 1, ... (adj the bytes of
   len(nodes) doubles), the same float addition as Python's, each result a
   new float; it stops at the first node it leaves to the Python code (a
   type whose grad is not a plain slot, such as Parameter, or a grad that is
   not an exact float) and returns its index (len(nodes) when done). */
static PyObject *add_grads(PyObject *self, PyObject *args)
{
    PyObject *nodes, *adj, *st;
    (void)self;
    if (!PyArg_UnpackTuple(args, "add_grads", 3, 3, &nodes, &adj, &st))
        return NULL;
    Py_ssize_t start = PyLong_CheckExact(st) ? PyLong_AsSsize_t(st) : -1;
    if (start < 0) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "add_grads: start must be an int from 0");
        return NULL;
    }
    if (!PyList_CheckExact(nodes) || !PyBytes_CheckExact(adj)
        || PyBytes_Size(adj) != PyList_Size(nodes) * 8)
        return PyLong_FromSsize_t(start);      /* nothing done: all left to Python */
    Py_ssize_t n = PyList_Size(nodes), i = start;
    const char *g = PyBytes_AsString(adj);
    struct types ts = {{NULL}, 0};
    PyObject *names[1] = {s_grad};
    for (; i < n; i++) {
        PyObject *v = PyList_GetItem(nodes, i);
        Py_INCREF(v);
        int r = accepted(&ts, Py_TYPE(v), names, 1, 0, 1);
        PyObject *old = r == OK ? PyObject_GetAttr(v, s_grad) : NULL;
        if (old == NULL || !PyFloat_CheckExact(old)) {
            Py_XDECREF(old);
            Py_DECREF(v);
            if (r == FAIL || (r == OK && old == NULL && !PyErr_ExceptionMatches(PyExc_AttributeError)))
                goto fail;
            PyErr_Clear();
            break;                             /* the Python code does this one */
        }
        double x;
        memcpy(&x, g + 8 * i, 8);
        PyObject *sum = PyFloat_FromDouble(PyFloat_AsDouble(old) + x);
        Py_DECREF(old);
        if (sum == NULL || PyObject_SetAttr(v, s_grad, sum) < 0) {
            Py_XDECREF(sum);
            Py_DECREF(v);
            goto fail;
        }
        Py_DECREF(sum);
        Py_DECREF(v);
    }
    types_clear(&ts);
    return PyLong_FromSsize_t(i);
fail:
    types_clear(&ts);
    return NULL;
}

static PyMethodDef methods[] = {
    {"rows_to_doubles", rows_to_doubles, METH_VARARGS,
     "rows_to_doubles(rows, width) -> bytes | None: a list of rows of width floats or "
     "ints as the bytes of their doubles, row-major; None for anything else."},
    {"walk", walk, METH_O,
     "walk(root) -> (nodes, op, a, b, val) | None: graph.topo(root) and graph.flatten of it, "
     "op/a/b as the bytes of int32 arrays, val as the bytes of doubles; None for anything "
     "but plain nodes (the Python code then does it)."},
    {"add_grads", add_grads, METH_VARARGS,
     "add_grads(nodes, adj, start) -> int: v.grad += adj[i] for nodes[i] from start on "
     "(adj the bytes of doubles), stopping at the first node left to the Python code: "
     "its index, or len(nodes)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "microbp._pyread",
    "C that reads Python objects into flat arrays (fast paths; see csrc/pyread.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

static int init_names(void)
{
    struct { PyObject **at; const char *name; } names[] = {
        {&s_a, "_a"}, {&s_b, "_b"}, {&s_op, "_op"}, {&s_id, "_id"}, {&s_data, "_data"},
        {&s_grad, "grad"}, {&s_mro, "__mro__"}, {&s_dict, "__dict__"},
        {&s_getattribute, "__getattribute__"}, {&s_getattr, "__getattr__"},
        {&s_setattr, "__setattr__"}, {&s_hash, "__hash__"}, {&s_eq, "__eq__"},
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (*names[k].at == NULL && (*names[k].at = PyUnicode_InternFromString(names[k].name)) == NULL)
            return -1;
    link_names[0] = s_a;
    link_names[1] = s_b;
    link_names[2] = s_op;
    link_names[3] = s_id;
    PyObject *types = PyImport_ImportModule("types");
    if (types == NULL)
        return -1;
    member_type = PyObject_GetAttrString(types, "MemberDescriptorType");
    Py_DECREF(types);
    if (member_type == NULL || !PyType_Check(member_type))
        return -1;
    PyObject *d = PyObject_GetAttr((PyObject *)&PyBaseObject_Type, s_dict);
    if (d == NULL)
        return -1;
    obj_getattribute = PyObject_GetItem(d, s_getattribute);
    obj_setattr = PyObject_GetItem(d, s_setattr);
    obj_hash = PyObject_GetItem(d, s_hash);
    obj_eq = PyObject_GetItem(d, s_eq);
    Py_DECREF(d);
    return obj_getattribute && obj_setattr && obj_hash && obj_eq ? 0 : -1;
}

PyMODINIT_FUNC PyInit__pyread(void)
{
    if (init_names() < 0)
        return NULL;
    return PyModule_Create(&module);
}
