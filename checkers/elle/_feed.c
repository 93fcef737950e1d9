/* The columnar list-append builder's pass over the ops (columnar._Builder._feed), in C,
   for the op every list-append history is made of.

   The Python loop costs about two microseconds per op, two thirds of the whole check of
   a 100k-transaction history. This takes the usual op the same way, step for step,
   into the same state: the builder's dicts (open invocations, key numbers, each key's
   longest read) are shared, its columns get what the Python loop would have appended.
   A transaction naming a key twice goes to the same Python function (repeated_keys) the
   loop calls. It stops *before* any op it does not take (a nemesis or other
   non-transaction op, a process that is no int, any type or value the
   Python loop would reject or treat specially) and returns that op's number; the
   caller runs the Python loop on it, which decides as it always did, and calls this
   again after it. So the C never decides anything the reference does not.

   Work on an op that is not taken leaves no trace: the column entries it made are
   dropped, and what it did to the shared dicts (a new key number, a key's longest read
   set to a read the Python loop will meet again) is what the Python loop does again,
   the same way, for the same op.

   feed(builder, ops: list, start, repeated_keys) -> the number of the first op not
   taken (len(ops) when all were); builder.pos is the position of the last op taken.

   feed_lines(builder, lines: list of bytes, start, starts: array('q'), offsets,
   repeated_keys, loads) is the same from a history.jsonl's lines, each read from its
   bytes (_jsonline.h) with no dict made. A line outside the JSON subset, or whose op
   that reading does not take (a key named twice: repeated_keys needs the dict), is
   parsed with `loads` (json.loads) as iter_jsonl parses it and its dict goes the way
   of feed's; it stops before a line that is no JSON object, or whose op feed would not
   take. It appends to `offsets` the start of each line it took.

   Built by setup.sh; columnar.py uses it where it imports, the Python loop and
   json.loads otherwise. tests/test_elle_feed.py compares the builders' state. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include "_jsonline.h"

#define VALUE_MAX 2147483646LL   /* 2**31 - 2, columnar._VALUE_MAX */
#define DROP INT32_MIN           /* columnar._DROP: an event slot not (yet) a node */
#define NO_SLOT (-2)             /* no open invocation */
#define NO_PROCESS INT64_MIN     /* columnar._NO_PROCESS: a transaction without one */

static PyObject *s_type, *s_process, *s_f, *s_value, *s_index;

/* A growable column of fixed-size items, appended to the builder's at the end. */
typedef struct {
    char *data;
    Py_ssize_t len, cap;   /* in items */
    int size;              /* bytes per item */
} Column;

static int put(Column *c, const void *item) {
    if (c->len == c->cap) {
        Py_ssize_t cap = c->cap ? 2 * c->cap : 256;
        char *data = PyMem_Realloc(c->data, cap * c->size);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        c->data = data;
        c->cap = cap;
    }
    memcpy(c->data + c->len * c->size, item, c->size);
    c->len++;
    return 0;
}

static int put32(Column *c, int32_t v) { return put(c, &v); }
static int put64(Column *c, int64_t v) { return put(c, &v); }

/* the builder's columns, in the order of NAMES, with their item sizes */
enum { OK, INDEX, PROCESS, POSITION, INVOKE_POSITION, EVENTS, A_NODE, A_KEY, A_VAL,
       R_NODE, R_KEY, R_LAST, F_KEY, F_VAL, NCOLUMNS, OFFSETS = NCOLUMNS };
static const char *NAMES[NCOLUMNS] = {"ok", "index", "process", "position", "invoke_position",
                                      "events", "a_node", "a_key", "a_val", "r_node", "r_key",
                                      "r_last", "f_key", "f_val"};
static const int SIZES[NCOLUMNS] = {1, 8, 8, 8, 8, 4, 4, 4, 8, 4, 4, 8, 4, 8};

#define NSHARED 9   /* the builder's dicts, lists and pos, read by name in feed() */

