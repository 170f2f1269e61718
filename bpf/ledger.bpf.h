/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel half of the drop ledger: per-CPU counters per event type, and
 * the stamp every record gets before it is submitted. Map-free helpers only
 * (BCC rewrites map calls in the main file alone): the caller looks up the
 * counters and passes them in.
 */
#ifndef EKP_LEDGER_BPF_H
#define EKP_LEDGER_BPF_H

#include "events.h"
#include "records.bpf.h"

/* Index = event type. Per-CPU, so the sequence and counters need no locks between CPUs. */
BPF_PERCPU_ARRAY(ekp_counters, struct ekp_counters, EKP_EVENT_TYPES);
/* Never read: gives the loader the compiler's layout of the counters. */
BPF_ARRAY(ekp_layout_counters, struct ekp_counters, 1);

static __always_inline void ekp_count_filtered(struct ekp_counters *c)
{
	__sync_fetch_and_add(&c->filtered, 1);
}

/*
 * Stamp the header and count the event as seen. Every record that leaves the
 * kernel is counted here first, so user space can close the ledger:
 * seen == delivered + drops + in flight. The fetch-add is atomic because a
 * preemptible kernel can run the same program twice on one CPU.
 */
static __always_inline void ekp_stamp(struct ekp_header *h, struct ekp_counters *c, __u32 type)
{
	h->seq = __sync_fetch_and_add(&c->seen, 1);
	h->type = type;
	h->cpu = bpf_get_smp_processor_id();
	h->boot_ns = bpf_ktime_get_boot_ns();
}

static __always_inline void ekp_count_submit(struct ekp_counters *c, int ret)
{
	if (ret < 0)
		__sync_fetch_and_add(&c->submit_failed, 1);
}

#endif /* EKP_LEDGER_BPF_H */
