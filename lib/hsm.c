/* hsm.c: CA keys in a PKCS#11 token.
 *
 * Two views of the same module: libp11 gives each private key an EVP_PKEY
 * whose operations run in the token (and keeps a pool of sessions, so
 * several threads can sign at once); raw PKCS#11 through the module's own
 * function list generates and imports keys with the attributes we insist
 * on (libp11 0.4.12 only generates RSA) and reads attributes back. The
 * module is initialized once, by libp11; our C_Initialize then reports
 * CKR_CRYPTOKI_ALREADY_INITIALIZED, which is expected.
 *
 * Sessions: libp11 keeps the sessions it opened in a pool and reuses
 * them, so the number it holds is the most it ever used at once. Every
 * libp11 use is bracketed by hsm_sign_enter/leave, which let at most
 * sessions - 1 threads in; raw PKCS#11 takes the last session, one
 * thread at a time; it stays open, and holds the login. So the token
 * never sees more than `sessions`.
 *
 * Faults: a failed signature or a session, login or device error marks
 * the token failed; hsm_check() then refuses at once (and so does it
 * while a signature hangs), until hsm_recover() has closed every
 * session, listed the slots again, found the token and logged in. */
#include "config.h"

#include <sys/mman.h>
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libp11.h>
#include <p11-kit/pkcs11.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include "hsmca/hsm.h"
#include "hsmca/util.h"

#define HSM_ID_LEN	16
/* Signing keys with a session copy at once (hsm_load_signing_key):
 * the generations in use, a few. */
#define HSM_COPIES_MAX	16

/* A session copy of a token key pair, made in the raw session: SoftHSM
 * opens, locks and reads a token object's file again on every
 * C_SignInit, and a session object lives in memory (in a hardware
 * token, in its own). The copies are sensitive and never extractable as
 * the key is (C_CopyObject cannot loosen either), live only as long as
 * the raw session, and have a random CKA_ID of their own, so that
 * nothing that looks a key up by its id or URI finds them (raw_find
 * sees token objects only). */
struct key_copy {
	unsigned char		 id[64];	/* the token key's CKA_ID */
	size_t			 id_len;
	unsigned char		 cid[HSM_ID_LEN];	/* the copies' */
	CK_OBJECT_HANDLE	 priv;
	CK_OBJECT_HANDLE	 pub;
	unsigned int		 epoch;		/* 0: free; else h->epoch + 1 */
};
#define HSM_PIN_MAX	256
#define HSM_SIGNERS_MAX	256

struct hsm {
	PKCS11_CTX		*ctx;
	int			 ctx_loaded;	/* PKCS11_CTX_load succeeded */
	PKCS11_SLOT		*slots;
	unsigned int		 nslots;
	PKCS11_SLOT		*slot;
	void			*dl;
	CK_FUNCTION_LIST_PTR	 p11;
	CK_SLOT_ID		 slot_id;
	char			*token_label;
	char			*token_uri;
	char			*pin_source;
	int			 sessions;
	sem_t			 sign_sem;
	int			 sem_ok;
	CK_SESSION_HANDLE	 raw_s;		/* the one raw session */
	pthread_mutex_t		 raw_lock;	/* its user */
	pthread_mutex_t		 state_lock;	/* what follows */
	int			 failed;	/* hsm_recover() must run */
	char			 why[HSMCA_ERRMSG_MAX];
	int64_t			 timeout_ms;	/* a signature longer hangs */
	char			*kept_pin;	/* hsm_keep_pin(); NULL: read it */
	struct timespec		 since[HSM_SIGNERS_MAX];	/* 0: free */
	unsigned int		 epoch;		/* recoveries so far */
	int			 copy;		/* [hsm] session-copy */
	struct key_copy		*copies;	/* under raw_lock */
};

/* Which of h->since the calling thread holds between enter and leave. */
static __thread int sign_slot = -1;

struct hsm_key {
	EVP_PKEY	*priv;
	EVP_PKEY	*pub;
	unsigned char	 id[64];
	size_t		 id_len;
	char		*label;
	char		*uri;
};

/* The name of a PKCS#11 return value, NULL for one hsmca does not know. */
static const char *
ckr_known(CK_RV rv)
{
	switch (rv) {
	case CKR_OK: return "CKR_OK";
	case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
	case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
	case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
	case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
	case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
	case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
	case CKR_ATTRIBUTE_VALUE_INVALID: return "CKR_ATTRIBUTE_VALUE_INVALID";
	case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
	case CKR_TEMPLATE_INCOMPLETE: return "CKR_TEMPLATE_INCOMPLETE";
	case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
	case CKR_DOMAIN_PARAMS_INVALID: return "CKR_DOMAIN_PARAMS_INVALID";
	case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
	case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
	case CKR_DEVICE_MEMORY: return "CKR_DEVICE_MEMORY";
	case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
	case CKR_SESSION_CLOSED: return "CKR_SESSION_CLOSED";
	case CKR_CRYPTOKI_NOT_INITIALIZED: return "CKR_CRYPTOKI_NOT_INITIALIZED";
	case CKR_ACTION_PROHIBITED: return "CKR_ACTION_PROHIBITED";
	case CKR_OBJECT_HANDLE_INVALID: return "CKR_OBJECT_HANDLE_INVALID";
	default: return NULL;
	}
}

/* A PKCS#11 return value's name, or its value in hex (CKR_0x80000123):
 * returned by value, its .s used within the expression, so that signer
 * threads share no buffer. */
struct ckr_str {
	char	s[32];
};

static struct ckr_str
ckr_name(CK_RV rv)
{
	struct ckr_str r;
	const char *name;

	if ((name = ckr_known(rv)) != NULL)
		snprintf(r.s, sizeof(r.s), "%s", name);
	else
		snprintf(r.s, sizeof(r.s), "CKR_0x%08lX", (unsigned long)rv);
	return r;
}

/* ---- faults ---- */

/* Return values that mean the token, its sessions or its login are
 * gone, rather than a refusal of this one request. */
static int
ckr_is_fault(CK_RV rv)
{
	switch (rv) {
	case CKR_DEVICE_ERROR:
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
		return 1;
	default:
		return 0;
	}
}

static void hsm_fault(struct hsm *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Mark the token failed: hsm_check() refuses until hsm_recover(). */
static void
hsm_fault(struct hsm *h, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&h->state_lock);
	if (!h->failed) {
		va_start(ap, fmt);
		vsnprintf(h->why, sizeof(h->why), fmt, ap);
		va_end(ap);
		h->failed = 1;
	}
	pthread_mutex_unlock(&h->state_lock);
}

static int64_t
ms_since(const struct timespec *t0, const struct timespec *now)
{
	return (int64_t)(now->tv_sec - t0->tv_sec) * 1000 +
	    (now->tv_nsec - t0->tv_nsec) / 1000000;
}

/* ---- PKCS#11 URIs (RFC 7512) ---- */

static int
pct_decode(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
	unsigned char *buf = malloc(n + 1);
	size_t j = 0;

	if (buf == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			unsigned int v;

			if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2]) ||
			    sscanf(s + i + 1, "%2x", &v) != 1) {
				free(buf);
				return -1;
			}
			buf[j++] = (unsigned char)v;
			i += 2;
		} else
			buf[j++] = (unsigned char)s[i];
	}
	buf[j] = '\0';
	*out = buf;
	*outlen = j;
	return 0;
}

void
hsm_uri_free(struct hsm_uri *u)
{
	free(u->token);
	free(u->manufacturer);
	free(u->serial);
	free(u->model);
	free(u->object);
	free(u->id);
	free(u->type);
	memset(u, 0, sizeof(*u));
}

