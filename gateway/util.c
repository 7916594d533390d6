/* Clocks, random ids, redaction and file helpers shared by all modules.
 * Every function is thread-safe. */
#include "pushgw/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t pgw_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pgw_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t pgw_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pgw_err random_fill(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return PGW_EIO;
		}
		p += got;
		n -= (size_t)got;
	}
	return PGW_OK;
}

/* One getrandom() per 4 KB instead of one per id: ids are made per wake
 * and per push. Per thread, so no lock; spent bytes are wiped. */
static _Thread_local unsigned char rnd_pool[4096];
static _Thread_local size_t rnd_left;

void pgw_timespec_in(struct timespec *ts, clockid_t clock, int64_t ms)
{
	clock_gettime(clock, ts);
	if (ms < 0)
		ms = 0;
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

pgw_err pgw_random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;

	if (n > sizeof rnd_pool / 4)
		return random_fill(buf, n);
	while (n > 0) {
		unsigned char *src;
		size_t take;

		if (rnd_left == 0) {
			if (random_fill(rnd_pool, sizeof rnd_pool) != PGW_OK)
				return PGW_EIO;
			rnd_left = sizeof rnd_pool;
		}
		take = n < rnd_left ? n : rnd_left;
		src = rnd_pool + sizeof rnd_pool - rnd_left;
		memcpy(p, src, take);
		memset(src, 0, take);
		rnd_left -= take;
		p += take;
		n -= take;
	}
	return PGW_OK;
}

void pgw_ulid(char out[PGW_ULID_LEN + 1])
{
	static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	unsigned char rnd[10];
	uint64_t ms = (uint64_t)pgw_wall_ms();
	int i;

	pgw_random_bytes(rnd, sizeof rnd);
	/* 48-bit time: 10 chars of 5 bits (the first carries 3 bits) */
	for (i = 9; i >= 0; i--) {
		out[i] = alphabet[ms & 31];
		ms >>= 5;
	}
	/* 80 random bits: 16 chars of 5 bits */
	for (i = 0; i < 16; i++) {
		int bit = i * 5, byte = bit / 8, shift = bit % 8;
		unsigned v = (unsigned)rnd[byte] << 8;
		if (byte + 1 < 10)
			v |= rnd[byte + 1];
		out[10 + i] = alphabet[(v >> (11 - shift)) & 31];
	}
	out[PGW_ULID_LEN] = '\0';
}

void pgw_uuid4(char out[PGW_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t i, o = 0;

	pgw_random_bytes(b, sizeof b);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	for (i = 0; i < sizeof b; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}

char *pgw_redact(const char *token, char *out, size_t n)
{
	size_t len;

	if (n == 0)
		return out;
	if (!token) {
		snprintf(out, n, "-");
		return out;
	}
	len = strlen(token);
	if (len < 12)
		snprintf(out, n, "…");
	else
		snprintf(out, n, "%.4s…%s", token, token + len - 4);
	return out;
}

bool pgw_is_hex(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return false;
	return true;
}

pgw_err pgw_read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, used = 0;

	if (!f)
		return PGW_EIO;
	for (;;) {
		if (used + 4096 + 1 > cap) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *nbuf = realloc(buf, ncap);
			if (!nbuf)
				goto fail;
			buf = nbuf;
			cap = ncap;
		}
		size_t got = fread(buf + used, 1, cap - used - 1, f);
		used += got;
		if (got == 0) {
			if (ferror(f))
				goto fail;
			break;
		}
	}
	fclose(f);
	buf[used] = '\0';
	*out = buf;
	if (len)
		*len = used;
	return PGW_OK;
fail:
	fclose(f);
	free(buf);
	return PGW_EIO;
}

/* Group read is how packagers hand a key to an unprivileged service
 * without giving it the file: root:pushgw 0640 (systemd), or a Kubernetes
 * secret volume (root:fsGroup 0440). Only root can then change the file or
 * its group, so that one case is allowed; a key the service owns itself
 * has no reason to be open to a group. */
static bool group_read_allowed(unsigned owner_uid, unsigned euid)
{
	return owner_uid == 0 && euid != 0;
}

bool pgw_secret_mode_allowed(unsigned mode, unsigned owner_uid, unsigned euid)
{
	unsigned open_bits = mode & 077;

	if (group_read_allowed(owner_uid, euid))
		open_bits &= ~(unsigned)S_IRGRP;
	return open_bits == 0;
}

/* "readable", "writable", "readable and writable" or "accessible" for the
 * r/w/x bits of one class (shifted down to 07). */
static const char *access_words(unsigned bits)
{
	if ((bits & 06) == 06)
		return "readable and writable";
	if (bits & 04)
		return "readable";
	if (bits & 02)
		return "writable";
	return "accessible";
}

pgw_err pgw_check_secret_perms(const char *path, char *why, size_t n)
{
	unsigned mode, euid = (unsigned)geteuid();
	struct stat st;

	if (n)
		why[0] = '\0';
	if (stat(path, &st) != 0)
		return PGW_EIO;
	mode = (unsigned)st.st_mode & 07777;
	if (pgw_secret_mode_allowed(mode, (unsigned)st.st_uid, euid))
		return PGW_OK;
	snprintf(why, n, "%s is %s by %s (mode %04o): run chmod %s %s", path,
		 access_words(mode & 007 ? mode & 007 : (mode >> 3) & 007),
		 mode & 007 ? "other users" : "its group", mode,
		 group_read_allowed((unsigned)st.st_uid, euid) ? "640" : "600", path);
	return PGW_ECONFIG;
}

