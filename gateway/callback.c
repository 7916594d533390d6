/* Result callbacks on one libcurl-multi thread: jobs arrive through a
 * mutex-protected list (curl_multi_wakeup() rouses the thread), each is
 * prepared, signed and POSTed, and retried with backoff until a 2xx or its
 * deadline. Only this thread touches curl handles. Request threads reserve
 * a slot per async wake (bounded per API key) before it starts; the slot
 * counts as pending until its callback is delivered or given up, which is
 * what shutdown waits for. */
#include "pushgw/callback.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "pushgw/log.h"
#include "pushgw/metrics.h"
#include "pushgw/util.h"

#define ATTEMPT_TIMEOUT_MS 5000
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS 8000

/* Pending callbacks of one owner (API key name). Never freed before
 * callbacks_free(), so jobs may point at it; guarded by callbacks.lock. */
struct callback_slot {
	struct callback_slot *next;
	unsigned pending;
	char name[];
};

typedef struct job {
	struct job *next;
	callback_slot *slot;
	char *url;
	char *secret;
	char wake_id[48];
	callback_prepare_fn prepare;
	void *arg;
	char *body;
	size_t len;
	int64_t deadline_ms;
	int64_t next_at_ms;
	int attempts;
	CURL *easy;
	struct curl_slist *headers;
} job;

struct callbacks {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t idle_cv; /* broadcast when pending drops to 0 */
	job *incoming;   /* from other threads */
	bool stop;
	size_t pending;  /* under lock: slots reserved and not finished */
	callback_slot *owners; /* under lock */
	CURLM *multi;
	char *ca_file;
	job *waiting;    /* callback thread only: prepared, waiting for next_at */
	job *active;     /* callback thread only: an attempt in flight */
	atomic_ullong delivered, failed;
};

bool callback_url_valid(const char *url, char *why, size_t n)
{
	const char *host;
	size_t i, len = url ? strlen(url) : 0;

	if (!url || len == 0 || len > 2048) {
		snprintf(why, n, "expected an http:// or https:// URL of at most 2048 characters");
		return false;
	}
	if (strncasecmp(url, "http://", 7) == 0)
		host = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		host = url + 8;
	else {
		snprintf(why, n, "only http:// and https:// URLs are allowed");
		return false;
	}
	if (!*host || *host == '/' || *host == ':' || *host == '?') {
		snprintf(why, n, "the URL has no host");
		return false;
	}
	for (i = 0; i < len; i++) {
		if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f) {
			snprintf(why, n, "the URL contains a space or control character");
			return false;
		}
	}
	return true;
}

void callback_sign(const char *secret, const char *body, size_t len, char *out, size_t n)
{
	unsigned char mac[32];
	unsigned int mac_len = 0;
	char hex[65];

	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, mac, &mac_len);
	pgw_hex(mac, mac_len, hex);
	snprintf(out, n, "sha256=%s", hex);
}

static void job_free(job *j)
{
	if (!j)
		return;
	if (j->easy)
		curl_easy_cleanup(j->easy);
	curl_slist_free_all(j->headers);
	free(j->url);
	if (j->secret) {
		memset(j->secret, 0, strlen(j->secret));
		free(j->secret);
	}
	free(j->body);
	free(j);
}

/* A slot's callback is finished (delivered, given up, dropped, or never
 * submitted): the owner may have another. */
static void slot_release(callbacks *cbs, callback_slot *slot)
{
	if (!slot)
		return;
	pthread_mutex_lock(&cbs->lock);
	slot->pending--;
	if (--cbs->pending == 0)
		pthread_cond_broadcast(&cbs->idle_cv);
	pthread_mutex_unlock(&cbs->lock);
}

/* The end of a job, whatever its outcome. */
static void job_retire(callbacks *cbs, job *j)
{
	slot_release(cbs, j->slot);
	job_free(j);
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
	return size * nmemb;
}

static bool job_start(callbacks *cbs, job *j)
{
	char sig[96], hdr[160];
	int64_t left = j->deadline_ms - pgw_now_ms();

	j->easy = curl_easy_init();
	if (!j->easy)
		return false;
	callback_sign(j->secret ? j->secret : "", j->body, j->len, sig, sizeof sig);
	snprintf(hdr, sizeof hdr, "X-Pushgw-Signature: %s", sig);
	curl_slist_free_all(j->headers);
	j->headers = curl_slist_append(NULL, "Content-Type: application/json");
	j->headers = curl_slist_append(j->headers, hdr);
	j->headers = curl_slist_append(j->headers, "Expect:");
	curl_easy_setopt(j->easy, CURLOPT_URL, j->url);
	curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(j->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->headers);
	curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->body);
	curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->len);
	curl_easy_setopt(j->easy, CURLOPT_USERAGENT, "pushgw-callback");
	curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS,
			 (long)(left < ATTEMPT_TIMEOUT_MS ? (left > 100 ? left : 100) : ATTEMPT_TIMEOUT_MS));
	curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
	if (cbs->ca_file)
		curl_easy_setopt(j->easy, CURLOPT_CAINFO, cbs->ca_file);
	j->attempts++;
	if (curl_multi_add_handle(cbs->multi, j->easy) != CURLM_OK)
		return false;
	j->next = cbs->active;
	cbs->active = j;
	return true;
}

