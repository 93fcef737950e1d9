/* calls.prepare_op_by_op's loop in C, for the histories it meets every day.

   The Python loop costs about a microsecond per op; on an easy history (few timeouts,
   so the search is nearly linear) that was most of the check, and Porcupine's Go took
   a third of our time. This is the same loop, step for step (calls.py is the reference
   and the documentation), over the same dicts, asking the same Python `ask` for the
   model's answers. Where the Python loop would raise, or meets a type it treats
   specially, this returns None and the caller runs the Python loop, which raises naming
   the op: the C never decides anything about a malformed history.

   prepare(history, ask, key_field, independent, observe_failed_cas, call_type,
           key_name, unknown, failed, plain_types, single_key)
   -> (keys: {name: Calls in invocation order}, ignored, dropped_fail, skipped_unknown) | None

   A Calls is the key's calls packed, a row each (_calls.h): a sequence of calls.Call
   to Python code, made when first read, and rows for the walk in C to read directly.
   Read from Call tuples, scattered over the heap with their position ints, the walk's
   set-up was a few cache misses per call, most of its time on an easy history.

   Built by setup.sh (gcc, the venv's Python headers); calls.py uses it when the
   module imports and the Python loop otherwise. tests/test_linearizable_prepare.py
   compares the two on random and malformed histories of every model. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include "_calls.h"

#define NO_PARTNER (-1)
#define NEMESIS_SLOT (-2)

enum kind { K_INVOKE, K_OK, K_FAIL, K_INFO, K_OPEN, K_OTHER };

static PyObject *s_type, *s_process, *s_f, *s_value, *s_cas, *s_nemesis;
static PyObject *s_ok, *s_fail, *s_info, *s_open;   /* the kind strings stored in calls */

static enum kind kind_of(PyObject *t) {
    if (t == NULL || !PyUnicode_CheckExact(t) || !PyUnicode_IS_COMPACT_ASCII(t)) return K_OTHER;
    const char *c = (const char *)PyUnicode_DATA(t);
    switch (PyUnicode_GET_LENGTH(t)) {
    case 6: return memcmp(c, "invoke", 6) == 0 ? K_INVOKE : K_OTHER;
    case 2: return memcmp(c, "ok", 2) == 0 ? K_OK : K_OTHER;
    case 4: return memcmp(c, "info", 4) == 0 ? K_INFO : memcmp(c, "fail", 4) == 0 ? K_FAIL : K_OTHER;
    default: return K_OTHER;
    }
}

/* p == "nemesis", as Python's == would say it for the types processes have; -1 on error */
static int is_nemesis(PyObject *p) {
    if (p == NULL || p == Py_None || PyLong_CheckExact(p)) return 0;
    return PyObject_RichCompareBool(p, s_nemesis, Py_EQ);
}

/* a value of a [key, value] pair: exact list or tuple of two; NULL (no error) if not */
static int as_pair(PyObject *v, PyObject **first, PyObject **second) {
    if (PyList_CheckExact(v) && PyList_GET_SIZE(v) == 2) {
        *first = PyList_GET_ITEM(v, 0);
        *second = PyList_GET_ITEM(v, 1);
        return 1;
    }
    if (PyTuple_CheckExact(v) && PyTuple_GET_SIZE(v) == 2) {
        *first = PyTuple_GET_ITEM(v, 0);
        *second = PyTuple_GET_ITEM(v, 1);
        return 1;
    }
    return 0;
}

/* Small non-negative int processes and keys (the usual ones) are looked up in arrays,
   not dicts: a third of the loop's time was dict lookups. */
#define SMALL (1 << 22)
#define NONE_OPEN (-3)

typedef struct {
    Py_ssize_t *at;   /* process -> position of its open invocation, or NONE_OPEN */
    Py_ssize_t cap;
} OpenArray;

static Py_ssize_t small_int(PyObject *v) {   /* v if an exact int in [0, SMALL), else -1 */
    if (!PyLong_CheckExact(v)) return -1;
    Py_ssize_t x = PyLong_AsSsize_t(v);
    if (x == -1 && PyErr_Occurred()) { PyErr_Clear(); return -1; }
    return x >= 0 && x < SMALL ? x : -1;
}

