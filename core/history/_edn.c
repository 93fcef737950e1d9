/* edn.parse_edn's reading, in C, for the EDN that Jepsen's histories are made of.

   The Python reader costs about 24 microseconds per op of a history.edn (a regex match
   and a dozen Python steps per token). This reads the same forms into the same objects:
   maps (dicts), vectors and lists (lists), sets (edn.EdnSet), keywords and symbols (the
   edn.Keyword and edn.Symbol types it is given, one object per distinct text), strings,
   nil, true, false, integers and decimal floats, with commas, whitespace and `;`
   comments between them, counting lines as edn.parse_edn does.

   It decides nothing the Python reader would decide otherwise: on anything outside that
   subset (a tag or discard, a character literal, a `\u` escape, an N or M suffix, a
   ratio, a collection as a map key, a byte that is not ASCII outside a string, a
   nesting deeper than MAX_DEPTH) and on any error (a bracket never closed or closed by
   the wrong one, a map with an odd number of forms, an unterminated string), it gives
   up and returns None: parse_edn then reads the whole text itself, with its rules and
   its messages.

   parse(text, keyword, symbol, edn_set) -> [(line, form, element_lines)] or None
   (element_lines: the start line of each element of a top-level vector or list, else
   []), as parse_edn returns.

   Built by setup.sh; edn.py uses it where it imports. tests/test_edn_reader.py holds it
   to the Python reader and to the loop before both. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_DEPTH 200

typedef struct {
    const char *p, *end;
    Py_ssize_t line;
    int depth;
    PyObject *keyword, *symbol, *edn_set;
    PyObject *names;   /* keyword and symbol texts (with their ':') -> their object */
} Reader;

/* NULL with no exception set: outside the subset, the Python reader decides. */
#define GIVE_UP NULL

static int is_delimiter(unsigned char c) {
    return c == ' ' || c == ',' || c == '\n' || c == '\t' || c == '\r' || c == ';'
        || c == '"' || c == '[' || c == ']' || c == '{' || c == '}' || c == '(' || c == ')'
        || c == '\\';
}

/* Skips whitespace, commas and comments; 0, or -1 at a byte only Python may judge
   (another control or a non-ASCII byte may be whitespace to it). */
static int skip_space(Reader *r) {
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p;
        if (c == ' ' || c == ',' || c == '\t' || c == '\r') {
            r->p++;
        } else if (c == '\n') {
            r->line++;
            r->p++;
        } else if (c == ';') {
            while (r->p < r->end && *r->p != '\n')
                r->p++;
        } else if (c < 0x20 || c >= 0x80) {
            return -1;
        } else {
            return 0;
        }
    }
    return 0;
}

static PyObject *read_form(Reader *r);

/* A name read once per distinct text: all `:type :ok` are one Keyword. */
static PyObject *named(Reader *r, const char *s, Py_ssize_t n, int keyword) {
    PyObject *text = PyUnicode_FromStringAndSize(s, n);
    if (text == NULL)
        return NULL;
    PyObject *found = PyDict_GetItemWithError(r->names, text);
    if (found != NULL) {
        Py_DECREF(text);
        Py_INCREF(found);
        return found;
    }
    if (PyErr_Occurred()) {
        Py_DECREF(text);
        return NULL;
    }
    PyObject *name = keyword ? PyUnicode_FromStringAndSize(s + 1, n - 1) : text;
    if (keyword && name == NULL) {
        Py_DECREF(text);
        return NULL;
    }
    PyObject *value = PyObject_CallOneArg(keyword ? r->keyword : r->symbol, name);
    if (keyword)
        Py_DECREF(name);
    if (value != NULL && PyDict_SetItem(r->names, text, value) < 0)
        Py_CLEAR(value);
    Py_DECREF(text);
    return value;
}

