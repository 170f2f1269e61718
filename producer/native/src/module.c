/* SPDX-License-Identifier: Apache-2.0 */
/*
 * producer.native._dataplane: the Python face of the native data plane.
 *
 *   Encoder   records.c alone: raw record -> Avro body (what the tests hold equal to rawavro)
 *   Engine    engine.c: one reader's rings -> Kafka, counted in the arena
 *   probe()   is librdkafka reachable through confluent-kafka's copy, and which one
 *   layout()  the offsets this build reads, for the check against producer/records/ (the mirror)
 *
 * Tables come from producer/native/tables.py as tuples in a fixed order; Python stays the
 * single definition of every name, code and ledger index.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#include "pyglue.h"

static PyObject *DecodeError, *EncodeError, *CgroupMiss;

/* ---- tables -------------------------------------------------------------------------------------- */

static int keep_bytes(struct ekp_encoder *e, PyObject *o, struct ekp_blob *out)
{
	char *p;
	Py_ssize_t n;
	if (PyBytes_AsStringAndSize(o, &p, &n) < 0)
		return -1;
	*out = ekp_encoder_keep(e, p, (size_t)n);
	if (out->p == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	return 0;
}

/* a sequence of exactly n bytes objects into blobs */
static int keep_list(struct ekp_encoder *e, PyObject *seq, struct ekp_blob *out, Py_ssize_t n, const char *what)
{
	PyObject *fast = PySequence_Fast(seq, what);
	if (fast == NULL)
		return -1;
	int rc = 0;
	if (PySequence_Fast_GET_SIZE(fast) != n) {
		PyErr_Format(PyExc_ValueError, "%s: %zd entries expected", what, n);
		rc = -1;
	}
	for (Py_ssize_t i = 0; rc == 0 && i < n; i++)
		rc = keep_bytes(e, PySequence_Fast_GET_ITEM(fast, i), &out[i]);
	Py_DECREF(fast);
	return rc;
}

/* exactly EKP_TCP_NAMES (value, name) pairs; a family is one inet_ntop formats (records_tcp.c) */
static int keep_tcp_names(struct ekp_encoder *e, PyObject *seq, struct ekp_named *out, bool families,
			  const char *what)
{
	PyObject *fast = PySequence_Fast(seq, what);
	if (fast == NULL)
		return -1;
	int rc = 0;
	if (PySequence_Fast_GET_SIZE(fast) != EKP_TCP_NAMES) {
		PyErr_Format(PyExc_ValueError, "%s: %d entries expected", what, EKP_TCP_NAMES);
		rc = -1;
	}
	for (Py_ssize_t i = 0; rc == 0 && i < EKP_TCP_NAMES; i++) {
		PyObject *name;
		unsigned int value;
		if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "IS", &value, &name) ||
		    keep_bytes(e, name, &out[i].name) < 0) {
			rc = -1;
		} else if (families && value != EKP_AF_INET && value != EKP_AF_INET6) {
			PyErr_Format(PyExc_ValueError, "%s: %u is neither AF_INET nor AF_INET6", what, value);
			rc = -1;
		} else {
			out[i].value = value;
		}
	}
	Py_DECREF(fast);
	return rc;
}

/* (max_args, max_arg_len, include_failed): parse_exec's bounds, any value a u32 holds */
static int keep_exec_options(struct ekp_encoder *e, PyObject *t)
{
	Py_ssize_t max_args, max_arg_len;
	int include_failed;
	if (!PyArg_ParseTuple(t, "nnp;exec_options", &max_args, &max_arg_len, &include_failed))
		return -1;
	if (max_args < 0 || max_args > UINT32_MAX || max_arg_len < 0 || max_arg_len > UINT32_MAX) {
		PyErr_SetString(PyExc_ValueError, "exec_options: max_args and max_arg_len are 0..2**32-1");
		return -1;
	}
	e->exec_max_args = (uint32_t)max_args;
	e->exec_max_arg_len = (uint32_t)max_arg_len;
	e->exec_include_failed = include_failed;
	return 0;
}

/* (host_boot, boot_tag, pid_max, open_syscalls[2], open_accmode, open_accmode_names[4],
 *  open_flags[(name, value)...], open_creates, open_errors[4096], signal_names[65],
 *  tcp_families[(value, name), 2], tcp_directions[(value, name), 2],
 *  exec_options(max_args, max_arg_len, include_failed)) */