int
hsm_uri_parse(const char *uri, struct hsm_uri *out, struct hsmca_err *e)
{
	static const char *const known_skip[] = {
		"library-manufacturer", "library-description",
		"library-version", "slot-manufacturer", "slot-description",
		"slot-id",
	};
	const char *p, *end;
	int ret = HSMCA_ERR_CONFIG;

	memset(out, 0, sizeof(*out));
	if (strncmp(uri, "pkcs11:", 7) != 0)
		return err_set(e, HSMCA_ERR_CONFIG,
		    "'%s' is not a PKCS#11 URI (pkcs11:...)", uri);
	p = uri + 7;
	end = p + strcspn(p, "?");
	if (*end == '?' && strstr(end, "pin-value") != NULL)
		return err_set(e, HSMCA_ERR_CONFIG,
		    "PKCS#11 URI carries pin-value: PINs come from pin-source, "
		    "never from a URI");
	while (p < end) {
		size_t len = strcspn(p, ";?");
		const char *eq = memchr(p, '=', len);
		unsigned char *val = NULL;
		size_t vlen = 0, klen;
		char **slot = NULL;

		if (len == 0) {
			p++;
			continue;
		}
		if (eq == NULL) {
			err_set(e, HSMCA_ERR_CONFIG,
			    "PKCS#11 URI attribute without '=': %.*s",
			    (int)len, p);
			goto out;
		}
		klen = (size_t)(eq - p);
		if (pct_decode(eq + 1, len - klen - 1, &val, &vlen) == -1) {
			err_set(e, HSMCA_ERR_CONFIG,
			    "PKCS#11 URI: bad percent-encoding in %.*s",
			    (int)len, p);
			goto out;
		}
#define KEY_IS(k) (klen == strlen(k) && strncmp(p, k, klen) == 0)
		if (KEY_IS("token"))
			slot = &out->token;
		else if (KEY_IS("manufacturer"))
			slot = &out->manufacturer;
		else if (KEY_IS("serial"))
			slot = &out->serial;
		else if (KEY_IS("model"))
			slot = &out->model;
		else if (KEY_IS("object"))
			slot = &out->object;
		else if (KEY_IS("type"))
			slot = &out->type;
		else if (KEY_IS("id")) {
			free(out->id);
			out->id = val;
			out->id_len = vlen;
			val = NULL;
		} else {
			int skip = 0;

			for (size_t i = 0; i < sizeof(known_skip) /
			    sizeof(known_skip[0]); i++)
				if (KEY_IS(known_skip[i]))
					skip = 1;
			if (!skip) {
				free(val);
				err_set(e, HSMCA_ERR_CONFIG,
				    "PKCS#11 URI: unknown attribute '%.*s'",
				    (int)klen, p);
				goto out;
			}
		}
#undef KEY_IS
		if (slot != NULL) {
			if (memchr(val, '\0', vlen) != NULL) {
				free(val);
				err_set(e, HSMCA_ERR_CONFIG,
				    "PKCS#11 URI: NUL byte in attribute");
				goto out;
			}
			free(*slot);
			*slot = (char *)val;
			val = NULL;
		}
		free(val);
		p += len;
		if (*p == ';')
			p++;
	}
	ret = 0;
out:
	if (ret != 0)
		hsm_uri_free(out);
	return ret;
}

/* Write v at p, percent-encoding what would end or confuse an attribute;
 * return the end. p has room for 3 * strlen(v). */
static char *
pct_encode(char *p, const char *v)
{
	for (const char *t = v; *t != '\0'; t++) {
		if (strchr(";?%/=&# ", *t) != NULL || (unsigned char)*t < 0x20)
			p += sprintf(p, "%%%02X", (unsigned char)*t);
		else
			*p++ = *t;
	}
	return p;
}

/* Build pkcs11:token=...;id=%..;object=...;type=private */
static char *
uri_make(const char *token, const unsigned char *id, size_t id_len,
    const char *label)
{
	size_t cap = 64 + 3 * (strlen(token) + id_len + (label ? strlen(label) : 0));
	char *s = malloc(cap), *p;

	if (s == NULL)
		return NULL;
	p = s;
	p += sprintf(p, "pkcs11:token=");
	p = pct_encode(p, token);
	p += sprintf(p, ";id=");
	for (size_t i = 0; i < id_len; i++)
		p += sprintf(p, "%%%02X", id[i]);
	if (label != NULL) {
		p += sprintf(p, ";object=");
		p = pct_encode(p, label);
	}
	sprintf(p, ";type=private");
	return s;
}

/* ---- PIN ---- */

int
hsm_check_pin_source(const char *source, struct hsmca_err *e)
{
	struct stat sb;
	const char *v;
	int fd;

	if (source == NULL)
		return err_set(e, HSMCA_ERR_PIN, "no pin-source configured");
	if (strncmp(source, "env:", 4) == 0) {
		if ((v = getenv(source + 4)) == NULL || *v == '\0')
			return err_set(e, HSMCA_ERR_PIN,
			    "PIN environment variable %s is not set",
			    source + 4);
		if (strlen(v) > HSM_PIN_MAX)
			return err_set(e, HSMCA_ERR_PIN,
			    "PIN in %s is too long", source + 4);
		return 0;
	}
	if (strncmp(source, "file:", 5) != 0)
		return err_set(e, HSMCA_ERR_PIN,
		    "pin-source must be file:PATH or env:NAME");
	/* Nobody but its owner and group may read it, nobody but its
	 * owner change it (a PIN someone else writes is theirs). */
	if (stat(source + 5, &sb) == 0 &&
	    (sb.st_mode & (S_IRWXO | S_IWGRP)) != 0)
		return err_set(e, HSMCA_ERR_PIN,
		    "PIN file %s is open to %s (mode %03o); chmod o-rwx,g-w "
		    "it", source + 5, (sb.st_mode & S_IRWXO) != 0 ? "others" :
		    "its group's writes", (unsigned int)(sb.st_mode & 0777));
	/* Opened, not read: the PIN stays where it is. */
	if ((fd = open(source + 5, O_RDONLY | O_CLOEXEC)) == -1)
		return err_set(e, HSMCA_ERR_PIN, "cannot read PIN file %s: %s",
		    source + 5, strerror(errno));
	close(fd);
	return 0;
}

int
hsm_read_pin(const char *source, char **pin, struct hsmca_err *e)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int ret;

	*pin = NULL;
	if ((ret = hsm_check_pin_source(source, e)) != 0)
		return ret;
	if (strncmp(source, "env:", 4) == 0) {
		if ((*pin = strdup(getenv(source + 4))) == NULL)
			return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		return 0;
	}
	if (util_read_file(source + 5, HSM_PIN_MAX + 2, &buf, &len, e) != 0)
		return err_set(e, HSMCA_ERR_PIN, "cannot read PIN file %s",
		    source + 5);
	/* The first line is the PIN. */
	buf[strcspn((char *)buf, "\r\n")] = '\0';
	if (buf[0] == '\0') {
		util_freezero(buf, len + 1);
		return err_set(e, HSMCA_ERR_PIN, "PIN file %s is empty",
		    source + 5);
	}
	if (strlen((char *)buf) > HSM_PIN_MAX) {
		util_freezero(buf, len + 1);
		return err_set(e, HSMCA_ERR_PIN, "PIN in %s is too long",
		    source + 5);
	}
	*pin = (char *)buf;
	return 0;
}

static void
pin_free(char *pin)
{
	if (pin != NULL)
		util_freezero(pin, strlen(pin));
}

/* ---- opening ---- */

static int
token_matches(const PKCS11_TOKEN *t, const struct hsm_uri *u)
{
	if (t == NULL || !t->initialized)
		return 0;
	if (u->token != NULL && strcmp(t->label, u->token) != 0)
		return 0;
	if (u->manufacturer != NULL && strcmp(t->manufacturer, u->manufacturer) != 0)
		return 0;
	if (u->serial != NULL && strcmp(t->serialnr, u->serial) != 0)
		return 0;
	if (u->model != NULL && strcmp(t->model, u->model) != 0)
		return 0;
	return 1;
}

static int
raw_bind(struct hsm *h, const char *module, struct hsmca_err *e)
{
	CK_RV (*getlist)(CK_FUNCTION_LIST_PTR_PTR);
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv;

	if ((h->dl = dlopen(module, RTLD_NOW | RTLD_LOCAL)) == NULL)
		return err_set(e, HSMCA_ERR_HSM_UNAVAILABLE,
		    "cannot load PKCS#11 module %s", module);
	*(void **)&getlist = dlsym(h->dl, "C_GetFunctionList");
	if (getlist == NULL || getlist(&h->p11) != CKR_OK || h->p11 == NULL)
		return err_set(e, HSMCA_ERR_HSM_UNAVAILABLE,
		    "%s is not a PKCS#11 module", module);
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = h->p11->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
		return err_set(e, HSMCA_ERR_HSM_UNAVAILABLE,
		    "C_Initialize: %s", ckr_name(rv).s);
	return 0;
}

/* List the slots, find the token h->token_uri names and log in: at
 * opening, and again after a fault. */
