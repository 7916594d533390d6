/* pushgw error codes: one enum for the whole gateway and one function that
 * turns a code into text. Functions return a pgw_err and write results through
 * out-parameters. Thread-safe (pure). */
#ifndef PUSHGW_ERR_H
#define PUSHGW_ERR_H

typedef enum pgw_err {
	PGW_OK = 0,
	PGW_ENOMEM,    /* allocation failed */
	PGW_EINVAL,    /* bad argument or bad input */
	PGW_EIO,       /* file or socket I/O failed */
	PGW_ECONFIG,   /* configuration is wrong */
	PGW_ETLS,      /* TLS set-up or handshake failed */
	PGW_ECONNECT,  /* could not connect upstream */
	PGW_ETIMEOUT,  /* deadline passed */
	PGW_ENOTFOUND, /* no such thing */
	PGW_EAUTH,     /* credentials refused or unusable */
	PGW_ESTATE,    /* call not valid in the current state */
	PGW_EFULL,     /* a bounded queue or table is full */
	PGW_ECRYPTO,   /* signing or key handling failed */
} pgw_err;

/* Static, never NULL. */
const char *pgw_strerror(pgw_err err);

#endif
