/* err.h: error codes and the message buffer every library call fills. */
#ifndef HSMCA_ERR_H
#define HSMCA_ERR_H

#include <stddef.h>

/* Library functions return 0 or one of these (negative). Keep in step with
 * the string table in lib/err.c. */
enum hsmca_errcode {
	HSMCA_OK = 0,
	HSMCA_ERR_INTERNAL = -1,	/* a bug or an OpenSSL failure */
	HSMCA_ERR_ALLOC = -2,
	HSMCA_ERR_ARG = -3,		/* bad argument from the caller */
	HSMCA_ERR_CONFIG = -4,
	HSMCA_ERR_IO = -5,
	HSMCA_ERR_HSM = -6,		/* the token refused an operation */
	HSMCA_ERR_HSM_UNAVAILABLE = -7,	/* module, slot or token missing */
	HSMCA_ERR_PIN = -8,		/* PIN source unreadable or login refused */
	HSMCA_ERR_KEY_NOT_FOUND = -9,
	HSMCA_ERR_CSR_PARSE = -10,	/* not a PKCS#10 request */
	HSMCA_ERR_CSR_SIGNATURE = -11,	/* CSR signature does not verify */
	HSMCA_ERR_KEY_POLICY = -12,	/* key type or size refused */
	HSMCA_ERR_PROFILE = -13,	/* unknown profile */
	HSMCA_ERR_POLICY = -14,		/* request not allowed by the profile */
	HSMCA_ERR_LINT = -15,		/* pre- or post-sign lint failed */
	HSMCA_ERR_VERIFY = -16,		/* verify-after-sign failed */
	HSMCA_ERR_STORE = -17,
	HSMCA_ERR_NOT_FOUND = -18,
	HSMCA_ERR_EXISTS = -19,
	HSMCA_ERR_CA_STATE = -20,	/* no active generation, wrong status ... */
	HSMCA_ERR_BUSY = -21,		/* another is doing it now: try again */
	HSMCA_ERR_KEY_AMBIGUOUS = -22,	/* a key URI matches several keys */
	HSMCA_ERR_MAX_ = -23		/* sentinel, not an error */
};

/* A message a person can act on: one line, no secrets. */
#define HSMCA_ERRMSG_MAX 512
struct hsmca_err {
	int	code;
	char	msg[HSMCA_ERRMSG_MAX];
};

/* The fixed name of a code ("CSR signature invalid"). */
const char *hsmca_strerror(int code);

/* Fill e (may be NULL) with code and a formatted message; return code so
 * callers can `return err_set(e, HSMCA_ERR_X, "...")`. */
int err_set(struct hsmca_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As err_set, appending the most recent OpenSSL error reason (and
 * clearing OpenSSL's error queue). */
int err_set_ssl(struct hsmca_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void err_clear(struct hsmca_err *e);

/* The HTTP status a refusal with this code maps to (400, 403, 503 ...). */
int err_http_status(int code);

#endif
