/* microbp._pyread: the C that reads Python objects (CPython's stable ABI).

The C core (microbp.c, through cffi) sees only flat arrays; turning Python
lists into those arrays, one object at a time, is what is left of a training
step's Python work at small widths, and turning a Value graph into them (and
the gradients back into the Values) is most of an eager backward() at scale.
This module does those parts in C.

Every function here is a fast path with a Python twin that has the last word:
it returns None for anything but the plain case (exact lists, tuples, floats
and ints; for walk, nodes whose links are plain slots), and the caller then
runs the Python code, which accepts the same inputs, computes the same
doubles and raises the errors that name the bad entry. So nothing here raises
for bad input: only MemoryError. add_grads is the one exception: it does all
of the Python loop it replaces, and so raises what that loop raises, where
it raises it.

No Python code runs while a function reads its argument (only exact builtin
types and plain slots are read, and reading them calls nothing), so with the
GIL held no other thread can change a list under it. The only Python code
that can run is in the first look at a type (see walk below), and in
add_grads where the loop it replaces would run it; what is read is held by a
strong reference across either.
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


/* -- the graph below a Value: walk() and add_grads() -----------------------

walk() is graph.topo + graph.flatten in C, add_grads() the loop that adds the
adjoints into each .grad. A node is an object of a type (metaclass `type`)
whose `_a`, `_b`, `_op` and `_id` are plain slots (the member descriptors that
__slots__ makes), that keeps object's __getattribute__, __hash__ and __eq__
and has no __getattr__: then a set of nodes is a set of identities, as in
topo, and reading an attribute is reading its slot. Value and its subclasses
are such types (Parameter among them) unless they override those. Each type
is checked once per call, its names looked up along its __mro__ in the class
dicts (as the interpreter does), and a slot is read at the offset its member
descriptor reads, found once per descriptor by probing a fresh instance of
its class (slot_offset).

That first look at a type can run Python code: a class dict may hold a key
that is not a str, whose __eq__ the lookup calls; the probe calls object's
__new__ and the descriptor's __set__; an allocation can set off the garbage
collector (finalizers, weakref callbacks, and with them other threads). That
code can change anything, the nodes already found included (their _id: one
node found twice). So when a type is met for the first time after nodes were
read, the walk starts again with every type met so far known (at most
NTYPES + NSEEN times): the pass that finishes looked at no new type and ran
no Python code. The node types of the last walk are looked at before the
first node is read (look_first), so that a walk over the kinds of nodes of
the last one (Value and Parameter, say) does not start again. Reading a slot
calls nothing, and every object read is checked for its exact type before
use. Every node is held by a strong reference from the moment it is found,
and the object read from a slot is held while anything else is done. A value
that is not a plain slot holding a float (Parameter's _data is a property)
is left to the caller: walk() gives the positions of those nodes and the
Python code reads them last, as flatten reads every value last.

The nodes are found by their `_id`, in pages of 256 ids looked up by page
number: a node's inputs were made shortly before it, so the lookups stay in
a few pages, and the pages read in order of their numbers give the nodes
sorted by creation, which is topo's order. Two objects with one id, an id
that is not an int, or ids so sparse that the pages would take much more
memory than the nodes: that is not the plain case (None).
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static PyObject *s_a, *s_b, *s_op, *s_id, *s_data, *s_grad, *s_mro, *s_dict,
    *s_getattribute, *s_getattr, *s_setattr, *s_hash, *s_eq, *s_del, *s_objclass,
    *s_basicsize, *s_new, *s_set;
static PyObject *member_type;                   /* types.MemberDescriptorType */
static PyObject *obj_getattribute, *obj_setattr, *obj_hash, *obj_eq;  /* object's own */

enum { OTHER = 0, OK = 1, FAIL = -1, AGAIN = 2 };   /* FAIL: an exception is set */

/* The attribute `name` of type t as the interpreter finds it (in the dict of
   the first class of t.__mro__ that has it): *out a new reference, or NULL
   when no class has it. OTHER for anything unusual (a metaclass other than
   type), FAIL with an exception set. */
