/* Process-wide metrics (counters, gauges, one latency histogram family) and
 * their Prometheus text rendering. Thread-safe: any thread may count; a
 * mutex guards the table (updates are a lookup and an add). Label values
 * never carry tokens or extensions. */
#ifndef PUSHGW_METRICS_H
#define PUSHGW_METRICS_H

#include <stddef.h>

/* labels: a ready Prometheus label body, e.g. "provider=\"apns\",app=\"phone\"",
 * or "" for none. help/type are taken from the first registration. */
void metrics_count(const char *name, const char *labels, double v);
void metrics_gauge(const char *name, const char *labels, double v);
/* Observe seconds into a histogram with fixed buckets (1 ms … 10 s). */
void metrics_observe(const char *name, const char *labels, double seconds);

/* Describe a family once (HELP/TYPE lines); type "counter"|"gauge"|"histogram". */
void metrics_describe(const char *name, const char *type, const char *help);

/* Prometheus text exposition. Caller frees with free(). */
char *metrics_render(size_t *len);

/* Drop everything (tests). */
void metrics_reset(void);

#endif
