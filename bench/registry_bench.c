/* Registry benchmark: fills a registry file to N devices (kept between runs,
 * so a second run skips the fill), then measures durable single puts,
 * concurrent puts (group commit), lookups by extension, count, and the file
 * size per device. Single process; worker threads call the registry as the
 * HTTP workers do.
 *
 *   registry_bench [-n DEVICES] [-f FILE] [-t THREADS] [-s SAMPLES] */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pushgw/log.h"
#include "pushgw/registry.h"
#include "pushgw/util.h"

#define DEVICES_PER_EXTENSION 2

typedef struct bench_opts {
	long devices;
	const char *file;
	int threads;
	int samples;
} bench_opts;

static pgw_app_conf bench_app = {
	.name = "phone",
	.apns = { .enabled = true, .bundle_id = "com.example.phone",
		  .environment = PGW_ENV_PRODUCTION },
	.fcm = { .enabled = true, .project_id = "example-phone" },
};

/* ---- deterministic devices ---- */

/* A device as the fill made it: index i always gives the same names and
 * tokens, so re-running re-registers rather than adds. */
typedef struct bench_device {
	char ext[32];
	char id[64];
	char token[200];
	char remote[72];
	pgw_target t;
} bench_device;

static void hex_of(const char *tag, long i, char out[65])
{
	unsigned char md[32];
	char seed[48];

	snprintf(seed, sizeof seed, "%s-%ld", tag, i);
	pgw_sha256(seed, strlen(seed), md);
	pgw_hex(md, sizeof md, out);
}

/* Mix like a real deployment: 70% iPhones (half with an alert token too),
 * 30% Android with ~160-character FCM tokens; ids are +sip.instance URNs. */
static void bench_device_make(long i, bench_device *d)
{
	char a[65], b[65], c[65];

	memset(d, 0, sizeof *d);
	snprintf(d->ext, sizeof d->ext, "%07ld", i / DEVICES_PER_EXTENSION);
	hex_of("id", i, a);
	snprintf(d->id, sizeof d->id, "urn:uuid:%.8s-%.4s-4%.3s-a%.3s-%.12s", a, a + 8,
		 a + 12, a + 15, a + 18);
	d->t.app = &bench_app;
	if (i % 10 < 7) {
		hex_of("voip", i, d->token);
		d->t.provider = PGW_PROVIDER_APNS;
		d->t.token = d->token;
		if (i % 2) {
			hex_of("remote", i, d->remote);
			d->t.remote_token = d->remote;
		}
		return;
	}
	hex_of("fcm-a", i, a);
	hex_of("fcm-b", i, b);
	hex_of("fcm-c", i, c);
	snprintf(d->token, sizeof d->token, "%.22s:APA91b%s%s%.20s", a, b, c, a + 22);
	d->t.provider = PGW_PROVIDER_FCM;
	d->t.token = d->token;
}

/* ---- timing ---- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void report_latency(const char *what, int64_t *us, int n, int64_t wall_us)
{
	double sum = 0;
	int i;

	qsort(us, (size_t)n, sizeof *us, cmp_i64);
	for (i = 0; i < n; i++)
		sum += (double)us[i];
	printf("%-44s %8.0f/s  mean %7.1f us  p50 %6lld us  p99 %6lld us  max %6lld us\n",
	       what, n * 1e6 / (double)(wall_us ? wall_us : 1), sum / n,
	       (long long)us[n / 2], (long long)us[(n * 99) / 100],
	       (long long)us[n - 1]);
}

/* ---- parallel puts ---- */

typedef struct put_job {
	registry *reg;
	long from, to, step;
	int64_t *lat; /* one slot per put, or NULL */
	long failures;
} put_job;

