/* One line of a list-append history.jsonl read straight into C values, for the columnar
   builder (_feed.c), without making the op's dict, lists and ints.

   Only a strict subset of JSON is read, the one tectonic and the usual tools write:
   an object on one line whose strings are printable ASCII without escapes, whose numbers
   are integers of at most 18 digits, whose "type" is a string, "process" null or an
   integer, "index" an integer, "f" null or "txn", and "value" null or a list of micro-ops
   ["append", key, int] / ["r", key, null or [int, ...]] (a key an integer or a string);
   other fields may hold any value of the subset (nested up to MAX_DEPTH) and are skipped.
   Anything else, valid JSON or not (a float, an escape, a repeated field, another kind
   of value), is `scan_line` returning 0: the caller
   reads that line as json.loads does, so no line is ever read differently, only faster. */
#ifndef TECTONIC_JSONLINE_H
#define TECTONIC_JSONLINE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 32
#define MAX_DIGITS 18   /* below 2**63: no overflow to check */

typedef struct {
    const char *at;
    Py_ssize_t len;
} Span;

typedef struct {   /* an integer or a string: a key */
    int is_str;
    long long i;
    Span s;
} Atom;

enum { M_APPEND, M_READ };
enum { R_NIL, R_LIST };

typedef struct {
    int f;
    Atom key;
    long long v;            /* an append's element */
    int read;               /* R_NIL or R_LIST */
    Py_ssize_t first, n;    /* a read's elements: the line's ints[first .. first + n) */
} Mop;

enum { ABSENT, NIL, PRESENT };

typedef struct {
    Span type;
    int has_type, has_index;
    int process, f, value;   /* ABSENT, NIL or PRESENT */
    long long process_int, index;
    Mop *mops;
    Py_ssize_t nmops, mops_cap;
    long long *ints;
    Py_ssize_t nints, ints_cap;
} Line;

typedef struct {
    const char *p, *end;
    Line *line;
} Scan;

static void line_free(Line *l) {
    PyMem_Free(l->mops);
    PyMem_Free(l->ints);
}

static int grow(void **data, Py_ssize_t *cap, Py_ssize_t need, size_t size) {
    if (need <= *cap) return 1;
    Py_ssize_t cap2 = *cap ? *cap : 16;
    while (cap2 < need) cap2 *= 2;
    void *d = PyMem_Realloc(*data, cap2 * size);
    if (d == NULL) return 0;
    *data = d;
    *cap = cap2;
    return 1;
}

static void ws(Scan *s) {   /* JSON's four whitespace characters */
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int eat(Scan *s, char c) {
    ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return 1;
    }
    return 0;
}