static int open_reserve(OpenArray *o, Py_ssize_t p) {
    if (p < o->cap) return 0;
    Py_ssize_t cap = o->cap ? o->cap : 64;
    while (cap <= p) cap *= 2;
    Py_ssize_t *a = PyMem_Realloc(o->at, sizeof(Py_ssize_t) * cap);
    if (a == NULL) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t j = o->cap; j < cap; j++) a[j] = NONE_OPEN;
    o->at = a;
    o->cap = cap;
    return 0;
}

static int by_position(const void *a, const void *b) {
    Py_ssize_t x = *(const Py_ssize_t *)a, y = *(const Py_ssize_t *)b;
    return x < y ? -1 : x > y;
}

/* The model's answers for the usual ops (f one of a few strs; values and outcomes None,
   bools, ints of up to 40 bits or pairs of 27-bit ints, the outcome markers) are kept
   in a table keyed by two words that code (f, value, outcome) exactly, type included:
   building, hashing and comparing a tuple key was a third of the loop. */
typedef struct {
    uint64_t a, b;        /* a == 0: empty */
    PyObject *answer;     /* owned */
} Slot;

typedef struct {
    Slot *slots;
    Py_ssize_t cap, used;
    PyObject *fs[15];     /* owned: the f strs met, their index goes into the key */
    int n_fs;
} Coded;

typedef struct {
    PyObject *history, *ask, *key_field, *call_type, *key_name, *unknown, *failed, *plain;
    PyObject *single_key;
    int independent, observe;
    PyObject *keys, *names, *memo;
    Coded coded;
    PyObject **int_names;   /* names of small int keys */
    Py_ssize_t int_names_cap;
    Py_ssize_t ignored, dropped_fail, skipped_unknown;
} Prep;

/* 1 if v is of a plain type (st->plain: 1 == True, so types go beside values), 2 if a
   list of two such, 0 if neither, -1 on error */
static int plainness(Prep *st, PyObject *v) {
    int in = PySet_Contains(st->plain, (PyObject *)Py_TYPE(v));
    if (in != 0) return in;
    if (!PyList_CheckExact(v) || PyList_GET_SIZE(v) != 2) return 0;
    in = PySet_Contains(st->plain, (PyObject *)Py_TYPE(PyList_GET_ITEM(v, 0)));
    if (in <= 0) return in;
    in = PySet_Contains(st->plain, (PyObject *)Py_TYPE(PyList_GET_ITEM(v, 1)));
    return in <= 0 ? in : 2;
}

/* A value's code: nonzero, and equal for two values exactly when they are of the same
   type and equal; 0 when it has none (the tuple memo below remembers it then). */
static uint64_t code_of(Prep *st, PyObject *v) {
    if (v == Py_None) return 1;
    if (v == st->unknown) return 2;
    if (v == st->failed) return 3;
    if (v == Py_True) return 4 | 1 << 4;
    if (v == Py_False) return 4;
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || x < -(1LL << 40) || x >= (1LL << 40)) return 0;
        return 5 | (uint64_t)(x + (1LL << 40)) << 4;
    }
    if (PyList_CheckExact(v) && PyList_GET_SIZE(v) == 2) {
        uint64_t code = 6;
        for (int j = 0; j < 2; j++) {
            PyObject *e = PyList_GET_ITEM(v, j);
            if (!PyLong_CheckExact(e)) return 0;
            int overflow;
            long long x = PyLong_AsLongLongAndOverflow(e, &overflow);
            if (overflow || x < -(1LL << 27) || x >= (1LL << 27)) return 0;
            code |= (uint64_t)(x + (1LL << 27)) << (4 + 28 * j);
        }
        return code;
    }
    return 0;
}

static int f_index(Coded *c, PyObject *f) {   /* -1: not coded (too many fs, or an error) */
    for (int j = 0; j < c->n_fs; j++) {
        if (c->fs[j] == f) return j;
        if (PyUnicode_GET_LENGTH(c->fs[j]) == PyUnicode_GET_LENGTH(f) && PyUnicode_Compare(c->fs[j], f) == 0)
            return j;
    }
    if (PyErr_Occurred()) { PyErr_Clear(); return -1; }
    if (c->n_fs == 15) return -1;
    Py_INCREF(f);
    c->fs[c->n_fs] = f;
    return c->n_fs++;
}