typedef struct {
    Column col[NCOLUMNS + 1];             /* and OFFSETS, feed_lines' */
    PyObject *builder_col[NCOLUMNS + 1];  /* borrowed from owned */
    PyObject *open, *key_ids, *keys, *longest;          /* borrowed from the builder */
    PyObject *intermediate, *internal, *future, *lost;  /* what repeated_keys records into */
    PyObject *repeated_keys;
    PyObject *owned[NSHARED + NCOLUMNS + 1];
    Py_buffer events;                  /* the builder's events so far, written in place */
    int have_events;
    Py_ssize_t events_before;          /* their number */
    Py_ssize_t n;                      /* transactions (nodes) so far */
    Py_ssize_t pos;                    /* the last op's position */
} State;

/* s is exactly the str `text` */
static int str_is(PyObject *s, const char *text, Py_ssize_t len) {
    return PyUnicode_CheckExact(s) && PyUnicode_IS_COMPACT_ASCII(s) &&
           PyUnicode_GET_LENGTH(s) == len && memcmp(PyUnicode_DATA(s), text, len) == 0;
}

/* an exact int in [lo, hi] into *out; 0 if it is none */
static int int_in(PyObject *v, long long lo, long long hi, long long *out) {
    if (!PyLong_CheckExact(v)) return 0;
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (x == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    if (x < lo || x > hi) return 0;
    *out = x;
    return 1;
}

/* a's first len items equal b's (Python's list ==, item by item); -1 on error */
static int same_prefix(PyObject *a, PyObject *b, Py_ssize_t len) {
    for (Py_ssize_t i = 0; i < len; i++) {
        int eq = PyObject_RichCompareBool(PyList_GET_ITEM(a, i), PyList_GET_ITEM(b, i), Py_EQ);
        if (eq != 1) return eq;
    }
    return 1;
}

/* len({m[1] for m in value}) == len(value), for a list of 3-item lists; -1 on error */
static int distinct_keys(PyObject *value) {
    Py_ssize_t n = PyList_GET_SIZE(value);
    if (n <= 8) {   /* the usual transaction: a few pairs beat a set */
        for (Py_ssize_t i = 1; i < n; i++)
            for (Py_ssize_t j = 0; j < i; j++) {
                int eq = PyObject_RichCompareBool(PyList_GET_ITEM(PyList_GET_ITEM(value, i), 1),
                                                  PyList_GET_ITEM(PyList_GET_ITEM(value, j), 1), Py_EQ);
                if (eq != 0) return eq == 1 ? 0 : -1;
            }
        return 1;
    }
    PyObject *seen = PySet_New(NULL);
    if (seen == NULL) return -1;
    for (Py_ssize_t i = 0; i < n; i++)
        if (PySet_Add(seen, PyList_GET_ITEM(PyList_GET_ITEM(value, i), 1)) < 0) {
            Py_DECREF(seen);
            return -1;
        }
    int distinct = PySet_GET_SIZE(seen) == n;
    Py_DECREF(seen);
    return distinct;
}

/* the number of key k, made if new (as the Python loop makes it), into *id and its int
   (borrowed: key_ids holds it) into *obj; -1 on error */
static int key_number(State *s, PyObject *k, long *id, PyObject **obj) {
    PyObject *kid = PyDict_GetItemWithError(s->key_ids, k);
    if (kid == NULL) {
        if (PyErr_Occurred()) return -1;
        kid = PyLong_FromSsize_t(PyList_GET_SIZE(s->keys));
        if (kid == NULL) return -1;
        int rc = PyDict_SetItem(s->key_ids, k, kid) < 0 || PyList_Append(s->keys, k) < 0 ? -1 : 0;
        Py_DECREF(kid);   /* key_ids holds it */
        if (rc < 0) return -1;
    }
    *id = PyLong_AsLong(kid);
    *obj = kid;
    return *id == -1 && PyErr_Occurred() ? -1 : 0;
}

/* A read v (a non-empty list) of key number kid against the key's longest read:
   1 if it is a prefix of it or extends it (the longest is then v), 0 if not, -1 on error. */
static int against_longest(State *s, PyObject *kid, PyObject *v) {
    PyObject *top = PyDict_GetItemWithError(s->longest, kid);
    if (top == NULL) return PyErr_Occurred() ? -1 : PyDict_SetItem(s->longest, kid, v) < 0 ? -1 : 1;
    if (!PyList_CheckExact(top)) return 0;
    if (PyList_GET_SIZE(v) <= PyList_GET_SIZE(top)) return same_prefix(v, top, PyList_GET_SIZE(v));
    int result = same_prefix(top, v, PyList_GET_SIZE(top));
    if (result == 1 && PyDict_SetItem(s->longest, kid, v) < 0) result = -1;
    return result;
}

/* The checks on a micro-op that have no effect: 1 if it is the usual kind (a list
   [f, k, v], f "append" with an int in 0..VALUE_MAX, or "r" with nil or a list ending in
   one), 0 if not. */
static int usual(PyObject *m) {
    if (!PyList_CheckExact(m) || PyList_GET_SIZE(m) != 3) return 0;
    PyObject *f = PyList_GET_ITEM(m, 0), *v = PyList_GET_ITEM(m, 2);
    long long x;
    if (str_is(f, "append", 6)) return int_in(v, 0, VALUE_MAX, &x);
    if (!str_is(f, "r", 1)) return 0;
    if (v == Py_None) return 1;
    if (!PyList_CheckExact(v)) return 0;
    return PyList_GET_SIZE(v) == 0 || int_in(PyList_GET_ITEM(v, PyList_GET_SIZE(v) - 1), 0, VALUE_MAX, &x);
}

/* A transaction's micro-ops into the append and read columns: 1 if all were taken,
   0 if one is not the usual kind, -1 on error.

   What could stop it after `repeated_keys` ran (an unhashable key, a read that is no
   prefix of its key's longest) makes the Python loop raise Fallback on this op, so
   that call is never made twice for a transaction that counts. */
static int micro_ops(State *s, PyObject *op, PyObject *value, int ok) {
    Py_ssize_t n = PyList_GET_SIZE(value);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!usual(PyList_GET_ITEM(value, i))) return 0;
    if (n > 1) {
        int distinct = distinct_keys(value);
        if (distinct < 0) return -1;
        if (!distinct) {   /* checks of two micro-ops on one key: the Python function's */
            PyObject *r = PyObject_CallFunction(s->repeated_keys, "nOOOOOOO", s->n, op, value,
                                                ok ? Py_True : Py_False, s->intermediate,
                                                s->internal, s->future, s->lost);
            if (r == NULL) return -1;
            Py_DECREF(r);
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PyList_GET_ITEM(value, i);
        PyObject *f = PyList_GET_ITEM(m, 0), *k = PyList_GET_ITEM(m, 1), *v = PyList_GET_ITEM(m, 2);
        long kid;
        PyObject *kid_obj;
        if (key_number(s, k, &kid, &kid_obj) < 0) return -1;
        long long x = 0;
        if (str_is(f, "append", 6)) {
            int_in(v, 0, VALUE_MAX, &x);
            if (put32(&s->col[A_NODE], (int32_t)s->n) < 0 || put32(&s->col[A_KEY], (int32_t)kid) < 0 ||
                put64(&s->col[A_VAL], x) < 0)
                return -1;
            continue;
        }
        if (v == Py_None && !ok) continue;   /* an info op's nil read: unknown, not [] */
        if (v != Py_None && PyList_GET_SIZE(v) > 0) {   /* 0 codes the empty list (or nil) */
            int_in(PyList_GET_ITEM(v, PyList_GET_SIZE(v) - 1), 0, VALUE_MAX, &x);
            int fits = against_longest(s, kid_obj, v);
            if (fits != 1) return fits;
            x += 1;
        }
        if (put32(&s->col[R_NODE], (int32_t)s->n) < 0 || put32(&s->col[R_KEY], (int32_t)kid) < 0 ||
            put64(&s->col[R_LAST], x) < 0)
            return -1;
    }
    return 1;
}

static int set_event(State *s, Py_ssize_t slot, int32_t v) {
    if (slot < s->events_before)
        ((int32_t *)s->events.buf)[slot] = v;
    else
        memcpy(s->col[EVENTS].data + (slot - s->events_before) * 4, &v, 4);
    return 0;
}

/* An invocation of a transaction by process p (an int) at pos: 1, 0 if p has one
   open (the Python loop's Fallback), -1 on error. */
static int invoke(State *s, PyObject *p, Py_ssize_t pos) {
    int open = PyDict_Contains(s->open, p);
    if (open != 0) return open < 0 ? -1 : 0;
    PyObject *entry = Py_BuildValue("(nn)", pos, s->events_before + s->col[EVENTS].len);
    if (entry == NULL) return -1;
    int rc = PyDict_SetItem(s->open, p, entry);
    Py_DECREF(entry);
    return rc < 0 || put32(&s->col[EVENTS], DROP) < 0 ? -1 : 1;
}

typedef struct {        /* a completion's invocation */
    PyObject *entry;    /* borrowed from open; NULL if none */
    Py_ssize_t pos, slot;
} Invocation;

/* p's open invocation into *inv: 1, 0 if it is no transaction's, -1 on error */
static int invocation(State *s, PyObject *p, Invocation *inv) {
    inv->pos = -1;
    inv->slot = NO_SLOT;
    inv->entry = PyDict_GetItemWithError(s->open, p);
    if (inv->entry == NULL) return PyErr_Occurred() ? -1 : 1;
    if (!PyTuple_CheckExact(inv->entry) || PyTuple_GET_SIZE(inv->entry) != 2) return 0;
    inv->pos = PyLong_AsSsize_t(PyTuple_GET_ITEM(inv->entry, 0));
    inv->slot = PyLong_AsSsize_t(PyTuple_GET_ITEM(inv->entry, 1));
    if (PyErr_Occurred()) return -1;
    return inv->slot >= 0;   /* a negative slot: paired with an op that is no transaction */
}

typedef struct {
    Py_ssize_t len[NCOLUMNS];
} Mark;

static void mark(State *s, Mark *m) {
    for (int c = 0; c < NCOLUMNS; c++) m->len[c] = s->col[c].len;
}

static void back_to(State *s, Mark *m) {
    for (int c = 0; c < NCOLUMNS; c++) s->col[c].len = m->len[c];
    PyErr_Clear();   /* whatever raised, the Python loop meets it again */
}

/* A completed transaction (ok or info) of process p, its micro-ops already in: its
   node. 1, or -1 on error. */
static int complete(State *s, PyObject *p, Invocation *inv, int ok, long long index,
                    long long process, Py_ssize_t pos) {
    if (inv->entry != NULL && PyDict_DelItem(s->open, p) < 0) return -1;
    if (inv->slot >= 0) set_event(s, inv->slot, (int32_t)~s->n);
    char okb = (char)ok;
    if ((ok && put32(&s->col[EVENTS], (int32_t)s->n) < 0) || put(&s->col[OK], &okb) < 0 ||
        put64(&s->col[INDEX], index) < 0 || put64(&s->col[PROCESS], process) < 0 ||
        put64(&s->col[POSITION], pos) < 0 || put64(&s->col[INVOKE_POSITION], inv->pos) < 0)
        return -1;
    s->n++;
    return 1;
}

/* A failed transaction's appends (columnar._Builder._failed): into the f_ columns, and
   an append to a key it appended to before into `intermediate`. 1, 0 if a micro-op is
   not the usual kind, -1 on error. What may stop it after `intermediate` was written to
   (an unhashable key) is the Python loop's Fallback; what it writes there, the Python
   loop would write the same. */
static int failed_micro_ops(State *s, PyObject *op, PyObject *value) {
    Py_ssize_t n = PyList_GET_SIZE(value);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PyList_GET_ITEM(value, i);
        if (!PyList_CheckExact(m) || PyList_GET_SIZE(m) != 3 || !PyUnicode_CheckExact(PyList_GET_ITEM(m, 0)))
            return 0;
        long long x;
        if (str_is(PyList_GET_ITEM(m, 0), "append", 6) && !int_in(PyList_GET_ITEM(m, 2), 0, VALUE_MAX, &x))
            return 0;
    }
    PyObject *seen = PyDict_New();   /* key -> the element last appended to it */
    if (seen == NULL) return -1;
    int rc = 1;
    for (Py_ssize_t i = 0; rc == 1 && i < n; i++) {
        PyObject *m = PyList_GET_ITEM(value, i);
        if (!str_is(PyList_GET_ITEM(m, 0), "append", 6)) continue;
        PyObject *k = PyList_GET_ITEM(m, 1), *v = PyList_GET_ITEM(m, 2);
        PyObject *before = PyDict_GetItemWithError(seen, k);
        if (before == NULL && PyErr_Occurred()) {
            rc = -1;
            break;
        }
        if (before != NULL) {   /* intermediate.setdefault(k, {})[before] = op.get("index") */
            PyObject *empty = PyDict_New();
            PyObject *inner = empty ? PyDict_SetDefault(s->intermediate, k, empty) : NULL;
            Py_XDECREF(empty);
            PyObject *index = PyDict_GetItemWithError(op, s_index);
            if (inner == NULL || PyErr_Occurred() ||
                PyDict_SetItem(inner, before, index ? index : Py_None) < 0) {
                rc = -1;
                break;
            }
        }
        long kid;
        PyObject *kid_obj;
        long long x;
        int_in(v, 0, VALUE_MAX, &x);
        if (PyDict_SetItem(seen, k, v) < 0 || key_number(s, k, &kid, &kid_obj) < 0 ||
            put32(&s->col[F_KEY], (int32_t)kid) < 0 || put64(&s->col[F_VAL], x) < 0)
            rc = -1;
    }
    Py_DECREF(seen);
    return rc;
}

