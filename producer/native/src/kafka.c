/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "kafka.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int ekp_rdk_resolve(struct ekp_rdk *k, const char *cimpl_path, char *errbuf, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	/* RTLD_NOLOAD: only the copy already in this process, never a second one */
	void *h = dlopen(cimpl_path, RTLD_NOW | RTLD_NOLOAD);
	if (h == NULL) {
		snprintf(errbuf, errlen, "confluent_kafka.cimpl is not loaded (%s)", dlerror());
		return -1;
	}
#define EKP_RDK_RESOLVE(name)                                                                                \
	k->name = (__typeof__(k->name))dlsym(h, "rd_kafka_" #name);                                          \
	if (k->name == NULL) {                                                                               \
		snprintf(errbuf, errlen, "rd_kafka_" #name " not found next to %s", cimpl_path);           \
		dlclose(h);                                                                                  \
		return -1;                                                                                   \
	}
	EKP_RDK_FUNCTIONS(EKP_RDK_RESOLVE)
#undef EKP_RDK_RESOLVE
	/* the handle stays open: cimpl is never unloaded, and neither is what it loaded */
	Dl_info info;
	if (dladdr((void *)k->producev, &info) && info.dli_fname != NULL)
		snprintf(k->path, sizeof(k->path), "%s", info.dli_fname);
	if (k->version() < RD_KAFKA_VERSION) {
		snprintf(errbuf, errlen, "librdkafka %s is older than the %#x this extension was built for",
			 k->version_str(), RD_KAFKA_VERSION);
		return -1;
	}
	return 0;
}
