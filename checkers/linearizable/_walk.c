/* search.py's set-up and walk in C, for the searches that end valid.

   search.py builds its node lists (dancing links) and then walks them; per configuration
   a few dozen Python steps, and per call a few C-level passes of set-up. On histories
   whose search is nearly linear (few timeouts) that was most of the check, and Porcupine's
   Go is quick there. This is the same set-up and the same walk, step for step (search.py
   is the reference and the documentation: the sections of candidates and their order,
   the read-only pass, the cache with its dominated unknown-call sets, the
   interchangeable unknown calls), on C arrays, with the same cache (its own table),
   asking the same model.step where a node's transition is not data.

   It keeps the furthest point as search.py does (the pending completion with the
   highest history position reached, the stack then, the configurations that got as
   far), so a failing search is explained from it and not made again.

   Walk(calls, step, state, ANY, SAME, STEP, UNKNOWN, AnyBut, check_every, max_finals)
   calls: a list of calls.Call, or _prepare.c's Calls, whose packed rows (_calls.h) are
   read instead of any tuple
   .run() -> int (paused: configurations so far, a multiple of check_every),
             ("valid", configurations), or
             ("invalid", configurations, stuck_at, path, finals) as search.py's Outcome
             has them (call ids, states). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include "_calls.h"

/* A set of known calls, bit i: call base + i; as many words as its highest bit needs
   (none for the empty set), so equal sets have equal words */
typedef struct {
    uint64_t *w;
    Py_ssize_t len, cap;
} Bits;

typedef struct {
    Py_ssize_t node;      /* the call linearized, or -1: a read-only pass (taken[from..]) */
    Py_ssize_t from, len; /* a pass's nodes in `taken` */
    PyObject *state;      /* owned: the state before */
    int64_t limit, base;
    Py_ssize_t rel_from, rel_len;   /* its rel's words in rel_arena */
                          /* (its unknown-call set is ib_stack's row of the same depth) */
} Item;

/* an item of the stack at the furthest point: a call, or a read-only pass (btaken[from..]) */
typedef struct {
    Py_ssize_t node, from, len;
    PyObject *state;      /* owned: the state before */
} Best;

/* a configuration at the furthest point */
typedef struct {
    int64_t base;
    Py_ssize_t rel_off, rel_len, ib_off;   /* in fwords */
    PyObject *state;      /* owned */
    Py_ssize_t last;      /* the node linearized last, or -1 */
} Final;

/* The cache: configurations (base, rel, state), each with its minimal sets of unknown-
   outcome calls applied: the entries in an array, in the order made, and an open-
   addressing index of them (8 bytes a slot: the entry's number and more of its hash);
   words (rel's and the sets') in one arena. Entries in the index itself, at half full
   and a power of two, were 112-170 bytes a configuration: a hard search's 6.5 million
   configurations did not fit its 1 GiB. */
typedef struct {
    PyObject *state;      /* owned; NULL: an empty slot */
    uint64_t hash;
    int64_t base;
    int64_t rel_off, sets_off;     /* in the arena: rel's words, then n_sets sets of W words */
    uint32_t rel_len, n_sets, sets_cap;   /* sets_cap: the sets' block holds as many */
} Entry;

typedef struct {
    uint32_t entry;       /* its number + 1; 0: an empty slot */
    uint32_t hash_hi;     /* the entry's hash's high half: most misses end here */
} Slot;

typedef struct {
    PyObject_HEAD
    Py_ssize_t size, n_ok, heads[3];
    Py_ssize_t *nxt, *prv, *xof, *rnxt, *rprv;
    int64_t *inv, *rpos;
    Py_ssize_t *info_of;  /* node -> its unknown-outcome call's number j, or -1 */
    uint64_t *same;       /* row j (W words): the earlier members of j's class */
    char *negate;         /* need[node] is AnyBut(s)'s s */
    PyObject **inp, **out, **need, **then;
    PyObject *step, *any, *same_o, *step_o, *state;
    Entry *entries;
    Py_ssize_t n_entries, entries_cap;
    Slot *slots;
    Py_ssize_t slots_cap;   /* a power of two */
    uint64_t *words;
    Py_ssize_t words_len, words_cap;
    int64_t base, limit, remaining, count, check_every;
    Bits rel, nrel;
    uint64_t *rel_arena;
    Py_ssize_t rel_arena_len, rel_arena_cap;
    Py_ssize_t W;         /* words of an unknown-call set */
    uint64_t *ib, *nib, *ib_stack;
    Py_ssize_t node;
    int entering, covered, done;
    int64_t backtracks;
    Item *stack;
    Py_ssize_t depth, cap;
    Py_ssize_t *taken;
    Py_ssize_t taken_len, taken_cap;
    /* call ids: of each node, of known call x, of unknown-outcome call j */
    Py_ssize_t *cid, *ok_id, *info_id;
    /* the furthest point (search.py's best, best_x, best_stack, best_state, finals) */
    int64_t best;
    Py_ssize_t best_x, best_depth, low, max_finals;
    PyObject *best_state;
    Best *bstack;
    Py_ssize_t blen, bcap;
    Py_ssize_t *btaken;
    Py_ssize_t btaken_len, btaken_cap;
    Final *finals;
    Py_ssize_t n_finals;
    uint64_t *fwords;     /* the finals' rel and ib words */
    Py_ssize_t fwords_len, fwords_cap;
} Walk;

/* a == b as Python's == says it; identity is enough only for types whose == is identity
   on the same object (a float NaN is not equal to itself) */
