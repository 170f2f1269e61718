/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Engine: engine.c for Python. Built by producer/native/plane.py in a forked reader.
 * The calls that wait (run, consume, close) release the GIL; nothing in them touches a
 * Python object.
 */
#include <fcntl.h>

#include "pyglue.h"

typedef struct {
	PyObject_HEAD struct ekp_engine *e;
	Py_buffer words; /* the arena, held for the engine's life */
	int have_words;
} EngineObject;

static int parse_reasons(struct ekp_reasons *r, PyObject *reasons, PyObject *codes)
{
	unsigned long long v[12];
	if (!PyArg_ParseTuple(reasons, "KKKKKKKKKKKK;reasons", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
			      &v[7], &v[8], &v[9], &v[10], &v[11]))
		return -1;
	*r = (struct ekp_reasons){.lost = v[0], .decode_error = v[1], .encode_error = v[2], .queue_full = v[3],
				  .shutdown = v[4], .delivered = v[5], .produced = v[6], .escaped = v[7],
				  .k8s_unresolved = v[8], .spooled = v[9], .spool_full = v[10],
				  .delivery_failed = v[11]};
	PyObject *fast = PySequence_Fast(codes, "codes");
	if (fast == NULL)
		return -1;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
	int rc = n > 0 && n <= EKP_DELIVERY_CODES_MAX ? 0 : -1;
	bool other = false;
	for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
		const char *name = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i));
		if (name == NULL || strlen(name) >= sizeof(r->codes[0])) {
			rc = -1;
			break;
		}
		snprintf(r->codes[i], sizeof(r->codes[i]), "%s", name);
		if (strcmp(name, "other") == 0) {
			r->other = (uint64_t)i;
			other = true;
		}
	}
	Py_DECREF(fast);
	if (rc == 0 && !other)
		rc = -1;
	if (rc < 0 && !PyErr_Occurred())
		PyErr_SetString(PyExc_ValueError, "codes: 1 to 32 error names, 'other' among them");
	r->n_codes = (uint64_t)n;
	return rc;
}

/* conf: [(key, value), ...] as strings */
static int init_producer(struct ekp_engine *e, PyObject *conf, const char *cimpl)
{
	PyObject *fast = PySequence_Fast(conf, "conf");
	if (fast == NULL)
		return -1;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
	const char **keys = calloc((size_t)n + 1, sizeof(*keys)), **values = calloc((size_t)n + 1, sizeof(*values));
	int rc = keys && values ? 0 : -1;
	for (Py_ssize_t i = 0; rc == 0 && i < n; i++)
		if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "ss;conf", &keys[i], &values[i]))
			rc = -1;
	char err[512] = "out of memory";
	if (rc == 0 && ekp_engine_init(e, cimpl, keys, values, (size_t)n, err, sizeof(err)) < 0) {
		PyErr_Format(PyExc_RuntimeError, "%s", err);
		rc = -1;
	}
	if (keys == NULL || values == NULL)
		PyErr_NoMemory();
	free(keys);
	free(values);
	Py_DECREF(fast);
	return rc;
}