static Slot *coded_slot(Coded *c, uint64_t a, uint64_t b) {
    uint64_t h = (a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL);
    Py_ssize_t mask = c->cap - 1, i = (Py_ssize_t)((h ^ (h >> 29)) & mask);
    while (c->slots[i].a != 0 && (c->slots[i].a != a || c->slots[i].b != b)) i = (i + 1) & mask;
    return &c->slots[i];
}

static int coded_grow(Coded *c) {
    Py_ssize_t cap = c->cap ? c->cap * 2 : 256;
    Slot *old = c->slots;
    Py_ssize_t old_cap = c->cap;
    c->slots = PyMem_Calloc(cap, sizeof(Slot));
    if (c->slots == NULL) { c->slots = old; PyErr_NoMemory(); return -1; }
    c->cap = cap;
    for (Py_ssize_t j = 0; j < old_cap; j++)
        if (old[j].a != 0) *coded_slot(c, old[j].a, old[j].b) = old[j];
    PyMem_Free(old);
    return 0;
}

static void coded_free(Coded *c) {
    for (Py_ssize_t j = 0; j < c->cap; j++) Py_XDECREF(c->slots[j].answer);
    PyMem_Free(c->slots);
    for (int j = 0; j < c->n_fs; j++) Py_DECREF(c->fs[j]);
}

/* What the model's answer is remembered by (as in calls.py, and also for a pair
   outcome: a CAS's under independent keys), or NULL with no error when the op is not
   remembered; NULL with an error on failure. */
static PyObject *memo_key(Prep *st, PyObject *f, PyObject *value, PyObject *got) {
    int pv = plainness(st, value), pg = pv > 0 ? plainness(st, got) : pv;
    if (pv < 0 || pg < 0) return NULL;
    if (pv == 0 || pg == 0) return NULL;
    PyObject *parts[11] = {f};
    int n = 1;
    PyObject *sides[2] = {value, got};
    int kinds[2] = {pv, pg};
    for (int s = 0; s < 2; s++) {
        PyObject *v = sides[s];
        if (kinds[s] == 1) {
            parts[n++] = (PyObject *)Py_TYPE(v);
            parts[n++] = v;
        } else {
            parts[n++] = (PyObject *)&PyList_Type;
            for (int j = 0; j < 2; j++) {
                parts[n++] = (PyObject *)Py_TYPE(PyList_GET_ITEM(v, j));
                parts[n++] = PyList_GET_ITEM(v, j);
            }
        }
    }
    PyObject *key = PyTuple_New(n);
    if (key == NULL) return NULL;
    for (int j = 0; j < n; j++) {
        Py_INCREF(parts[j]);
        PyTuple_SET_ITEM(key, j, parts[j]);
    }
    return key;
}