/* One op (a dict): 1 taken, 0 left to the Python loop, -1 on error. */
static int take(State *s, PyObject *op, Py_ssize_t pos) {
    if (!PyDict_CheckExact(op)) return 0;
    PyObject *t = PyDict_GetItemWithError(op, s_type);
    PyObject *p = t ? PyDict_GetItemWithError(op, s_process) : NULL;
    PyObject *f = t ? PyDict_GetItemWithError(op, s_f) : NULL;
    if (PyErr_Occurred()) return -1;
    if (t == NULL) return 0;
    if (p == NULL) p = Py_None;   /* op.get("process"): a transaction of no process */
    if (p != Py_None && !PyLong_CheckExact(p)) return 0;
    if (f != NULL && f != Py_None && !str_is(f, "txn", 3)) return 0;   /* not a transaction */
    PyObject *value = PyDict_GetItemWithError(op, s_value);
    if (value == NULL && PyErr_Occurred()) return -1;
    if (value == NULL) value = Py_None;
    if (value != Py_None && !PyList_CheckExact(value)) return 0;
    if (str_is(t, "invoke", 6)) return invoke(s, p, pos);
    int ok = str_is(t, "ok", 2), failed = str_is(t, "fail", 4);
    if (!ok && !failed && !str_is(t, "info", 4)) return 0;   /* no completion */

    Invocation inv;
    int paired = invocation(s, p, &inv);
    if (paired != 1) return paired;
    Mark m;
    mark(s, &m);
    if (failed) {   /* no node: its invocation closed, its appends kept apart */
        if (value != Py_None && failed_micro_ops(s, op, value) != 1) {
            back_to(s, &m);
            return 0;
        }
        return inv.entry != NULL && PyDict_DelItem(s->open, p) < 0 ? -1 : 1;
    }
    long long index = pos, process;
    PyObject *i = PyDict_GetItemWithError(op, s_index);
    if (i == NULL && PyErr_Occurred()) return -1;
    if (i != NULL && !int_in(i, INT64_MIN, INT64_MAX, &index)) return 0;
    if (p == Py_None) process = NO_PROCESS;
    else if (!int_in(p, INT64_MIN, INT64_MAX, &process)) return 0;
    if (value != Py_None && micro_ops(s, op, value, ok) != 1) {
        back_to(s, &m);
        return 0;
    }
    return complete(s, p, &inv, ok, index, process, pos);
}