static int Engine_init(EngineObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"tables",  "words",     "reasons",      "codes",      "conf", "cimpl_path",
				 "key",     "wakeup_fd", "max_block_ms", "latency_ms", NULL};
	PyObject *tables, *words, *reasons, *codes, *conf;
	const char *cimpl;
	Py_buffer key;
	int wakeup_fd;
	unsigned int max_block_ms, latency_ms;
	if (self->e != NULL) {
		PyErr_SetString(PyExc_RuntimeError, "an Engine is initialised once");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOsy*iII", kwlist, &tables, &words, &reasons, &codes, &conf,
					 &cimpl, &key, &wakeup_fd, &max_block_ms, &latency_ms))
		return -1;
	self->e = calloc(1, sizeof(*self->e));
	struct ekp_engine *e = self->e;
	int rc = -1;
	if (e == NULL) {
		PyErr_NoMemory();
		goto out;
	}
	ekp_encoder_init(&e->enc);
	if (key.len > (Py_ssize_t)sizeof(e->key)) {
		PyErr_SetString(PyExc_ValueError, "key: at most 256 bytes");
		goto out;
	}
	memcpy(e->key, key.buf, (size_t)key.len);
	e->key_len = (size_t)key.len;
	e->wakeup_fd = wakeup_fd;
	/* it is drained until empty: never let that read block */
	int fl = fcntl(wakeup_fd, F_GETFL);
	if (fl < 0 || fcntl(wakeup_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		PyErr_SetFromErrno(PyExc_OSError);
		goto out;
	}
	e->max_block_ns = max_block_ms * 1000000ULL;
	e->latency_ns = latency_ms * 1000000ULL;
	e->next_drain_ns = ekp_now_ns() + e->latency_ns;
	e->pfds = calloc(1 + EKP_WATCH_MAX, sizeof(*e->pfds));
	if (e->pfds == NULL) {
		PyErr_NoMemory();
		goto out;
	}
	e->pfds[0] = (struct pollfd){wakeup_fd, POLLIN, 0};
	if (PyObject_GetBuffer(words, &self->words, PyBUF_CONTIG | PyBUF_FORMAT) < 0)
		goto out;
	self->have_words = 1;
	if (self->words.itemsize != 8 || ((uintptr_t)self->words.buf & 7)) {
		PyErr_SetString(PyExc_ValueError, "words: an aligned buffer of 64-bit words (Arena.words)");
		goto out;
	}
	e->words = self->words.buf;
	e->n_words = (uint64_t)self->words.len / 8;
	if (ekp_py_load_tables(&e->enc, tables) < 0 || parse_reasons(&e->reasons, reasons, codes) < 0)
		goto out;
	rc = init_producer(e, conf, cimpl);
out:
	PyBuffer_Release(&key);
	return rc;
}

static void Engine_dealloc(EngineObject *self)
{
	/* A reader leaves with os._exit; this runs in tests only. librdkafka's handle is left alone:
	 * rd_kafka_destroy can wait for brokers, and the tests' processes end soon after. */
	if (self->e != NULL) {
		for (size_t i = 0; i < self->e->n_rings; i++) {
			struct ekp_ring_ctx *rc = self->e->rings[i];
			ekp_ring_unmap(&rc->ring);
			for (size_t k = 0; k < rc->n_pool; k++)
				self->e->k.headers_destroy(rc->pool[k]);
			if (rc->headers != NULL)
				self->e->k.headers_destroy(rc->headers);
			free(rc->pool);
			free(rc);
		}
		free(self->e->rings);
		ekp_py_spool_free(self->e);
		free(self->e->pfds);
		ekp_encoder_free(&self->e->enc);
		free(self->e);
	}
	if (self->have_words)
		PyBuffer_Release(&self->words);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static struct ekp_engine *ready(EngineObject *self)
{
	if (self->e == NULL || self->e->rk == NULL)
		PyErr_SetString(PyExc_RuntimeError, "the Engine was not initialised");
	return self->e != NULL && self->e->rk != NULL ? self->e : NULL;
}

/* add_ring(fd, pages, cpu, type_id, base, (done, intent, slot, old, suspect), topic, frame, [(name, value)]) */
static PyObject *Engine_add_ring(EngineObject *self, PyObject *args)
{
	struct ekp_engine *e = ready(self);
	struct ekp_ring_spec s = {0};
	unsigned long long base, j[5];
	Py_buffer frame;
	PyObject *headers;
	if (e == NULL || !PyArg_ParseTuple(args, "inIIK(KKKKK)sy*O", &s.fd, &s.pages, &s.cpu, &s.type_id, &base, &j[0],
					   &j[1], &j[2], &j[3], &j[4], &s.topic, &frame, &headers))
		return NULL;
	s.base = base;
	s.j_done = j[0], s.j_intent = j[1], s.j_slot = j[2], s.j_old = j[3], s.suspect = j[4];
	s.frame = frame.buf;
	s.frame_len = (size_t)frame.len;
	PyObject *fast = PySequence_Fast(headers, "headers");
	int ok = fast != NULL;
	Py_ssize_t n = ok ? PySequence_Fast_GET_SIZE(fast) : 0;
	if (ok && n > EKP_HEADERS_MAX) {
		PyErr_SetString(PyExc_ValueError, "headers: at most 8");
		ok = 0;
	}
	for (Py_ssize_t i = 0; ok && i < n; i++) {
		Py_ssize_t len;
		ok = PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "sy#;headers", &s.header_names[i],
				      &s.header_values[i], &len);
		s.header_lens[i] = (size_t)len;
	}
	s.n_headers = (size_t)n;
	char err[512];
	if (ok && ekp_engine_add_ring(e, &s, err, sizeof(err)) < 0) {
		PyErr_Format(PyExc_OSError, "%s", err);
		ok = 0;
	}
	Py_XDECREF(fast);
	PyBuffer_Release(&frame);
	if (!ok)
		return NULL;
	Py_RETURN_NONE;
}