static void log_outcome(const job *j, const char *msg, pgw_log_level level, long code)
{
	char attempts[16], status[16];

	snprintf(attempts, sizeof attempts, "%d", j->attempts);
	snprintf(status, sizeof status, "%ld", code);
	pgw_log(level, msg, "wake_id", j->wake_id, "attempts", attempts, "http_status", status, NULL);
}

static void wait_list_add(callbacks *cbs, job *j)
{
	j->next = cbs->waiting;
	cbs->waiting = j;
}

/* One attempt ended: done on 2xx, else retry while the deadline allows. */
static void job_finished(callbacks *cbs, job *j, CURLcode rc)
{
	long code = 0;
	int64_t delay;

	job **pp;

	for (pp = &cbs->active; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_multi_remove_handle(cbs->multi, j->easy);
	curl_easy_cleanup(j->easy);
	j->easy = NULL;
	if (rc == CURLE_OK && code >= 200 && code < 300) {
		atomic_fetch_add(&cbs->delivered, 1);
		metrics_count("pushgw_callbacks_total", "result=\"delivered\"", 1);
		log_outcome(j, "callback delivered", PGW_LOG_INFO, code);
		job_retire(cbs, j);
		return;
	}
	delay = BACKOFF_FIRST_MS << (j->attempts > 5 ? 4 : j->attempts - 1);
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	if (pgw_now_ms() + delay >= j->deadline_ms) {
		atomic_fetch_add(&cbs->failed, 1);
		metrics_count("pushgw_callbacks_total", "result=\"failed\"", 1);
		log_outcome(j, "callback given up: the wake's ttl ran out", PGW_LOG_WARN, code);
		job_retire(cbs, j);
		return;
	}
	metrics_count("pushgw_callback_retries_total", "", 1);
	j->next_at_ms = pgw_now_ms() + delay;
	wait_list_add(cbs, j);
}

/* Prepare new jobs (unless stopping: callbacks_free() drops them). */
static void take_incoming(callbacks *cbs, bool *stop)
{
	job *list = NULL, *next;

	pthread_mutex_lock(&cbs->lock);
	*stop = cbs->stop;
	if (!*stop) {
		list = cbs->incoming;
		cbs->incoming = NULL;
	}
	pthread_mutex_unlock(&cbs->lock);
	for (; list; list = next) {
		next = list->next;
		if (!list->prepare(list->arg, &list->body, &list->len)) {
			job_retire(cbs, list);
			continue;
		}
		list->next_at_ms = 0;
		wait_list_add(cbs, list);
	}
}

/* Start every waiting job that is due; returns ms until the next one. */
static int start_due(callbacks *cbs)
{
	job **pp = &cbs->waiting, *j;
	int64_t now = pgw_now_ms(), soonest = 1000;

	while ((j = *pp) != NULL) {
		if (j->next_at_ms > now) {
			if (j->next_at_ms - now < soonest)
				soonest = j->next_at_ms - now;
			pp = &j->next;
			continue;
		}
		*pp = j->next;
		if (!job_start(cbs, j)) {
			atomic_fetch_add(&cbs->failed, 1);
			log_outcome(j, "callback could not be started", PGW_LOG_ERROR, 0);
			job_retire(cbs, j);
		}
	}
	return (int)soonest;
}

static void *callback_thread(void *arg)
{
	callbacks *cbs = arg;
	bool stop = false;
	int still, wait_ms, queued;
	CURLMsg *msg;

	while (!stop) {
		take_incoming(cbs, &stop);
		if (stop)
			break;
		wait_ms = start_due(cbs);
		curl_multi_perform(cbs->multi, &still);
		while ((msg = curl_multi_info_read(cbs->multi, &queued)) != NULL) {
			job *j = NULL;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
			job_finished(cbs, j, msg->data.result);
		}
		curl_multi_poll(cbs->multi, NULL, 0, wait_ms, NULL);
	}
	return NULL;
}

pgw_err callbacks_new(const char *ca_file, callbacks **out)
{
	callbacks *cbs = calloc(1, sizeof *cbs);

	if (!cbs)
		return PGW_ENOMEM;
	pthread_mutex_init(&cbs->lock, NULL);
	pthread_cond_init(&cbs->idle_cv, NULL);
	cbs->multi = curl_multi_init();
	cbs->ca_file = ca_file ? strdup(ca_file) : NULL;
	if (!cbs->multi || (ca_file && !cbs->ca_file) ||
	    pthread_create(&cbs->thread, NULL, callback_thread, cbs) != 0) {
		if (cbs->multi)
			curl_multi_cleanup(cbs->multi);
		free(cbs->ca_file);
		pthread_cond_destroy(&cbs->idle_cv);
		pthread_mutex_destroy(&cbs->lock);
		free(cbs);
		return PGW_ENOMEM;
	}
	*out = cbs;
	return PGW_OK;
}

/* Drops every job of a list; returns how many. */
static size_t drop_list(callbacks *cbs, job *j, const char *why)
{
	size_t n = 0;
	job *next;

	for (; j; j = next, n++) {
		next = j->next;
		if (j->prepare && !j->body) {
			/* never prepared: the prepare function owns arg and frees it */
			char *body = NULL;
			size_t len = 0;
			if (j->prepare(j->arg, &body, &len))
				free(body);
		}
		log_outcome(j, why, PGW_LOG_WARN, 0);
		job_retire(cbs, j);
	}
	return n;
}

void callbacks_free(callbacks *cbs)
{
	static const char dropped[] = "callback dropped at shutdown";
	callback_slot *s, *next;
	size_t n;
	job *j;

	if (!cbs)
		return;
	pthread_mutex_lock(&cbs->lock);
	cbs->stop = true;
	pthread_mutex_unlock(&cbs->lock);
	curl_multi_wakeup(cbs->multi);
	pthread_join(cbs->thread, NULL);
	n = drop_list(cbs, cbs->incoming, dropped);
	n += drop_list(cbs, cbs->waiting, dropped);
	/* attempts in flight: their handles are still in the multi */
	while ((j = cbs->active) != NULL) {
		cbs->active = j->next;
		curl_multi_remove_handle(cbs->multi, j->easy);
		log_outcome(j, dropped, PGW_LOG_WARN, 0);
		job_retire(cbs, j);
		n++;
	}
	if (n > 0) {
		char count[24];
		snprintf(count, sizeof count, "%zu", n);
		pgw_log(PGW_LOG_WARN, "callbacks abandoned at shutdown", "count", count, NULL);
	}
	curl_multi_cleanup(cbs->multi);
	for (s = cbs->owners; s; s = next) {
		next = s->next;
		free(s);
	}
	free(cbs->ca_file);
	pthread_cond_destroy(&cbs->idle_cv);
	pthread_mutex_destroy(&cbs->lock);
	free(cbs);
}

/* The owner's record, made on first use; under cbs->lock. */
static callback_slot *owner_find(callbacks *cbs, const char *owner)
{
	callback_slot *s;
	size_t n = strlen(owner);

	for (s = cbs->owners; s; s = s->next)
		if (strcmp(s->name, owner) == 0)
			return s;
	s = calloc(1, sizeof *s + n + 1);
	if (!s)
		return NULL;
	memcpy(s->name, owner, n + 1);
	s->next = cbs->owners;
	cbs->owners = s;
	return s;
}

bool callbacks_reserve(callbacks *cbs, const char *owner, unsigned max_pending,
		       callback_slot **slot)
{
	callback_slot *s;
	bool ok = false;

	pthread_mutex_lock(&cbs->lock);
	s = owner_find(cbs, owner ? owner : "");
	if (s && s->pending < max_pending) {
		s->pending++;
		cbs->pending++;
		ok = true;
	}
	pthread_mutex_unlock(&cbs->lock);
	*slot = ok ? s : NULL;
	return ok;
}

void callbacks_release(callbacks *cbs, callback_slot *slot)
{
	slot_release(cbs, slot);
}

size_t callbacks_pending(callbacks *cbs)
{
	size_t n;

	pthread_mutex_lock(&cbs->lock);
	n = cbs->pending;
	pthread_mutex_unlock(&cbs->lock);
	return n;
}

size_t callbacks_drain(callbacks *cbs, int timeout_ms)
{
	struct timespec until;
	size_t n;

	pgw_timespec_in(&until, CLOCK_REALTIME, timeout_ms);
	pthread_mutex_lock(&cbs->lock);
	while (cbs->pending > 0 && timeout_ms > 0 &&
	       pthread_cond_timedwait(&cbs->idle_cv, &cbs->lock, &until) == 0)
		;
	n = cbs->pending;
	pthread_mutex_unlock(&cbs->lock);
	return n;
}

pgw_err callbacks_submit(callbacks *cbs, callback_slot *slot, const char *url,
			 const char *secret, callback_prepare_fn prepare, void *arg,
			 int64_t deadline_ms, const char *wake_id)
{
	job *j = calloc(1, sizeof *j);

	if (!j) {
		slot_release(cbs, slot);
		return PGW_ENOMEM;
	}
	j->slot = slot;
	j->url = strdup(url);
	j->secret = secret ? strdup(secret) : NULL;
	j->prepare = prepare;
	j->arg = arg;
	j->deadline_ms = deadline_ms;
	snprintf(j->wake_id, sizeof j->wake_id, "%s", wake_id ? wake_id : "");
	if (!j->url || (secret && !j->secret)) {
		job_retire(cbs, j);
		return PGW_ENOMEM;
	}
	pthread_mutex_lock(&cbs->lock);
	j->next = cbs->incoming;
	cbs->incoming = j;
	pthread_mutex_unlock(&cbs->lock);
	curl_multi_wakeup(cbs->multi);
	return PGW_OK;
}

void callbacks_counts(callbacks *cbs, uint64_t *delivered, uint64_t *failed)
{
	*delivered = atomic_load(&cbs->delivered);
	*failed = atomic_load(&cbs->failed);
}