static int equal(PyObject *a, PyObject *b) {
    if (a == b && (PyLong_CheckExact(a) || PyUnicode_CheckExact(a) || a == Py_None || PyBool_Check(a) ||
                   PyTuple_CheckExact(a) || PyFrozenSet_CheckExact(a)))
        return 1;
    PyObject *r = PyObject_RichCompare(a, b, Py_EQ);
    if (r == NULL) return -1;
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

static void walk_dealloc(Walk *w) {
    for (Py_ssize_t j = 0; j < w->depth; j++) Py_XDECREF(w->stack[j].state);
    PyObject ***objects[] = {&w->inp, &w->out, &w->need, &w->then};
    for (int k = 0; k < 4; k++) {
        if (*objects[k] != NULL) {
            for (Py_ssize_t i = 0; i < w->size; i++) Py_XDECREF((*objects[k])[i]);
            PyMem_Free(*objects[k]);
        }
    }
    PyMem_Free(w->nxt); PyMem_Free(w->prv); PyMem_Free(w->xof); PyMem_Free(w->rnxt); PyMem_Free(w->rprv);
    PyMem_Free(w->inv); PyMem_Free(w->rpos); PyMem_Free(w->info_of); PyMem_Free(w->same); PyMem_Free(w->ib); PyMem_Free(w->nib); PyMem_Free(w->ib_stack); PyMem_Free(w->rel.w); PyMem_Free(w->nrel.w); PyMem_Free(w->rel_arena); PyMem_Free(w->negate);
    PyMem_Free(w->stack); PyMem_Free(w->taken);
    Py_XDECREF(w->step); Py_XDECREF(w->any); Py_XDECREF(w->same_o); Py_XDECREF(w->step_o);
    for (Py_ssize_t j = 0; j < w->n_entries; j++) Py_DECREF(w->entries[j].state);
    PyMem_Free(w->entries); PyMem_Free(w->slots); PyMem_Free(w->words);
    Py_XDECREF(w->state);
    PyMem_Free(w->cid); PyMem_Free(w->ok_id); PyMem_Free(w->info_id);
    Py_XDECREF(w->best_state);
    for (Py_ssize_t j = 0; j < w->blen; j++) Py_XDECREF(w->bstack[j].state);
    PyMem_Free(w->bstack); PyMem_Free(w->btaken);
    for (Py_ssize_t j = 0; j < w->n_finals; j++) Py_XDECREF(w->finals[j].state);
    PyMem_Free(w->finals); PyMem_Free(w->fwords);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

/* A Call's fields, by position (calls.Call) */
enum { F_INP = 0, F_OUT = 1, F_INV = 2, F_RET = 3, F_PURE = 10, F_NEED = 11, F_THEN = 12 };

static int64_t as_position(PyObject *v, int *error) {
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) *error = 1;
    return x;
}

/* the calls' ids `ids` (n of them) sorted by key[id], stably: insertion sort is enough
   for the nearly sorted orders met here, merge sort guards the rest */
static void sort_by(Py_ssize_t *ids, Py_ssize_t n, const int64_t *key, Py_ssize_t *tmp) {
    if (n < 2) return;
    if (n <= 32) {
        for (Py_ssize_t i = 1; i < n; i++) {
            Py_ssize_t v = ids[i], j = i;
            while (j > 0 && key[ids[j - 1]] > key[v]) { ids[j] = ids[j - 1]; j--; }
            ids[j] = v;
        }
        return;
    }
    Py_ssize_t h = n / 2;
    sort_by(ids, h, key, tmp);
    sort_by(ids + h, n - h, key, tmp);
    if (key[ids[h - 1]] <= key[ids[h]]) return;   /* already in order */
    Py_ssize_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = key[ids[j]] < key[ids[i]] ? ids[j++] : ids[i++];
    while (i < h) tmp[k++] = ids[i++];
    while (j < n) tmp[k++] = ids[j++];
    memcpy(ids, tmp, sizeof(Py_ssize_t) * n);
}

/* Walk(calls, step, state, ANY, SAME, STEP, UNKNOWN, AnyBut, check_every, max_finals): search.py's
   set-up, the same node lists built from the calls. */
static PyObject *walk_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *calls, *step, *state, *any, *same_o, *step_o, *unknown, *any_but;
    long long check_every;
    Py_ssize_t max_finals;
    if (!PyArg_ParseTuple(args, "OOOOOOOOLn", &calls, &step, &state, &any, &same_o, &step_o, &unknown,
                          &any_but, &check_every, &max_finals))
        return NULL;
    const Row *rows = NULL;
    Py_buffer view = {0};
    Py_ssize_t n;
    if (PyList_Check(calls)) {
        n = PyList_GET_SIZE(calls);
    } else {   /* a Calls: its rows */
        if (PyObject_GetBuffer(calls, &view, PyBUF_SIMPLE) < 0) {
            PyErr_SetString(PyExc_TypeError, "calls: a list of calls.Call, or a _prepare.Calls");
            return NULL;
        }
        n = view.len / (Py_ssize_t)sizeof(Row);
        if (view.len != n * (Py_ssize_t)sizeof(Row) || PyObject_Length(calls) != n) {
            PyBuffer_Release(&view);
            PyErr_SetString(PyExc_TypeError, "calls: a list of calls.Call, or a _prepare.Calls");
            return NULL;
        }
        rows = (const Row *)view.buf;
    }
    Py_ssize_t n_ok = 0, n_i = 0, n_p = 0, n_k = 0;
    int error = 0;
    int64_t *ret = PyMem_Malloc(sizeof(int64_t) * (n + 1)), *invs = PyMem_Malloc(sizeof(int64_t) * (n + 1));
    Py_ssize_t *ids = PyMem_Malloc(sizeof(Py_ssize_t) * (n + 1) * 5);
    if (ret == NULL || invs == NULL || ids == NULL) {
        PyMem_Free(ret); PyMem_Free(invs); PyMem_Free(ids);
        if (rows != NULL) PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    Py_ssize_t *oks = ids, *pures = ids + n + 1, *knowns = ids + 2 * (n + 1), *infos = ids + 3 * (n + 1);
    Py_ssize_t *tmp = ids + 4 * (n + 1);
    for (Py_ssize_t i = 0; i < n && rows != NULL && !error; i++) {
        invs[i] = rows[i].inv;
        if (rows[i].ret < 0) {
            infos[n_i++] = i;
            continue;
        }
        ret[i] = rows[i].ret;
        oks[n_ok++] = i;
        int pure = rows[i].pure == Py_True ? 1 : rows[i].pure == Py_False ? 0 : PyObject_IsTrue(rows[i].pure);
        if (pure < 0) { error = 1; break; }
        if (pure > 0) pures[n_p++] = i; else knowns[n_k++] = i;
    }
    for (Py_ssize_t i = 0; i < n && !error && rows == NULL; i++) {
        PyObject *c = PyList_GET_ITEM(calls, i);
        if (!PyTuple_Check(c) || PyTuple_GET_SIZE(c) < 14) {
            PyErr_SetString(PyExc_TypeError, "calls: calls.Call tuples");
            error = 1;
            break;
        }
        invs[i] = as_position(PyTuple_GET_ITEM(c, F_INV), &error);
        PyObject *r = PyTuple_GET_ITEM(c, F_RET);
        if (r == Py_None) {
            infos[n_i++] = i;
            continue;
        }
        ret[i] = as_position(r, &error);
        oks[n_ok++] = i;
        int pure = PyObject_IsTrue(PyTuple_GET_ITEM(c, F_PURE));
        if (pure < 0) error = 1;
        if (pure > 0) pures[n_p++] = i; else knowns[n_k++] = i;
    }
    Walk *w = NULL;
    if (error) goto done;
    sort_by(oks, n_ok, ret, tmp);
    sort_by(pures, n_p, invs, tmp);
    sort_by(knowns, n_k, invs, tmp);
    w = (Walk *)type->tp_alloc(type, 0);
    if (w == NULL) goto done;
    Py_ssize_t size = n_p + n_k + n_i + 6;
    w->size = size;
    w->n_ok = n_ok;
    w->heads[0] = 0;
    w->heads[1] = n_p + 2;
    w->heads[2] = n_p + n_k + 4;
    w->nxt = PyMem_Malloc(sizeof(Py_ssize_t) * size);
    w->prv = PyMem_Malloc(sizeof(Py_ssize_t) * size);
    w->xof = PyMem_Malloc(sizeof(Py_ssize_t) * size);
    w->inv = PyMem_Malloc(sizeof(int64_t) * size);
    Py_ssize_t W = n_i / 64 + 1;
    w->W = W;
    w->info_of = PyMem_Malloc(sizeof(Py_ssize_t) * size);
    w->same = PyMem_Calloc((n_i + 1) * W, sizeof(uint64_t));
    w->ib = PyMem_Calloc(W, sizeof(uint64_t));
    w->nib = PyMem_Calloc(W, sizeof(uint64_t));
    w->negate = PyMem_Calloc(size, 1);
    w->inp = PyMem_Calloc(size, sizeof(PyObject *));
    w->out = PyMem_Calloc(size, sizeof(PyObject *));
    w->need = PyMem_Calloc(size, sizeof(PyObject *));
    w->then = PyMem_Calloc(size, sizeof(PyObject *));
    w->rnxt = PyMem_Malloc(sizeof(Py_ssize_t) * (n_ok + 2));
    w->rprv = PyMem_Malloc(sizeof(Py_ssize_t) * (n_ok + 2));
    w->rpos = PyMem_Malloc(sizeof(int64_t) * (n_ok + 1));
    w->cid = PyMem_Malloc(sizeof(Py_ssize_t) * size);
    w->ok_id = PyMem_Malloc(sizeof(Py_ssize_t) * (n_ok + 1));
    w->info_id = PyMem_Malloc(sizeof(Py_ssize_t) * (n_i + 1));
    w->max_finals = max_finals > 0 ? max_finals : 1;
    w->finals = PyMem_Malloc(sizeof(Final) * w->max_finals);
    w->best = w->best_x = w->best_depth = -1;
    if (!w->cid || !w->ok_id || !w->info_id || !w->finals ||
        !w->nxt || !w->prv || !w->xof || !w->inv || !w->info_of || !w->same || !w->ib || !w->nib || !w->negate || !w->inp || !w->out ||
        !w->need || !w->then || !w->rnxt || !w->rprv || !w->rpos) {
        PyErr_NoMemory();
        Py_CLEAR(w);
        goto done;
    }
    for (Py_ssize_t j = 0; j < size; j++) {
        w->nxt[j] = j + 1;
        w->prv[j] = j - 1;
        w->xof[j] = -1;
        w->info_of[j] = -1;
        w->cid[j] = -1;
        w->inv[j] = -1;
    }
    w->inv[n_p + 1] = w->inv[n_p + n_k + 3] = w->inv[size - 1] = INT64_MAX;   /* the tails */
    for (Py_ssize_t x = 0; x < n_ok; x++) {
        tmp[oks[x]] = x;   /* id -> x */
        w->rpos[x] = ret[oks[x]];
        w->ok_id[x] = oks[x];
    }
    for (Py_ssize_t j = 0; j < n_ok + 2; j++) {
        w->rnxt[j] = j + 1;
        w->rprv[j] = j - 1;
    }
    PyObject *earlier_of = PyDict_New();
    if (earlier_of == NULL) { Py_CLEAR(w); goto done; }
    Py_ssize_t sections[3] = {n_p, n_k, n_i};
    Py_ssize_t *members[3] = {pures, knowns, infos};
    for (int sec = 0; sec < 3; sec++) {
        for (Py_ssize_t j = 0; j < sections[sec]; j++) {
            Py_ssize_t node = w->heads[sec] + 1 + j, id = members[sec][j];
            w->inv[node] = invs[id];
            w->cid[node] = id;
            if (rows != NULL) {
                w->inp[node] = rows[id].inp;
                w->out[node] = sec == 2 ? unknown : rows[id].out;
                w->need[node] = rows[id].need;
                w->then[node] = rows[id].then;
            } else {
                PyObject *c = PyList_GET_ITEM(calls, id);
                w->inp[node] = PyTuple_GET_ITEM(c, F_INP);
                w->out[node] = sec == 2 ? unknown : PyTuple_GET_ITEM(c, F_OUT);
                w->need[node] = PyTuple_GET_ITEM(c, F_NEED);
                w->then[node] = PyTuple_GET_ITEM(c, F_THEN);
            }
            if (Py_TYPE(w->need[node]) == (PyTypeObject *)any_but) {
                /* AnyBut(s): legal where the state is not s (its __eq__, without the call) */
                PyObject *inner = PyObject_GetAttrString(w->need[node], "state");
                if (inner == NULL) { Py_DECREF(earlier_of); Py_CLEAR(w); goto done; }
                w->need[node] = inner;   /* a new reference, as the others get below */
                Py_DECREF(inner);
                w->negate[node] = 1;
            }
            Py_INCREF(w->inp[node]);
            Py_INCREF(w->out[node]);
            Py_INCREF(w->need[node]);
            Py_INCREF(w->then[node]);
            if (sec < 2) {
                w->xof[node] = tmp[id];
                continue;
            }
            /* unknown-outcome calls with equal inputs are interchangeable (search.py):
               earlier_of maps an input to its class's latest member so far */
            w->info_of[node] = j;
            w->info_id[j] = id;
            PyObject *earlier = PyDict_GetItemWithError(earlier_of, w->inp[node]);
            if (earlier == NULL && PyErr_Occurred()) {
                if (!PyErr_ExceptionMatches(PyExc_TypeError)) { Py_DECREF(earlier_of); Py_CLEAR(w); goto done; }
                PyErr_Clear();   /* an unhashable input: its own class */
                continue;
            }
            if (earlier != NULL) {
                Py_ssize_t last = PyLong_AsSsize_t(earlier);
                memcpy(w->same + j * W, w->same + last * W, sizeof(uint64_t) * W);
                w->same[j * W + last / 64] |= (uint64_t)1 << (last % 64);
            }
            PyObject *now = PyLong_FromSsize_t(j);
            if (now == NULL || PyDict_SetItem(earlier_of, w->inp[node], now) < 0) {
                Py_XDECREF(now);
                Py_DECREF(earlier_of);
                Py_CLEAR(w);
                goto done;
            }
            Py_DECREF(now);
        }
    }
    Py_DECREF(earlier_of);
    /* edges: STEP needs, None elsewhere (never read) */
    for (Py_ssize_t j = 0; j < size; j++) {
        if (w->need[j] == NULL) {
            w->need[j] = step_o;
            w->inp[j] = w->out[j] = w->then[j] = Py_None;
            Py_INCREF(step_o);
            Py_INCREF(Py_None); Py_INCREF(Py_None); Py_INCREF(Py_None);
        }
    }
    Py_INCREF(step); w->step = step;
    Py_INCREF(any); w->any = any;
    Py_INCREF(same_o); w->same_o = same_o;
    Py_INCREF(step_o); w->step_o = step_o;
    Py_INCREF(state); w->state = state;
    w->remaining = n_ok;
    w->check_every = check_every;
    w->entering = 1;
    if (n_ok == 0) w->done = 2;   /* nothing to linearize: valid at once */
done:
    PyMem_Free(ret);
    PyMem_Free(invs);
    PyMem_Free(ids);
    if (rows != NULL) PyBuffer_Release(&view);   /* what the walk keeps of the rows, it holds itself */
    return (PyObject *)w;
}

static int bits_reserve(Bits *b, Py_ssize_t words) {
    if (words <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 2;
    while (cap < words) cap *= 2;
    uint64_t *n = PyMem_Realloc(b->w, sizeof(uint64_t) * cap);
    if (n == NULL) { PyErr_NoMemory(); return -1; }
    b->w = n;
    b->cap = cap;
    return 0;
}

static int bits_copy(Bits *dst, const uint64_t *words, Py_ssize_t len) {
    if (bits_reserve(dst, len) < 0) return -1;
    if (len) memcpy(dst->w, words, sizeof(uint64_t) * len);
    dst->len = len;
    return 0;
}

/* rel with call x set, then shifted down past its lowest bits while they are set (base
   moves up by as many: those calls are all linearized), as search.py renormalises */
static int add_known(int64_t *base, Bits *rel, Py_ssize_t x) {
    int64_t off = x - *base;
    Py_ssize_t word = off / 64;
    if (word >= rel->len) {
        if (bits_reserve(rel, word + 1) < 0) return -1;
        memset(rel->w + rel->len, 0, sizeof(uint64_t) * (word + 1 - rel->len));
        rel->len = word + 1;
    }
    rel->w[word] |= (uint64_t)1 << (off % 64);
    if (!(rel->w[0] & 1)) return 0;
    Py_ssize_t full = 0;
    while (full < rel->len && rel->w[full] == ~(uint64_t)0) full++;
    int bits = full < rel->len ? __builtin_ctzll(~rel->w[full]) : 0;
    Py_ssize_t n = rel->len - full;   /* words left after the whole-word shift */
    for (Py_ssize_t k = 0; k < n; k++) {
        uint64_t lo = rel->w[full + k], hi = full + k + 1 < rel->len ? rel->w[full + k + 1] : 0;
        rel->w[k] = bits ? (lo >> bits) | (hi << (64 - bits)) : lo;
    }
    rel->len = n;
    while (rel->len && rel->w[rel->len - 1] == 0) rel->len--;
    *base += full * 64 + bits;
    return 0;
}

/* need[node] == state, as search.py tests it (ANY: always; AnyBut(s): state != s) */
static int legal(Walk *w, Py_ssize_t node) {
    PyObject *needs = w->need[node];
    if (needs == w->any) return 1;
    if (w->negate[node]) {
        int eq = equal(w->state, needs);
        return eq < 0 ? -1 : !eq;
    }
    return equal(needs, w->state);
}

static int push(Walk *w, Py_ssize_t node) {
    if (w->depth == w->cap) {
        Py_ssize_t cap = w->cap ? w->cap * 2 : 64;
        Item *s = PyMem_Realloc(w->stack, sizeof(Item) * cap);
        if (s == NULL) { PyErr_NoMemory(); return -1; }
        w->stack = s;
        uint64_t *rows = PyMem_Realloc(w->ib_stack, sizeof(uint64_t) * cap * w->W);
        if (rows == NULL) { PyErr_NoMemory(); return -1; }
        w->ib_stack = rows;
        w->cap = cap;
    }
    Item *it = &w->stack[w->depth++];
    it->node = node;
    it->from = w->taken_len;
    it->len = 0;
    Py_INCREF(w->state);
    it->state = w->state;
    it->limit = w->limit;
    it->base = w->base;
    if (w->rel_arena_len + w->rel.len > w->rel_arena_cap) {
        Py_ssize_t cap = w->rel_arena_cap ? w->rel_arena_cap : 64;
        while (cap < w->rel_arena_len + w->rel.len) cap *= 2;
        uint64_t *a = PyMem_Realloc(w->rel_arena, sizeof(uint64_t) * cap);
        if (a == NULL) { w->depth--; Py_DECREF(it->state); PyErr_NoMemory(); return -1; }
        w->rel_arena = a;
        w->rel_arena_cap = cap;
    }
    it->rel_from = w->rel_arena_len;
    it->rel_len = w->rel.len;
    if (w->rel.len) memcpy(w->rel_arena + w->rel_arena_len, w->rel.w, sizeof(uint64_t) * w->rel.len);
    w->rel_arena_len += w->rel.len;
    memcpy(w->ib_stack + (w->depth - 1) * w->W, w->ib, sizeof(uint64_t) * w->W);
    return 0;
}

static int take(Walk *w, Py_ssize_t node) {
    if (w->taken_len == w->taken_cap) {
        Py_ssize_t cap = w->taken_cap ? w->taken_cap * 2 : 64;
        Py_ssize_t *t = PyMem_Realloc(w->taken, sizeof(Py_ssize_t) * cap);
        if (t == NULL) { PyErr_NoMemory(); return -1; }
        w->taken = t;
        w->taken_cap = cap;
    }
    w->taken[w->taken_len++] = node;
    w->stack[w->depth - 1].len++;
    return 0;
}

/* step(state, inp, out) -> (ok, new state): ok as 0/1 and *next (owned), -1 on error */
static int call_step(Walk *w, Py_ssize_t node, PyObject **next) {
    PyObject *args[3] = {w->state, w->inp[node], w->out[node]};
    PyObject *r = PyObject_Vectorcall(w->step, args, 3, NULL);
    if (r == NULL) return -1;
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError, "model.step must return (ok, state)");
        return -1;
    }
    int ok = PyObject_IsTrue(PyTuple_GET_ITEM(r, 0));
    if (ok < 0) { Py_DECREF(r); return -1; }
    *next = PyTuple_GET_ITEM(r, 1);
    Py_INCREF(*next);
    Py_DECREF(r);
    return ok;
}