/* The key's name, or NULL: -1 error, 0 bail out (the Python loop decides) */
static PyObject *key_of(Prep *st, PyObject *invoke, PyObject **value, int known, PyObject **result,
                        int *status) {
    *status = 1;
    if (st->key_field != Py_None) {
        PyObject *k = PyDict_GetItemWithError(invoke, st->key_field);
        if (k != NULL) {
            PyObject *name = PyObject_CallOneArg(st->key_name, k);
            if (name == NULL) *status = -1;
            return name;
        }
        if (PyErr_Occurred()) { *status = -1; return NULL; }
    }
    if (!st->independent) {
        Py_INCREF(st->single_key);
        return st->single_key;
    }
    PyObject *k, *v;
    if (!as_pair(*value, &k, &v)) { *status = 0; return NULL; }
    *value = v;
    if (known) {
        PyObject *r0, *r1;
        if (!as_pair(*result, &r0, &r1)) { *status = 0; return NULL; }
        *result = r1;
    }
    if (!PyLong_CheckExact(k) && !PyUnicode_CheckExact(k)) {
        PyObject *name = PyObject_CallOneArg(st->key_name, k);
        if (name == NULL) *status = -1;
        return name;
    }
    /* exactly int or str: one name per key (a dict would take True for 1; those two
       types never compare equal to each other, so the cache is exact) */
    Py_ssize_t small = small_int(k);
    if (small >= 0 && small < 65536) {
        if (small >= st->int_names_cap) {
            Py_ssize_t cap = st->int_names_cap ? st->int_names_cap : 64;
            while (cap <= small) cap *= 2;
            PyObject **a = PyMem_Realloc(st->int_names, sizeof(PyObject *) * cap);
            if (a == NULL) { PyErr_NoMemory(); *status = -1; return NULL; }
            for (Py_ssize_t j = st->int_names_cap; j < cap; j++) a[j] = NULL;
            st->int_names = a;
            st->int_names_cap = cap;
        }
        if (st->int_names[small] == NULL) {
            st->int_names[small] = PyObject_CallOneArg(st->key_name, k);
            if (st->int_names[small] == NULL) { *status = -1; return NULL; }
        }
        Py_INCREF(st->int_names[small]);
        return st->int_names[small];
    }
    PyObject *name = PyDict_GetItemWithError(st->names, k);
    if (name != NULL) { Py_INCREF(name); return name; }
    if (PyErr_Occurred()) { *status = -1; return NULL; }
    name = PyObject_CallOneArg(st->key_name, k);
    if (name == NULL) { *status = -1; return NULL; }
    if (PyDict_SetItem(st->names, k, name) < 0) { Py_DECREF(name); *status = -1; return NULL; }
    return name;
}

/* ---- Calls: a key's rows, and the Call tuples made from them when asked (_calls.h) */

typedef struct {
    PyObject_HEAD
    Row *rows;
    Py_ssize_t n, cap;
    PyObject *history, *call_type;   /* owned */
    PyObject *list;                  /* the Call tuples, once made (NULL before) */
} Calls;

static PyTypeObject CallsType;