static int type_lookup(PyObject *t, PyObject *name, PyObject **out)
{
    *out = NULL;
    PyObject *mro = PyObject_GetAttr(t, s_mro);
    if (mro == NULL)
        return FAIL;
    int r = PyTuple_CheckExact(mro) ? OK : OTHER;
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
        PyObject *x = PyObject_GetItem(d, name);      /* a key not a str: its __eq__ */
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

/* 1 when t's `name` is `want` (NULL: t has no such attribute), else 0. */
static int is(PyObject *t, PyObject *name, PyObject *want)
{
    PyObject *x;
    int r = type_lookup(t, name, &x);
    Py_XDECREF(x);                       /* compared by identity only */
    if (r != OK)
        PyErr_Clear();
    return r == OK && x == want;
}

/* Offsets of slots, found once per member descriptor (strong references:
   a descriptor's address names it while it is here). When full, the entry
   after the last one replaced goes (a program with many such classes probes
   again, and does not lose the fast path for good). */
#define NPROBED 32
static struct { PyObject *descr; Py_ssize_t off; } probed[NPROBED];
static int nprobed, nreplaced;

/* The offset in an instance at which the member descriptor d keeps its
   object, or -1 when it cannot be told: a fresh instance of d's class is
   given a new object through d, and the one word of the instance that holds
   it is the slot. A class with a __del__ is not probed (the instance is
   freed here); nor is any class without the GIL (slots are read unlocked). */
static Py_ssize_t slot_offset(PyObject *d)
{
    for (int k = 0; k < nprobed; k++)
        if (probed[k].descr == d)
            return probed[k].off;
    Py_ssize_t off = -1, size = -1;
    int failed = 0;                            /* a call failed: not kept (MemoryError) */
#ifndef Py_GIL_DISABLED
    PyObject *cls, *n = NULL, *inst = NULL, *mark = NULL, *r = NULL;
    cls = PyObject_GetAttr(d, s_objclass);
    if (cls == NULL || (PyObject *)Py_TYPE(cls) != (PyObject *)&PyType_Type
        || !is(cls, s_del, NULL))
        goto done;
    n = PyObject_GetAttr(cls, s_basicsize);
    if (n != NULL && PyLong_CheckExact(n))
        size = PyLong_AsSsize_t(n);
    if (size < (Py_ssize_t)sizeof(PyObject) || size > 1 << 16)
        goto done;
    inst = PyObject_CallMethodObjArgs((PyObject *)&PyBaseObject_Type, s_new, cls, NULL);
    mark = PyObject_CallObject((PyObject *)&PyBaseObject_Type, NULL);
    if (inst == NULL || mark == NULL || (PyObject *)Py_TYPE(inst) != cls)
        goto done;
    if ((r = PyObject_CallMethodObjArgs(d, s_set, inst, mark, NULL)) == NULL)
        goto done;
    for (Py_ssize_t at = sizeof(PyObject); at + (Py_ssize_t)sizeof(PyObject *) <= size;
         at += sizeof(PyObject *)) {
        PyObject *word;
        memcpy(&word, (char *)inst + at, sizeof word);
        if (word == mark) {
            if (off >= 0) {                    /* twice: it cannot be told */
                off = -1;
                break;
            }
            off = at;
        }
    }
done:
    failed = PyErr_Occurred() != NULL;
    PyErr_Clear();
    Py_XDECREF(r);
    Py_XDECREF(inst);
    Py_XDECREF(mark);
    Py_XDECREF(n);
    Py_XDECREF(cls);
#endif
    (void)size;
    if (failed)
        return -1;
    for (int k = 0; k < nprobed; k++)          /* (probed meanwhile, by the Python code run) */
        if (probed[k].descr == d)
            return probed[k].off;
    int k = nprobed;
    if (nprobed < NPROBED)
        nprobed++;
    else {
        k = nreplaced;
        nreplaced = (nreplaced + 1) % NPROBED;
    }
    PyObject *old = probed[k].descr;           /* NULL when the entry is new */
    Py_INCREF(d);
    probed[k].descr = d;
    probed[k].off = off;
    Py_XDECREF(old);                           /* last: freeing it can run Python code */
    return off;
}

/* The offset of t's slot `name`, or -1 when t's `name` is not a plain slot. */
static Py_ssize_t member_slot(PyObject *t, PyObject *name)
{
    PyObject *x, *cls = NULL;
    Py_ssize_t off = -1;
    if (type_lookup(t, name, &x) == OK && x != NULL
        && (PyObject *)Py_TYPE(x) == member_type
        && (cls = PyObject_GetAttr(x, s_objclass)) != NULL && PyType_Check(cls)
        && PyType_IsSubtype((PyTypeObject *)t, (PyTypeObject *)cls))
        off = slot_offset(x);
    PyErr_Clear();
    Py_XDECREF(cls);
    Py_XDECREF(x);
    return off;
}

/* What a call knows of a type: its slots' offsets (-1: not a plain slot). */
struct tinfo {
    PyTypeObject *t;
    Py_ssize_t a, b, op, id, data, grad;
    int node;                   /* a node type for walk() */
    int grads;                  /* add_grads() may write its grad slot */
};

#define NTYPES 8                /* the types of one graph */
#define NSEEN 4                 /* walk: and those of the last walk (look_first) */
struct types {
    struct tinfo e[NTYPES + NSEEN];
    int n;
};

static void types_clear(struct types *ts)
{
    for (int k = 0; k < ts->n; k++)
        Py_DECREF((PyObject *)ts->e[k].t);
    ts->n = 0;
}

/* What is known of tp in this call, or NULL. */
static const struct tinfo *known(const struct types *ts, PyTypeObject *tp)
{
    for (int k = 0; k < ts->n; k++)
        if (ts->e[k].t == tp)
            return &ts->e[k];
    return NULL;
}

/* What is known of tp, found out now if new (this can run Python code, the
   first time a descriptor is probed: hold what you read); NULL when the call
   has met too many types. */
static const struct tinfo *type_info(struct types *ts, PyTypeObject *tp)
{
    const struct tinfo *k = known(ts, tp);
    if (k != NULL || ts->n == NTYPES + NSEEN)
        return k;
    struct tinfo e = {tp, -1, -1, -1, -1, -1, -1, 0, 0};
    PyObject *t = (PyObject *)tp;
    Py_INCREF(t);
    if ((PyObject *)Py_TYPE(t) == (PyObject *)&PyType_Type
        && is(t, s_getattribute, obj_getattribute) && is(t, s_getattr, NULL)) {
        e.a = member_slot(t, s_a);
        e.b = member_slot(t, s_b);
        e.op = member_slot(t, s_op);
        e.id = member_slot(t, s_id);
        e.data = member_slot(t, s_data);
        e.grad = member_slot(t, s_grad);
        e.node = e.a >= 0 && e.b >= 0 && e.op >= 0 && e.id >= 0
                 && is(t, s_hash, obj_hash) && is(t, s_eq, obj_eq);
        e.grads = e.grad >= 0 && is(t, s_setattr, obj_setattr);
    }
    if ((k = known(ts, tp)) != NULL || ts->n == NTYPES + NSEEN) {   /* met meanwhile */
        Py_DECREF(t);
        return k;
    }
    ts->e[ts->n] = e;
    return &ts->e[ts->n++];
}

/* The object in o's slot at offset off (borrowed: only until Python code runs). */
static PyObject *slot(PyObject *o, Py_ssize_t off)
{
    PyObject *x;
    memcpy(&x, (char *)o + off, sizeof x);
    return x;
}

/* int32 *out from x: OK when x is an exact int in range. */
static int int32_of(PyObject *x, int32_t *out)
{
    if (x == NULL || !PyLong_CheckExact(x))
        return OTHER;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(x, &overflow);
    if (overflow || v < INT32_MIN || v > INT32_MAX) {
        PyErr_Clear();
        return OTHER;
    }
    *out = (int32_t)v;
    return OK;
}

/* o's id, as an unsigned number of the same order: OK when an exact int64. */
static int id_key(PyObject *o, const struct tinfo *e, uint64_t *key)
{
    PyObject *x = slot(o, e->id);
    if (x == NULL || !PyLong_CheckExact(x))
        return OTHER;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(x, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return OTHER;
    }
    *key = (uint64_t)v ^ ((uint64_t)1 << 63);
    return OK;
}

#define PAGE 256
enum { HAS_A = 1, HAS_B = 2, LATER = 4 };
struct page {
    uint64_t no;                /* the ids (as keys) no * PAGE to no * PAGE + PAGE - 1 */
    PyObject *obj[PAGE];        /* the node of each id, owned, or NULL */
    uint64_t ka[PAGE], kb[PAGE];    /* the keys of its inputs (with HAS_A, HAS_B) */
    double val[PAGE];           /* its value (unless LATER: left to the caller) */
    int32_t op[PAGE];           /* its op code */
    int32_t pos[PAGE];          /* its position in creation order */
    uint8_t flag[PAGE];
};

struct walk {
    struct page **pages;
    Py_ssize_t np, capp;
    int32_t *dir;               /* page number -> index in pages (-1: none), open addressing */
    size_t dmask;
    struct page *last;          /* the page of the last lookup */
    struct todo { struct page *p; Py_ssize_t j; } *stack;   /* nodes to look into */
    Py_ssize_t sp, caps;
    Py_ssize_t n;               /* nodes found */
    struct types types;
};

static size_t page_hash(uint64_t no, size_t mask)
{
    return (size_t)((no * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static void dir_put(int32_t *dir, size_t mask, uint64_t no, int32_t i)
{
    size_t h = page_hash(no, mask);
    while (dir[h] >= 0)
        h = (h + 1) & mask;
    dir[h] = i;
}

/* arr (*cap items of `size` bytes) moved into twice the room, *cap doubled;
   NULL with MemoryError set (arr and *cap as they were) */
static void *doubled(void *arr, Py_ssize_t *cap, size_t size)
{
    void *q = PyMem_Realloc(arr, (size_t)*cap * 2 * size);
    if (q == NULL)
        return PyErr_NoMemory(), NULL;
    *cap *= 2;
    return q;
}

/* The page of page number no, made when new if `make`; NULL when there is
   none, when the pages would take much more memory than the nodes (OTHER),
   or out of memory (FAIL, MemoryError set). */
static struct page *page_of(struct walk *w, uint64_t no, int make)
{
    if (w->last != NULL && w->last->no == no)
        return w->last;
    for (size_t h = page_hash(no, w->dmask); w->dir[h] >= 0; h = (h + 1) & w->dmask)
        if (w->pages[w->dir[h]]->no == no)
            return w->last = w->pages[w->dir[h]];
    /* at most 4 ids per node found (+ 64K): a page holds 41 bytes per id, so
       the pages never take much more than the Python path's set and lists */
    if (!make || (w->np + 1) * PAGE > 4 * (w->n + 1) + 65536 || w->np >= INT32_MAX / 4)
        return NULL;                            /* too sparse: not the plain case */
    if (w->np == w->capp) {
        void *q = doubled(w->pages, &w->capp, sizeof *w->pages);
        if (q == NULL)
            return NULL;
        w->pages = q;
    }
    if ((size_t)(w->np + 1) * 2 > w->dmask + 1) {        /* the directory, twice as large */
        size_t cap = (w->dmask + 1) * 2;
        int32_t *d = PyMem_Malloc(cap * sizeof *d);
        if (d == NULL)
            return PyErr_NoMemory(), NULL;
        memset(d, 0xff, cap * sizeof *d);
        for (Py_ssize_t i = 0; i < w->np; i++)
            dir_put(d, cap - 1, w->pages[i]->no, (int32_t)i);
        PyMem_Free(w->dir);
        w->dir = d;
        w->dmask = cap - 1;
    }
    struct page *p = PyMem_Malloc(sizeof *p);
    if (p == NULL)
        return PyErr_NoMemory(), NULL;
    memset(p->obj, 0, sizeof p->obj);
    p->no = no;
    dir_put(w->dir, w->dmask, no, (int32_t)w->np);
    w->pages[w->np++] = p;
    return w->last = p;
}

/* o, met as the root or as an input: a new node (held, its op code and value
   read, to be looked into), or one met before. *key its id's key. OTHER when
   it is not a node, or another node has its id. */
static int visit(struct walk *w, PyObject *o, uint64_t *key)
{
    const struct tinfo *e = known(&w->types, Py_TYPE(o));
    if (e == NULL) {
        e = type_info(&w->types, Py_TYPE(o));
        if (e != NULL && w->n > 0)
            return AGAIN;                       /* Python code may have run: see walk() */
    }
    if (e == NULL || e->t != Py_TYPE(o) || !e->node || id_key(o, e, key) != OK)
        return OTHER;                           /* (its class may change meanwhile) */
    struct page *p = page_of(w, *key / PAGE, 1);
    if (p == NULL)
        return PyErr_Occurred() ? FAIL : OTHER;
    Py_ssize_t j = (Py_ssize_t)(*key % PAGE);
    if (p->obj[j] == o)
        return OK;
    if (p->obj[j] != NULL || w->n == INT32_MAX)
        return OTHER;                           /* two nodes with one id, or too many */
    if (int32_of(slot(o, e->op), &p->op[j]) != OK)
        return OTHER;
    PyObject *x = e->data >= 0 ? slot(o, e->data) : NULL;
    p->flag[j] = 0;
    if (x != NULL && PyFloat_CheckExact(x))
        p->val[j] = PyFloat_AsDouble(x);
    else {
        p->val[j] = 0.0;                        /* the caller reads it (a property) */
        p->flag[j] = LATER;
    }
    if (w->sp == w->caps) {
        void *q = doubled(w->stack, &w->caps, sizeof *w->stack);
        if (q == NULL)
            return FAIL;
        w->stack = q;
    }
    Py_INCREF(o);
    p->obj[j] = o;
    w->n++;
    w->stack[w->sp].p = p;
    w->stack[w->sp++].j = j;
    return OK;
}

/* Every node below the root, depth first as topo goes (each node's _a, then
   its _b; a node whose _a is None is a leaf, and then its _b must be None). */
static int dfs(struct walk *w, PyObject *root)
{
    uint64_t key;
    int r = visit(w, root, &key);
    while (r == OK && w->sp > 0) {
        struct todo t = w->stack[--w->sp];
        PyObject *v = t.p->obj[t.j];
        const struct tinfo *e = known(&w->types, Py_TYPE(v));
        if (e == NULL || !e->node)
            return OTHER;                       /* its class changed meanwhile */
        PyObject *a = slot(v, e->a), *b = slot(v, e->b);
        if (a == NULL || b == NULL)
            return OTHER;                       /* unset: AttributeError in topo */
        if (a == Py_None) {
            if (b != Py_None)
                return OTHER;
            continue;
        }
        Py_INCREF(a);                           /* held: visit() may run Python code */
        Py_INCREF(b);
        if ((r = visit(w, a, &t.p->ka[t.j])) == OK) {
            t.p->flag[t.j] |= HAS_A;
            if (b != Py_None && (r = visit(w, b, &t.p->kb[t.j])) == OK)
                t.p->flag[t.j] |= HAS_B;
        }
        Py_DECREF(a);
        Py_DECREF(b);
    }
    return r;
}

/* The position of the node of id key (one the walk has found). */
static int32_t position(struct walk *w, uint64_t key)
{
    struct page *p = page_of(w, key / PAGE, 0);
    return p == NULL ? -1 : p->pos[key % PAGE];     /* never NULL: it was found */
}

static int by_number(const void *x, const void *y)
{
    uint64_t a = (*(struct page *const *)x)->no, b = (*(struct page *const *)y)->no;
    return a < b ? -1 : a > b;
}

/* The nodes let go and the pages freed: nothing found yet. */
static void walk_clear(struct walk *w)
{
    Py_ssize_t np = w->np;
    struct page **pages = w->pages;
    w->np = w->n = w->sp = 0;                   /* (decrefs can run Python code) */
    w->last = NULL;
    memset(w->dir, 0xff, (w->dmask + 1) * sizeof *w->dir);
    for (Py_ssize_t i = 0; i < np; i++) {
        for (int j = 0; j < PAGE; j++) {
            PyObject *o = pages[i]->obj[j];
            pages[i]->obj[j] = NULL;
            Py_XDECREF(o);
        }
        PyMem_Free(pages[i]);
    }
}

static void walk_free(struct walk *w)
{
    if (w->dir != NULL)
        walk_clear(w);
    PyMem_Free(w->pages);
    PyMem_Free(w->dir);
    PyMem_Free(w->stack);
    types_clear(&w->types);
}

/* The node types of the last walk that finished (strong references, at most
   NSEEN): the next walk looks at them before it reads a node, so that a walk
   over the kinds of nodes the last one met need not start again (see dfs). */
static PyTypeObject *seen_types[NSEEN];
static int nseen;

static void look_first(struct types *ts)
{
    PyTypeObject *t[NSEEN];
    int n = nseen;
    for (int k = 0; k < n; k++) {
        t[k] = seen_types[k];
        Py_INCREF((PyObject *)t[k]);            /* held: type_info can run Python code */
    }
    for (int k = 0; k < n; k++)
        (void)type_info(ts, t[k]);
    for (int k = 0; k < n; k++)
        Py_DECREF((PyObject *)t[k]);
}

static void remember(const struct types *ts)
{
    PyTypeObject *old[NSEEN];
    int nold = nseen, n = 0;
    memcpy(old, seen_types, sizeof old);
    for (int k = 0; k < ts->n && n < NSEEN; k++)
        if (ts->e[k].node) {
            Py_INCREF((PyObject *)ts->e[k].t);
            seen_types[n++] = ts->e[k].t;
        }
    nseen = n;
    for (int k = 0; k < nold; k++)             /* last: freeing a type can run Python code */
        Py_DECREF((PyObject *)old[k]);
}

/* walk(root) -> (nodes, op, a, b, val, later) | None
   graph.topo(root) and graph.flatten of it: nodes the list topo gives, op, a
   and b the bytes of flatten's lists as int32, val the bytes of the values as
   doubles, except at the positions in `later` (the bytes of int32): there the
   value is not a plain slot holding a float, and the caller reads it. None
   for anything but the plain case (see above). */
static PyObject *walk(PyObject *self, PyObject *root)
{
    (void)self;
    struct walk w;
    memset(&w, 0, sizeof w);
    PyObject *res = NULL, *nodes = NULL, *ob = NULL, *ab = NULL, *bb = NULL, *vb = NULL,
             *lb = NULL;
    w.capp = w.caps = 64;
    w.dmask = 127;
    w.pages = PyMem_Malloc((size_t)w.capp * sizeof *w.pages);
    w.stack = PyMem_Malloc((size_t)w.caps * sizeof *w.stack);
    w.dir = PyMem_Malloc((w.dmask + 1) * sizeof *w.dir);
    if (w.pages == NULL || w.stack == NULL || w.dir == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memset(w.dir, 0xff, (w.dmask + 1) * sizeof *w.dir);
    look_first(&w.types);
    int r;
    while ((r = dfs(&w, root)) == AGAIN)      /* a type met for the first time after */
        walk_clear(&w);                        /* nodes were read: read them all again */
    if (r != OK)
        goto other;
    remember(&w.types);
    /* the pages in order of their numbers: the nodes in creation order */
    qsort(w.pages, (size_t)w.np, sizeof *w.pages, by_number);
    memset(w.dir, 0xff, (w.dmask + 1) * sizeof *w.dir);   /* pages moved: index anew */
    Py_ssize_t n = 0, nlater = 0;
    for (Py_ssize_t i = 0; i < w.np; i++) {
        struct page *p = w.pages[i];
        dir_put(w.dir, w.dmask, p->no, (int32_t)i);
        for (int j = 0; j < PAGE; j++)
            if (p->obj[j] != NULL) {
                p->pos[j] = (int32_t)n++;
                nlater += (p->flag[j] & LATER) != 0;
            }
    }
    w.last = NULL;
    if ((ob = PyBytes_FromStringAndSize(NULL, n * 4)) == NULL
        || (ab = PyBytes_FromStringAndSize(NULL, n * 4)) == NULL
        || (bb = PyBytes_FromStringAndSize(NULL, n * 4)) == NULL
        || (vb = PyBytes_FromStringAndSize(NULL, n * 8)) == NULL
        || (lb = PyBytes_FromStringAndSize(NULL, nlater * 4)) == NULL
        || (nodes = PyList_New(n)) == NULL)
        goto done;
    int32_t *po = (int32_t *)PyBytes_AsString(ob), *pa = (int32_t *)PyBytes_AsString(ab),
            *pb = (int32_t *)PyBytes_AsString(bb), *pl = (int32_t *)PyBytes_AsString(lb);
    double *pv = (double *)PyBytes_AsString(vb);
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < w.np; i++) {
        struct page *p = w.pages[i];
        for (int j = 0; j < PAGE; j++) {
            if (p->obj[j] == NULL)
                continue;
            int f = p->flag[j];
            po[k] = p->op[j];
            pa[k] = f & HAS_A ? position(&w, p->ka[j]) : -1;
            pb[k] = f & HAS_B ? position(&w, p->kb[j]) : -1;
            pv[k] = p->val[j];
            if (f & LATER)
                *pl++ = (int32_t)k;
            PyList_SetItem(nodes, k++, p->obj[j]);   /* the page's reference */
            p->obj[j] = NULL;
        }
    }
    res = PyTuple_Pack(6, nodes, ob, ab, bb, vb, lb);
    goto done;
other:
    if (!PyErr_Occurred()) {
        res = Py_None;
        Py_INCREF(res);
    }
done:
    walk_free(&w);
    Py_XDECREF(nodes);
    Py_XDECREF(ob);
    Py_XDECREF(ab);
    Py_XDECREF(bb);
    Py_XDECREF(vb);
    Py_XDECREF(lb);
    return res;
}

/* add_grads(nodes, adj, start) -> int
   `v.grad += adj[i]` for v = nodes[i], i = start, start + 1, ... (adj the
   bytes of len(nodes) doubles), in order. Where v's grad is a plain slot
   holding a float, the sum is made and stored here (the same float addition,
   a new float, stored as the slot's setter stores it); anywhere else (a
   Parameter's grad is a property) it is done as Python does it: the
   attribute read, `+=` with the float adj[i], the attribute set, which may
   run Python code; after that each type is checked again before a slot is
   written. Returns len(nodes), or start when nodes is not a list or adj not
   the bytes of as many doubles (nothing done); raises what `v.grad += x`
   raises, at the node where Python would, and TypeError when start is not an
   int >= 0. */
static PyObject *add_grads(PyObject *self, PyObject *args)
{
    PyObject *nodes, *adj, *st;
    (void)self;
    if (!PyArg_UnpackTuple(args, "add_grads", 3, 3, &nodes, &adj, &st))
        return NULL;
    Py_ssize_t start = PyLong_CheckExact(st) ? PyLong_AsSsize_t(st) : -1;
    if (start < 0) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "add_grads: start must be an int >= 0");
        return NULL;
    }
    if (!PyList_CheckExact(nodes) || !PyBytes_CheckExact(adj)
        || PyBytes_Size(adj) != PyList_Size(nodes) * 8)
        return PyLong_FromSsize_t(start);      /* nothing done: all left to Python */
    Py_ssize_t n = PyList_Size(nodes), i = start;
    const char *g = PyBytes_AsString(adj);
    struct types ts;
    ts.n = 0;
    int ran = 0;                               /* Python code may have run */
    PyObject *v = NULL, *old, *sum;
    for (; i < n && i < PyList_Size(nodes); i++) {
        double x;
        v = PyList_GetItem(nodes, i);
        memcpy(&x, g + 8 * i, sizeof x);
        Py_INCREF(v);                          /* held: Python code may run */
        if (ran) {                             /* a class may have changed: look again */
            types_clear(&ts);
            ran = 0;
        }
        const struct tinfo *e = type_info(&ts, Py_TYPE(v));
        if (e != NULL && e->t == Py_TYPE(v) && e->grads && (old = slot(v, e->grad)) != NULL
            && PyFloat_CheckExact(old)) {
            if ((sum = PyFloat_FromDouble(PyFloat_AsDouble(old) + x)) == NULL)
                goto fail;
            memcpy((char *)v + e->grad, &sum, sizeof sum);   /* as the slot's setter */
            Py_DECREF(old);                    /* a float: freeing it calls nothing */
            Py_DECREF(v);
            continue;
        }
        ran = 1;                               /* as Python: v.grad += x */
        PyObject *xo = PyFloat_FromDouble(x);
        old = xo != NULL ? PyObject_GetAttr(v, s_grad) : NULL;
        sum = old != NULL ? PyNumber_InPlaceAdd(old, xo) : NULL;
        int r = sum != NULL ? PyObject_SetAttr(v, s_grad, sum) : -1;
        Py_XDECREF(xo);
        Py_XDECREF(old);
        Py_XDECREF(sum);
        if (r < 0)
            goto fail;
        Py_DECREF(v);
    }
    types_clear(&ts);
    return PyLong_FromSsize_t(i);
fail:
    Py_DECREF(v);
    types_clear(&ts);
    return NULL;
}

/* -- untrack(value): a node the cycle collector need not follow ------------

A Value refers only to floats, ints, a str and the Values it was made from,
all older than itself, so Values make no reference cycles: reference counts
free every graph. The cycle collector still tracks them (a class with
__slots__ is a container type) and walks all live ones at each of its full
collections, which is most of the cost per node of building a big graph.
untrack() takes a node off its list, as CPython does for tuples and dicts
that hold only atomic objects. engine.py calls it on the Values it makes
itself (exact Value, never a subclass). */
static PyObject *untrack(PyObject *self, PyObject *v)
{
    (void)self;
    if (PyObject_GC_IsTracked(v))
        PyObject_GC_UnTrack(v);
    Py_RETURN_NONE;
}

/* new_untracked(cls): object.__new__(cls) for a class of plain instances (a
   heap type, not abstract), taken off the collector's lists as it is made:
   one call for engine.py's interior nodes. */
static PyObject *new_untracked(PyObject *self, PyObject *cls)
{
    (void)self;
    if (!PyType_Check(cls) || !(PyType_GetFlags((PyTypeObject *)cls) & Py_TPFLAGS_HEAPTYPE)
        || (PyType_GetFlags((PyTypeObject *)cls) & Py_TPFLAGS_IS_ABSTRACT)) {
        PyErr_SetString(PyExc_TypeError, "new_untracked(cls): cls must be a concrete class");
        return NULL;
    }
    allocfunc alloc = (allocfunc)PyType_GetSlot((PyTypeObject *)cls, Py_tp_alloc);
    PyObject *v = alloc == NULL ? NULL : alloc((PyTypeObject *)cls, 0);
    if (v != NULL && PyObject_GC_IsTracked(v))
        PyObject_GC_UnTrack(v);
    return v;
}

static PyMethodDef methods[] = {
    {"untrack", untrack, METH_O,
     "untrack(value) -> None: take an object that can be in no reference cycle off the "
     "cycle collector's lists (engine.py: the Values it makes)."},
    {"new_untracked", new_untracked, METH_O,
     "new_untracked(cls) -> object.__new__(cls), untracked (engine.py: interior nodes)."},
    {"rows_to_doubles", rows_to_doubles, METH_VARARGS,
     "rows_to_doubles(rows, width) -> bytes | None: a list of rows of width floats or "
     "ints as the bytes of their doubles, row-major; None for anything else."},
    {"walk", walk, METH_O,
     "walk(root) -> (nodes, op, a, b, val, later) | None: graph.topo(root) and graph.flatten "
     "of it, op/a/b as the bytes of int32 arrays, val as the bytes of doubles but at the "
     "positions in later (bytes of int32), left to the caller; None for anything but plain "
     "nodes (the Python code then does it)."},
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
        {&s_del, "__del__"}, {&s_objclass, "__objclass__"}, {&s_basicsize, "__basicsize__"},
        {&s_new, "__new__"}, {&s_set, "__set__"},
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (*names[k].at == NULL && (*names[k].at = PyUnicode_InternFromString(names[k].name)) == NULL)
            return -1;
    if (member_type != NULL)
        return 0;
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