static inline int subset(const uint64_t *a, const uint64_t *b, Py_ssize_t W) {   /* a within b */
    for (Py_ssize_t k = 0; k < W; k++)
        if ((a[k] | b[k]) != b[k]) return 0;
    return 1;
}

/* n words appended to a growing buffer (*buf, *len of *cap; src NULL: left as they
   are): their offset, or -1 (pointers into it move) */
static Py_ssize_t put_words(uint64_t **buf, Py_ssize_t *len, Py_ssize_t *cap, const uint64_t *src, Py_ssize_t n) {
    if (*len + n > *cap) {
        Py_ssize_t size = *cap ? *cap : 64;
        while (size < *len + n) size *= 2;
        uint64_t *a = PyMem_Realloc(*buf, sizeof(uint64_t) * size);
        if (a == NULL) { PyErr_NoMemory(); return -1; }
        *buf = a;
        *cap = size;
    }
    Py_ssize_t at = *len;
    if (n && src != NULL) memcpy(*buf + at, src, sizeof(uint64_t) * n);
    *len += n;
    return at;
}

static Py_ssize_t arena_put(Walk *w, const uint64_t *src, Py_ssize_t n) {   /* the cache's words */
    return put_words(&w->words, &w->words_len, &w->words_cap, src, n);
}