int ekp_py_load_tables(struct ekp_encoder *e, PyObject *t)
{
	PyObject *host_boot, *syscalls, *acc_names, *flags, *errors, *signals, *families, *directions, *exec;
	const char *boot_tag;
	Py_ssize_t boot_tag_len;
	unsigned int pid_max, accmode;
	unsigned long long creates;
	if (!PyArg_ParseTuple(t, "Ss#IOIOOKOOOOO;tables", &host_boot, &boot_tag, &boot_tag_len, &pid_max, &syscalls,
			      &accmode, &acc_names, &flags, &creates, &errors, &signals, &families, &directions, &exec))
		return -1;
	if (keep_exec_options(e, exec) < 0)
		return -1;
	if (accmode != 3) {
		PyErr_SetString(PyExc_ValueError, "tables: O_ACCMODE must be 3");
		return -1;
	}
	/* the id's text is built with %s: a NUL inside would cut it short */
	if (boot_tag_len > EKP_BOOT_TAG_MAX || strlen(boot_tag) != (size_t)boot_tag_len) {
		PyErr_SetString(PyExc_ValueError, "tables: the boot tag is at most 32 characters, without NUL");
		return -1;
	}
	memcpy(e->boot_tag, boot_tag, (size_t)boot_tag_len);
	e->boot_tag[boot_tag_len] = 0;
	e->pid_max = pid_max;
	e->open_accmode = accmode;
	e->open_creates = creates;
	if (keep_bytes(e, host_boot, &e->host_boot) < 0 || keep_list(e, syscalls, e->open_syscalls, 2, "open_syscalls") < 0 ||
	    keep_list(e, acc_names, e->open_accmode_names, 4, "open_accmode_names") < 0 ||
	    keep_list(e, errors, e->open_errors, EKP_ERRNO_MAX + 1, "open_errors") < 0 ||
	    keep_list(e, signals, e->signal_names, EKP_SIGNAL_MAX + 1, "signal_names") < 0 ||
	    keep_tcp_names(e, families, e->tcp_families, true, "tcp_families") < 0 ||
	    keep_tcp_names(e, directions, e->tcp_directions, false, "tcp_directions") < 0)
		return -1;
	PyObject *fast = PySequence_Fast(flags, "open_flags");
	if (fast == NULL)
		return -1;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
	int rc = 0;
	if (n > EKP_OPEN_FLAG_NAMES_MAX) {
		PyErr_SetString(PyExc_ValueError, "open_flags: too many");
		rc = -1;
	}
	for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
		PyObject *name;
		unsigned int value;
		if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "SI;open_flags", &name, &value) ||
		    keep_bytes(e, name, &e->open_flags[i].name) < 0)
			rc = -1;
		else
			e->open_flags[i].value = value;
	}
	e->n_open_flags = rc == 0 ? (size_t)n : 0;
	Py_DECREF(fast);
	return rc;
}

/* set_cgroup(cgroup_id, container, k8s, ttl_ns=0, unresolved=False) */
PyObject *ekp_py_set_cgroup(struct ekp_encoder *e, PyObject *args)
{
	unsigned long long id, ttl_ns = 0;
	int unresolved = 0;
	Py_buffer container, k8s;
	if (!PyArg_ParseTuple(args, "Ky*y*|Kp", &id, &container, &k8s, &ttl_ns, &unresolved))
		return NULL;
	struct ekp_cgroup fields = {{container.buf, (size_t)container.len}, {k8s.buf, (size_t)k8s.len}, unresolved};
	bool ok = ekp_cgroups_put(&e->cgroups, id, &fields, ttl_ns ? ekp_now_ns() + ttl_ns : 0);
	Py_ssize_t n = container.len + k8s.len;
	PyBuffer_Release(&container);
	PyBuffer_Release(&k8s);
	if (!ok)
		return PyErr_Format(PyExc_ValueError, "cgroup %llu: no room for %zd bytes", id, n);
	Py_RETURN_NONE;
}

/* ---- Encoder ------------------------------------------------------------------------------------- */

typedef struct {
	PyObject_HEAD struct ekp_encoder enc;
	uint8_t buf[EKP_MESSAGE_MAX];
} EncoderObject;

static int Encoder_init(EncoderObject *self, PyObject *args, PyObject *kw)
{
	PyObject *tables;
	static char *kwlist[] = {"tables", NULL};
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O", kwlist, &tables))
		return -1;
	ekp_encoder_free(&self->enc);
	return ekp_py_load_tables(&self->enc, tables);
}

