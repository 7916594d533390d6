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
