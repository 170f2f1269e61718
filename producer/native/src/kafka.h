/* SPDX-License-Identifier: Apache-2.0 */
/*
 * librdkafka, reached through the copy confluent-kafka already loaded.
 *
 * The confluent-kafka wheel carries its own librdkafka (renamed librdkafka-<hash>.so.1)
 * and Python loads it privately (RTLD_LOCAL) with the `cimpl` module. Linking this
 * extension against another copy would put two librdkafka versions in one reader, and
 * the Python and native data planes would run different Kafka clients. Instead every
 * entry point below is looked up with dlsym() on cimpl's own handle, which searches cimpl
 * and the libraries it depends on: the very librdkafka the Python path uses. Only its
 * header is needed at build time (Debian's librdkafka-dev); the functions used all exist
 * since librdkafka 1.x, and the version found at run time must be at least the header's.
 */
#ifndef EKP_KAFKA_H
#define EKP_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#define EKP_RDK_FUNCTIONS(X)                                                                                 \
	X(version)                                                                                           \
	X(version_str)                                                                                       \
	X(conf_new)                                                                                          \
	X(conf_set)                                                                                          \
	X(conf_destroy)                                                                                      \
	X(conf_set_opaque)                                                                                   \
	X(conf_set_dr_msg_cb)                                                                                \
	X(conf_set_error_cb)                                                                                 \
	X(conf_set_log_cb)                                                                                   \
	X(new)                                                                                               \
	X(set_log_queue)                                                                                     \
	X(topic_new)                                                                                         \
	X(producev)                                                                                          \
	X(poll)                                                                                              \
	X(flush)                                                                                             \
	X(purge)                                                                                             \
	X(outq_len)                                                                                          \
	X(err2name)                                                                                          \
	X(fatal_error)                                                                                       \
	X(opaque)                                                                                            \
	X(headers_new)                                                                                       \
	X(header_add)                                                                                        \
	X(headers_copy)                                                                                      \
	X(headers_destroy)                                                                                   \
	X(message_detach_headers)

struct ekp_rdk {
#define EKP_RDK_FIELD(name) __typeof__(&rd_kafka_##name) name;
	EKP_RDK_FUNCTIONS(EKP_RDK_FIELD)
#undef EKP_RDK_FIELD
	char path[512]; /* the library the functions were found in */
};

/* Resolve every function from the already loaded module at `cimpl_path`. Returns 0, or -1 with errbuf. */
int ekp_rdk_resolve(struct ekp_rdk *k, const char *cimpl_path, char *errbuf, size_t errlen);

#endif /* EKP_KAFKA_H */