/* -- lines of a history.jsonl, read without their dicts (_jsonline.h) -- */

static int atoms_equal(const Atom *a, const Atom *b) {
    if (a->is_str != b->is_str) return 0;
    return a->is_str ? a->s.len == b->s.len && memcmp(a->s.at, b->s.at, a->s.len) == 0 : a->i == b->i;
}

/* list's first n items are exact ints equal to v's: 1; 0 if not, or if an item is of
   another type (then the dict path decides, as Python's == would) */
static int ints_prefix(PyObject *list, const long long *v, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        long long x;
        if (!int_in(item, INT64_MIN, INT64_MAX, &x) || x != v[i]) return 0;
    }
    return 1;
}

static PyObject *ints_list(const long long *v, Py_ssize_t n) {
    PyObject *list = PyList_New(n);
    for (Py_ssize_t i = 0; list != NULL && i < n; i++) {
        PyObject *x = PyLong_FromLongLong(v[i]);
        if (x == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, i, x);
    }
    return list;
}

/* against_longest for a read of the ints v[0..n), n > 0 */
static int ints_against_longest(State *s, PyObject *kid, const long long *v, Py_ssize_t n) {
    PyObject *top = PyDict_GetItemWithError(s->longest, kid);
    if (top == NULL && PyErr_Occurred()) return -1;
    if (top != NULL) {
        if (!PyList_CheckExact(top)) return 0;
        Py_ssize_t len = PyList_GET_SIZE(top);
        if (!ints_prefix(top, v, n < len ? n : len)) return 0;
        if (n <= len) return 1;
    }
    PyObject *list = ints_list(v, n);
    if (list == NULL) return -1;
    int rc = PyDict_SetItem(s->longest, kid, list);
    Py_DECREF(list);
    return rc < 0 ? -1 : 1;
}