char *pgw_path_join(const char *dir, const char *path)
{
	char *out;
	size_t dl, pl;

	if (!path)
		return NULL;
	if (path[0] == '/' || !dir || !*dir)
		return strdup(path);
	dl = strlen(dir);
	pl = strlen(path);
	out = malloc(dl + pl + 2);
	if (!out)
		return NULL;
	memcpy(out, dir, dl);
	out[dl] = '/';
	memcpy(out + dl + 1, path, pl + 1);
	return out;
}

void pgw_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void pgw_sha256(const void *data, size_t n, unsigned char out[32])
{
	SHA256(data, n, out);
}

#define RETRY_AFTER_MAX_S (366 * 86400)

static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const day_names[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const day_names_long[7] = {"Monday", "Tuesday", "Wednesday", "Thursday",
					      "Friday", "Saturday", "Sunday"};

/* Exactly n digits at *p (n > 0); advances *p. */
static bool take_digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool take_lit(const char **p, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

/* One of names[0..n) at *p, compared exactly (HTTP dates are case-sensitive). */
static bool take_name(const char **p, const char *const *names, int n, int *out)
{
	for (int i = 0; i < n; i++) {
		if (take_lit(p, names[i])) {
			*out = i;
			return true;
		}
	}
	return false;
}

/* "HH:MM:SS" */
static bool take_time(const char **p, struct tm *tm)
{
	return take_digits(p, 2, &tm->tm_hour) && take_lit(p, ":") &&
	       take_digits(p, 2, &tm->tm_min) && take_lit(p, ":") && take_digits(p, 2, &tm->tm_sec);
}

/* Sun, 06 Nov 1994 08:49:37 GMT */
static bool imf_fixdate(const char *p, struct tm *tm)
{
	int d;

	return take_name(&p, day_names, 7, &d) && take_lit(&p, ", ") &&
	       take_digits(&p, 2, &tm->tm_mday) && take_lit(&p, " ") &&
	       take_name(&p, month_names, 12, &tm->tm_mon) && take_lit(&p, " ") &&
	       take_digits(&p, 4, &tm->tm_year) && take_lit(&p, " ") && take_time(&p, tm) &&
	       take_lit(&p, " GMT") && *p == '\0';
}

/* Sunday, 06-Nov-94 08:49:37 GMT; a two-digit year more than 50 years
 * ahead of now_year is the last one in the past with those digits. */
static bool rfc850_date(const char *p, int now_year, struct tm *tm)
{
	int d, yy;

	if (!(take_name(&p, day_names_long, 7, &d) && take_lit(&p, ", ") &&
	      take_digits(&p, 2, &tm->tm_mday) && take_lit(&p, "-") &&
	      take_name(&p, month_names, 12, &tm->tm_mon) && take_lit(&p, "-") &&
	      take_digits(&p, 2, &yy) && take_lit(&p, " ") && take_time(&p, tm) &&
	      take_lit(&p, " GMT") && *p == '\0'))
		return false;
	tm->tm_year = now_year - now_year % 100 + yy;
	if (tm->tm_year > now_year + 50)
		tm->tm_year -= 100;
	return true;
}

/* Sun Nov  6 08:49:37 1994 */
static bool asctime_date(const char *p, struct tm *tm)
{
	int d;

	if (!(take_name(&p, day_names, 7, &d) && take_lit(&p, " ") &&
	      take_name(&p, month_names, 12, &tm->tm_mon) && take_lit(&p, " ")))
		return false;
	if (*p == ' ') {
		p++;
		if (!take_digits(&p, 1, &tm->tm_mday))
			return false;
	} else if (!take_digits(&p, 2, &tm->tm_mday)) {
		return false;
	}
	return take_lit(&p, " ") && take_time(&p, tm) && take_lit(&p, " ") &&
	       take_digits(&p, 4, &tm->tm_year) && *p == '\0';
}

pgw_err pgw_retry_after_s(const char *value, int64_t now_s, int64_t *out_s)
{
	static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	char buf[64];
	const char *p;
	size_t n;
	struct tm tm = {0}, now_tm;
	time_t now = (time_t)now_s, at;

	if (!value)
		return PGW_EINVAL;
	while (*value == ' ' || *value == '\t')
		value++;
	n = strlen(value);
	while (n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= sizeof buf)
		return PGW_EINVAL;
	memcpy(buf, value, n);
	buf[n] = '\0';
	for (p = buf; isdigit((unsigned char)*p); p++)
		;
	if (*p == '\0') {
		int64_t secs = 0;
		for (p = buf; *p && secs <= RETRY_AFTER_MAX_S; p++)
			secs = secs * 10 + (*p - '0');
		*out_s = secs > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : secs;
		return PGW_OK;
	}
	gmtime_r(&now, &now_tm);
	if (!imf_fixdate(buf, &tm) && !rfc850_date(buf, now_tm.tm_year + 1900, &tm) &&
	    !asctime_date(buf, &tm))
		return PGW_EINVAL;
	if (tm.tm_mday < 1 || tm.tm_mday > mdays[tm.tm_mon] || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60)
		return PGW_EINVAL;
	tm.tm_year -= 1900;
	at = timegm(&tm);
	if (at == (time_t)-1)
		return PGW_EINVAL;
	*out_s = at <= now ? 0 : (int64_t)at - now_s > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S
								: (int64_t)at - now_s;
	return PGW_OK;
}

size_t pgw_utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t need, i;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}