static void calls_dealloc(Calls *c) {
    for (Py_ssize_t j = 0; j < c->n; j++) {
        Row *r = &c->rows[j];
        Py_DECREF(r->answer); Py_DECREF(r->process); Py_DECREF(r->f); Py_DECREF(r->value); Py_DECREF(r->kind);
    }
    PyMem_Free(c->rows);
    Py_XDECREF(c->history);
    Py_XDECREF(c->call_type);
    Py_XDECREF(c->list);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static Calls *calls_new(PyObject *history, PyObject *call_type) {
    Calls *c = PyObject_New(Calls, &CallsType);
    if (c == NULL) return NULL;
    c->rows = NULL;
    c->n = c->cap = 0;
    Py_INCREF(history); c->history = history;
    Py_INCREF(call_type); c->call_type = call_type;
    c->list = NULL;
    return c;
}

/* the row appended takes over its owned references (answer, process, f, value, kind) */
static Row *calls_push(Calls *c) {
    if (c->n == c->cap) {
        Py_ssize_t cap = c->cap ? c->cap * 2 : 16;
        Row *rows = PyMem_Realloc(c->rows, sizeof(Row) * cap);
        if (rows == NULL) { PyErr_NoMemory(); return NULL; }
        c->rows = rows;
        c->cap = cap;
    }
    return &c->rows[c->n++];
}

/* one row as calls.Call: (inp, out, inv, ret, end, process, f, value, kind, history,
   pure, need, then, at); ret is end's int when known, at inv's when equal, as the
   Python loop makes them */
static PyObject *call_of(Calls *c, const Row *r) {
    PyTypeObject *ct = (PyTypeObject *)c->call_type;
    PyObject *call = ct->tp_alloc(ct, 14);
    if (call == NULL) return NULL;
    PyObject *end = r->end < 0 ? Py_None : PyLong_FromLongLong(r->end);
    PyObject *inv = end == NULL ? NULL : PyLong_FromLongLong(r->inv);
    PyObject *at = inv == NULL ? NULL : r->at == r->inv ? inv : PyLong_FromLongLong(r->at);
    if (at == NULL) {
        if (end != Py_None) Py_XDECREF(end);
        Py_XDECREF(inv);
        Py_DECREF(call);
        return NULL;
    }
    if (end == Py_None) Py_INCREF(end);
    if (at == inv) Py_INCREF(at);
    PyObject *ret = r->ret < 0 ? Py_None : end;
    Py_INCREF(ret);
    PyObject *borrowed[14] = {r->inp, r->out, NULL, NULL, NULL, r->process, r->f, r->value, r->kind, c->history,
                              r->pure, r->need, r->then, NULL};
    for (int j = 0; j < 14; j++) {
        PyObject *v = borrowed[j];
        if (v == NULL) v = j == 2 ? inv : j == 3 ? ret : j == 4 ? end : at;   /* owned already */
        else Py_INCREF(v);
        PyTuple_SET_ITEM(call, j, v);
    }
    return call;
}

static PyObject *calls_list(Calls *c) {   /* borrowed */
    if (c->list != NULL) return c->list;
    PyObject *list = PyList_New(c->n);
    if (list == NULL) return NULL;
    for (Py_ssize_t j = 0; j < c->n; j++) {
        PyObject *call = call_of(c, &c->rows[j]);
        if (call == NULL) { Py_DECREF(list); return NULL; }
        PyList_SET_ITEM(list, j, call);
    }
    c->list = list;
    return list;
}

static Py_ssize_t calls_len(Calls *c) { return c->n; }

static PyObject *calls_item(Calls *c, Py_ssize_t i) {
    PyObject *list = calls_list(c);
    if (list == NULL) return NULL;
    if (i < 0 || i >= c->n) { PyErr_SetString(PyExc_IndexError, "call index out of range"); return NULL; }
    PyObject *call = PyList_GET_ITEM(list, i);
    Py_INCREF(call);
    return call;
}

static PyObject *calls_subscript(Calls *c, PyObject *key) {
    PyObject *list = calls_list(c);
    return list == NULL ? NULL : PyObject_GetItem(list, key);
}

static PyObject *calls_iter(Calls *c) {
    PyObject *list = calls_list(c);
    return list == NULL ? NULL : PyObject_GetIter(list);
}

static int calls_getbuffer(Calls *c, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)c, c->rows, sizeof(Row) * c->n, 1, flags);
}

static PySequenceMethods calls_as_sequence = {.sq_length = (lenfunc)calls_len, .sq_item = (ssizeargfunc)calls_item};
static PyMappingMethods calls_as_mapping = {.mp_length = (lenfunc)calls_len, .mp_subscript = (binaryfunc)calls_subscript};
static PyBufferProcs calls_as_buffer = {.bf_getbuffer = (getbufferproc)calls_getbuffer};

static PyTypeObject CallsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "checkers.linearizable._prepare.Calls",
    .tp_basicsize = sizeof(Calls),
    .tp_dealloc = (destructor)calls_dealloc,
    .tp_as_sequence = &calls_as_sequence,
    .tp_as_mapping = &calls_as_mapping,
    .tp_as_buffer = &calls_as_buffer,
    .tp_iter = (getiterfunc)calls_iter,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_SEQUENCE,
    .tp_doc = "a key's calls: a sequence of calls.Call, made when first read; its buffer the packed rows",
};

/* One completion (or an open invocation when op is NULL): a call appended to its key's
   list, or counted as left out. 1 done, 0 bail out, -1 error. */