/* micro_ops for a line's: 1 if all were taken, 0 if one is not the usual kind or a key
   comes twice (repeated_keys needs the op's dict), -1 on error */
static int line_micro_ops(State *s, Line *l, int ok) {
    for (Py_ssize_t i = 0; i < l->nmops; i++) {
        Mop *m = &l->mops[i];
        if (m->f == M_APPEND ? m->v < 0 || m->v > VALUE_MAX
            : m->read == R_LIST && m->n > 0 && (l->ints[m->first + m->n - 1] < 0 ||
                                                l->ints[m->first + m->n - 1] > VALUE_MAX))
            return 0;
        for (Py_ssize_t j = 0; j < i; j++)
            if (atoms_equal(&m->key, &l->mops[j].key)) return 0;
    }
    for (Py_ssize_t i = 0; i < l->nmops; i++) {
        Mop *m = &l->mops[i];
        PyObject *k = m->key.is_str ? PyUnicode_FromStringAndSize(m->key.s.at, m->key.s.len)
                                    : PyLong_FromLongLong(m->key.i);
        if (k == NULL) return -1;
        long kid;
        PyObject *kid_obj;
        int rc = key_number(s, k, &kid, &kid_obj);
        Py_DECREF(k);
        if (rc < 0) return -1;
        long long x = m->v;
        if (m->f == M_READ) {
            if (m->read == R_NIL && !ok) continue;   /* an info op's nil read: unknown */
            x = 0;
            if (m->read == R_LIST && m->n > 0) {
                int fits = ints_against_longest(s, kid_obj, l->ints + m->first, m->n);
                if (fits != 1) return fits;
                x = l->ints[m->first + m->n - 1] + 1;
            }
        }
        Column *node = &s->col[m->f == M_APPEND ? A_NODE : R_NODE];
        Column *key = &s->col[m->f == M_APPEND ? A_KEY : R_KEY];
        Column *val = &s->col[m->f == M_APPEND ? A_VAL : R_LAST];
        if (put32(node, (int32_t)s->n) < 0 || put32(key, (int32_t)kid) < 0 || put64(val, x) < 0)
            return -1;
    }
    return 1;
}

