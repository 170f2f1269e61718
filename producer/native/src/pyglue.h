/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by module.c (Encoder, the module), pyengine.c (Engine) and pyspool.c (its spool seam). */
#ifndef EKP_PYGLUE_H
#define EKP_PYGLUE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "engine.h"

/* producer/native/tables.py's encoder tables into an encoder; -1 with a Python error */
int ekp_py_load_tables(struct ekp_encoder *e, PyObject *tables);
/* set_cgroup(cgroup_id, encoded_fields, ttl_ns=0) */
PyObject *ekp_py_set_cgroup(struct ekp_encoder *e, PyObject *args);

/* Engine.spool(spooling_word, spill, purged): pyspool.c */
PyObject *ekp_py_spool(struct ekp_engine *e, PyObject *args);
void ekp_py_spool_free(struct ekp_engine *e);

extern PyTypeObject ekp_EngineType;

#endif /* EKP_PYGLUE_H */
