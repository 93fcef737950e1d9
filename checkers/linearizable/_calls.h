/* A key's calls as _prepare.c keeps them and _walk.c reads them: a row per call, packed.

   A Calls object (defined in _prepare.c) is a sequence of calls.Call tuples to Python
   code, made from the rows the first time it is read as one, once (so calls keep their
   identity); its buffer is the rows, which the walk reads without making any tuple.
   Made only there, the tuples and their position ints are not made at all for the keys
   that only the walk reads (the linearizable ones), nor freed: on a 40,000-op history
   freeing the tuples alone cost 10 ms, a quarter of the check. */
#ifndef TECTONIC_CALLS_H
#define TECTONIC_CALLS_H
#include <stdint.h>

typedef struct {
    int64_t at, inv, ret, end;   /* history positions; ret and end -1 for none */
    PyObject *inp, *out, *pure, *need, *then;   /* the model's answer's, borrowed from it */
    PyObject *answer;            /* owned */
    PyObject *process, *f, *value, *kind;   /* owned: what the Call shows */
} Row;

#endif