/* One scanned line's op, as take() takes its dict: 1 taken, 0 not, -1 on error */
static int take_line(State *s, Line *l, Py_ssize_t pos) {
    if (!l->has_type) return 0;
    PyObject *p = l->process == PRESENT ? PyLong_FromLongLong(l->process_int) : Py_NewRef(Py_None);
    if (p == NULL) return -1;
    int rc = 0, ok = span_is(l->type, "ok");
    Invocation inv;
    Mark m;
    if (span_is(l->type, "invoke")) {
        rc = invoke(s, p, pos);
    } else if ((ok || span_is(l->type, "info")) && (rc = invocation(s, p, &inv)) == 1) {
        mark(s, &m);
        if (l->value == PRESENT && line_micro_ops(s, l, ok) != 1) {
            back_to(s, &m);
            rc = 0;
        } else {
            rc = complete(s, p, &inv, ok, l->has_index ? l->index : pos,
                          l->process == PRESENT ? l->process_int : NO_PROCESS, pos);
        }
    }
    Py_DECREF(p);
    return rc;
}

/* -- the state: the builder's, for one call -- */

static void state_free(State *s) {
    if (s->have_events) PyBuffer_Release(&s->events);
    s->have_events = 0;
    for (int c = 0; c < NCOLUMNS + 1; c++) PyMem_Free(s->col[c].data);
    for (int j = 0; j < NCOLUMNS + NSHARED + 1; j++) Py_CLEAR(s->owned[j]);
}