static void *put_worker(void *arg)
{
	put_job *j = arg;
	bench_device d;
	long i, k = 0;
	int64_t t0;

	for (i = j->from; i < j->to; i += j->step, k++) {
		bench_device_make(i, &d);
		t0 = pgw_now_us();
		if (registry_put(j->reg, d.ext, d.id, &d.t, NULL) != PGW_OK)
			j->failures++;
		if (j->lat)
			j->lat[k] = pgw_now_us() - t0;
	}
	return NULL;
}

/* Put devices [from, to) from `threads` threads (interleaved); returns the
 * wall time in microseconds. lat (optional) gets every put's latency. */
static int64_t put_range(registry *reg, long from, long to, int threads, int64_t *lat,
			 long *failures)
{
	pthread_t th[64];
	put_job jobs[64];
	long per = (to - from + threads - 1) / threads;
	int64_t t0 = pgw_now_us();
	int i;

	for (i = 0; i < threads; i++) {
		jobs[i] = (put_job){ .reg = reg, .from = from + i, .to = to,
				     .step = threads, .lat = lat ? lat + i * per : NULL };
		pthread_create(&th[i], NULL, put_worker, &jobs[i]);
	}
	*failures = 0;
	for (i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		*failures += jobs[i].failures;
	}
	return pgw_now_us() - t0;
}

static int fill(registry *reg, const bench_opts *o)
{
	uint64_t have = 0;
	long failures, chunk = 100000, from;
	int64_t us;

	if (registry_count(reg, &have) != PGW_OK)
		return -1;
	if ((long)have >= o->devices) {
		printf("fill: %llu devices already there, skipped\n", (unsigned long long)have);
		return 0;
	}
	for (from = 0; from < o->devices; from += chunk) {
		long to = from + chunk < o->devices ? from + chunk : o->devices;

		us = put_range(reg, from, to, o->threads, NULL, &failures);
		printf("fill: %7ld..%7ld  %6.0f puts/s (%d threads)%s\n", from, to,
		       (double)(to - from) * 1e6 / (double)us, o->threads,
		       failures ? "  FAILURES" : "");
		fflush(stdout);
		if (failures)
			return -1;
	}
	return 0;
}

/* ---- measurements ---- */

static void bench_puts(registry *reg, const bench_opts *o)
{
	int threads = o->threads;
	/* A multiple of threads, so every latency slot gets filled. */
	int n = o->samples < threads ? threads : o->samples - o->samples % threads;
	int64_t *lat = calloc((size_t)n, sizeof *lat);
	long failures, base = o->devices, i;
	bench_device d;
	int64_t wall;

	if (!lat)
		return;
	wall = put_range(reg, base, base + n, 1, lat, &failures);
	report_latency("put, new device, 1 thread (1 commit each)", lat, n, wall);
	wall = put_range(reg, 0, n, 1, lat, &failures);
	report_latency("put, re-register, 1 thread", lat, n, wall);
	wall = put_range(reg, base, base + n, threads, lat, &failures);
	printf("(%d threads below: commits shared by concurrent puts)\n", threads);
	report_latency("put, re-register new ones, N threads", lat, n, wall);
	wall = put_range(reg, base + n, base + 2L * n, threads, lat, &failures);
	report_latency("put, new device, N threads", lat, n, wall);
	if (failures)
		printf("put failures: %ld\n", failures);
	/* Leave the file at its fill size for the next run. */
	for (i = base; i < base + 2L * n; i++) {
		bench_device_make(i, &d);
		registry_delete_device(reg, d.ext, d.id, NULL);
	}
	free(lat);
}

typedef struct lookup_job {
	registry *reg;
	long devices;
	int n;
	unsigned seed;
	int64_t *lat;
	long found;
} lookup_job;

static void *lookup_worker(void *arg)
{
	lookup_job *j = arg;
	registry_device *devs;
	char ext[32];
	size_t n;
	int64_t t0;
	int k;

	for (k = 0; k < j->n; k++) {
		long i = (long)(rand_r(&j->seed) % (unsigned)j->devices);

		snprintf(ext, sizeof ext, "%07ld", i / DEVICES_PER_EXTENSION);
		t0 = pgw_now_us();
		if (registry_list(j->reg, ext, &devs, &n) == PGW_OK)
			j->found += (long)n;
		j->lat[k] = pgw_now_us() - t0;
		registry_devices_free(devs, n);
	}
	return NULL;
}

