/* Small helpers shared by every module: clocks, ids, redaction, files.
 * All functions are thread-safe. */
#ifndef PUSHGW_UTIL_H
#define PUSHGW_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "pushgw/err.h"

/* Monotonic clock in milliseconds / microseconds (CLOCK_MONOTONIC). */
int64_t pgw_now_ms(void);
int64_t pgw_now_us(void);
/* Wall clock, milliseconds since the Unix epoch. */
int64_t pgw_wall_ms(void);

/* The moment ms (< 0: 0) from now on clock, for pthread_cond_timedwait()
 * (CLOCK_REALTIME for a default condition variable, CLOCK_MONOTONIC for one
 * set up with pthread_condattr_setclock()). */
void pgw_timespec_in(struct timespec *ts, clockid_t clock, int64_t ms);

/* Fill buf with n cryptographically random bytes (getrandom). */
pgw_err pgw_random_bytes(void *buf, size_t n);

/* 26-char ULID (Crockford base32, time-ordered) plus NUL. */
#define PGW_ULID_LEN 26
void pgw_ulid(char out[PGW_ULID_LEN + 1]);

/* Lower-case RFC 4122 version-4 UUID, 36 chars plus NUL. */
#define PGW_UUID_LEN 36
void pgw_uuid4(char out[PGW_UUID_LEN + 1]);

/* "<first 4>…<last 4>" of a token (the whole thing becomes "…" when it is
 * shorter than 12 chars, so short secrets never leak). Writes at most n bytes
 * including the NUL; returns out. */
char *pgw_redact(const char *token, char *out, size_t n);

/* True when s is non-empty and only [0-9a-fA-F]. */
bool pgw_is_hex(const char *s);

/* Read a whole file. On success *out is NUL-terminated, caller frees with
 * free(); *len (if non-NULL) is the size without the NUL. */
pgw_err pgw_read_file(const char *path, char **out, size_t *len);

/* Whether a private key with this mode and owner may be used by a process
 * running as euid: nothing for group or others (mode & 077), except group
 * read on a root-owned file read by a non-root service (root:pushgw 0640,
 * Kubernetes secret volumes 0440 with fsGroup). */
bool pgw_secret_mode_allowed(unsigned mode, unsigned owner_uid, unsigned euid);

/* PGW_OK when the file passes pgw_secret_mode_allowed() for this process;
 * PGW_ECONFIG when it is too open, with why set to one sentence naming the
 * file, who may read or write it, its mode and the chmod to run; PGW_EIO when
 * stat fails. why is truncated to n bytes. */
pgw_err pgw_check_secret_perms(const char *path, char *why, size_t n);

/* Join dir and path unless path is absolute. Caller frees. NULL on ENOMEM. */
char *pgw_path_join(const char *dir, const char *path);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void pgw_hex(const unsigned char *in, size_t n, char *out);

/* Seconds to wait from a Retry-After value (RFC 9110 §10.2.3): delta-seconds,
 * or an HTTP-date in any of the three forms a recipient must accept
 * (IMF-fixdate, RFC 850, asctime) taken relative to now_s (Unix seconds). A
 * date already past is 0; huge values are capped at one year. PGW_EINVAL
 * when value is neither. */
pgw_err pgw_retry_after_s(const char *value, int64_t now_s, int64_t *out_s);

/* Length of the valid UTF-8 sequence starting at s (n > 0 bytes left):
 * 1 to 4, or 0 when it is not valid UTF-8 (stray or truncated bytes,
 * overlong forms, surrogates, beyond U+10FFFF). */
size_t pgw_utf8_len(const unsigned char *s, size_t n);

/* SHA-256 of data into out[32]. */
void pgw_sha256(const void *data, size_t n, unsigned char out[32]);

#endif
