/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The spool seam's Python side (engine.h): the reader's SpoolOutlet takes a spilled record, or a
 * message purged at a stop, through two callables (producer/native/plane.py). The engine calls them
 * from its own thread with the GIL released, so each call takes the GIL for its length. They must not
 * raise; one that does is reported as unraisable, and its record counted spool_full (a purged message:
 * shutdown, as when it is not kept).
 */
#include "pyglue.h"

struct py_seam {
	struct ekp_spool_seam seam;
	PyObject *spill, *purged;
};

static bool py_spill(void *ctx, size_t ring, const uint8_t *value, size_t len, uint64_t seq, bool full)
{
	struct py_seam *s = ctx;
	PyGILState_STATE g = PyGILState_Ensure();
	PyObject *r = PyObject_CallFunction(s->spill, "ny#KO", (Py_ssize_t)ring, value, (Py_ssize_t)len,
					    (unsigned long long)seq, full ? Py_True : Py_False);
	int ok = r != NULL ? PyObject_IsTrue(r) : -1;
	if (ok < 0)
		PyErr_WriteUnraisable(s->spill);
	Py_XDECREF(r);
	PyGILState_Release(g);
	return ok == 1;
}

static bool py_purged(void *ctx, size_t ring, const uint8_t *value, size_t len)
{
	struct py_seam *s = ctx;
	PyGILState_STATE g = PyGILState_Ensure();
	PyObject *r = PyObject_CallFunction(s->purged, "ny#", (Py_ssize_t)ring, value, (Py_ssize_t)len);
	int kept = r != NULL ? PyObject_IsTrue(r) : -1;
	if (kept < 0)
		PyErr_WriteUnraisable(s->purged);
	Py_XDECREF(r);
	PyGILState_Release(g);
	return kept == 1;
}

/* spool(spooling_word, spill(ring, value, seq, full) -> bool, purged(ring, value) -> bool) */
PyObject *ekp_py_spool(struct ekp_engine *e, PyObject *args)
{
	unsigned long long word;
	PyObject *spill, *purged;
	if (!PyArg_ParseTuple(args, "KOO", &word, &spill, &purged))
		return NULL;
	if (word >= e->n_words || !PyCallable_Check(spill) || !PyCallable_Check(purged)) {
		PyErr_SetString(PyExc_ValueError, "spool: an arena word, then two callables");
		return NULL;
	}
	if (e->spool != NULL) {
		PyErr_SetString(PyExc_RuntimeError, "an Engine's spool is set once");
		return NULL;
	}
	struct py_seam *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return PyErr_NoMemory();
	Py_INCREF(spill);
	Py_INCREF(purged);
	*s = (struct py_seam){{word, py_spill, py_purged, s}, spill, purged};
	e->spool = &s->seam;
	Py_RETURN_NONE;
}

void ekp_py_spool_free(struct ekp_engine *e)
{
	if (e->spool == NULL)
		return;
	struct py_seam *s = e->spool->ctx;
	Py_DECREF(s->spill);
	Py_DECREF(s->purged);
	free(s);
	e->spool = NULL;
}