static void bench_lookups(registry *reg, const bench_opts *o, int threads)
{
	int per = o->samples, i;
	int64_t *lat = calloc((size_t)per * (size_t)threads, sizeof *lat);
	pthread_t th[64];
	lookup_job jobs[64];
	char what[64];
	int64_t t0, wall;
	long found = 0;

	if (!lat)
		return;
	t0 = pgw_now_us();
	for (i = 0; i < threads; i++) {
		jobs[i] = (lookup_job){ .reg = reg, .devices = o->devices, .n = per,
					.seed = 12345u + (unsigned)i, .lat = lat + i * per };
		pthread_create(&th[i], NULL, lookup_worker, &jobs[i]);
	}
	for (i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		found += jobs[i].found;
	}
	wall = pgw_now_us() - t0;
	snprintf(what, sizeof what, "list extension's devices, %d thread%s", threads,
		 threads == 1 ? "" : "s");
	report_latency(what, lat, per * threads, wall);
	printf("  (%.2f devices per lookup)\n", (double)found / (per * threads));
	free(lat);
}

static void bench_count(registry *reg)
{
	uint64_t n = 0;
	int64_t t0 = pgw_now_us();

	registry_count(reg, &n);
	printf("count: %llu devices in %.1f ms\n", (unsigned long long)n,
	       (double)(pgw_now_us() - t0) / 1000.0);
}

static long long file_size(const char *path, const char *suffix)
{
	char p[4096];
	struct stat st;

	snprintf(p, sizeof p, "%s%s", path, suffix);
	return stat(p, &st) == 0 ? (long long)st.st_size : 0;
}

static void report_size(const bench_opts *o)
{
	long long db = file_size(o->file, ""), wal = file_size(o->file, "-wal");

	printf("file: %.1f MB (+ %.1f MB WAL) = %.0f bytes per device\n", db / 1e6,
	       wal / 1e6, (double)db / (double)o->devices);
}

static int parse_opts(int argc, char **argv, bench_opts *o)
{
	int c;

	*o = (bench_opts){ .devices = 1000000, .file = "registry_bench.db",
			   .threads = 8, .samples = 2000 };
	while ((c = getopt(argc, argv, "n:f:t:s:")) != -1) {
		switch (c) {
		case 'n':
			o->devices = atol(optarg);
			break;
		case 'f':
			o->file = optarg;
			break;
		case 't':
			o->threads = atoi(optarg);
			break;
		case 's':
			o->samples = atoi(optarg);
			break;
		default:
			return -1;
		}
	}
	if (o->devices < 1 || o->threads < 1 || o->threads > 64 || o->samples < 1)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	pgw_config cfg = { .path = "registry_bench", .apps = &bench_app, .n_apps = 1 };
	char err[512];
	registry *reg;
	bench_opts o;

	if (parse_opts(argc, argv, &o) != 0) {
		fprintf(stderr, "usage: %s [-n DEVICES] [-f FILE] [-t THREADS 1..64] [-s SAMPLES]\n",
			argv[0]);
		return 2;
	}
	pgw_log_set_level(PGW_LOG_WARN);
	cfg.registry_path = (char *)o.file;
	if (registry_open(&cfg, &reg, err, sizeof err) != PGW_OK) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (fill(reg, &o) != 0) {
		registry_close(reg);
		return 1;
	}
	bench_count(reg);
	bench_lookups(reg, &o, 1);
	bench_lookups(reg, &o, 4);
	bench_puts(reg, &o);
	bench_count(reg);
	registry_close(reg);
	report_size(&o);
	return 0;
}