static int
token_attach(struct hsm *h, struct hsmca_err *e)
{
	struct hsm_uri u;
	char *pin = NULL;
	CK_RV rv;
	int ret = HSMCA_ERR_HSM_UNAVAILABLE;

	if ((ret = hsm_uri_parse(h->token_uri, &u, e)) != 0)
		return ret;
	ret = HSMCA_ERR_HSM_UNAVAILABLE;
	h->slot = NULL;
	if (PKCS11_enumerate_slots(h->ctx, &h->slots, &h->nslots) != 0) {
		err_set_ssl(e, ret, "cannot list the slots of the PKCS#11 "
		    "module");
		goto out;
	}
	for (unsigned int i = 0; i < h->nslots; i++) {
		if (token_matches(h->slots[i].token, &u)) {
			h->slot = &h->slots[i];
			break;
		}
	}
	if (h->slot == NULL) {
		err_set(e, ret, "no token matching %s", h->token_uri);
		goto out;
	}
	h->slot_id = PKCS11_get_slotid_from_slot(h->slot);
	free(h->token_label);
	if ((h->token_label = strdup(h->slot->token->label)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	if (h->kept_pin != NULL)
		pin = h->kept_pin;
	else if ((ret = hsm_read_pin(h->pin_source, &pin, e)) != 0)
		goto out;
	/* The raw session, open as long as h is: it holds the login for
	 * libp11's sessions too. Opened and logged in here rather than by
	 * libp11, whose pool (0.4.12) waits forever for a session when
	 * C_OpenSession fails: once this one opened, libp11's will. */
	rv = h->p11->C_OpenSession(h->slot_id, CKF_SERIAL_SESSION |
	    CKF_RW_SESSION, NULL, NULL, &h->raw_s);
	if (rv != CKR_OK) {
		h->raw_s = CK_INVALID_HANDLE;
		ret = err_set(e, HSMCA_ERR_HSM_UNAVAILABLE, "C_OpenSession on "
		    "token '%s': %s", h->token_label, ckr_name(rv).s);
		goto out;
	}
	rv = h->p11->C_Login(h->raw_s, CKU_USER, (CK_UTF8CHAR *)pin,
	    (CK_ULONG)strlen(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		/* A refused PIN says so; a token that went away again is
		 * only unavailable. */
		ret = err_set(e, rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED ?
		    HSMCA_ERR_PIN : HSMCA_ERR_HSM_UNAVAILABLE, "login to token "
		    "'%s' refused: %s", h->token_label, ckr_name(rv).s);
		h->p11->C_CloseSession(h->raw_s);
		h->raw_s = CK_INVALID_HANDLE;
		goto out;
	}
	ret = 0;
out:
	if (pin != h->kept_pin)
		pin_free(pin);
	hsm_uri_free(&u);
	return ret;
}

int
hsm_keep_pin(struct hsm *h, struct hsmca_err *e)
{
	char *pin;
	int ret;

	if (h->kept_pin != NULL)
		return 0;
	if ((ret = hsm_read_pin(h->pin_source, &pin, e)) != 0)
		return ret;
	/* Out of swap where the system allows it; a PIN kept in a
	 * process that cannot be traced or dumped either way. */
	(void)mlock(pin, strlen(pin) + 1);
	h->kept_pin = pin;
	return 0;
}

int
hsm_check_module(const struct config_hsm *cfg, struct hsmca_err *e)
{
	if (cfg->module == NULL || *cfg->module == '\0')
		return err_set(e, HSMCA_ERR_CONFIG, "no PKCS#11 module configured");
	if (access(cfg->module, R_OK) != 0)
		return err_set(e, HSMCA_ERR_HSM_UNAVAILABLE, "PKCS#11 module "
		    "%s: %s", cfg->module, strerror(errno));
	return 0;
}

int
hsm_open(const struct config_hsm *cfg, struct hsm **out, struct hsmca_err *e)
{
	struct hsm *h = NULL;
	int ret = HSMCA_ERR_HSM_UNAVAILABLE;

	*out = NULL;
	if ((ret = hsm_check_module(cfg, e)) != 0)
		return ret;
	ret = HSMCA_ERR_HSM_UNAVAILABLE;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	pthread_mutex_init(&h->raw_lock, NULL);
	pthread_mutex_init(&h->state_lock, NULL);
	h->raw_s = CK_INVALID_HANDLE;
	h->timeout_ms = HSM_TIMEOUT_MS;
	h->copy = cfg->session_copy;
	if ((h->token_uri = strdup(cfg->token)) == NULL ||
	    (cfg->pin_source != NULL &&
	    (h->pin_source = strdup(cfg->pin_source)) == NULL) ||
	    (h->ctx = PKCS11_CTX_new()) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	if (PKCS11_CTX_load(h->ctx, cfg->module) != 0) {
		err_set_ssl(e, ret, "cannot load PKCS#11 module %s",
		    cfg->module);
		goto out;
	}
	h->ctx_loaded = 1;
	if ((ret = raw_bind(h, cfg->module, e)) != 0)
		goto out;
	if ((ret = token_attach(h, e)) != 0)
		goto out;
	/* One session for raw PKCS#11, the others for libp11: two at
	 * least. */
	h->sessions = cfg->sessions > 0 ? cfg->sessions : 4;
	if (h->sessions < 2)
		h->sessions = 2;
	if (h->sessions > HSM_SIGNERS_MAX)
		h->sessions = HSM_SIGNERS_MAX;
	if (sem_init(&h->sign_sem, 0, (unsigned int)(h->sessions - 1)) != 0) {
		ret = err_set(e, HSMCA_ERR_INTERNAL, "sem_init: %s",
		    strerror(errno));
		goto out;
	}
	h->sem_ok = 1;
	*out = h;
	h = NULL;
	ret = 0;
out:
	hsm_close(h);
	return ret;
}

/* Forget the slot list and the token found in it. */
static void
slots_release(struct hsm *h)
{
	if (h->slots != NULL)
		PKCS11_release_all_slots(h->ctx, h->slots, h->nslots);
	h->slots = NULL;
	h->nslots = 0;
	h->slot = NULL;
}

void
hsm_close(struct hsm *h)
{
	if (h == NULL)
		return;
	if (h->raw_s != CK_INVALID_HANDLE)
		h->p11->C_CloseSession(h->raw_s);
	slots_release(h);
	/* libp11 0.4.12 finalizes through the module's function list in
	 * PKCS11_CTX_unload: a load that failed (a library that is not a
	 * PKCS#11 module) left none, and unloading it crashed. */
	if (h->ctx != NULL && h->ctx_loaded)
		PKCS11_CTX_unload(h->ctx);
	if (h->ctx != NULL)
		PKCS11_CTX_free(h->ctx);
	/* libp11 finalized the module; our handle only drops a reference. */
	if (h->dl != NULL)
		dlclose(h->dl);
	if (h->sem_ok)
		sem_destroy(&h->sign_sem);
	pthread_mutex_destroy(&h->raw_lock);
	pthread_mutex_destroy(&h->state_lock);
	free(h->copies);
	free(h->token_label);
	free(h->token_uri);
	free(h->pin_source);
	if (h->kept_pin != NULL) {
		size_t n = strlen(h->kept_pin);

		OPENSSL_cleanse(h->kept_pin, n);
		(void)munlock(h->kept_pin, n + 1);
		free(h->kept_pin);
	}
	free(h);
}

const char *
hsm_token_label(const struct hsm *h)
{
	return h->token_label;
}

void
hsm_sign_enter(struct hsm *h)
{
	struct timespec now;

	while (sem_wait(&h->sign_sem) == -1 && errno == EINTR)
		;
	/* Note when this signature started, for hsm_check(). */
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&h->state_lock);
	sign_slot = -1;
	for (int i = 0; i < h->sessions && i < HSM_SIGNERS_MAX; i++)
		if (h->since[i].tv_sec == 0 && h->since[i].tv_nsec == 0) {
			h->since[i] = now;
			sign_slot = i;
			break;
		}
	pthread_mutex_unlock(&h->state_lock);
}

void
hsm_sign_leave(struct hsm *h)
{
	unsigned long err = ERR_peek_last_error();
	char buf[256];

	pthread_mutex_lock(&h->state_lock);
	if (sign_slot >= 0) {
		h->since[sign_slot].tv_sec = 0;
		h->since[sign_slot].tv_nsec = 0;
		sign_slot = -1;
	}
	pthread_mutex_unlock(&h->state_lock);
	sem_post(&h->sign_sem);
	/* The callers clear OpenSSL's error queue before they sign: an
	 * error now is the token's (libp11 reports the CKR_ value). */
	if (err != 0) {
		ERR_error_string_n(err, buf, sizeof(buf));
		hsm_fault(h, "a signature failed (%s)", buf);
	}
}

int
hsm_check(struct hsm *h, struct hsmca_err *e)
{
	struct timespec now;
	int64_t longest = 0;
	int ret = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&h->state_lock);
	if (h->failed)
		ret = err_set(e, HSMCA_ERR_HSM_UNAVAILABLE, "the HSM is "
		    "unavailable: %s", h->why);
	else {
		for (int i = 0; i < h->sessions && i < HSM_SIGNERS_MAX; i++)
			if (h->since[i].tv_sec != 0 || h->since[i].tv_nsec != 0)
				if (ms_since(&h->since[i], &now) > longest)
					longest = ms_since(&h->since[i], &now);
		if (longest > h->timeout_ms)
			ret = err_set(e, HSMCA_ERR_HSM_UNAVAILABLE, "the HSM "
			    "is not answering: a signature has been waiting "
			    "for %lld ms", (long long)longest);
	}
	pthread_mutex_unlock(&h->state_lock);
	return ret;
}

int
hsm_failed(struct hsm *h)
{
	int failed;

	pthread_mutex_lock(&h->state_lock);
	failed = h->failed;
	pthread_mutex_unlock(&h->state_lock);
	return failed;
}

unsigned int
hsm_epoch(struct hsm *h)
{
	unsigned int epoch;

	pthread_mutex_lock(&h->state_lock);
	epoch = h->epoch;
	pthread_mutex_unlock(&h->state_lock);
	return epoch;
}

int
hsm_recover(struct hsm *h, struct hsmca_err *e)
{
	int ret;

	/* Every session goes, libp11's pool with its dead handles too;
	 * the token forgets the login with its last session. */
	pthread_mutex_lock(&h->raw_lock);
	(void)h->p11->C_CloseAllSessions(h->slot_id);
	h->raw_s = CK_INVALID_HANDLE;
	pthread_mutex_unlock(&h->raw_lock);
	slots_release(h);
	ERR_clear_error();
	if ((ret = token_attach(h, e)) != 0) {
		slots_release(h);
		pthread_mutex_lock(&h->state_lock);
		snprintf(h->why, sizeof(h->why), "%s", e != NULL ? e->msg :
		    "recovery failed");
		pthread_mutex_unlock(&h->state_lock);
		return ret;
	}
	pthread_mutex_lock(&h->state_lock);
	h->failed = 0;
	h->why[0] = '\0';
	h->epoch++;
	pthread_mutex_unlock(&h->state_lock);
	return 0;
}

/* ---- token initialization (demo and tests) ---- */

int
hsm_init_token(const struct config_hsm *cfg, const char *so_pin_source,
    struct hsmca_err *e)
{
	PKCS11_CTX *ctx = NULL;
	PKCS11_SLOT *slots = NULL, *slot = NULL;
	unsigned int nslots = 0;
	struct hsm_uri u;
	char *so_pin = NULL, *pin = NULL, padded[33];
	int ret = HSMCA_ERR_HSM_UNAVAILABLE, loaded = 0;

	memset(&u, 0, sizeof(u));
	if ((ret = hsm_uri_parse(cfg->token, &u, e)) != 0)
		goto out;
	if (u.token == NULL) {
		ret = err_set(e, HSMCA_ERR_CONFIG,
		    "token URI %s names no token label", cfg->token);
		goto out;
	}
	if ((ret = hsm_read_pin(so_pin_source, &so_pin, e)) != 0 ||
	    (ret = hsm_read_pin(cfg->pin_source, &pin, e)) != 0)
		goto out;
	ret = HSMCA_ERR_HSM_UNAVAILABLE;
	if ((ctx = PKCS11_CTX_new()) == NULL ||
	    PKCS11_CTX_load(ctx, cfg->module) != 0) {
		err_set_ssl(e, ret, "cannot load PKCS#11 module %s", cfg->module);
		goto out;
	}
	loaded = 1;
	if (PKCS11_enumerate_slots(ctx, &slots, &nslots) != 0) {
		err_set_ssl(e, ret, "cannot list slots");
		goto out;
	}
	for (unsigned int i = 0; i < nslots; i++) {
		if (slots[i].token != NULL && slots[i].token->initialized &&
		    strcmp(slots[i].token->label, u.token) == 0) {
			ret = err_set(e, HSMCA_ERR_EXISTS,
			    "a token labelled '%s' already exists", u.token);
			goto out;
		}
		if (slot == NULL && slots[i].token != NULL &&
		    !slots[i].token->initialized)
			slot = &slots[i];
	}
	if (slot == NULL) {
		err_set(e, ret, "no free slot to initialize a token in");
		goto out;
	}
	/* C_InitToken reads a 32-byte, blank-padded label; libp11 passes
	 * our string through as it is, so pad it here. */
	if (strlen(u.token) > 32) {
		ret = err_set(e, HSMCA_ERR_CONFIG,
		    "token label '%s' is longer than 32 bytes", u.token);
		goto out;
	}
	snprintf(padded, sizeof(padded), "%-32s", u.token);
	if (PKCS11_init_token(slot->token, so_pin, padded) != 0) {
		ret = err_set_ssl(e, HSMCA_ERR_HSM, "C_InitToken failed");
		goto out;
	}
	/* The module may renumber its slots after C_InitToken. */
	PKCS11_release_all_slots(ctx, slots, nslots);
	slots = NULL;
	slot = NULL;
	if (PKCS11_enumerate_slots(ctx, &slots, &nslots) != 0) {
		err_set_ssl(e, ret, "cannot list slots");
		goto out;
	}
	for (unsigned int i = 0; i < nslots && slot == NULL; i++)
		if (slots[i].token != NULL && slots[i].token->initialized &&
		    strcmp(slots[i].token->label, u.token) == 0)
			slot = &slots[i];
	if (slot == NULL) {
		err_set(e, ret, "token '%s' vanished after initialization",
		    u.token);
		goto out;
	}
	if (PKCS11_open_session(slot, 1) != 0 ||
	    PKCS11_login(slot, 1, so_pin) != 0 ||
	    PKCS11_init_pin(slot->token, pin) != 0) {
		ret = err_set_ssl(e, HSMCA_ERR_HSM,
		    "setting the user PIN of token '%s' failed", u.token);
		goto out;
	}
	PKCS11_logout(slot);
	ret = 0;
out:
	pin_free(so_pin);
	pin_free(pin);
	hsm_uri_free(&u);
	if (slots != NULL)
		PKCS11_release_all_slots(ctx, slots, nslots);
	if (ctx != NULL && loaded)
		PKCS11_CTX_unload(ctx);		/* see hsm_close */
	if (ctx != NULL)
		PKCS11_CTX_free(ctx);
	return ret;
}

/* ---- raw PKCS#11 helpers ---- */

/* The raw session, for one thread at a time (see the top of the file)
 * until raw_close(). */
static int
raw_open(struct hsm *h, CK_SESSION_HANDLE *s, struct hsmca_err *e)
{
	*s = CK_INVALID_HANDLE;
	pthread_mutex_lock(&h->raw_lock);
	if (h->slot == NULL || h->raw_s == CK_INVALID_HANDLE) {
		pthread_mutex_unlock(&h->raw_lock);
		return err_set(e, HSMCA_ERR_HSM_UNAVAILABLE, "the token is not "
		    "attached (recovering from a fault)");
	}
	*s = h->raw_s;
	return 0;
}

static void
raw_close(struct hsm *h, CK_SESSION_HANDLE s)
{
	if (s == CK_INVALID_HANDLE)
		return;
	pthread_mutex_unlock(&h->raw_lock);
}

/* The error for rv, what (a PKCS#11 call) did not return CKR_OK: a
 * fault marks the token failed (HSMCA_ERR_HSM_UNAVAILABLE); anything
 * else refused this one request (HSMCA_ERR_HSM). */
static int
raw_error(struct hsm *h, CK_RV rv, const char *what, struct hsmca_err *e)
{
	if (!ckr_is_fault(rv))
		return err_set(e, HSMCA_ERR_HSM, "%s: %s", what,
		    ckr_name(rv).s);
	hsm_fault(h, "%s: %s", what, ckr_name(rv).s);
	return err_set(e, HSMCA_ERR_HSM_UNAVAILABLE, "%s: %s", what,
	    ckr_name(rv).s);
}

/* The one object of class cls with this id and/or label; uri, the key
 * URI they come from, is for the messages.
 * HSMCA_ERR_KEY_NOT_FOUND if there is none, HSMCA_ERR_KEY_AMBIGUOUS if
 * there are several: the two must never be confused (a caller that
 * takes "not found" for "gone" would be wrong about a key still there). */
static int
raw_find(struct hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
    const unsigned char *id, size_t id_len, const char *label,
    const char *uri, CK_OBJECT_HANDLE *obj, struct hsmca_err *e)
{
	const char *kind = cls == CKO_PRIVATE_KEY ? "private" : "public";
	CK_ATTRIBUTE tmpl[4];
	CK_BBOOL token = CK_TRUE;
	CK_ULONG n = 0, count = 0, got;
	CK_OBJECT_HANDLE found[16], first = CK_INVALID_HANDLE;
	CK_RV rv;

	tmpl[n].type = CKA_CLASS;
	tmpl[n].pValue = &cls;
	tmpl[n++].ulValueLen = sizeof(cls);
	/* Not a session copy of a key (struct key_copy). */
	tmpl[n].type = CKA_TOKEN;
	tmpl[n].pValue = &token;
	tmpl[n++].ulValueLen = sizeof(token);
	if (id != NULL) {
		tmpl[n].type = CKA_ID;
		tmpl[n].pValue = (void *)id;
		tmpl[n++].ulValueLen = id_len;
	}
	if (label != NULL) {
		tmpl[n].type = CKA_LABEL;
		tmpl[n].pValue = (void *)label;
		tmpl[n++].ulValueLen = strlen(label);
	}
	/* Every match is counted, so the message can say how many. */
	if ((rv = h->p11->C_FindObjectsInit(s, tmpl, n)) == CKR_OK) {
		do {
			rv = h->p11->C_FindObjects(s, found, 16, &got);
			if (rv == CKR_OK && got > 0 && count == 0)
				first = found[0];
			count += rv == CKR_OK ? got : 0;
		} while (rv == CKR_OK && got > 0);
		h->p11->C_FindObjectsFinal(s);
	}
	if (rv != CKR_OK)
		return raw_error(h, rv, "C_FindObjects", e);
	if (count == 0)
		return err_set(e, HSMCA_ERR_KEY_NOT_FOUND,
		    "no %s key in token '%s' matches key URI %s", kind,
		    h->token_label, uri);
	if (count > 1)
		return err_set(e, HSMCA_ERR_KEY_AMBIGUOUS,
		    "key URI %s matches %lu %s keys in token '%s', not one",
		    uri, (unsigned long)count, kind, h->token_label);
	*obj = first;
	return 0;
}

/* Read one variable-length attribute (malloc'd). */
static int
raw_attr(struct hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_TYPE type, unsigned char **val, size_t *len)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };

	if (h->p11->C_GetAttributeValue(s, o, &a, 1) != CKR_OK ||
	    a.ulValueLen == CK_UNAVAILABLE_INFORMATION)
		return -1;
	if ((a.pValue = malloc(a.ulValueLen + 1)) == NULL)
		return -1;
	if (h->p11->C_GetAttributeValue(s, o, &a, 1) != CKR_OK) {
		free(a.pValue);
		return -1;
	}
	*val = a.pValue;
	*len = a.ulValueLen;
	return 0;
}