static Slot *slot_for(Slot *slots, Py_ssize_t cap, uint64_t hash) {   /* the first free one */
    Py_ssize_t i = (Py_ssize_t)(hash & (uint64_t)(cap - 1));
    while (slots[i].entry != 0) i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* the index twice as big, rebuilt from the entries (at most half full) */
static int index_grow(Walk *w) {
    Py_ssize_t cap = w->slots_cap ? w->slots_cap * 2 : 1024;
    Slot *t = PyMem_Calloc(cap, sizeof(Slot));
    if (t == NULL) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t j = 0; j < w->n_entries; j++)
        *slot_for(t, cap, w->entries[j].hash) = (Slot){(uint32_t)(j + 1), (uint32_t)(w->entries[j].hash >> 32)};
    PyMem_Free(w->slots);
    w->slots = t;
    w->slots_cap = cap;
    return 0;
}

static Entry *entry_new(Walk *w) {
    if (w->n_entries == w->entries_cap) {
        if (w->entries_cap >= (Py_ssize_t)UINT32_MAX - 1) { PyErr_NoMemory(); return NULL; }
        Py_ssize_t cap = w->entries_cap ? w->entries_cap + w->entries_cap / 2 : 1024;
        if (cap > (Py_ssize_t)UINT32_MAX - 1) cap = (Py_ssize_t)UINT32_MAX - 1;
        Entry *e = PyMem_Realloc(w->entries, sizeof(Entry) * cap);
        if (e == NULL) { PyErr_NoMemory(); return NULL; }
        w->entries = e;
        w->entries_cap = cap;
    }
    return &w->entries[w->n_entries++];
}