static int complete(Prep *st, Py_ssize_t i, PyObject *op, enum kind kind, Py_ssize_t inv, Py_ssize_t at,
                    PyObject *invoke, PyObject *process) {
    PyObject *f = PyDict_GetItemWithError(invoke, s_f);
    if (f == NULL) return PyErr_Occurred() ? -1 : 0;
    if (!PyUnicode_CheckExact(f)) return 0;
    if (kind == K_FAIL) {
        int cas = st->observe ? PyUnicode_Compare(f, s_cas) == 0 : 0;
        if (cas == 0 && PyErr_Occurred()) return -1;
        if (!cas) { st->dropped_fail++; return 1; }
    }
    PyObject *value = PyDict_GetItemWithError(invoke, s_value);
    if (value == NULL) {
        if (PyErr_Occurred()) return -1;
        value = Py_None;
    }
    int known = kind == K_OK || kind == K_FAIL;
    PyObject *result = st->unknown;
    if (known) {
        result = PyDict_GetItemWithError(op, s_value);
        if (result == NULL) {
            if (PyErr_Occurred()) return -1;
            result = Py_None;
        }
    }
    int status;
    PyObject *name = key_of(st, invoke, &value, known, &result, &status);
    if (name == NULL) return status;
    PyObject *got = kind == K_FAIL ? st->failed : result;
    PyObject *answer = NULL, *mk = NULL;
    Slot *slot = NULL;
    uint64_t ca = code_of(st, value), cb = ca ? code_of(st, got) : 0;
    int fi = cb ? f_index(&st->coded, f) : -1;
    if (fi >= 0) {
        if (st->coded.used * 2 >= st->coded.cap && coded_grow(&st->coded) < 0) goto error;
        slot = coded_slot(&st->coded, ca, cb | (uint64_t)fi << 60);
        answer = slot->answer;
        Py_XINCREF(answer);
    } else {
        mk = memo_key(st, f, value, got);
        if (mk == NULL && PyErr_Occurred()) goto error;
    }
    if (mk != NULL) {
        answer = PyDict_GetItemWithError(st->memo, mk);
        if (answer == NULL && PyErr_Occurred()) goto error;
        Py_XINCREF(answer);
    }
    if (answer == NULL) {
        PyObject *args[4] = {f, value, got, known ? Py_True : Py_False};
        answer = PyObject_Vectorcall(st->ask, args, 4, NULL);
        if (answer == NULL) {   /* the model's ValueError: the Python loop names the op */
            PyErr_Clear();
            Py_XDECREF(mk);
            Py_DECREF(name);
            return 0;
        }
        if (!PyTuple_CheckExact(answer) || PyTuple_GET_SIZE(answer) != 6) {
            Py_DECREF(answer);
            Py_XDECREF(mk);
            Py_DECREF(name);
            return 0;
        }
        if (mk != NULL && PyDict_SetItem(st->memo, mk, answer) < 0) goto error;
        if (slot != NULL) {
            slot->a = ca;
            slot->b = cb | (uint64_t)fi << 60;
            Py_INCREF(answer);
            slot->answer = answer;
            st->coded.used++;
        }
    }
    Py_XDECREF(mk);
    mk = NULL;
    int skip = PyObject_IsTrue(PyTuple_GET_ITEM(answer, 2));
    if (skip < 0) goto error;
    if (skip) {
        st->skipped_unknown++;
        Py_DECREF(answer);
        Py_DECREF(name);
        return 1;
    }
    if (process == NULL) {   /* not known to be the invocation's own (equal is not enough: 1 == True) */
        process = PyDict_GetItemWithError(invoke, s_process);
        if (process == NULL) {
            if (PyErr_Occurred()) goto error;
            process = Py_None;
        }
    }
    PyObject *kind_s = kind == K_OK ? s_ok : kind == K_FAIL ? s_fail : kind == K_INFO ? s_info : s_open;
    PyObject *calls = PyDict_GetItemWithError(st->keys, name);
    if (calls == NULL) {
        if (PyErr_Occurred()) goto error;
        calls = (PyObject *)calls_new(st->history, st->call_type);
        if (calls == NULL) goto error;
        int set = PyDict_SetItem(st->keys, name, calls);
        Py_DECREF(calls);   /* the dict holds it */
        if (set < 0) goto error;
    }
    Row *row = calls_push((Calls *)calls);
    if (row == NULL) goto error;
    PyObject *shown = kind == K_OK ? result : value;
    *row = (Row){at, inv, known && op != NULL ? (int64_t)i : -1, op == NULL ? -1 : (int64_t)i,
                 PyTuple_GET_ITEM(answer, 0), PyTuple_GET_ITEM(answer, 1), PyTuple_GET_ITEM(answer, 3),
                 PyTuple_GET_ITEM(answer, 4), PyTuple_GET_ITEM(answer, 5), answer, process, f, shown, kind_s};
    answer = NULL;   /* the row's now */
    Py_INCREF(process); Py_INCREF(f); Py_INCREF(shown); Py_INCREF(kind_s);
    Py_DECREF(name);
    return 1;
error:
    Py_XDECREF(mk);
    Py_XDECREF(answer);
    Py_DECREF(name);
    return -1;
}