/* The public key of a token public-key object, as a software EVP_PKEY. */
static int
raw_public_key(struct hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
    EVP_PKEY **out, struct hsmca_err *e)
{
	CK_KEY_TYPE kt = 0;
	CK_ATTRIBUTE a = { CKA_KEY_TYPE, &kt, sizeof(kt) };
	unsigned char *v1 = NULL, *v2 = NULL;
	size_t l1 = 0, l2 = 0;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	ASN1_OBJECT *oid = NULL;
	ASN1_OCTET_STRING *pt = NULL;
	BIGNUM *n = NULL, *ex = NULL;
	const unsigned char *p;
	int ret = HSMCA_ERR_HSM;

	if (h->p11->C_GetAttributeValue(s, o, &a, 1) != CKR_OK) {
		err_set(e, ret, "cannot read the key type");
		goto out;
	}
	if ((bld = OSSL_PARAM_BLD_new()) == NULL)
		goto out;
	if (kt == CKK_EC) {
		if (raw_attr(h, s, o, CKA_EC_PARAMS, &v1, &l1) != 0 ||
		    raw_attr(h, s, o, CKA_EC_POINT, &v2, &l2) != 0) {
			err_set(e, ret, "cannot read the EC public key");
			goto out;
		}
		p = v1;
		if ((oid = d2i_ASN1_OBJECT(NULL, &p, (long)l1)) == NULL ||
		    OBJ_obj2nid(oid) == NID_undef) {
			err_set(e, ret, "EC key on an unnamed curve");
			goto out;
		}
		/* CKA_EC_POINT is a DER OCTET STRING around the point. */
		p = v2;
		if ((pt = d2i_ASN1_OCTET_STRING(NULL, &p, (long)l2)) == NULL) {
			err_set(e, ret, "malformed CKA_EC_POINT");
			goto out;
		}
		if (!OSSL_PARAM_BLD_push_utf8_string(bld,
		    OSSL_PKEY_PARAM_GROUP_NAME, OBJ_nid2sn(OBJ_obj2nid(oid)), 0) ||
		    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
		    ASN1_STRING_get0_data(pt), (size_t)ASN1_STRING_length(pt)))
			goto out;
		pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	} else if (kt == CKK_RSA) {
		if (raw_attr(h, s, o, CKA_MODULUS, &v1, &l1) != 0 ||
		    raw_attr(h, s, o, CKA_PUBLIC_EXPONENT, &v2, &l2) != 0) {
			err_set(e, ret, "cannot read the RSA public key");
			goto out;
		}
		if ((n = BN_bin2bn(v1, (int)l1, NULL)) == NULL ||
		    (ex = BN_bin2bn(v2, (int)l2, NULL)) == NULL ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, ex))
			goto out;
		pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	} else {
		err_set(e, ret, "unsupported key type %lu in token", kt);
		goto out;
	}
	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL || pctx == NULL ||
	    EVP_PKEY_fromdata_init(pctx) <= 0 ||
	    EVP_PKEY_fromdata(pctx, out, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		err_set_ssl(e, ret, "cannot rebuild the public key");
		goto out;
	}
	ret = 0;