/* The cache: is configuration (base, rel, state) with unknown-call set ib new (not
   dominated by a recorded subset)? Recorded as search.py's _remember does: the minimal
   sets, a new one replacing those it is within. Keys match as the Python dict's tuples
   do (state by ==, identity first). 1 new, 0 covered, -1 error. */
static int remember(Walk *w, int64_t base, const Bits *rel, PyObject *state, const uint64_t *ib) {
    Py_ssize_t W = w->W;
    Py_hash_t hs = PyObject_Hash(state);
    if (hs == -1) return -1;
    uint64_t h = (uint64_t)base * 0x9E3779B97F4A7C15ULL ^ (uint64_t)hs * 0xC2B2AE3D27D4EB4FULL;
    for (Py_ssize_t k = 0; k < rel->len; k++) h = (h ^ rel->w[k]) * 0x100000001B3ULL;
    h ^= h >> 31;
    if ((w->n_entries + 1) * 2 > w->slots_cap && index_grow(w) < 0) return -1;
    Py_ssize_t i = (Py_ssize_t)(h & (uint64_t)(w->slots_cap - 1));
    uint32_t hi = (uint32_t)(h >> 32);
    Entry *e;
    for (;; i = (i + 1) & (w->slots_cap - 1)) {
        Slot *slot = &w->slots[i];
        if (slot->entry == 0) {   /* new */
            Py_ssize_t r = arena_put(w, rel->w, rel->len);
            Py_ssize_t m = r < 0 ? -1 : arena_put(w, ib, W);
            if (m < 0 || (e = entry_new(w)) == NULL) return -1;
            Py_INCREF(state);
            *e = (Entry){state, h, base, r, m, (uint32_t)rel->len, 1, 1};
            *slot = (Slot){(uint32_t)w->n_entries, hi};
            return 1;
        }
        if (slot->hash_hi != hi) continue;
        e = &w->entries[slot->entry - 1];
        if (e->hash != h || e->base != base || e->rel_len != (uint32_t)rel->len ||
            (rel->len && memcmp(w->words + e->rel_off, rel->w, sizeof(uint64_t) * rel->len) != 0))
            continue;
        int eq = PyObject_RichCompareBool(e->state, state, Py_EQ);
        if (eq < 0) return -1;
        if (eq) break;
    }
    for (Py_ssize_t j = 0; j < (Py_ssize_t)e->n_sets; j++)
        if (subset(w->words + e->sets_off + j * W, ib, W)) return 0;   /* dominated */
    /* the sets the new one is not within stay, in place and in order; it goes after
       them, in the entry's block while it has room, else in a block twice the size
       (rewriting all the sets for each new one left garbage growing with the square of
       their number: a hard search's arena reached 1 GiB) */
    uint64_t *sets = w->words + e->sets_off;
    Py_ssize_t kept = 0;
    for (Py_ssize_t j = 0; j < (Py_ssize_t)e->n_sets; j++) {
        uint64_t *m = sets + j * W;
        if (subset(ib, m, W)) continue;
        if (kept != j) memmove(sets + kept * W, m, sizeof(uint64_t) * W);
        kept++;
    }
    if (kept + 1 > (Py_ssize_t)UINT32_MAX / 2) { PyErr_NoMemory(); return -1; }
    if (kept + 1 > (Py_ssize_t)e->sets_cap) {
        Py_ssize_t cap = 2 * (kept + 1);
        Py_ssize_t off = arena_put(w, NULL, cap * W);
        if (off < 0) return -1;
        memcpy(w->words + off, w->words + e->sets_off, sizeof(uint64_t) * kept * W);
        e->sets_off = off;
        e->sets_cap = (uint32_t)cap;
    }
    memcpy(w->words + e->sets_off + kept * W, ib, sizeof(uint64_t) * W);
    e->n_sets = (uint32_t)(kept + 1);
    return 1;
}

