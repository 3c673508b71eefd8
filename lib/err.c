/* err.c: error codes, their names, and the caller-visible message. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "hsmca/err.h"

static const char *const err_names[] = {
	[0] = "success",
	[1] = "internal error",
	[2] = "out of memory",
	[3] = "invalid argument",
	[4] = "configuration error",
	[5] = "I/O error",
	[6] = "HSM operation failed",
	[7] = "HSM unavailable",
	[8] = "HSM login failed",
	[9] = "key not found",
	[10] = "CSR unreadable",
	[11] = "CSR signature invalid",
	[12] = "key refused by policy",
	[13] = "unknown profile",
	[14] = "refused by profile",
	[15] = "certificate lint failed",
	[16] = "verify-after-sign failed",
	[17] = "store error",
	[18] = "not found",
	[19] = "already exists",
	[20] = "CA state does not allow this",
	[21] = "busy elsewhere, try again",
	[22] = "several keys match",
};

const char *
hsmca_strerror(int code)
{
	int idx = -code;

	if (idx < 0 || idx >= (int)(sizeof(err_names) / sizeof(err_names[0])))
		return "unknown error";
	return err_names[idx];
}

static int
err_vset(struct hsmca_err *e, int code, const char *ssl, const char *fmt,
    va_list ap)
{
	size_t n;

	if (e == NULL)
		return code;
	e->code = code;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	if (ssl != NULL && *ssl != '\0') {
		n = strlen(e->msg);
		snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", ssl);
	}
	/* One line, always: a message may quote input. */
	for (char *p = e->msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return code;
}

int
err_set(struct hsmca_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(e, code, NULL, fmt, ap);
	va_end(ap);
	return code;
}

int
err_set_ssl(struct hsmca_err *e, int code, const char *fmt, ...)
{
	char reason[160] = "";
	unsigned long l;
	va_list ap;

	/* The last error in the queue is the most specific one. */
	while ((l = ERR_get_error()) != 0) {
		const char *r = ERR_reason_error_string(l);

		if (r != NULL)
			snprintf(reason, sizeof(reason), "%s", r);
		else
			snprintf(reason, sizeof(reason), "error %lx", l);
	}
	va_start(ap, fmt);
	err_vset(e, code, reason, fmt, ap);
	va_end(ap);
	return code;
}

void
err_clear(struct hsmca_err *e)
{
	if (e == NULL)
		return;
	e->code = 0;
	e->msg[0] = '\0';
}

int
err_http_status(int code)
{
	switch (code) {
	case HSMCA_OK:
		return 200;
	case HSMCA_ERR_ARG:
	case HSMCA_ERR_CSR_PARSE:
	case HSMCA_ERR_CSR_SIGNATURE:
	case HSMCA_ERR_KEY_POLICY:
	case HSMCA_ERR_POLICY:
		return 400;
	case HSMCA_ERR_PROFILE:
	case HSMCA_ERR_NOT_FOUND:
		return 404;
	case HSMCA_ERR_EXISTS:
	case HSMCA_ERR_CA_STATE:
		return 409;
	case HSMCA_ERR_HSM:
	case HSMCA_ERR_HSM_UNAVAILABLE:
	case HSMCA_ERR_PIN:
	case HSMCA_ERR_BUSY:
		return 503;
	default:
		return 500;
	}
}
