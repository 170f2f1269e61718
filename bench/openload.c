/*
 * file_open load for the benchmark: open() and close() one fixed path COUNT
 * times at a target rate, under a task name (comm) of the caller's choosing,
 * so that every pipeline measured can filter to exactly these events.
 *
 *   openload COMM RATE COUNT PATH       RATE 0 = as fast as possible
 *
 * Prints "opens=N failed=F seconds=S cpu_s=C" on stdout (S wall, C this
 * process's user+sys CPU, which includes the tracing programs run in its
 * syscalls: that is how the workload's slowdown is measured). Exits 1 if any
 * open failed.
 *
 * Paced in 1 ms slices: finer than execload's 10 ms, because a perf buffer
 * absorbs a burst that a steady rate would not need, and the sweep is meant to
 * find the sustained rate a pipeline keeps up with. The slice count is
 * computed from elapsed time, so an oversleep is caught up, not lost.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double tv(struct timeval t)
{
	return t.tv_sec + t.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s COMM RATE COUNT PATH\n", argv[0]);
		return 2;
	}
	const char *comm = argv[1], *path = argv[4];
	double rate = atof(argv[2]);
	long count = atol(argv[3]), opens = 0, failed = 0;

	if (strlen(comm) == 0 || strlen(comm) > 15 || count < 0) {
		fprintf(stderr, "openload: COMM must be 1-15 bytes and COUNT >= 0\n");
		return 2;
	}
	/* Before the first open of the loop: the loader's own opens (libc) happened under the old name. */
	if (prctl(PR_SET_NAME, comm, 0, 0, 0) != 0) {
		perror("openload: prctl(PR_SET_NAME)");
		return 2;
	}
	double start = now();
	while (opens + failed < count) {
		long due = rate > 0 ? (long)((now() - start) * rate) + 1 : count;
		if (due > count)
			due = count;
		while (opens + failed < due) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				failed++;
				continue;
			}
			close(fd);
			opens++;
		}
		if (rate > 0 && opens + failed < count)
			usleep(1000);
	}
	double seconds = now() - start;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("opens=%ld failed=%ld seconds=%.6f cpu_s=%.6f\n", opens, failed, seconds,
	       tv(ru.ru_utime) + tv(ru.ru_stime));
	return failed ? 1 : 0;
}