/* The builder's dicts, lists, pos and columns into *s (zeroed): 0, or -1 on error. */
static int state_open(State *s, PyObject *builder) {
    const char *shared[NSHARED] = {"open", "key_ids", "keys", "longest", "intermediate",
                                   "internal", "future", "lost", "pos"};
    PyObject **shared_to[NSHARED] = {&s->open, &s->key_ids, &s->keys, &s->longest, &s->intermediate,
                                     &s->internal, &s->future, &s->lost, NULL};
    PyObject *pos = NULL;
    for (int j = 0; j < NSHARED; j++) {
        s->owned[j] = PyObject_GetAttrString(builder, shared[j]);
        if (s->owned[j] == NULL) return -1;
        if (shared_to[j]) *shared_to[j] = s->owned[j]; else pos = s->owned[j];
    }
    if (!PyDict_CheckExact(s->open) || !PyDict_CheckExact(s->key_ids) || !PyList_CheckExact(s->keys) ||
        !PyDict_CheckExact(s->longest)) {
        PyErr_SetString(PyExc_TypeError, "feed: not a columnar._Builder");
        return -1;
    }
    s->pos = PyLong_AsSsize_t(pos);
    if (s->pos == -1 && PyErr_Occurred()) return -1;
    for (int c = 0; c < NCOLUMNS; c++) {
        s->owned[NSHARED + c] = s->builder_col[c] = PyObject_GetAttrString(builder, NAMES[c]);
        if (s->builder_col[c] == NULL) return -1;
        s->col[c].size = SIZES[c];
        Py_buffer view;   /* each column's item size, as this file writes them */
        if (PyObject_GetBuffer(s->builder_col[c], &view, PyBUF_FORMAT | (c == EVENTS ? PyBUF_WRITABLE : 0)) < 0)
            return -1;
        int fits = view.itemsize == SIZES[c];
        if (c == OK) s->n = view.len;
        if (c == EVENTS && fits) {
            s->events = view;
            s->events_before = view.len / 4;
            s->have_events = 1;
        } else {
            PyBuffer_Release(&view);
        }
        if (!fits) {
            PyErr_Format(PyExc_TypeError, "feed: the builder's %s has items of another size", NAMES[c]);
            return -1;
        }
    }
    return 0;
}

/* The columns made onto the builder's, and its pos; 0, or -1 on error. */
static int state_close(State *s, PyObject *builder) {
    PyBuffer_Release(&s->events);   /* before the events array grows */
    s->have_events = 0;
    for (int c = 0; c < NCOLUMNS + 1; c++) {
        Column *col = &s->col[c];
        if (col->len == 0) continue;
        PyObject *r = PyObject_CallMethod(s->builder_col[c], c == OK ? "extend" : "frombytes",
                                          "y#", col->data, col->len * col->size);
        if (r == NULL) return -1;
        Py_DECREF(r);
    }
    PyObject *pos = PyLong_FromSsize_t(s->pos);
    if (pos == NULL) return -1;
    int rc = PyObject_SetAttrString(builder, "pos", pos);
    Py_DECREF(pos);
    return rc;
}

static PyObject *feed(PyObject *self, PyObject *args) {
    PyObject *builder, *ops;
    Py_ssize_t start;
    State s;
    memset(&s, 0, sizeof s);
    if (!PyArg_ParseTuple(args, "OO!nO", &builder, &PyList_Type, &ops, &start, &s.repeated_keys) ||
        state_open(&s, builder) < 0) {
        state_free(&s);
        return NULL;
    }
    Py_ssize_t i = start < 0 ? 0 : start;
    for (; i < PyList_GET_SIZE(ops); i++) {
        PyObject *op = PyList_GET_ITEM(ops, i);
        Py_INCREF(op);
        int taken = take(&s, op, s.pos + 1);
        Py_DECREF(op);
        if (taken < 0) {
            state_free(&s);
            return NULL;
        }
        if (taken == 0) break;
        s.pos++;
    }
    PyObject *result = state_close(&s, builder) < 0 ? NULL : PyLong_FromSsize_t(i);
    state_free(&s);
    return result;
}