static void Encoder_dealloc(EncoderObject *self)
{
	ekp_encoder_free(&self->enc);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Encoder_encode(EncoderObject *self, PyObject *args)
{
	Py_buffer raw;
	unsigned int cpu, type_id;
	long long offset;
	if (!PyArg_ParseTuple(args, "y*ILI", &raw, &cpu, &offset, &type_id))
		return NULL;
	const struct ekp_type *t = ekp_type_of(type_id);
	if (t == NULL) {
		PyBuffer_Release(&raw);
		return PyErr_Format(PyExc_ValueError, "event type %u has no native encoder", type_id);
	}
	self->enc.boot_to_wall_ns = offset;
	struct ekp_out o = {self->buf, self->buf + sizeof(self->buf), false};
	unsigned flags = 0;
	uint64_t cgroup = 0;
	int rc = ekp_encode_record(&self->enc, t, raw.buf, (size_t)raw.len, cpu, ekp_now_ns(), &o, &flags, &cgroup);
	PyBuffer_Release(&raw);
	switch (rc) {
	case EKP_OK:
		return Py_BuildValue("(y#OO)", self->buf, (Py_ssize_t)(o.p - self->buf),
				     flags & EKP_F_ESCAPED ? Py_True : Py_False,
				     flags & EKP_F_K8S_UNRESOLVED ? Py_True : Py_False);
	case EKP_CGROUP_MISS: {
		PyObject *id = PyLong_FromUnsignedLongLong(cgroup); /* args[0]: the cgroup id to set */
		if (id != NULL)
			PyErr_SetObject(CgroupMiss, id);
		Py_XDECREF(id);
		return NULL;
	}
	case EKP_ENCODE_ERROR:
		PyErr_SetString(EncodeError, "the record does not fit the encoding buffer");
		return NULL;
	default:
		PyErr_SetString(DecodeError, "malformed record");
		return NULL;
	}
}

static PyObject *Encoder_set_cgroup(EncoderObject *self, PyObject *args)
{
	return ekp_py_set_cgroup(&self->enc, args);
}

static PyMethodDef Encoder_methods[] = {
	{"encode", (PyCFunction)Encoder_encode, METH_VARARGS,
	 "encode(raw, cpu, boot_to_wall_ns, type_id) -> (body, escaped, k8s_unresolved); DecodeError, EncodeError, "
	 "CgroupMiss"},
	{"set_cgroup", (PyCFunction)Encoder_set_cgroup, METH_VARARGS,
	 "set_cgroup(cgroup_id, container, k8s, ttl_ns=0, unresolved=False): a cgroup's encoded fields"},
	{NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "producer.native._dataplane.Encoder",
	.tp_basicsize = sizeof(EncoderObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Raw kernel records to Avro bodies (records.c), for the tests and the engine alike.",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Encoder_init,
	.tp_dealloc = (destructor)Encoder_dealloc,
	.tp_methods = Encoder_methods,
};

/* ---- module functions ---------------------------------------------------------------------------- */

static PyObject *probe(PyObject *mod, PyObject *args)
{
	(void)mod;
	const char *cimpl;
	if (!PyArg_ParseTuple(args, "s", &cimpl))
		return NULL;
	struct ekp_rdk k;
	char err[512];
	if (ekp_rdk_resolve(&k, cimpl, err, sizeof(err)) < 0)
		return PyErr_Format(PyExc_OSError, "%s", err);
	return Py_BuildValue("(sis)", k.version_str(), k.version(), k.path);
}

struct field {
	const char *path;
	int offset, size;
};

#define FIELD(s, m) {#m, (int)offsetof(struct s, m), (int)sizeof(((struct s *)0)->m)}
/* struct ekp_header + struct ekp_task, at the start of every record */
#define HEAD_TASK(s)                                                                                         \
	FIELD(s, hdr.boot_ns), FIELD(s, hdr.seq), FIELD(s, hdr.type), FIELD(s, hdr.cpu), FIELD(s, task.cgroup_id), \
		FIELD(s, task.start_ns), FIELD(s, task.parent_start_ns), FIELD(s, task.pid), FIELD(s, task.tid),   \
		FIELD(s, task.ppid), FIELD(s, task.uid), FIELD(s, task.gid), FIELD(s, task.flags), FIELD(s, task.comm)

static const struct field FILE_OPEN[] = {
	HEAD_TASK(ekp_file_open),
	FIELD(ekp_file_open, open_flags),
	FIELD(ekp_file_open, mode),
	FIELD(ekp_file_open, ret),
	FIELD(ekp_file_open, syscall),
	FIELD(ekp_file_open, path_size),
	FIELD(ekp_file_open, flags),
	FIELD(ekp_file_open, path),
	{NULL},
};
static const struct field PROCESS_EXIT[] = {
	HEAD_TASK(ekp_process_exit),
	FIELD(ekp_process_exit, fork_ns),
	FIELD(ekp_process_exit, exit_code),
	FIELD(ekp_process_exit, signal),
	FIELD(ekp_process_exit, flags),
	FIELD(ekp_process_exit, _pad),
	FIELD(ekp_process_exit, filename),
	{NULL},
};
static const struct field PROCESS_FORK[] = {
	HEAD_TASK(ekp_process_fork),
	FIELD(ekp_process_fork, child_start_ns),
	FIELD(ekp_process_fork, child_pid),
	FIELD(ekp_process_fork, flags),
	FIELD(ekp_process_fork, filename),
	{NULL},
};
static const struct field PROCESS_EXEC[] = {
	HEAD_TASK(ekp_process_exec),
	FIELD(ekp_process_exec, prev_start_ns),
	FIELD(ekp_process_exec, retval),
	FIELD(ekp_process_exec, flags),
	FIELD(ekp_process_exec, args_count),
	FIELD(ekp_process_exec, args_size),
	FIELD(ekp_process_exec, _pad),
	FIELD(ekp_process_exec, filename),
	FIELD(ekp_process_exec, parent_comm),
	FIELD(ekp_process_exec, parent_filename),
	FIELD(ekp_process_exec, args), /* its size is the kernel's cflags': the mirror does not say it */
	{NULL},
};
static const struct field TCP[] = {
	HEAD_TASK(ekp_tcp),
	FIELD(ekp_tcp, established_ns),
	FIELD(ekp_tcp, family),
	FIELD(ekp_tcp, sport),
	FIELD(ekp_tcp, dport),
	FIELD(ekp_tcp, direction),
	FIELD(ekp_tcp, _pad),
	FIELD(ekp_tcp, saddr),
	FIELD(ekp_tcp, daddr),
	{NULL},
};
/* the C structs of producer/native/tables.py MIRRORS */
static const struct {
	const char *name;
	const struct field *fields;
} LAYOUTS[] = {
	{"ekp_process_exec", PROCESS_EXEC},
	{"ekp_file_open", FILE_OPEN},
	{"ekp_process_exit", PROCESS_EXIT},
	{"ekp_process_fork", PROCESS_FORK},
	{"ekp_tcp", TCP},
};

static PyObject *layout(PyObject *mod, PyObject *unused)
{
	(void)mod;
	(void)unused;
	/* the C field paths of producer/records/'s mirror, as this build's compiler lays them out */
	PyObject *out = PyDict_New();
	for (size_t i = 0; out != NULL && i < sizeof(LAYOUTS) / sizeof(LAYOUTS[0]); i++) {
		PyObject *fields = PyDict_New();
		int rc = fields == NULL ? -1 : PyDict_SetItemString(out, LAYOUTS[i].name, fields);
		for (const struct field *f = LAYOUTS[i].fields; rc == 0 && f->path != NULL; f++) {
			PyObject *at = Py_BuildValue("(ii)", f->offset, f->size);
			rc = at == NULL ? -1 : PyDict_SetItemString(fields, f->path, at);
			Py_XDECREF(at);
		}
		Py_XDECREF(fields);
		if (rc < 0)
			Py_CLEAR(out);
	}
	return out;
}

static PyMethodDef module_methods[] = {
	{"probe", probe, METH_VARARGS, "probe(cimpl_path) -> (librdkafka version, version int, library path)"},
	{"layout", layout, METH_NOARGS, "struct name -> field path -> (offset, size), as compiled here"},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
	PyModuleDef_HEAD_INIT, "producer.native._dataplane", "The native data plane (producer/native/src).", -1,
	module_methods,
};

PyMODINIT_FUNC PyInit__dataplane(void)
{
	if (PyType_Ready(&EncoderType) < 0 || PyType_Ready(&ekp_EngineType) < 0)
		return NULL;
	PyObject *m = PyModule_Create(&moduledef);
	if (m == NULL)
		return NULL;
	DecodeError = PyErr_NewException("producer.native._dataplane.DecodeError", PyExc_ValueError, NULL);
	EncodeError = PyErr_NewException("producer.native._dataplane.EncodeError", PyExc_ValueError, NULL);
	CgroupMiss = PyErr_NewException("producer.native._dataplane.CgroupMiss", PyExc_LookupError, NULL);
	if (PyModule_AddObjectRef(m, "DecodeError", DecodeError) < 0 ||
	    PyModule_AddObjectRef(m, "EncodeError", EncodeError) < 0 ||
	    PyModule_AddObjectRef(m, "CgroupMiss", CgroupMiss) < 0 ||
	    PyModule_AddObjectRef(m, "Encoder", (PyObject *)&EncoderType) < 0 ||
	    PyModule_AddObjectRef(m, "Engine", (PyObject *)&ekp_EngineType) < 0 ||
	    PyModule_AddIntConstant(m, "RUN_TIMEOUT", EKP_RUN_TIMEOUT) < 0 ||
	    PyModule_AddIntConstant(m, "RUN_SIGNAL", EKP_RUN_SIGNAL) < 0 ||
	    PyModule_AddIntConstant(m, "RUN_MISS", EKP_RUN_MISS) < 0 ||
	    PyModule_AddIntConstant(m, "RUN_FATAL", EKP_RUN_FATAL) < 0 ||
	    PyModule_AddIntConstant(m, "RUN_WATCH", EKP_RUN_WATCH) < 0 ||
	    PyModule_AddIntConstant(m, "EVENT_TYPES_MAX", EKP_EVENT_TYPES) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
