/* Small helpers shared by the simulator's modules: growable byte buffers,
 * clocks, UUIDs, hex, decimal and base64url checks. Like all of pushsim,
 * single-threaded: call from the event loop thread only. */
#ifndef SIM_UTIL_H
#define SIM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A growable byte buffer; zero-initialise it, release with sim_buf_release().
 * data is always NUL-terminated past len once anything was appended. */
struct sim_buf {
	char *data;
	size_t len;
	size_t cap;
};

/* Returns 0, or -1 when out of memory (buffer unchanged). */
int sim_buf_append(struct sim_buf *b, const void *p, size_t n);
int sim_buf_printf(struct sim_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void sim_buf_release(struct sim_buf *b);
/* Hands the bytes to the caller (free() them; may be NULL when empty) and
 * leaves the buffer empty. */
char *sim_buf_steal(struct sim_buf *b);

int64_t sim_wall_ms(void);
uint64_t sim_mono_ms(void);

/* splitmix64 state: UUIDs must be unique, not secret, and fast to make. */
struct sim_rng {
	uint64_t state;
};

void sim_rng_seed(struct sim_rng *rng);
uint64_t sim_rng_next(struct sim_rng *rng);
/* Writes a lower-case random (version 4) UUID and its NUL. */
void sim_uuid(struct sim_rng *rng, char out[37]);

bool sim_is_uuid(const char *s);
bool sim_is_hex(const char *s);
/* Non-empty, decimal digits only, fits in 63 bits. */
bool sim_is_uint(const char *s);
/* Parses a decimal unsigned value for the command line and query strings. */
bool sim_parse_uint(const char *s, unsigned long long max, unsigned long long *out);

/* Decodes unpadded base64url; returns the decoded length or -1 on a bad
 * character or when out is too small. */
ssize_t sim_b64url_decode(const char *in, size_t n, unsigned char *out, size_t outcap);

#endif
