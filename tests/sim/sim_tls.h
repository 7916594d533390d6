/* TLS server context for the simulated push services: certificate, ALPN "h2"
 * only, optional client-certificate verification. Start-up only. */
#ifndef SIM_TLS_H
#define SIM_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* client_ca may be NULL (no client certificate asked for). Returns a context
 * the caller frees with SSL_CTX_free(), or NULL with a message in err. */
SSL_CTX *sim_tls_server_ctx(const char *cert, const char *key, const char *client_ca, char *err,
			    size_t errlen);

#endif
