/* A small, mutex-guarded metrics table rendered as Prometheus text. Series
 * are few (routes × statuses, apps × providers × statuses), so a linear list
 * per family is enough; families keep registration order. */
#include "pushgw/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
				 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])

typedef struct series {
	struct series *next;
	char *labels;
	double value;               /* counter / gauge; histogram sum */
	unsigned long long count;   /* histogram */
	unsigned long long bucket[N_BUCKETS];
} series;

typedef struct family {
	struct family *next;
	char *name;
	char *type;
	char *help;
	series *series;
	series **tail;
} family;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static family *families;
static family **families_tail = &families;

static family *family_get(const char *name, const char *type)
{
	family *f;

	for (f = families; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->name = strdup(name);
	f->type = strdup(type);
	f->tail = &f->series;
	*families_tail = f;
	families_tail = &f->next;
	return f;
}

static series *series_get(family *f, const char *labels)
{
	series *s;

	for (s = f->series; s; s = s->next)
		if (strcmp(s->labels, labels) == 0)
			return s;
	s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->labels = strdup(labels);
	*f->tail = s;
	f->tail = &s->next;
	return s;
}

void metrics_describe(const char *name, const char *type, const char *help)
{
	family *f;

	pthread_mutex_lock(&lock);
	f = family_get(name, type);
	if (f && !f->help)
		f->help = strdup(help);
	pthread_mutex_unlock(&lock);
}

static void update(const char *name, const char *type, const char *labels, double v, int mode)
{
	family *f;
	series *s;
	size_t i;

	pthread_mutex_lock(&lock);
	f = family_get(name, type);
	s = f ? series_get(f, labels ? labels : "") : NULL;
	if (s) {
		if (mode == 0) {
			s->value += v;
		} else if (mode == 1) {
			s->value = v;
		} else {
			s->value += v;
			s->count++;
			for (i = 0; i < N_BUCKETS; i++)
				if (v <= buckets[i])
					s->bucket[i]++;
		}
	}
	pthread_mutex_unlock(&lock);
}

void metrics_count(const char *name, const char *labels, double v)
{
	update(name, "counter", labels, v, 0);
}

void metrics_gauge(const char *name, const char *labels, double v)
{
	update(name, "gauge", labels, v, 1);
}

void metrics_observe(const char *name, const char *labels, double seconds)
{
	update(name, "histogram", labels, seconds, 2);
}

static void render_histogram(FILE *out, const family *f, const series *s)
{
	const char *sep = s->labels[0] ? "," : "";
	size_t i;

	for (i = 0; i < N_BUCKETS; i++)
		fprintf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, s->labels, sep, buckets[i],
			s->bucket[i]);
	fprintf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep, s->count);
	if (s->labels[0]) {
		fprintf(out, "%s_sum{%s} %.9g\n", f->name, s->labels, s->value);
		fprintf(out, "%s_count{%s} %llu\n", f->name, s->labels, s->count);
	} else {
		fprintf(out, "%s_sum %.9g\n%s_count %llu\n", f->name, s->value, f->name, s->count);
	}
}

char *metrics_render(size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *out = open_memstream(&buf, &n);
	family *f;
	series *s;

	if (!out)
		return NULL;
	pthread_mutex_lock(&lock);
	for (f = families; f; f = f->next) {
		if (f->help)
			fprintf(out, "# HELP %s %s\n", f->name, f->help);
		fprintf(out, "# TYPE %s %s\n", f->name, f->type);
		for (s = f->series; s; s = s->next) {
			if (strcmp(f->type, "histogram") == 0)
				render_histogram(out, f, s);
			else if (s->labels[0])
				fprintf(out, "%s{%s} %.17g\n", f->name, s->labels, s->value);
			else
				fprintf(out, "%s %.17g\n", f->name, s->value);
		}
	}
	pthread_mutex_unlock(&lock);
	fclose(out);
	if (len)
		*len = n;
	return buf;
}

void metrics_reset(void)
{
	family *f, *fn;
	series *s, *sn;

	pthread_mutex_lock(&lock);
	for (f = families; f; f = fn) {
		fn = f->next;
		for (s = f->series; s; s = sn) {
			sn = s->next;
			free(s->labels);
			free(s);
		}
		free(f->name);
		free(f->type);
		free(f->help);
		free(f);
	}
	families = NULL;
	families_tail = &families;
	pthread_mutex_unlock(&lock);
}