out:
	if (ret != 0 && e != NULL && e->code == 0)
		err_set_ssl(e, ret, "cannot read the public key");
	free(v1);
	free(v2);
	ASN1_OBJECT_free(oid);
	ASN1_OCTET_STRING_free(pt);
	BN_free(n);
	BN_free(ex);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(pctx);
	return ret;
}

/* Labels are equal, an absent one equal to an empty one. */
static int
label_eq(const char *a, const char *b)
{
	return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

/* The libp11 EVP_PKEY of the private key raw PKCS#11 found: the one
 * private key with its CKA_ID and CKA_LABEL, whose public half (libp11
 * takes it from a public object with the same CKA_ID) is pub. Two keys
 * sharing an id and label are ambiguous (raw_find would have said so,
 * unless the token changed since); a public half that is not pub means
 * libp11 paired the key with another key's public object, and
 * OCSP_basic_sign and TLS, which match the key to a certificate with
 * libp11's public half, would refuse or go wrong. */
static int
p11_private_key(struct hsm *h, const unsigned char *id, size_t id_len,
    const char *label, const EVP_PKEY *pub, EVP_PKEY **out,
    struct hsmca_err *e)
{
	PKCS11_KEY *keys = NULL, *key = NULL;
	unsigned int n = 0, count = 0;
	const char *name = label != NULL && *label != '\0' ? label :
	    "(no label)";
	int ret;

	*out = NULL;
	if (h->slot == NULL)
		return err_set(e, HSMCA_ERR_HSM_UNAVAILABLE, "the token is not "
		    "attached (recovering from a fault)");
	/* libp11 takes a session from its pool: count it like a signature. */
	ERR_clear_error();
	hsm_sign_enter(h);
	if (PKCS11_enumerate_keys(h->slot->token, &keys, &n) != 0) {
		if (ckr_is_fault(ERR_GET_REASON(ERR_peek_last_error())))
			hsm_fault(h, "cannot list the keys: %s",
			    ckr_name(ERR_GET_REASON(ERR_peek_last_error())).s);
		ret = err_set_ssl(e, HSMCA_ERR_HSM, "cannot list the keys of "
		    "token '%s'", h->token_label);
		goto out;
	}
	for (unsigned int i = 0; i < n; i++) {
		if (!keys[i].isPrivate || keys[i].id_len != id_len ||
		    memcmp(keys[i].id, id, id_len) != 0 ||
		    !label_eq(keys[i].label, label))
			continue;
		if (count++ == 0)
			key = &keys[i];
	}
	/* The token has the key (raw PKCS#11 found it): not "not found". */
	if (count == 0) {
		ret = err_set(e, HSMCA_ERR_HSM, "libp11 does not see key %s "
		    "in token '%s'", name, h->token_label);
		goto out;
	}
	if (count > 1) {
		ret = err_set(e, HSMCA_ERR_KEY_AMBIGUOUS, "libp11 sees %u "
		    "private keys with the CKA_ID and label of key %s in "
		    "token '%s', not one", count, name, h->token_label);
		goto out;
	}
	if ((*out = PKCS11_get_private_key(key)) == NULL) {
		ret = err_set_ssl(e, HSMCA_ERR_HSM, "libp11 cannot use key %s",
		    name);
		goto out;
	}
	if (EVP_PKEY_eq(*out, pub) != 1) {
		EVP_PKEY_free(*out);
		*out = NULL;
		ERR_clear_error();
		ret = err_set(e, HSMCA_ERR_KEY_AMBIGUOUS, "libp11 pairs key %s "
		    "in token '%s' with another public key than its own: "
		    "another key shares its CKA_ID (give each key its own)",
		    name, h->token_label);
		goto out;
	}
	ret = 0;
out:
	hsm_sign_leave(h);
	return ret;
}

/* Finish a struct hsm_key from a private and public object handle. */
static int
key_complete(struct hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv,
    CK_OBJECT_HANDLE pub, const struct key_copy *c, struct hsm_key **out,
    struct hsmca_err *e)
{
	struct hsm_key *k = NULL;
	unsigned char *id = NULL, *label = NULL;
	size_t id_len = 0, label_len = 0;
	int ret = HSMCA_ERR_HSM;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	if (raw_attr(h, s, priv, CKA_ID, &id, &id_len) != 0 || id_len == 0 ||
	    id_len > sizeof(k->id)) {
		err_set(e, ret, "key has no usable CKA_ID");
		goto out;
	}
	memcpy(k->id, id, id_len);
	k->id_len = id_len;
	if (raw_attr(h, s, priv, CKA_LABEL, &label, &label_len) == 0) {
		label[label_len] = '\0';
		k->label = (char *)label;
		label = NULL;
	}
	if ((ret = raw_public_key(h, s, pub, &k->pub, e)) != 0)
		goto out;
	/* The copy signs if libp11 sees it; the key itself otherwise. */
	if (c == NULL || p11_private_key(h, c->cid, sizeof(c->cid), k->label,
	    k->pub, &k->priv, e) != 0) {
		ERR_clear_error();
		if ((ret = p11_private_key(h, k->id, k->id_len, k->label,
		    k->pub, &k->priv, e)) != 0)
			goto out;
	}
	if ((k->uri = uri_make(h->token_label, k->id, k->id_len,
	    k->label)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	*out = k;
	k = NULL;
	ret = 0;
out:
	free(id);
	free(label);
	hsm_key_free(k);
	return ret;
}

/* ---- session copies of signing keys (struct key_copy) ---- */

/* Destroy o, a copy made under cid, if it still is one: a handle from
 * an earlier session may name another object by now, and the CKA_ID,
 * random and ours, is what tells. Called with the raw session s. */
static void
copy_destroy(struct hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
    const unsigned char *cid)
{
	unsigned char id[HSM_ID_LEN];
	CK_ATTRIBUTE a = { CKA_ID, id, sizeof(id) };

	if (o == CK_INVALID_HANDLE ||
	    h->p11->C_GetAttributeValue(s, o, &a, 1) != CKR_OK ||
	    a.ulValueLen != sizeof(id) || memcmp(id, cid, sizeof(id)) != 0)
		return;
	(void)h->p11->C_DestroyObject(s, o);
}

/* Is o the session object just copied under cid? A token that made a
 * token object of it, whatever the template said, is not used so. */
static int
copy_is_session(struct hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
    const unsigned char *cid)
{
	unsigned char id[HSM_ID_LEN];
	CK_BBOOL token = CK_TRUE;
	CK_ATTRIBUTE a[2] = {
		{ CKA_TOKEN, &token, sizeof(token) },
		{ CKA_ID, id, sizeof(id) },
	};

	return h->p11->C_GetAttributeValue(s, o, a, 2) == CKR_OK &&
	    token == CK_FALSE && a[1].ulValueLen == sizeof(id) &&
	    memcmp(id, cid, sizeof(id)) == 0;
}

/* The live copy of the key of CKA_ID id in h->copies, or NULL; a free
 * entry (or one of an earlier session) in *slot if slot is not NULL. */
static struct key_copy *
copy_find(struct hsm *h, const unsigned char *id, size_t id_len,
    unsigned int live, struct key_copy **slot)
{
	struct key_copy *c;

	for (c = h->copies; c != NULL && c < h->copies + HSM_COPIES_MAX; c++) {
		if (c->epoch == live && c->id_len == id_len &&
		    memcmp(c->id, id, id_len) == 0)
			return c;
		if (c->epoch != live && slot != NULL && *slot == NULL)
			*slot = c;
	}
	return NULL;
}

/* The session copy of the key pair priv and pub (CKA_ID id), made now
 * if this session has none: NULL when copies are off, all in use, or
 * the token will not make them (CKA_COPYABLE false, C_CopyObject not
 * supported); the token objects then sign. Called with the raw session
 * s, which holds the copies. */
static const struct key_copy *
copy_get(struct hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv,
    CK_OBJECT_HANDLE pub, const unsigned char *id, size_t id_len)
{
	static const CK_BBOOL no = CK_FALSE;
	struct key_copy *c, *slot = NULL;
	CK_ATTRIBUTE t[2];
	CK_OBJECT_HANDLE cp = CK_INVALID_HANDLE, cq = CK_INVALID_HANDLE;
	/* Copies of an earlier session are gone with it (hsm_recover). */
	unsigned int live = hsm_epoch(h) + 1;

	if (!h->copy || id_len > sizeof(slot->id))
		return NULL;
	if (h->copies == NULL &&
	    (h->copies = calloc(HSM_COPIES_MAX, sizeof(*c))) == NULL)
		return NULL;
	if ((c = copy_find(h, id, id_len, live, &slot)) != NULL)
		return c;
	if ((c = slot) == NULL || RAND_bytes(c->cid, sizeof(c->cid)) != 1)
		return NULL;
	t[0].type = CKA_TOKEN;
	t[0].pValue = (void *)&no;
	t[0].ulValueLen = sizeof(no);
	t[1].type = CKA_ID;
	t[1].pValue = c->cid;
	t[1].ulValueLen = sizeof(c->cid);
	if (h->p11->C_CopyObject(s, priv, t, 2, &cp) != CKR_OK ||
	    !copy_is_session(h, s, cp, c->cid) ||
	    h->p11->C_CopyObject(s, pub, t, 2, &cq) != CKR_OK ||
	    !copy_is_session(h, s, cq, c->cid)) {
		copy_destroy(h, s, cp, c->cid);
		copy_destroy(h, s, cq, c->cid);
		c->epoch = 0;
		return NULL;
	}
	memcpy(c->id, id, id_len);
	c->id_len = id_len;
	c->priv = cp;
	c->pub = cq;
	c->epoch = live;
	return c;
}

/* The key of CKA_ID id is going: so does its copy, which would sign on
 * for as long as the session lasts. */
static void
copy_forget(struct hsm *h, CK_SESSION_HANDLE s, const unsigned char *id,
    size_t id_len)
{
	struct key_copy *c;

	if ((c = copy_find(h, id, id_len, hsm_epoch(h) + 1, NULL)) == NULL)
		return;
	copy_destroy(h, s, c->priv, c->cid);
	copy_destroy(h, s, c->pub, c->cid);
	c->epoch = 0;
}

/* ---- key generation and import ---- */

/* Append one attribute to a PKCS#11 template. */
#define ATTR(t, n, ty, v, l) do { t[n].type = (ty); t[n].pValue = (void *)(v); \
	t[n].ulValueLen = (l); n++; } while (0)

/* Template values: the token only reads them. */
static const CK_BBOOL ck_true = CK_TRUE, ck_false = CK_FALSE;

/* The two templates of a new key pair, for C_GenerateKeyPair and
 * C_CreateObject alike: sized for an imported RSA key, the largest. */
struct key_tmpl {
	unsigned char	id[HSM_ID_LEN];
	CK_ATTRIBUTE	priv[24];
	CK_ATTRIBUTE	pub[12];
	CK_ULONG	npriv;
	CK_ULONG	npub;
};

/* Start the templates with what every CA key gets, generated or imported:
 * a private key that stays in the token (sensitive, never extractable)
 * and only signs, a public key that verifies, both under a new random
 * CKA_ID and the given CKA_LABEL. An import (kt not NULL) also names
 * each object's class and *kt, its key type, which C_GenerateKeyPair
 * infers. The caller adds the key's own values; label and kt must
 * outlive t. */
static int
key_tmpl_init(struct key_tmpl *t, const char *label, const CK_KEY_TYPE *kt,
    struct hsmca_err *e)
{
	static const CK_OBJECT_CLASS privc = CKO_PRIVATE_KEY;
	static const CK_OBJECT_CLASS pubc = CKO_PUBLIC_KEY;

	memset(t, 0, sizeof(*t));
	if (RAND_bytes(t->id, sizeof(t->id)) != 1)
		return err_set_ssl(e, HSMCA_ERR_INTERNAL, "RAND_bytes");
	if (kt != NULL) {
		ATTR(t->pub, t->npub, CKA_CLASS, &pubc, sizeof(pubc));
		ATTR(t->pub, t->npub, CKA_KEY_TYPE, kt, sizeof(*kt));
		ATTR(t->priv, t->npriv, CKA_CLASS, &privc, sizeof(privc));
		ATTR(t->priv, t->npriv, CKA_KEY_TYPE, kt, sizeof(*kt));
	}
	ATTR(t->pub, t->npub, CKA_TOKEN, &ck_true, sizeof(ck_true));
	ATTR(t->pub, t->npub, CKA_VERIFY, &ck_true, sizeof(ck_true));
	ATTR(t->pub, t->npub, CKA_ID, t->id, sizeof(t->id));
	ATTR(t->pub, t->npub, CKA_LABEL, label, strlen(label));
	ATTR(t->priv, t->npriv, CKA_TOKEN, &ck_true, sizeof(ck_true));
	ATTR(t->priv, t->npriv, CKA_PRIVATE, &ck_true, sizeof(ck_true));
	ATTR(t->priv, t->npriv, CKA_SENSITIVE, &ck_true, sizeof(ck_true));
	ATTR(t->priv, t->npriv, CKA_EXTRACTABLE, &ck_false, sizeof(ck_false));
	ATTR(t->priv, t->npriv, CKA_SIGN, &ck_true, sizeof(ck_true));
	ATTR(t->priv, t->npriv, CKA_DECRYPT, &ck_false, sizeof(ck_false));
	ATTR(t->priv, t->npriv, CKA_DERIVE, &ck_false, sizeof(ck_false));
	ATTR(t->priv, t->npriv, CKA_UNWRAP, &ck_false, sizeof(ck_false));
	ATTR(t->priv, t->npriv, CKA_ID, t->id, sizeof(t->id));
	ATTR(t->priv, t->npriv, CKA_LABEL, label, strlen(label));
	return 0;
}

/* Finish a key pair just made in the token, or destroy both halves so a
 * failure leaves nothing behind. */
static int
key_adopt(struct hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv,
    CK_OBJECT_HANDLE pub, struct hsm_key **out, struct hsmca_err *e)
{
	int ret;

	if ((ret = key_complete(h, s, priv, pub, NULL, out, e)) != 0) {
		h->p11->C_DestroyObject(s, priv);
		h->p11->C_DestroyObject(s, pub);
	}
	return ret;
}

static int
curve_params(int nid, unsigned char **der, int *len)
{
	ASN1_OBJECT *o = OBJ_nid2obj(nid);

	*der = NULL;
	if (o == NULL || (*len = i2d_ASN1_OBJECT(o, der)) <= 0)
		return -1;
	return 0;
}

/* A key pair under label and id (HSM_ID_LEN bytes), or a random id if
 * id is NULL. */
static int
generate(struct hsm *h, enum key_type type, const char *label,
    const unsigned char *id, struct hsm_key **out, struct hsmca_err *e)
{
	CK_ULONG bits = 0;
	CK_BYTE pubexp[] = { 0x01, 0x00, 0x01 };
	unsigned char *ecparams = NULL;
	int ecparams_len = 0;
	CK_MECHANISM mech = { 0, NULL, 0 };
	struct key_tmpl t;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
	CK_RV rv;
	int ret = HSMCA_ERR_HSM;

	*out = NULL;
	if ((ret = key_tmpl_init(&t, label, NULL, e)) != 0)
		return ret;
	/* The templates point at t.id. */
	if (id != NULL)
		memcpy(t.id, id, sizeof(t.id));
	switch (type) {
	case KEY_EC_P256:
	case KEY_EC_P384:
		if (curve_params(type == KEY_EC_P256 ? NID_X9_62_prime256v1 :
		    NID_secp384r1, &ecparams, &ecparams_len) != 0) {
			ret = err_set(e, HSMCA_ERR_INTERNAL, "curve OID");
			goto out;
		}
		mech.mechanism = CKM_EC_KEY_PAIR_GEN;
		ATTR(t.pub, t.npub, CKA_EC_PARAMS, ecparams,
		    (CK_ULONG)ecparams_len);
		break;
	case KEY_RSA_2048:
	case KEY_RSA_3072:
		bits = type == KEY_RSA_2048 ? 2048 : 3072;
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		ATTR(t.pub, t.npub, CKA_MODULUS_BITS, &bits, sizeof(bits));
		ATTR(t.pub, t.npub, CKA_PUBLIC_EXPONENT, pubexp, sizeof(pubexp));
		break;
	default:
		ret = err_set(e, HSMCA_ERR_ARG, "unknown key type");
		goto out;
	}
	if ((ret = raw_open(h, &s, e)) != 0)
		goto out;
	ret = HSMCA_ERR_HSM;
	rv = h->p11->C_GenerateKeyPair(s, &mech, t.pub, t.npub, t.priv,
	    t.npriv, &pub, &priv);
	if (rv != CKR_OK) {
		err_set(e, ret, "C_GenerateKeyPair (%s) in token '%s': %s",
		    keytype_name(type), h->token_label, ckr_name(rv).s);
		goto out;
	}
	ret = key_adopt(h, s, priv, pub, out, e);
out:
	OPENSSL_free(ecparams);
	raw_close(h, s);
	return ret;
}

int
hsm_generate_key(struct hsm *h, enum key_type type, const char *label,
    struct hsm_key **out, struct hsmca_err *e)
{
	return generate(h, type, label, NULL, out, e);
}

int
hsm_key_uri_new(struct hsm *h, const char *label, char **uri,
    struct hsmca_err *e)
{
	unsigned char id[HSM_ID_LEN];

	*uri = NULL;
	if (RAND_bytes(id, sizeof(id)) != 1)
		return err_set_ssl(e, HSMCA_ERR_INTERNAL, "RAND_bytes");
	if ((*uri = uri_make(h->token_label, id, sizeof(id), label)) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	return 0;
}

int
hsm_generate_key_at(struct hsm *h, enum key_type type, const char *uri,
    struct hsm_key **out, struct hsmca_err *e)
{
	struct hsm_uri u;
	int ret;

	*out = NULL;
	if ((ret = hsm_uri_parse(uri, &u, e)) != 0)
		return ret;
	if (u.id == NULL || u.id_len != HSM_ID_LEN || u.object == NULL ||
	    (u.token != NULL && strcmp(u.token, h->token_label) != 0))
		ret = err_set(e, HSMCA_ERR_ARG, "key URI %s does not name a "
		    "new key of token '%s' (hsm_key_uri_new)", uri,
		    h->token_label);
	else
		ret = generate(h, type, u.object, u.id, out, e);
	hsm_uri_free(&u);
	return ret;
}

/* A BIGNUM parameter of pk as big-endian bytes (malloc'd, wiped by the
 * caller), left-padded to pad bytes when pad > 0. */
static unsigned char *
bn_param(const EVP_PKEY *pk, const char *name, int pad, CK_ULONG *len)
{
	BIGNUM *bn = NULL;
	unsigned char *buf = NULL;
	int n;

	if (!EVP_PKEY_get_bn_param(pk, name, &bn))
		return NULL;
	n = pad > 0 ? pad : BN_num_bytes(bn);
	if ((buf = malloc((size_t)n)) != NULL &&
	    BN_bn2binpad(bn, buf, n) != n) {
		free(buf);
		buf = NULL;
	}
	*len = (CK_ULONG)n;
	BN_clear_free(bn);
	return buf;
}

int
hsm_import_key(struct hsm *h, EVP_PKEY *pk, const char *label,
    struct hsm_key **out, struct hsmca_err *e)
{
	CK_KEY_TYPE kt = 0;
	struct key_tmpl t;
	unsigned char *secret[8] = { NULL };
	CK_ULONG secret_len[8] = { 0 };
	unsigned char *pub1 = NULL, *pub2 = NULL, *ecparams = NULL;
	int ecparams_len = 0;
	size_t nsecret = 0;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE, pub = CK_INVALID_HANDLE;
	ASN1_OCTET_STRING *os = NULL;
	CK_ULONG l1 = 0, l2 = 0;
	CK_RV rv;
	int ret = HSMCA_ERR_HSM;

	*out = NULL;
	if ((ret = key_tmpl_init(&t, label, &kt, e)) != 0)
		return ret;

	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) {
		char group[64];
		unsigned char point[256];
		size_t plen = 0;
		int nid, fieldlen;

		kt = CKK_EC;
		if (!EVP_PKEY_get_utf8_string_param(pk,
		    OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) ||
		    (nid = OBJ_sn2nid(group)) == NID_undef)
			nid = OBJ_txt2nid(group);
		if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1 &&
		    nid != NID_secp521r1) {
			ret = err_set(e, HSMCA_ERR_KEY_POLICY,
			    "CA key on curve %s: only P-256, P-384, P-521", group);
			goto out;
		}
		fieldlen = (EVP_PKEY_get_bits(pk) + 7) / 8;
		if (curve_params(nid, &ecparams, &ecparams_len) != 0 ||
		    (secret[nsecret] = bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY,
		    fieldlen, &secret_len[nsecret])) == NULL) {
			ret = err_set_ssl(e, HSMCA_ERR_ARG,
			    "cannot read the EC private key");
			goto out;
		}
		ATTR(t.priv, t.npriv, CKA_EC_PARAMS, ecparams,
		    (CK_ULONG)ecparams_len);
		ATTR(t.priv, t.npriv, CKA_VALUE, secret[nsecret],
		    secret_len[nsecret]);
		nsecret++;
		EVP_PKEY_set_utf8_string_param(pk,
		    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed");
		if (!EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY,
		    point, sizeof(point), &plen) ||
		    (os = ASN1_OCTET_STRING_new()) == NULL ||
		    !ASN1_OCTET_STRING_set(os, point, (int)plen) ||
		    (l1 = (CK_ULONG)i2d_ASN1_OCTET_STRING(os, &pub1)) == 0) {
			ret = err_set_ssl(e, HSMCA_ERR_ARG,
			    "cannot read the EC public key");
			goto out;
		}
		ATTR(t.pub, t.npub, CKA_EC_PARAMS, ecparams,
		    (CK_ULONG)ecparams_len);
		ATTR(t.pub, t.npub, CKA_EC_POINT, pub1, l1);
	} else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA) {
		static const struct { const char *name; CK_ATTRIBUTE_TYPE type; }
		    rsa[] = {
			{ OSSL_PKEY_PARAM_RSA_D, CKA_PRIVATE_EXPONENT },
			{ OSSL_PKEY_PARAM_RSA_FACTOR1, CKA_PRIME_1 },
			{ OSSL_PKEY_PARAM_RSA_FACTOR2, CKA_PRIME_2 },
			{ OSSL_PKEY_PARAM_RSA_EXPONENT1, CKA_EXPONENT_1 },
			{ OSSL_PKEY_PARAM_RSA_EXPONENT2, CKA_EXPONENT_2 },
			{ OSSL_PKEY_PARAM_RSA_COEFFICIENT1, CKA_COEFFICIENT },
		};

		kt = CKK_RSA;
		if (EVP_PKEY_get_bits(pk) < 2048) {
			ret = err_set(e, HSMCA_ERR_KEY_POLICY,
			    "CA key is RSA-%d: at least 2048 bits",
			    EVP_PKEY_get_bits(pk));
			goto out;
		}
		if ((pub1 = bn_param(pk, OSSL_PKEY_PARAM_RSA_N, 0, &l1)) == NULL ||
		    (pub2 = bn_param(pk, OSSL_PKEY_PARAM_RSA_E, 0, &l2)) == NULL) {
			ret = err_set_ssl(e, HSMCA_ERR_ARG,
			    "cannot read the RSA public key");
			goto out;
		}
		ATTR(t.priv, t.npriv, CKA_MODULUS, pub1, l1);
		ATTR(t.priv, t.npriv, CKA_PUBLIC_EXPONENT, pub2, l2);
		ATTR(t.pub, t.npub, CKA_MODULUS, pub1, l1);
		ATTR(t.pub, t.npub, CKA_PUBLIC_EXPONENT, pub2, l2);
		for (size_t i = 0; i < sizeof(rsa) / sizeof(rsa[0]); i++) {
			if ((secret[nsecret] = bn_param(pk, rsa[i].name, 0,
			    &secret_len[nsecret])) == NULL) {
				ret = err_set_ssl(e, HSMCA_ERR_ARG,
				    "RSA private key lacks CRT parameters");
				goto out;
			}
			ATTR(t.priv, t.npriv, rsa[i].type, secret[nsecret],
			    secret_len[nsecret]);
			nsecret++;
		}
	} else {
		ret = err_set(e, HSMCA_ERR_KEY_POLICY,
		    "CA key type %s not supported: EC or RSA only",
		    EVP_PKEY_get0_type_name(pk));
		goto out;
	}
	if ((ret = raw_open(h, &s, e)) != 0)
		goto out;
	ret = HSMCA_ERR_HSM;
	if ((rv = h->p11->C_CreateObject(s, t.priv, t.npriv, &priv)) != CKR_OK) {
		err_set(e, ret, "C_CreateObject (private key): %s",
		    ckr_name(rv).s);
		goto out;
	}
	if ((rv = h->p11->C_CreateObject(s, t.pub, t.npub, &pub)) != CKR_OK) {
		err_set(e, ret, "C_CreateObject (public key): %s",
		    ckr_name(rv).s);
		h->p11->C_DestroyObject(s, priv);
		goto out;
	}
	ret = key_adopt(h, s, priv, pub, out, e);