static inline void unlink_node(Walk *w, Py_ssize_t node) {
    Py_ssize_t p = w->prv[node], n = w->nxt[node];
    w->nxt[p] = n;
    w->prv[n] = p;
}

static inline void unlink_ret(Walk *w, Py_ssize_t node) {
    Py_ssize_t r = w->xof[node] + 1, p = w->rprv[r], n = w->rnxt[r];
    w->rnxt[p] = n;
    w->rprv[n] = p;
}

static inline void relink_node(Walk *w, Py_ssize_t node) {
    w->nxt[w->prv[node]] = node;
    w->prv[w->nxt[node]] = node;
}

static inline void relink_ret(Walk *w, Py_ssize_t node) {
    Py_ssize_t r = w->xof[node] + 1;
    w->rnxt[w->rprv[r]] = r;
    w->rprv[w->rnxt[r]] = r;
}

static void set_state(Walk *w, PyObject *s) {   /* steals s */
    PyObject *old = w->state;
    w->state = s;
    Py_DECREF(old);
}

static Py_ssize_t fwords_put(Walk *w, const uint64_t *src, Py_ssize_t n) {   /* the finals' words */
    return put_words(&w->fwords, &w->fwords_len, &w->fwords_cap, src, n);
}

/* A configuration the search did not find covered: the furthest point so far? (search.py:
   a higher pending completion starts the finals afresh, an equal one adds to them) */
static int note_furthest(Walk *w) {
    if (w->limit > w->best) {
        w->best = w->limit;
        w->best_x = w->rnxt[0] - 1;
        w->best_depth = w->depth;
        Py_INCREF(w->state);
        Py_XSETREF(w->best_state, w->state);
        for (Py_ssize_t j = 0; j < w->n_finals; j++) Py_DECREF(w->finals[j].state);
        w->n_finals = 0;
        w->fwords_len = 0;
    } else if (w->limit < w->best || w->n_finals >= w->max_finals) {
        return 0;
    }
    Final *f = &w->finals[w->n_finals];
    f->rel_off = fwords_put(w, w->rel.w, w->rel.len);
    f->ib_off = f->rel_off < 0 ? -1 : fwords_put(w, w->ib, w->W);
    if (f->ib_off < 0) return -1;
    f->base = w->base;
    f->rel_len = w->rel.len;
    Py_INCREF(w->state);
    f->state = w->state;
    f->last = -1;
    if (w->depth) {
        const Item *top = &w->stack[w->depth - 1];
        f->last = top->node >= 0 ? top->node : w->taken[top->from + top->len - 1];
    }
    w->n_finals++;
    return 0;
}

/* Before a backtrack pops: the stack at the furthest point is the current one's bottom
   best_depth items; copy the part that changed since the last copy (search.py's `low`) */
static int keep_best_stack(Walk *w) {
    if (w->best_depth < 0) return 0;
    Py_ssize_t low = w->low;
    if (low < w->blen) w->btaken_len = w->bstack[low].from;
    for (Py_ssize_t j = low; j < w->blen; j++) Py_DECREF(w->bstack[j].state);
    w->blen = low;
    if (w->best_depth > w->bcap) {
        Py_ssize_t cap = w->bcap ? w->bcap : 64;
        while (cap < w->best_depth) cap *= 2;
        Best *b = PyMem_Realloc(w->bstack, sizeof(Best) * cap);
        if (b == NULL) { PyErr_NoMemory(); return -1; }
        w->bstack = b;
        w->bcap = cap;
    }
    for (Py_ssize_t j = low; j < w->best_depth; j++) {
        const Item *it = &w->stack[j];
        Best *b = &w->bstack[w->blen];
        b->node = it->node;
        b->from = w->btaken_len;
        b->len = it->node >= 0 ? 0 : it->len;
        if (w->btaken_len + b->len > w->btaken_cap) {
            Py_ssize_t cap = w->btaken_cap ? w->btaken_cap : 64;
            while (cap < w->btaken_len + b->len) cap *= 2;
            Py_ssize_t *t = PyMem_Realloc(w->btaken, sizeof(Py_ssize_t) * cap);
            if (t == NULL) { PyErr_NoMemory(); return -1; }
            w->btaken = t;
            w->btaken_cap = cap;
        }
        memcpy(w->btaken + w->btaken_len, w->taken + it->from, sizeof(Py_ssize_t) * b->len);
        w->btaken_len += b->len;
        Py_INCREF(it->state);
        b->state = it->state;
        w->blen++;
    }
    w->low = w->best_depth;
    w->best_depth = -1;
    return 0;
}

