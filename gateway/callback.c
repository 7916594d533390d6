/* Result callbacks on one libcurl-multi thread: jobs arrive through a
 * mutex-protected list (curl_multi_wakeup() rouses the thread), each is
 * prepared, signed and POSTed, and retried with backoff until a 2xx or its
 * deadline. Only this thread touches curl handles. */
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

#include "pushgw/log.h"
#include "pushgw/metrics.h"
#include "pushgw/util.h"

#define ATTEMPT_TIMEOUT_MS 5000
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS 8000

typedef struct job {
	struct job *next;
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
	job *incoming;   /* from other threads */
	bool stop;
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
		job_free(j);
		return;
	}
	delay = BACKOFF_FIRST_MS << (j->attempts > 5 ? 4 : j->attempts - 1);
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	if (pgw_now_ms() + delay >= j->deadline_ms) {
		atomic_fetch_add(&cbs->failed, 1);
		metrics_count("pushgw_callbacks_total", "result=\"failed\"", 1);
		log_outcome(j, "callback given up: the wake's ttl ran out", PGW_LOG_WARN, code);
		job_free(j);
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
			job_free(list);
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
			job_free(j);
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
	cbs->multi = curl_multi_init();
	cbs->ca_file = ca_file ? strdup(ca_file) : NULL;
	if (!cbs->multi || (ca_file && !cbs->ca_file) ||
	    pthread_create(&cbs->thread, NULL, callback_thread, cbs) != 0) {
		if (cbs->multi)
			curl_multi_cleanup(cbs->multi);
		free(cbs->ca_file);
		pthread_mutex_destroy(&cbs->lock);
		free(cbs);
		return PGW_ENOMEM;
	}
	*out = cbs;
	return PGW_OK;
}

static void drop_list(job *j, const char *why)
{
	job *next;

	for (; j; j = next) {
		next = j->next;
		if (j->prepare && !j->body) {
			/* never prepared: the prepare function owns arg and frees it */
			char *body = NULL;
			size_t len = 0;
			if (j->prepare(j->arg, &body, &len))
				free(body);
		}
		log_outcome(j, why, PGW_LOG_WARN, 0);
		job_free(j);
	}
}

void callbacks_free(callbacks *cbs)
{
	job *j;

	if (!cbs)
		return;
	pthread_mutex_lock(&cbs->lock);
	cbs->stop = true;
	pthread_mutex_unlock(&cbs->lock);
	curl_multi_wakeup(cbs->multi);
	pthread_join(cbs->thread, NULL);
	drop_list(cbs->incoming, "callback dropped at shutdown");
	drop_list(cbs->waiting, "callback dropped at shutdown");
	/* attempts in flight: their handles are still in the multi */
	while ((j = cbs->active) != NULL) {
		cbs->active = j->next;
		curl_multi_remove_handle(cbs->multi, j->easy);
		log_outcome(j, "callback dropped at shutdown", PGW_LOG_WARN, 0);
		job_free(j);
	}
	curl_multi_cleanup(cbs->multi);
	free(cbs->ca_file);
	pthread_mutex_destroy(&cbs->lock);
	free(cbs);
}

pgw_err callbacks_submit(callbacks *cbs, const char *url, const char *secret,
			 callback_prepare_fn prepare, void *arg, int64_t deadline_ms,
			 const char *wake_id)
{
	job *j = calloc(1, sizeof *j);

	if (!j)
		return PGW_ENOMEM;
	j->url = strdup(url);
	j->secret = secret ? strdup(secret) : NULL;
	j->prepare = prepare;
	j->arg = arg;
	j->deadline_ms = deadline_ms;
	snprintf(j->wake_id, sizeof j->wake_id, "%s", wake_id ? wake_id : "");
	if (!j->url || (secret && !j->secret)) {
		job_free(j);
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