static int scan_int(Scan *s, long long *out) {
    ws(s);
    const char *p = s->p;
    int negative = p < s->end && *p == '-';
    if (negative) p++;
    const char *digits = p;
    long long v = 0;
    while (p < s->end && *p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
    Py_ssize_t n = p - digits;
    if (n == 0 || n > MAX_DIGITS || (n > 1 && *digits == '0')) return 0;
    s->p = p;   /* a float's '.' or 'e' that follows is no delimiter: the line is not read */
    *out = negative ? -v : v;
    return 1;
}

static int scan_str(Scan *s, Span *out) {
    if (!eat(s, '"')) return 0;
    const char *start = s->p;
    while (s->p < s->end && *s->p != '"') {
        unsigned char c = (unsigned char)*s->p;
        if (c < 0x20 || c >= 0x80 || c == '\\') return 0;
        s->p++;
    }
    if (s->p == s->end) return 0;
    out->at = start;
    out->len = s->p - start;
    s->p++;
    return 1;
}

static int span_is(Span sp, const char *text) {
    Py_ssize_t n = (Py_ssize_t)strlen(text);
    return sp.len == n && memcmp(sp.at, text, n) == 0;
}

static int scan_word(Scan *s, const char *word) {
    ws(s);
    Py_ssize_t n = (Py_ssize_t)strlen(word);
    if (s->end - s->p < n || memcmp(s->p, word, n) != 0) return 0;
    s->p += n;
    return 1;
}

static int peek(Scan *s) {
    ws(s);
    return s->p < s->end ? *s->p : -1;
}

static int skip_value(Scan *s, int depth);

/* [v, ...] or {"k": v, ...} of skipped values */
static int skip_container(Scan *s, int depth, char open, char close) {
    if (depth >= MAX_DEPTH || !eat(s, open)) return 0;
    if (eat(s, close)) return 1;
    do {
        Span k;
        if (open == '{' && (!scan_str(s, &k) || !eat(s, ':'))) return 0;
        if (!skip_value(s, depth + 1)) return 0;
    } while (eat(s, ','));
    return eat(s, close);
}

static int skip_value(Scan *s, int depth) {
    Span sp;
    long long v;
    switch (peek(s)) {
    case '"': return scan_str(s, &sp);
    case '[': return skip_container(s, depth, '[', ']');
    case '{': return skip_container(s, depth, '{', '}');
    case 't': return scan_word(s, "true");
    case 'f': return scan_word(s, "false");
    case 'n': return scan_word(s, "null");
    default: return scan_int(s, &v);
    }
}

static int scan_atom(Scan *s, Atom *a) {
    a->is_str = peek(s) == '"';
    return a->is_str ? scan_str(s, &a->s) : scan_int(s, &a->i);
}

/* ["append", key, int] or ["r", key, null | [int, ...]] */
static int scan_mop(Scan *s, Mop *m) {
    Span f;
    if (!eat(s, '[') || !scan_str(s, &f) || !eat(s, ',') || !scan_atom(s, &m->key) || !eat(s, ','))
        return 0;
    if (span_is(f, "append")) {
        m->f = M_APPEND;
        if (!scan_int(s, &m->v)) return 0;
    } else if (span_is(f, "r")) {
        m->f = M_READ;
        if (peek(s) == 'n') {
            if (!scan_word(s, "null")) return 0;
            m->read = R_NIL;
        } else {
            Line *l = s->line;
            m->read = R_LIST;
            m->first = l->nints;
            if (!eat(s, '[')) return 0;
            if (!eat(s, ']')) {
                do {
                    if (!grow((void **)&l->ints, &l->ints_cap, l->nints + 1, sizeof(long long)) ||
                        !scan_int(s, &l->ints[l->nints]))
                        return 0;
                    l->nints++;
                } while (eat(s, ','));
                if (!eat(s, ']')) return 0;
            }
            m->n = l->nints - m->first;
        }
    } else {
        return 0;
    }
    return eat(s, ']');
}

static int scan_mops(Scan *s) {
    Line *l = s->line;
    if (!eat(s, '[')) return 0;
    if (eat(s, ']')) return 1;
    do {
        if (!grow((void **)&l->mops, &l->mops_cap, l->nmops + 1, sizeof(Mop)) ||
            !scan_mop(s, &l->mops[l->nmops]))
            return 0;
        l->nmops++;
    } while (eat(s, ','));
    return eat(s, ']');
}

/* The start of a field that may be null, met for the first time: 1 with *state NIL
   (it was null, now read) or PRESENT (its value comes next, for the caller to read);
   0 if the field came before, or is a broken null. */
static int nullable(Scan *s, int *state) {
    if (*state != ABSENT) return 0;
    if (peek(s) == 'n') {
        *state = NIL;
        return scan_word(s, "null");
    }
    *state = PRESENT;
    return 1;
}

/* The op on [p, end) into *l (its buffers reused from line to line): 1 if the line is
   of the subset, 0 if not (a memory error included: the caller's json.loads meets it). */
static int scan_line(Line *l, const char *p, const char *end) {
    Scan s = {p, end, l};
    l->has_type = l->has_index = 0;
    l->process = l->f = l->value = ABSENT;
    l->nmops = l->nints = 0;
    if (!eat(&s, '{')) return 0;
    if (!eat(&s, '}')) {
        do {
            Span k;
            if (!scan_str(&s, &k) || !eat(&s, ':')) return 0;
            if (span_is(k, "type")) {
                if (l->has_type || !scan_str(&s, &l->type)) return 0;
                l->has_type = 1;
            } else if (span_is(k, "process")) {
                if (!nullable(&s, &l->process) || (l->process == PRESENT && !scan_int(&s, &l->process_int)))
                    return 0;
            } else if (span_is(k, "index")) {
                if (l->has_index || !scan_int(&s, &l->index)) return 0;
                l->has_index = 1;
            } else if (span_is(k, "f")) {
                Span f;
                if (!nullable(&s, &l->f) || (l->f == PRESENT && (!scan_str(&s, &f) || !span_is(f, "txn"))))
                    return 0;
            } else if (span_is(k, "value")) {
                if (!nullable(&s, &l->value) || (l->value == PRESENT && !scan_mops(&s))) return 0;
            } else if (!skip_value(&s, 1)) {
                return 0;
            }
        } while (eat(&s, ','));
        if (!eat(&s, '}')) return 0;
    }
    ws(&s);
    return s.p == end;
}

#endif
