/* TLS server context (see sim_tls.h). Apple only speaks HTTP/2, so a client
 * that does not offer "h2" in ALPN fails the handshake. Start-up only. */
#include "sim_tls.h"

#include <stdio.h>

#include <openssl/err.h>

static const unsigned char sim_alpn_h2[] = { 2, 'h', '2' };

static int sim_tls_select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			       const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel;

	if (SSL_select_next_proto(&sel, outlen, sim_alpn_h2, sizeof(sim_alpn_h2), in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static void sim_tls_error(char *err, size_t errlen, const char *what, const char *file)
{
	char ossl[256] = "";
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, ossl, sizeof(ossl));
	snprintf(err, errlen, "%s '%s': %s", what, file, ossl);
	ERR_clear_error();
}

static int sim_tls_client_ca(SSL_CTX *ctx, const char *client_ca, char *err, size_t errlen)
{
	STACK_OF(X509_NAME) *names;

	if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
		sim_tls_error(err, errlen, "cannot load client CA", client_ca);
		return -1;
	}
	names = SSL_load_client_CA_file(client_ca);
	if (!names) {
		sim_tls_error(err, errlen, "cannot read client CA names", client_ca);
		return -1;
	}
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return 0;
}

SSL_CTX *sim_tls_server_ctx(const char *cert, const char *key, const char *client_ca, char *err,
			    size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx) {
		snprintf(err, errlen, "cannot create TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		sim_tls_error(err, errlen, "cannot load certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		sim_tls_error(err, errlen, "cannot load private key", key);
		goto fail;
	}
	if (client_ca && sim_tls_client_ca(ctx, client_ca, err, errlen) < 0)
		goto fail;
	SSL_CTX_set_alpn_select_cb(ctx, sim_tls_select_alpn, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