out:
	for (size_t i = 0; i < nsecret; i++)
		util_freezero(secret[i], secret_len[i]);
	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC)
		OPENSSL_free(pub1);
	else
		free(pub1);
	free(pub2);
	OPENSSL_free(ecparams);
	ASN1_OCTET_STRING_free(os);
	raw_close(h, s);
	return ret;
}

static int
load_key(struct hsm *h, const char *uri, int signing, struct hsm_key **out,
    struct hsmca_err *e)
{
	struct hsm_uri u;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE priv, pub, other;
	unsigned char *id = NULL, *label = NULL;
	size_t id_len = 0, label_len = 0;
	int ret;

	*out = NULL;
	if ((ret = hsm_uri_parse(uri, &u, e)) != 0)
		return ret;
	if (u.id == NULL && u.object == NULL) {
		ret = err_set(e, HSMCA_ERR_CONFIG,
		    "key URI %s names neither id nor object", uri);
		goto out;
	}
	if (u.token != NULL && strcmp(u.token, h->token_label) != 0) {
		ret = err_set(e, HSMCA_ERR_KEY_NOT_FOUND,
		    "key URI names token '%s' but the open token is '%s'",
		    u.token, h->token_label);
		goto out;
	}
	if ((ret = raw_open(h, &s, e)) != 0)
		goto out;
	if ((ret = raw_find(h, s, CKO_PRIVATE_KEY, u.id, u.id_len, u.object,
	    uri, &priv, e)) != 0)
		goto out;
	/* The public object shares the private key's CKA_ID, and its label
	 * when it has one: another key may share the id (key_complete
	 * checks that libp11 sees the same pair). */
	if (raw_attr(h, s, priv, CKA_ID, &id, &id_len) != 0) {
		ret = err_set(e, HSMCA_ERR_HSM, "key has no CKA_ID");
		goto out;
	}
	if (raw_attr(h, s, priv, CKA_LABEL, &label, &label_len) == 0)
		label[label_len] = '\0';
	ret = raw_find(h, s, CKO_PUBLIC_KEY, id, id_len,
	    label != NULL && label_len > 0 ? (char *)label : NULL, uri, &pub, e);
	/* A public half labelled otherwise is the pair's only if no other
	 * private key has the id. */
	if (ret == HSMCA_ERR_KEY_NOT_FOUND && label != NULL && label_len > 0) {
		ret = raw_find(h, s, CKO_PRIVATE_KEY, id, id_len, NULL, uri,
		    &other, e);
		if (ret == HSMCA_ERR_KEY_AMBIGUOUS)
			ret = err_set(e, ret, "key URI %s: no public key in "
			    "token '%s' has the private key's CKA_ID and label, "
			    "and other private keys share its CKA_ID", uri,
			    h->token_label);
		else if (ret == 0)
			ret = raw_find(h, s, CKO_PUBLIC_KEY, id, id_len, NULL,
			    uri, &pub, e);
	}
	/* A private key without it is there all the same: not "not found". */
	if (ret == HSMCA_ERR_KEY_NOT_FOUND)
		ret = err_set(e, HSMCA_ERR_HSM, "key URI %s: the private key is "
		    "in token '%s' but no public key has its CKA_ID", uri,
		    h->token_label);
	if (ret != 0)
		goto out;
	ret = key_complete(h, s, priv, pub, signing ? copy_get(h, s, priv, pub,
	    id, id_len) : NULL, out, e);
out:
	free(id);
	free(label);
	raw_close(h, s);
	hsm_uri_free(&u);
	return ret;
}