/* watch(fd): run() also returns RUN_WATCH when fd is readable */
static PyObject *Engine_watch(EngineObject *self, PyObject *args)
{
	struct ekp_engine *e = ready(self);
	int fd;
	char err[128];
	if (e == NULL || !PyArg_ParseTuple(args, "i", &fd))
		return NULL;
	if (ekp_engine_watch(e, fd, err, sizeof(err)) < 0) {
		PyErr_SetString(PyExc_ValueError, err);
		return NULL;
	}
	Py_RETURN_NONE;
}

static PyObject *Engine_run(EngineObject *self, PyObject *args)
{
	struct ekp_engine *e = ready(self);
	int ms, status;
	if (e == NULL || !PyArg_ParseTuple(args, "i", &ms))
		return NULL;
	Py_BEGIN_ALLOW_THREADS status = ekp_engine_run(e, ms);
	Py_END_ALLOW_THREADS
	/* run the Python handler of the signal that woke us now, so the caller sees its effect */
	if (status == EKP_RUN_SIGNAL && PyErr_CheckSignals() < 0)
		return NULL;
	return PyLong_FromLong(status);
}

static PyObject *Engine_consume(EngineObject *self, PyObject *unused)
{
	(void)unused;
	struct ekp_engine *e = ready(self);
	long n;
	bool paused;
	if (e == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS n = ekp_engine_consume(e, &paused);
	Py_END_ALLOW_THREADS return Py_BuildValue("(lO)", n, paused ? Py_True : Py_False);
}

static PyObject *Engine_close(EngineObject *self, PyObject *args)
{
	struct ekp_engine *e = ready(self);
	unsigned long long deadline;
	int left;
	if (e == NULL || !PyArg_ParseTuple(args, "K", &deadline))
		return NULL;
	Py_BEGIN_ALLOW_THREADS left = ekp_engine_close(e, deadline);
	Py_END_ALLOW_THREADS return PyLong_FromLong(left);
}

static PyObject *Engine_spool(EngineObject *self, PyObject *args)
{
	struct ekp_engine *e = ready(self);
	return e == NULL ? NULL : ekp_py_spool(e, args);
}

static PyObject *Engine_poll(EngineObject *self, PyObject *args)
{
	struct ekp_engine *e = ready(self);
	int ms;
	if (e == NULL || !PyArg_ParseTuple(args, "i", &ms))
		return NULL;
	Py_BEGIN_ALLOW_THREADS ekp_engine_poll(e, ms);
	Py_END_ALLOW_THREADS Py_RETURN_NONE;
}

static PyObject *Engine_outstanding(EngineObject *self, PyObject *unused)
{
	(void)unused;
	struct ekp_engine *e = ready(self);
	return e == NULL ? NULL : PyLong_FromUnsignedLongLong(ekp_engine_outstanding(e));
}

static PyObject *Engine_set_cgroup(EngineObject *self, PyObject *args)
{
	struct ekp_engine *e = ready(self);
	return e == NULL ? NULL : ekp_py_set_cgroup(&e->enc, args);
}

static PyObject *Engine_set_clock(EngineObject *self, PyObject *args)
{
	struct ekp_engine *e = ready(self);
	long long offset;
	if (e == NULL || !PyArg_ParseTuple(args, "L", &offset))
		return NULL;
	e->enc.boot_to_wall_ns = offset;
	Py_RETURN_NONE;
}

static PyObject *Engine_give_up_at(EngineObject *self, PyObject *args)
{
	struct ekp_engine *e = ready(self);
	unsigned long long t;
	if (e == NULL || !PyArg_ParseTuple(args, "K", &t))
		return NULL;
	e->give_up_at_ns = t;
	Py_RETURN_NONE;
}

static PyObject *Engine_take_logs(EngineObject *self, PyObject *unused)
{
	(void)unused;
	struct ekp_engine *e = ready(self);
	if (e == NULL)
		return NULL;
	PyObject *out = PyList_New(0);
	for (size_t i = 0; out != NULL && i < e->n_logs; i++) {
		struct ekp_log_line *l = &e->logs[i];
		PyObject *t = Py_BuildValue("(iss)", l->level, l->facility, l->message);
		if (t == NULL || PyList_Append(out, t) < 0)
			Py_CLEAR(out);
		Py_XDECREF(t);
	}
	e->n_logs = 0;
	return out;
}

static PyObject *Engine_stats(EngineObject *self, PyObject *unused)
{
	(void)unused;
	struct ekp_engine *e = ready(self);
	if (e == NULL)
		return NULL;
	unsigned long long corrupt = 0;
	for (size_t i = 0; i < e->n_rings; i++)
		corrupt += e->rings[i]->ring.corrupt;
	return Py_BuildValue("{sKsKsKsKssss}", "handled", (unsigned long long)e->handled, "missing",
			     (unsigned long long)e->missing, "corrupt", corrupt, "logs_dropped",
			     (unsigned long long)e->logs_dropped, "fatal", e->fatal, "library", e->k.path);
}

static PyMethodDef Engine_methods[] = {
	{"add_ring", (PyCFunction)Engine_add_ring, METH_VARARGS, "map one perf ring and produce its records"},
	{"watch", (PyCFunction)Engine_watch, METH_VARARGS, "watch(fd): run() returns RUN_WATCH when fd is readable"},
	{"run", (PyCFunction)Engine_run, METH_VARARGS, "run(ms) -> RUN_*: work until there is something for Python"},
	{"consume", (PyCFunction)Engine_consume, METH_NOARGS, "drain every ring now -> (records handled, paused at an unknown cgroup)"},
	{"close", (PyCFunction)Engine_close, METH_VARARGS, "close(deadline_ns) -> messages still unresolved"},
	{"spool", (PyCFunction)Engine_spool, METH_VARARGS, "spool(spooling_word, spill, purged): the spool seam (engine.h)"},
	{"poll", (PyCFunction)Engine_poll, METH_VARARGS, "poll(ms): serve librdkafka's callbacks"},
	{"outstanding", (PyCFunction)Engine_outstanding, METH_NOARGS, "messages librdkafka holds, not yet answered"},
	{"set_cgroup", (PyCFunction)Engine_set_cgroup, METH_VARARGS, "set_cgroup(id, container, k8s, ttl_ns=0, unresolved=False)"},
	{"set_clock", (PyCFunction)Engine_set_clock, METH_VARARGS, "set_clock(boot_to_wall_ns)"},
	{"give_up_at", (PyCFunction)Engine_give_up_at, METH_VARARGS, "give_up_at(monotonic_ns): no queue waits after"},
	{"take_logs", (PyCFunction)Engine_take_logs, METH_NOARGS, "librdkafka's log lines since the last call"},
	{"stats", (PyCFunction)Engine_stats, METH_NOARGS, "handled, missing, corrupt, logs_dropped, fatal, library"},
	{NULL, NULL, 0, NULL},
};

PyTypeObject ekp_EngineType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "producer.native._dataplane.Engine",
	.tp_basicsize = sizeof(EngineObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "One reader's perf rings to Kafka (engine.c).",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Engine_init,
	.tp_dealloc = (destructor)Engine_dealloc,
	.tp_methods = Engine_methods,
};