/* a call id as a Python int */
static int add_id(PyObject *set, Py_ssize_t id) {
    PyObject *v = PyLong_FromSsize_t(id);
    if (v == NULL) return -1;
    int rc = PySet_Add(set, v);
    Py_DECREF(v);
    return rc;
}

/* the words' set bits j, as add_id(set, ids[j]) */
static int add_members(PyObject *set, const uint64_t *words, Py_ssize_t len, const Py_ssize_t *ids) {
    for (Py_ssize_t k = 0; k < len; k++)
        for (uint64_t b = words[k]; b; b &= b - 1)
            if (add_id(set, ids[k * 64 + __builtin_ctzll(b)]) < 0) return -1;
    return 0;
}

/* ("invalid", configurations, stuck_at, path, finals), as search.py's _invalid builds
   them: path (call, state after) along the stack at the furthest point (read-only calls
   leave the state they found); finals (linearized calls, state, last call) */
static PyObject *invalid_result(Walk *w) {
    PyObject *path = PyList_New(0), *finals = PyList_New(0), *item = NULL;
    if (path == NULL || finals == NULL) goto fail;
    for (Py_ssize_t j = 0; j < w->blen; j++) {
        const Best *b = &w->bstack[j];
        if (b->node < 0) {
            for (Py_ssize_t k = 0; k < b->len; k++) {
                item = Py_BuildValue("(nO)", w->cid[w->btaken[b->from + k]], b->state);
                if (item == NULL || PyList_Append(path, item) < 0) goto fail;
                Py_CLEAR(item);
            }
            continue;
        }
        PyObject *after = j + 1 < w->blen ? w->bstack[j + 1].state : w->best_state;
        item = Py_BuildValue("(nO)", w->cid[b->node], after);
        if (item == NULL || PyList_Append(path, item) < 0) goto fail;
        Py_CLEAR(item);
    }
    for (Py_ssize_t j = 0; j < w->n_finals; j++) {
        const Final *f = &w->finals[j];
        PyObject *done = PyFrozenSet_New(NULL);
        if (done == NULL) goto fail;
        for (Py_ssize_t x = 0; x < f->base; x++)
            if (add_id(done, w->ok_id[x]) < 0) { Py_DECREF(done); goto fail; }
        if (add_members(done, w->fwords + f->rel_off, f->rel_len, w->ok_id + f->base) < 0 ||
            add_members(done, w->fwords + f->ib_off, w->W, w->info_id) < 0) {
            Py_DECREF(done);
            goto fail;
        }
        if (f->last >= 0) item = Py_BuildValue("(NOn)", done, f->state, w->cid[f->last]);
        else item = Py_BuildValue("(NOO)", done, f->state, Py_None);
        if (item == NULL || PyList_Append(finals, item) < 0) goto fail;
        Py_CLEAR(item);
    }
    return Py_BuildValue("(sLnNN)", "invalid", (long long)w->count, w->best_x >= 0 ? w->ok_id[w->best_x] : -1,
                         path, finals);
fail:
    Py_XDECREF(item);
    Py_XDECREF(path);
    Py_XDECREF(finals);
    return NULL;
}

