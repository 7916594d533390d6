/* A strict JSON reader for request bodies, the hot-path twin of jansson's
 * json_loadb(buf, len, JSON_REJECT_DUPLICATES, err): the same documents are
 * accepted (RFC 8259, UTF-8, an object or array at the top, no duplicate
 * keys, no \u0000) and the same jansson values come out, at a fraction of
 * the cost (one pass over the bytes, no per-character callbacks). Pure;
 * any thread. tests/fuzz/fuzz_jsonr.c checks it against jansson. */
#ifndef PUSHGW_JSONR_H
#define PUSHGW_JSONR_H

#include <jansson.h>
#include <stddef.h>

/* Nesting deeper than this is refused (bodies are a few levels deep). */
#define JSONR_MAX_DEPTH 64

/* The parsed document (caller json_decref()s it), or NULL with err (if
 * non-NULL) telling what and where: err->text, err->line, err->column
 * (1-based, in bytes), err->position (bytes read). */
json_t *jsonr_load(const char *buf, size_t len, json_error_t *err);

#endif