/* A key's calls into invocation order (`at`), stably. They are appended as they
   complete, so each is at most a few dozen places out (about the concurrency): an
   insertion sort of the rows. */
static void sort_by_at(Calls *c) {
    Row *rows = c->rows;
    for (Py_ssize_t i = 1; i < c->n; i++) {
        Row r = rows[i];
        Py_ssize_t j = i;
        while (j > 0 && rows[j - 1].at > r.at) {
            rows[j] = rows[j - 1];
            j--;
        }
        rows[j] = r;
    }
}

static PyObject *prepare(PyObject *self, PyObject *args) {
    Prep st = {0};
    if (!PyArg_ParseTuple(args, "OOOppOOOOOO", &st.history, &st.ask, &st.key_field, &st.independent,
                          &st.observe, &st.call_type, &st.key_name, &st.unknown, &st.failed, &st.plain,
                          &st.single_key))
        return NULL;
    if (!PyList_Check(st.history) || !PyType_Check(st.call_type) ||
        !PyType_IsSubtype((PyTypeObject *)st.call_type, &PyTuple_Type) || !PyAnySet_Check(st.plain))
        Py_RETURN_NONE;
    PyObject *open_at = PyDict_New();   /* the other processes' */
    OpenArray opens = {0};
    st.keys = PyDict_New();
    st.names = PyDict_New();
    st.memo = PyDict_New();
    PyObject *out = NULL, *nemesis_slot = PyLong_FromLong(NEMESIS_SLOT);
    if (open_at == NULL || st.keys == NULL || st.names == NULL || st.memo == NULL || nemesis_slot == NULL)
        goto done;
    int bail = 0;
    Py_ssize_t n = PyList_GET_SIZE(st.history);
    for (Py_ssize_t i = 0; i < n && !bail; i++) {
        PyObject *op = PyList_GET_ITEM(st.history, i);
        if (!PyDict_CheckExact(op)) { bail = 1; break; }
        enum kind kind = kind_of(PyDict_GetItemWithError(op, s_type));
        if (PyErr_Occurred()) goto done;
        if (kind == K_OTHER) { bail = 1; break; }
        PyObject *p = PyDict_GetItemWithError(op, s_process);
        if (p == NULL) {
            if (PyErr_Occurred()) goto done;
            p = Py_None;
        }
        Py_ssize_t small = small_int(p), inv = NO_PARTNER;
        int nemesis = 0;
        if (small >= 0) {
            if (open_reserve(&opens, small) < 0) goto done;
            if (opens.at[small] != NONE_OPEN) {
                inv = opens.at[small];
                opens.at[small] = NONE_OPEN;
            }
        } else {
            if (!PyLong_CheckExact(p) && !PyUnicode_CheckExact(p) && p != Py_None) {
                bail = 1;   /* True, 1.0, ...: equal to an int in the array, which a dict would pair */
                break;
            }
            PyObject *inv_o = PyDict_GetItemWithError(open_at, p);
            if (inv_o == NULL && PyErr_Occurred()) {
                if (!PyErr_ExceptionMatches(PyExc_TypeError)) goto done;
                PyErr_Clear();   /* an unhashable process: the Python loop names it */
                bail = 1;
                break;
            }
            if (inv_o != NULL) {
                inv = PyLong_AsSsize_t(inv_o);
                if (PyDict_DelItem(open_at, p) < 0) goto done;
            }
            nemesis = is_nemesis(p);
            if (nemesis < 0) goto done;
        }
        if (kind == K_INVOKE) {
            if (inv != NO_PARTNER) { bail = 1; break; }   /* invoked twice: the Python loop raises */
            if (small >= 0) {
                opens.at[small] = i;
                continue;
            }
            PyObject *at = nemesis ? nemesis_slot : PyLong_FromSsize_t(i);
            if (at == NULL) goto done;
            if (nemesis) {
                Py_INCREF(at);
                st.ignored++;
            }
            int rc = PyDict_SetItem(open_at, p, at);
            Py_DECREF(at);
            if (rc < 0) goto done;
            continue;
        }
        Py_ssize_t at;
        PyObject *invoke;
        if (inv >= 0) {
            at = inv;
            invoke = PyList_GET_ITEM(st.history, inv);
        } else if (inv == NEMESIS_SLOT || nemesis || kind == K_INFO) {
            st.ignored++;   /* nemesis ops; a lone info: nothing known, neither what nor when */
            continue;
        } else {            /* invoked at some unknown time before: the widest interval */
            at = i;
            invoke = op;
        }
        /* a small int process indexed the array: the invocation's is that same int */
        int rc = complete(&st, i, op, kind, inv, at, invoke, small >= 0 || invoke == op ? p : NULL);
        if (rc < 0) goto done;
        if (rc == 0) bail = 1;
    }
    if (!bail) {
        /* the invocations still open, in the order they were made (a dict's insertion
           order: each invocation enters it as it comes) */
        Py_ssize_t m = PyDict_GET_SIZE(open_at), k = 0;
        for (Py_ssize_t p = 0; p < opens.cap; p++) m += opens.at[p] >= 0;
        Py_ssize_t *still = PyMem_Malloc(sizeof(Py_ssize_t) * (m + 1));
        if (still == NULL) { PyErr_NoMemory(); goto done; }
        for (Py_ssize_t p = 0; p < opens.cap; p++)
            if (opens.at[p] >= 0) still[k++] = opens.at[p];
        PyObject *pk, *pv;
        Py_ssize_t pos = 0;
        while (PyDict_Next(open_at, &pos, &pk, &pv)) {
            Py_ssize_t inv = PyLong_AsSsize_t(pv);
            if (inv >= 0) still[k++] = inv;   /* not the nemesis's */
        }
        qsort(still, k, sizeof(Py_ssize_t), by_position);
        for (Py_ssize_t j = 0; j < k && !bail; j++) {
            int rc = complete(&st, still[j], NULL, K_OPEN, still[j], still[j], PyList_GET_ITEM(st.history, still[j]),
                              NULL);
            if (rc < 0) { PyMem_Free(still); goto done; }
            if (rc == 0) bail = 1;
        }
        PyMem_Free(still);
    }
    if (!bail) {
        PyObject *name, *calls;
        Py_ssize_t pos = 0;
        while (PyDict_Next(st.keys, &pos, &name, &calls)) sort_by_at((Calls *)calls);
    }
    if (bail) {
        out = Py_None;
        Py_INCREF(out);
    } else {
        out = Py_BuildValue("Onnn", st.keys, st.ignored, st.dropped_fail, st.skipped_unknown);
    }
done:
    Py_XDECREF(open_at);
    PyMem_Free(opens.at);
    for (Py_ssize_t j = 0; j < st.int_names_cap; j++) Py_XDECREF(st.int_names[j]);
    PyMem_Free(st.int_names);
    Py_XDECREF(st.keys);
    Py_XDECREF(st.names);
    Py_XDECREF(st.memo);
    coded_free(&st.coded);
    Py_XDECREF(nemesis_slot);
    return out;
}

static PyMethodDef methods[] = {
    {"prepare", prepare, METH_VARARGS, "calls.prepare_op_by_op's loop (see the module source)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_prepare", NULL, -1, methods};

PyMODINIT_FUNC PyInit__prepare(void) {
    const char *names[] = {"type", "process", "f", "value", "cas", "nemesis", "ok", "fail", "info", "open"};
    PyObject **slots[] = {&s_type, &s_process, &s_f, &s_value, &s_cas, &s_nemesis, &s_ok, &s_fail, &s_info, &s_open};
    for (int j = 0; j < 10; j++) {
        *slots[j] = PyUnicode_InternFromString(names[j]);
        if (*slots[j] == NULL) return NULL;
    }
    if (PyType_Ready(&CallsType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&CallsType);
    if (PyModule_AddObject(m, "Calls", (PyObject *)&CallsType) < 0) {
        Py_DECREF(&CallsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