/* The op of a line the scanner leaves, as iter_jsonl parses it (UTF-8, the newline off,
   json.loads): a new dict, or NULL with no error set if it is none, or no JSON (the
   caller's Python path then says what the line is). */
static PyObject *line_op(PyObject *text, PyObject *loads) {
    Py_ssize_t n = PyBytes_GET_SIZE(text);
    const char *p = PyBytes_AS_STRING(text);
    PyObject *str = PyUnicode_DecodeUTF8(p, n > 0 && p[n - 1] == '\n' ? n - 1 : n, "strict");
    PyObject *op = str ? PyObject_CallOneArg(loads, str) : NULL;
    Py_XDECREF(str);
    if (op != NULL && !PyDict_CheckExact(op)) Py_CLEAR(op);
    PyErr_Clear();
    return op;
}

static PyObject *feed_lines(PyObject *self, PyObject *args) {
    PyObject *builder, *lines, *starts, *offsets, *loads;
    Py_ssize_t start;
    State s;
    memset(&s, 0, sizeof s);
    Py_buffer at;
    if (!PyArg_ParseTuple(args, "OO!nOOOO", &builder, &PyList_Type, &lines, &start, &starts, &offsets,
                          &s.repeated_keys, &loads))
        return NULL;
    if (PyObject_GetBuffer(starts, &at, PyBUF_FORMAT) < 0) return NULL;
    if (at.itemsize != 8 || at.len / 8 != PyList_GET_SIZE(lines)) {
        PyBuffer_Release(&at);
        PyErr_SetString(PyExc_ValueError, "feed_lines: starts is no array('q') of a start per line");
        return NULL;
    }
    Py_INCREF(offsets);
    s.owned[NCOLUMNS + NSHARED] = s.builder_col[OFFSETS] = offsets;
    s.col[OFFSETS].size = 8;
    Line line;
    memset(&line, 0, sizeof line);
    PyObject *result = NULL;
    if (state_open(&s, builder) == 0) {
        Py_ssize_t i = start < 0 ? 0 : start;
        int failed = 0;
        for (; i < PyList_GET_SIZE(lines); i++) {
            PyObject *text = PyList_GET_ITEM(lines, i);
            if (!PyBytes_CheckExact(text)) break;
            const char *p = PyBytes_AS_STRING(text);
            int taken = scan_line(&line, p, p + PyBytes_GET_SIZE(text)) ? take_line(&s, &line, s.pos + 1) : 0;
            if (taken == 0) {   /* the line's dict, through the dict path (a key named twice) */
                PyObject *op = line_op(text, loads);
                if (op == NULL) break;
                taken = take(&s, op, s.pos + 1);
                Py_DECREF(op);
            }
            if (taken < 0 || (taken == 1 && put64(&s.col[OFFSETS], ((int64_t *)at.buf)[i]) < 0)) {
                failed = 1;
                break;
            }
            if (taken == 0) break;
            s.pos++;
        }
        if (!failed && state_close(&s, builder) == 0) result = PyLong_FromSsize_t(i);
    }
    line_free(&line);
    PyBuffer_Release(&at);
    state_free(&s);
    return result;
}

static PyMethodDef methods[] = {
    {"feed", feed, METH_VARARGS, "feed(builder, ops, start, repeated_keys) -> the first op not taken"},
    {"feed_lines", feed_lines, METH_VARARGS,
     "feed_lines(builder, lines, start, starts, offsets, repeated_keys, loads) -> the first line not taken"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_feed", NULL, -1, methods};

PyMODINIT_FUNC PyInit__feed(void) {
    const char *names[] = {"type", "process", "f", "value", "index"};
    PyObject **slots[] = {&s_type, &s_process, &s_f, &s_value, &s_index};
    for (int j = 0; j < 5; j++) {
        *slots[j] = PyUnicode_InternFromString(names[j]);
        if (*slots[j] == NULL) return NULL;
    }
    return PyModule_Create(&module);
}
