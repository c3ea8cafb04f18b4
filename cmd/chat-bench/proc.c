/* proc.c: what the kernel says a run cost: the server's CPU time and resident memory from
 * /proc/PID/stat for every --pid (all of a server's processes, Redis included, so a relay
 * that moves work into Redis is not flattered), this process's own CPU time, and how idle
 * the machine was. The load generator shares the cores with the server: its own cost and
 * the machine's idle time say whether a rate measures the server or the meter. */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

double proc_ticks_per_s(void)
{
	long hz = sysconf(_SC_CLK_TCK);

	return hz > 0 ? (double)hz : 100.0;
}

/* utime + stime (fields 14 and 15) and rss (24, in pages) of /proc/PID/stat. The command
 * name in field 2 may hold spaces and parentheses, so fields are counted from its end. */
static int stat_read(int pid, uint64_t *ticks, uint64_t *rss_kb)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st, rss;
	size_t n;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
			 "%*d %*d %*d %*d %*u %*u %llu", &ut, &st, &rss) != 3)
		return -1;
	*ticks = ut + st;
	*rss_kb = rss * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
	return 0;
}

int proc_check_pid(int pid, char *err, size_t errlen)
{
	uint64_t t, r;

	if (stat_read(pid, &t, &r))
		return err_set(err, errlen, "--pid %d: %s", pid,
			       errno == ENOENT ? "no such process" : "cannot read /proc/PID/stat");
	return 0;
}

/* The first line of /proc/stat: ticks of every core in each state. */
static void machine_read(uint64_t *busy, uint64_t *all)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	*busy = *all = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (int i = 0; i < 8; i++)
			*all += v[i];
		*busy = *all - v[3] - v[4]; /* idle and iowait */
	}
	fclose(f);
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

void proc_sample(const struct bench_opts *o, struct proc_sample *s)
{
	struct rusage ru;

	memset(s, 0, sizeof *s);
	s->at_ns = bench_now_ns();
	for (int i = 0; i < o->npids; i++) {
		uint64_t t, r;

		if (stat_read(o->pids[i], &t, &r)) {
			s->server_missing++;
			continue;
		}
		s->server_ticks += t;
		s->server_rss_kb += r;
	}
	if (!getrusage(RUSAGE_SELF, &ru))
		s->client_s = tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
	if (!getrusage(RUSAGE_THREAD, &ru))
		s->receiver_s = tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
	machine_read(&s->machine_busy, &s->machine_all);
}