static PyObject *walk_run(Walk *w, PyObject *unused) {
    if (w->done == 2) {
        w->done = 1;
        return Py_BuildValue("(sL)", "valid", 0LL);
    }
    if (w->done) Py_RETURN_NONE;   /* ended already */
    int64_t pause = -1;   /* a multiple of check_every reached: return it at the loop's top */
    for (;;) {
        if (pause >= 0) return PyLong_FromLongLong(pause);
        Py_ssize_t node = w->node;
        if (w->entering) {
            /* the read-only pass: every legal read-only candidate taken at once */
            w->entering = 0;
            w->limit = w->rpos[w->rnxt[0] - 1];
            node = w->nxt[w->heads[0]];
            int taken = 0;
            while (w->inv[node] < w->limit) {
                PyObject *needs = w->need[node];
                int ok;
                if (needs == w->step_o) {
                    PyObject *s2;
                    ok = call_step(w, node, &s2);
                    if (ok < 0) return NULL;
                    if (ok) {
                        ok = equal(s2, w->state);
                        if (ok < 0) { Py_DECREF(s2); return NULL; }
                    }
                    Py_DECREF(s2);
                } else {
                    ok = legal(w, node);
                    if (ok < 0) return NULL;
                }
                if (!ok) {
                    node = w->nxt[node];
                    continue;
                }
                if (!taken) {
                    if (push(w, -1) < 0) return NULL;
                    taken = 1;
                }
                if (take(w, node) < 0) return NULL;
                Py_ssize_t n = w->nxt[node];
                unlink_node(w, node);
                unlink_ret(w, node);
                if (--w->remaining == 0) {
                    w->done = 1;
                    return Py_BuildValue("(sL)", "valid", (long long)(w->count + 1));
                }
                if (add_known(&w->base, &w->rel, w->xof[node]) < 0) return NULL;
                w->limit = w->rpos[w->rnxt[0] - 1];
                node = n;
            }
            w->covered = 0;
            if (taken) {
                int fresh = remember(w, w->base, &w->rel, w->state, w->ib);
                if (fresh < 0) return NULL;
                w->covered = !fresh;
                if (fresh && ++w->count % w->check_every == 0) pause = w->count;
            }
            if (!w->covered) {
                if (note_furthest(w) < 0) return NULL;
                node = w->nxt[w->heads[1]];
            }
        }
        /* the known state-changing calls, then those of unknown outcome */
        int entered = 0;
        while (!w->covered) {
            if (w->inv[node] >= w->limit) {
                if (node > w->heads[2]) break;
                node = w->nxt[w->heads[2]];
                continue;
            }
            Py_ssize_t j = w->info_of[node];
            if (j >= 0 && !subset(w->same + j * w->W, w->ib, w->W)) {
                node = w->nxt[node];   /* an interchangeable earlier call is tried instead */
                continue;
            }
            PyObject *needs = w->need[node], *s2;
            if (needs == w->step_o) {
                int ok = call_step(w, node, &s2);
                if (ok < 0) return NULL;
                if (!ok) {
                    Py_DECREF(s2);
                    node = w->nxt[node];
                    continue;
                }
            } else {
                int ok = legal(w, node);
                if (ok < 0) return NULL;
                if (!ok) {
                    node = w->nxt[node];
                    continue;
                }
                s2 = w->then[node] == w->same_o ? w->state : w->then[node];
                Py_INCREF(s2);
            }
            int64_t nbase = w->base;
            uint64_t *nib = w->ib;
            Bits *nrel = &w->rel;
            if (j >= 0) {
                int unchanged = equal(s2, w->state);
                if (unchanged < 0) { Py_DECREF(s2); return NULL; }
                if (unchanged) {   /* dominated by not taking it */
                    Py_DECREF(s2);
                    node = w->nxt[node];
                    continue;
                }
                nib = w->nib;
                memcpy(nib, w->ib, sizeof(uint64_t) * w->W);
                nib[j / 64] |= (uint64_t)1 << (j % 64);
            } else {
                nrel = &w->nrel;
                if (bits_copy(nrel, w->rel.w, w->rel.len) < 0 || add_known(&nbase, nrel, w->xof[node]) < 0) {
                    Py_DECREF(s2);
                    return NULL;
                }
            }
            int fresh = remember(w, nbase, nrel, s2, nib);
            if (fresh <= 0) {
                Py_DECREF(s2);
                if (fresh < 0) return NULL;
                node = w->nxt[node];
                continue;
            }
            if (++w->count % w->check_every == 0) pause = w->count;
            if (push(w, node) < 0) { Py_DECREF(s2); return NULL; }
            unlink_node(w, node);
            if (j < 0) {
                unlink_ret(w, node);
                if (--w->remaining == 0) {
                    Py_DECREF(s2);
                    w->done = 1;
                    return Py_BuildValue("(sL)", "valid", (long long)w->count);
                }
            }
            w->base = nbase;
            if (nrel != &w->rel) {   /* swap: the current set becomes the next one's buffer */
                Bits t = w->rel;
                w->rel = w->nrel;
                w->nrel = t;
            }
            if (j >= 0) memcpy(w->ib, w->nib, sizeof(uint64_t) * w->W);
            set_state(w, s2);
            w->entering = 1;
            entered = 1;
            break;
        }
        if (entered) continue;
        /* backtrack; past read-only passes (their branch was the only one worth taking) */
        w->covered = 0;
        if (++w->backtracks % 65536 == 0 && PyErr_CheckSignals() < 0) return NULL;   /* Ctrl-C */
        if (keep_best_stack(w) < 0) return NULL;
        for (;;) {
            if (w->depth == 0) {   /* not linearizable */
                w->done = 1;
                return invalid_result(w);
            }
            Item *it = &w->stack[--w->depth];
            if (w->depth < w->low) w->low = w->depth;
            set_state(w, it->state);
            w->limit = it->limit;
            w->base = it->base;
            if (bits_copy(&w->rel, w->rel_arena + it->rel_from, it->rel_len) < 0) return NULL;
            w->rel_arena_len = it->rel_from;
            memcpy(w->ib, w->ib_stack + w->depth * w->W, sizeof(uint64_t) * w->W);
            if (it->node < 0) {
                for (Py_ssize_t j = it->len - 1; j >= 0; j--) {
                    Py_ssize_t m = w->taken[it->from + j];
                    relink_node(w, m);
                    relink_ret(w, m);
                }
                w->remaining += it->len;
                w->taken_len = it->from;
                continue;
            }
            relink_node(w, it->node);
            if (w->info_of[it->node] < 0) {
                relink_ret(w, it->node);
                w->remaining++;
            }
            node = w->nxt[it->node];
            break;
        }
        w->node = node;
    }
}

/* node is kept in w->node between iterations of the loop above */
static PyMethodDef walk_methods[] = {
    {"run", (PyCFunction)walk_run, METH_NOARGS, "walk on (see the module source)"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject WalkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "checkers.linearizable._walk.Walk",
    .tp_basicsize = sizeof(Walk),
    .tp_dealloc = (destructor)walk_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "search.py's walk over its node lists (see the module source)",
    .tp_methods = walk_methods,
    .tp_new = walk_new,
};

/* add_known on its own, for tests: (base, rel as little-endian words, x) -> (base, rel) */
static PyObject *add_known_py(PyObject *self, PyObject *args) {
    long long base;
    Py_buffer words;
    Py_ssize_t x;
    if (!PyArg_ParseTuple(args, "Ly*n", &base, &words, &x)) return NULL;
    Bits b = {0};
    int64_t b64 = base;
    int rc = bits_copy(&b, (const uint64_t *)words.buf, words.len / 8);
    PyBuffer_Release(&words);
    PyObject *out = NULL;
    if (rc == 0 && add_known(&b64, &b, x) == 0)
        out = Py_BuildValue("(Ly#)", (long long)b64, (const char *)b.w, (Py_ssize_t)(b.len * 8));
    PyMem_Free(b.w);
    return out;
}

static PyMethodDef module_methods[] = {
    {"add_known", add_known_py, METH_VARARGS, "the walk's set arithmetic, for tests"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walk", NULL, -1, module_methods};

PyMODINIT_FUNC PyInit__walk(void) {
    if (PyType_Ready(&WalkType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&WalkType);
    if (PyModule_AddObject(m, "Walk", (PyObject *)&WalkType) < 0) {
        Py_DECREF(&WalkType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
