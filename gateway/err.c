/* Text for pgw_err codes. Pure; any thread. */
#include "pushgw/err.h"

const char *pgw_strerror(pgw_err err)
{
	switch (err) {
	case PGW_OK: return "ok";
	case PGW_ENOMEM: return "out of memory";
	case PGW_EINVAL: return "invalid argument";
	case PGW_EIO: return "I/O error";
	case PGW_ECONFIG: return "configuration error";
	case PGW_ETLS: return "TLS error";
	case PGW_ECONNECT: return "connection failed";
	case PGW_ETIMEOUT: return "timed out";
	case PGW_ENOTFOUND: return "not found";
	case PGW_EAUTH: return "not authorised";
	case PGW_ESTATE: return "invalid state";
	case PGW_EFULL: return "queue full";
	case PGW_ECRYPTO: return "cryptographic error";
	}
	return "unknown error";
}