static int digits(const char *s, const char *e) {
    if (s == e)
        return 0;
    for (; s < e; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* An atom: nil, true, false, a keyword, an integer, a decimal float or a symbol. */
static PyObject *read_atom(Reader *r) {
    const char *s = r->p;
    while (r->p < r->end && !is_delimiter((unsigned char)*r->p)) {
        unsigned char c = (unsigned char)*r->p;
        if (c < 0x20 || c >= 0x80)
            return GIVE_UP;
        r->p++;
    }
    const char *e = r->p;
    Py_ssize_t n = e - s;
    if (n == 3 && memcmp(s, "nil", 3) == 0)
        Py_RETURN_NONE;
    if (n == 4 && memcmp(s, "true", 4) == 0)
        Py_RETURN_TRUE;
    if (n == 5 && memcmp(s, "false", 5) == 0)
        Py_RETURN_FALSE;
    if (s[0] == ':')
        return named(r, s, n, 1);
    if (s[0] == '#')
        return GIVE_UP;   /* a tag, a discard, ##Inf... */
    const char *d = (s[0] == '+' || s[0] == '-') ? s + 1 : s;
    if (d < e && *d >= '0' && *d <= '9') {
        if (digits(d, e)) {
            if (e - d <= 18) {
                long long v = 0;
                for (const char *q = d; q < e; q++)
                    v = v * 10 + (*q - '0');
                return PyLong_FromLongLong(s[0] == '-' ? -v : v);
            }
            char buf[64];
            if (n >= (Py_ssize_t)sizeof buf)
                return GIVE_UP;
            memcpy(buf, s, n);
            buf[n] = '\0';
            return PyLong_FromString(buf, NULL, 10);
        }
        /* [+-]?\d+(\.\d*)?([eE][+-]?\d+)? with a fraction or an exponent: a float */
        const char *q = d;
        while (q < e && *q >= '0' && *q <= '9')
            q++;
        int shaped = 0;
        if (q < e && *q == '.') {
            shaped = 1;
            q++;
            while (q < e && *q >= '0' && *q <= '9')
                q++;
        }
        if (q < e && (*q == 'e' || *q == 'E')) {
            const char *x = q + 1;
            if (x < e && (*x == '+' || *x == '-'))
                x++;
            if (!digits(x, e))
                return GIVE_UP;
            shaped = 1;
            q = e;
        }
        if (!shaped || q != e)
            return GIVE_UP;   /* an N or M suffix, a ratio, a symbol such as 1abc */
        PyObject *text = PyUnicode_FromStringAndSize(s, n);
        if (text == NULL)
            return NULL;
        PyObject *v = PyFloat_FromString(text);
        Py_DECREF(text);
        return v;
    }
    return named(r, s, n, 0);
}

static PyObject *read_string(Reader *r) {
    const char *s = ++r->p;   /* after the opening quote */
    int escaped = 0;
    while (r->p < r->end && *r->p != '"') {
        if (*r->p == '\\') {
            escaped = 1;
            r->p++;
            /* \u is Python's; so is a backslash before a line break (not a string
               to the Python reader) or before a byte that is not ASCII */
            if (r->p >= r->end || *r->p == 'u' || *r->p == '\n' || (unsigned char)*r->p >= 0x80)
                return GIVE_UP;
        }
        if (*r->p == '\n')
            r->line++;
        r->p++;
    }
    if (r->p >= r->end)
        return GIVE_UP;   /* unterminated */
    const char *e = r->p++;
    if (!escaped)
        return PyUnicode_DecodeUTF8(s, e - s, "strict");
    char *buf = PyMem_Malloc(e - s);
    if (buf == NULL)
        return PyErr_NoMemory();
    Py_ssize_t n = 0;
    for (const char *q = s; q < e; q++) {
        if (*q != '\\') {
            buf[n++] = *q;
            continue;
        }
        q++;
        switch (*q) {   /* as edn._STR_ESC; any other escaped character is itself */
        case 'n': buf[n++] = '\n'; break;
        case 't': buf[n++] = '\t'; break;
        case 'r': buf[n++] = '\r'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        default: buf[n++] = *q; break;
        }
    }
    PyObject *v = PyUnicode_DecodeUTF8(buf, n, "strict");
    PyMem_Free(buf);
    return v;
}

/* The forms up to `closer`, into a new list; `lines`, if given, gets each one's line. */
static PyObject *read_items(Reader *r, char closer, PyObject *lines) {
    PyObject *items = PyList_New(0);
    if (items == NULL)
        return NULL;
    for (;;) {
        if (skip_space(r) < 0 || r->p >= r->end)
            goto fail;   /* never closed, or a byte only Python may judge */
        char c = *r->p;
        if (c == ']' || c == '}' || c == ')') {
            if (c != closer)
                goto fail;
            r->p++;
            return items;
        }
        if (lines != NULL) {
            PyObject *line = PyLong_FromSsize_t(r->line);
            int failed = line == NULL || PyList_Append(lines, line) < 0;
            Py_XDECREF(line);
            if (failed)
                goto fail;
        }
        PyObject *form = read_form(r);
        if (form == NULL)
            goto fail;
        int failed = PyList_Append(items, form) < 0;
        Py_DECREF(form);
        if (failed)
            goto fail;
    }
fail:   /* an error, or outside the subset: either way no list */
    Py_DECREF(items);
    return NULL;
}

static int plain_key(PyObject *k) {
    return k == Py_None || PyUnicode_Check(k) || PyLong_Check(k) || PyFloat_Check(k);
}

static PyObject *read_map(Reader *r) {
    PyObject *items = read_items(r, '}', NULL);
    if (items == NULL)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyObject *map = NULL;
    if (n % 2)
        goto done;   /* odd: the Python reader names it */
    map = PyDict_New();
    if (map == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i += 2) {
        PyObject *k = PyList_GET_ITEM(items, i);
        if (!plain_key(k)) {   /* a collection as a key: edn._hashable's business */
            Py_CLEAR(map);
            goto done;
        }
        if (PyDict_SetItem(map, k, PyList_GET_ITEM(items, i + 1)) < 0) {
            Py_CLEAR(map);
            goto done;
        }
    }
done:
    Py_DECREF(items);
    return map;
}

static PyObject *read_form(Reader *r) {
    char c = *r->p;
    if (c == '"')
        return read_string(r);
    if (c == '[' || c == '(' || c == '{' || (c == '#' && r->p + 1 < r->end && r->p[1] == '{')) {
        if (++r->depth > MAX_DEPTH)
            return GIVE_UP;
        PyObject *v;
        if (c == '#') {
            r->p += 2;
            PyObject *items = read_items(r, '}', NULL);
            v = items == NULL ? NULL : PyObject_CallOneArg(r->edn_set, items);
            Py_XDECREF(items);
        } else {
            r->p++;
            v = c == '{' ? read_map(r) : read_items(r, c == '[' ? ']' : ')', NULL);
        }
        r->depth--;
        return v;
    }
    if (c == '\\' || c == ']' || c == '}' || c == ')')
        return GIVE_UP;   /* a character literal, a bracket never opened */
    return read_atom(r);
}

static PyObject *parse(PyObject *self, PyObject *args) {
    PyObject *text;
    Reader r = {0};
    if (!PyArg_ParseTuple(args, "UOOO", &text, &r.keyword, &r.symbol, &r.edn_set))
        return NULL;
    Py_ssize_t size;
    const char *s = PyUnicode_AsUTF8AndSize(text, &size);
    if (s == NULL) {   /* lone surrogates: a text for the Python reader */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    r.p = s;
    r.end = s + size;
    r.line = 1;
    r.names = PyDict_New();
    PyObject *forms = PyList_New(0);
    if (r.names == NULL || forms == NULL)
        goto fail;
    for (;;) {
        if (skip_space(&r) < 0)
            goto fail;
        if (r.p >= r.end)
            break;
        Py_ssize_t line = r.line;
        PyObject *lines = PyList_New(0);
        if (lines == NULL)
            goto fail;
        PyObject *form;
        if (*r.p == '[' || *r.p == '(') {   /* a history as one vector: its ops' lines */
            char closer = *r.p == '[' ? ']' : ')';
            r.p++;
            r.depth = 1;
            form = read_items(&r, closer, lines);
            r.depth = 0;
        } else {
            form = read_form(&r);
        }
        PyObject *entry = form == NULL ? NULL : Py_BuildValue("(nNN)", line, form, lines);
        if (entry == NULL) {
            if (form == NULL)
                Py_DECREF(lines);
            goto fail;
        }
        int failed = PyList_Append(forms, entry) < 0;
        Py_DECREF(entry);
        if (failed)
            goto fail;
    }
    Py_DECREF(r.names);
    return forms;
fail:
    Py_XDECREF(r.names);
    Py_XDECREF(forms);
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_MemoryError))
            PyErr_Clear();   /* e.g. bad UTF-8 in a string: the Python reader says it */
        else
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"parse", parse, METH_VARARGS,
     "parse(text, keyword, symbol, edn_set) -> [(line, form, element_lines)], or None "
     "where the Python reader must decide"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_edn", NULL, -1, methods};

PyMODINIT_FUNC PyInit__edn(void) {
    return PyModule_Create(&module);
}