int
hsm_load_key(struct hsm *h, const char *uri, struct hsm_key **out,
    struct hsmca_err *e)
{
	return load_key(h, uri, 0, out, e);
}

int
hsm_load_signing_key(struct hsm *h, const char *uri, struct hsm_key **out,
    struct hsmca_err *e)
{
	return load_key(h, uri, 1, out, e);
}

/* Destroy k's object of class cls; one already gone is not an error. */
static int
raw_destroy(struct hsm *h, CK_SESSION_HANDLE s, const struct hsm_key *k,
    CK_OBJECT_CLASS cls, struct hsmca_err *e)
{
	struct hsmca_err fe;
	char what[HSMCA_ERRMSG_MAX];
	CK_OBJECT_HANDLE o;
	CK_RV rv;
	int ret;

	err_clear(&fe);
	if ((ret = raw_find(h, s, cls, k->id, k->id_len, NULL, k->uri, &o,
	    &fe)) == HSMCA_ERR_KEY_NOT_FOUND)
		return 0;
	if (ret != 0)
		return err_set(e, ret, "%s", fe.msg);
	if ((rv = h->p11->C_DestroyObject(s, o)) == CKR_OK)
		return 0;
	snprintf(what, sizeof(what), "the token kept %s %s: C_DestroyObject",
	    cls == CKO_PRIVATE_KEY ? "key" : "the public half of key", k->uri);
	return raw_error(h, rv, what, e);
}

