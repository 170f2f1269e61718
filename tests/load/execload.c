/*
 * Exec load for the ledger tests and benchmarks: vfork+execve a program at a
 * target rate for a duration, and report how many execs succeeded.
 *
 *   execload RATE SECONDS PROGRAM [ARG...]     RATE 0 = as fast as possible
 *
 * Prints "execs=N failed=F seconds=S" on stdout and exits 1 if any exec
 * failed. Paced in 10 ms slices, so the rate is steady rather than bursty.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s RATE SECONDS PROGRAM [ARG...]\n", argv[0]);
		return 2;
	}
	double rate = atof(argv[1]), seconds = atof(argv[2]);
	char **child_argv = &argv[3];
	char *envp[] = {NULL};
	long execs = 0, failed = 0;
	double start = now(), end = start + seconds;

	while (now() < end) {
		long due = rate > 0 ? (long)((now() - start) * rate) + 1 : execs + 64;
		while (execs + failed < due) {
			pid_t pid = vfork();
			if (pid == 0) {
				execve(child_argv[0], child_argv, envp);
				_exit(127);
			}
			if (pid < 0) {
				failed++;
				continue;
			}
			int status;
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
				execs++;
			else
				failed++;
		}
		if (rate > 0)
			usleep(10000);
	}
	printf("execs=%ld failed=%ld seconds=%.3f\n", execs, failed, now() - start);
	return failed ? 1 : 0;
}