int
hsm_destroy_key(struct hsm *h, struct hsm_key *k, struct hsmca_err *e)
{
	CK_SESSION_HANDLE s;
	int ret;

	if ((ret = raw_open(h, &s, e)) != 0)
		return ret;
	/* The public half goes only after the private one: a private key
	 * the token kept stays loadable (hsm_load_key needs both), rather
	 * than looking gone. */
	copy_forget(h, s, k->id, k->id_len);
	if ((ret = raw_destroy(h, s, k, CKO_PRIVATE_KEY, e)) == 0)
		ret = raw_destroy(h, s, k, CKO_PUBLIC_KEY, e);
	raw_close(h, s);
	return ret;
}

int
hsm_key_info(struct hsm *h, const struct hsm_key *k, struct hsm_key_info *out,
    struct hsmca_err *e)
{
	CK_BBOOL v[6] = { 0 };
	CK_ATTRIBUTE a[6] = {
		{ CKA_TOKEN, &v[0], sizeof(CK_BBOOL) },
		{ CKA_PRIVATE, &v[1], sizeof(CK_BBOOL) },
		{ CKA_SENSITIVE, &v[2], sizeof(CK_BBOOL) },
		{ CKA_EXTRACTABLE, &v[3], sizeof(CK_BBOOL) },
		{ CKA_ALWAYS_SENSITIVE, &v[4], sizeof(CK_BBOOL) },
		{ CKA_NEVER_EXTRACTABLE, &v[5], sizeof(CK_BBOOL) },
	};
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE o;
	CK_RV rv;
	int ret;

	if ((ret = raw_open(h, &s, e)) != 0)
		return ret;
	if ((ret = raw_find(h, s, CKO_PRIVATE_KEY, k->id, k->id_len, NULL,
	    k->uri, &o, e)) == 0) {
		rv = h->p11->C_GetAttributeValue(s, o, a, 6);
		if (rv != CKR_OK)
			ret = err_set(e, HSMCA_ERR_HSM,
			    "C_GetAttributeValue: %s", ckr_name(rv).s);
	}
	raw_close(h, s);
	out->token = v[0];
	out->private_ = v[1];
	out->sensitive = v[2];
	out->extractable = v[3];
	out->always_sensitive = v[4];
	out->never_extractable = v[5];
	return ret;
}

void
hsm_key_free(struct hsm_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->priv);
	EVP_PKEY_free(k->pub);
	free(k->label);
	free(k->uri);
	free(k);
}

EVP_PKEY *
hsm_key_private(const struct hsm_key *k)
{
	return k->priv;
}

EVP_PKEY *
hsm_key_public(const struct hsm_key *k)
{
	return k->pub;
}

const char *
hsm_key_uri(const struct hsm_key *k)
{
	return k->uri;
}
