/* config.c: hsmca.conf, parsed into plain structs and printed back.
 *
 * The format, line by line:
 *
 *	# a comment line; a comment may also follow a value: "key = v  # ..."
 *	[hsm]                      a section header: hsm, store, ca, daemon,
 *	[profile NAME]             a profile (NAME: letters, digits, . _ -)
 *	[est] or [est LABEL]       an EST label (LABEL: letters, digits, . _ -)
 *	key = value                a key of the current section
 *	key = "  v # w  "          double quotes keep '#' and outer spaces;
 *	                           inside them \" and \\ are the only escapes
 *
 * Blank lines and leading or trailing spaces and tabs are ignored; an
 * unquoted '#' starts a comment when it begins the value or follows a
 * space or tab (so "http://h/x#y" keeps its '#'). Keys, section names,
 * booleans (true/false/yes/no) and the names in lists are case-sensitive.
 * A line holds at most 4096 bytes; a NUL byte or any other control
 * character except tab is refused. Each section (each profile name, each
 * EST label) and each key within a section appears at most once. A file is
 * parsed on top of the embedded defaults, so a key not given keeps its
 * default, except that hsm.module, hsm.token, hsm.pin-source and
 * store.path must be given, and a file's [est] sections replace the
 * default label.
 *
 *	[hsm]
 *	module = /usr/lib/softhsm/libsofthsm2.so   absolute path
 *	token = pkcs11:token=hsmca                 PKCS#11 URI (RFC 7512)
 *	pin-source = file:/etc/hsmca/pin           or env:HSMCA_PIN
 *	sessions = 4                               1..256
 *	session-copy = yes                         yes | no
 *	[store]
 *	path = /var/lib/hsmca/hsmca.db             absolute path
 *	[ca]
 *	subject = CN=hsmca Device CA,O=Example     issuing CA, "attr=value,..."
 *	key-type = ec-p256                         ec-p256 ec-p384 rsa-2048 rsa-3072
 *	validity = 2y                              duration: Ny Nd Nh Nm Ns or N
 *	root-subject = CN=hsmca Root CA,O=Example
 *	root-key-type = ec-p384
 *	root-validity = 20y
 *	renew-before = 90d                         < validity
 *	activation-delay = 45d                     < renew-before
 *	crl-next-update = 7d                       1h..10d
 *	crl-url = http://ca.example.com/crl/%g.crl http://, %g = generation id,
 *	                                           "" for no CRL distribution point
 *	ocsp-url = http://ca.example.com/ocsp      http://, "" for no OCSP
 *	ocsp-signer = responder                    responder or ca
 *	ocsp-validity = 1d                         8h..7d
 *	[profile device]     overrides the built-in "device"; a new name adds
 *	                     a profile that starts as an empty leaf profile
 *	validity = 365d                            > 0
 *	backdate = 5m                              0 .. 1d (clock skew only)
 *	key-usage = digitalSignature, keyAgreement required, never "none"
 *	extended-key-usage = clientAuth            or none
 *	ca = false
 *	pathlen = 0                                0..255 or none; only with ca = true
 *	subject = CN, O, OU                        attributes copied from a CSR, or none
 *	require-cn = true
 *	san = dns, uri                             dns ip uri email, or none
 *	require-san = false
 *	[daemon]                                   every key optional
 *	listen = 0.0.0.0:8443                      HOST:PORT or [IPv6]:PORT
 *	http-listen = none                         the same, or none or ""
 *	tls-cert = /etc/hsmca/server.pem           absolute path or none
 *	tls-key = /etc/hsmca/server.key            absolute path, pkcs11: URI,
 *	                                           or none
 *	workers = 0                                0..256, 0: one per core
 *	user = none                                user name or none
 *	pidfile = none                             absolute path or none
 *	max-body = 64k                             size: N, Nk or Nm; 1k..16m
 *	max-header-size = 8k                       1k..1m
 *	max-headers = 50                           1..1000
 *	timeout = 10s                              duration, 1s..1h
 *	max-connections = 1024                     EST, 1..100000
 *	max-http-connections = 1024                http-listen, 1..100000
 *	retry-after = 30s                          duration, 1s..1h
 *	crl-delay = 2s                             revocation to CRL, 1s..1h
 *	audit-checkpoint-interval = 1h             1s..7d
 *	log = stderr                               stderr or syslog
 *	[admin]              the operators' listener (hsmcad); every key optional
 *	listen = none                              HOST:PORT (JSON over mutual TLS)
 *	client-ca = /etc/hsmca/operator-ca.pem     operators' CA, required with listen
 *	max-connections = 64                       1..100000
 *	admins = CN=alice, sha256:HEX              identities with each role: a
 *	operators = CN=factory-1                   client certificate's CN=... or
 *	auditors = none                            sha256: fingerprint, or none
 *	[remote]             the CLI against an admin listener; with it, a file
 *	                     needs no [hsm] or [store]
 *	server = https://ca.example.com:8444       https:// URL or none
 *	cert = /etc/hsmca/operator.pem             the operator's certificate
 *	key = /etc/hsmca/operator.key              and key (unencrypted PEM)
 *	ca = /etc/hsmca/server-ca.pem              trust for the server, or none
 *	[est]                the default label; without any [est] section a
 *	                     file has this one with profile = device
 *	profile = device                           required; a profile that
 *	                                           exists at the end of the file
 *	bootstrap-ca = /etc/hsmca/factory-ca.pem   absolute path or none
 *	cn-match = true
 *	serverkeygen = false
 *
 * Errors read "name:line: reason".
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "hsmca/config.h"
#include "hsmca/fileset.h"
#include "hsmca/util.h"

#ifndef HSMCA_SOFTHSM_MODULE
#error "HSMCA_SOFTHSM_MODULE must be defined by the build"
#endif

#define CONFIG_MAX_SIZE		(1024 * 1024)
#define CONFIG_LINE_MAX		4096
#define CONFIG_SESSIONS_MAX	256
#define CONFIG_PATHLEN_MAX	255
#define CONFIG_BACKDATE_MAX	(24 * 60 * 60)
#define CONFIG_PROFILE_NAME_MAX	63
#define CONFIG_EST_LABEL_MAX	64
#define CONFIG_HOST_MAX		253
#define CONFIG_USER_MAX		32
#define CONFIG_WORKERS_MAX	256
#define CONFIG_HEADERS_MAX	1000
#define CONFIG_CONNECTIONS_MAX	100000
#define CONFIG_TIMEOUT_MAX	3600
#define CONFIG_RETRY_AFTER_MAX	3600
#define KIB			1024
#define MIB			(1024 * 1024)
#define DAY			(24 * 60 * 60)
#define YEAR			(365 * DAY)

enum section {
	SEC_NONE,
	SEC_HSM,
	SEC_STORE,
	SEC_CA,
	SEC_DAEMON,
	SEC_ADMIN,
	SEC_REMOTE,
	SEC_PROFILE,
	SEC_EST,
	SEC_MAX
};

static const char *const section_names[SEC_MAX] = {
	[SEC_NONE] = "",
	[SEC_HSM] = "hsm",
	[SEC_STORE] = "store",
	[SEC_CA] = "ca",
	[SEC_DAEMON] = "daemon",
	[SEC_ADMIN] = "admin",
	[SEC_REMOTE] = "remote",
	[SEC_PROFILE] = "profile",
	[SEC_EST] = "est",
};

/* Every key, in the order config_print writes them. */
enum key {
	K_HSM_MODULE,
	K_HSM_TOKEN,
	K_HSM_PIN_SOURCE,
	K_HSM_SESSIONS,
	K_HSM_SESSION_COPY,
	K_STORE_PATH,
	K_CA_SUBJECT,
	K_CA_KEY_TYPE,
	K_CA_VALIDITY,
	K_CA_ROOT_SUBJECT,
	K_CA_ROOT_KEY_TYPE,
	K_CA_ROOT_VALIDITY,
	K_CA_RENEW_BEFORE,
	K_CA_ACTIVATION_DELAY,
	K_CA_CRL_NEXT_UPDATE,
	K_CA_CRL_URL,
	K_CA_OCSP_URL,
	K_CA_OCSP_SIGNER,
	K_CA_OCSP_VALIDITY,
	K_D_LISTEN,
	K_D_HTTP_LISTEN,
	K_D_TLS_CERT,
	K_D_TLS_KEY,
	K_D_WORKERS,
	K_D_USER,
	K_D_PIDFILE,
	K_D_MAX_BODY,
	K_D_MAX_HEADER_SIZE,
	K_D_MAX_HEADERS,
	K_D_TIMEOUT,
	K_D_MAX_CONNECTIONS,
	K_D_MAX_HTTP_CONNECTIONS,
	K_D_SESSION_TICKETS,
	K_D_RETRY_AFTER,
	K_D_CRL_DELAY,
	K_D_AUDIT_CHECKPOINT_INTERVAL,
	K_D_LOG,
	K_A_LISTEN,
	K_A_CLIENT_CA,
	K_A_MAX_CONNECTIONS,
	K_A_ADMINS,
	K_A_OPERATORS,
	K_A_AUDITORS,
	K_R_SERVER,
	K_R_CERT,
	K_R_KEY,
	K_R_CA,
	/* From here on, keys of sections that repeat (profile, est): their
	 * lines are forgotten at each section header. */
	K_P_VALIDITY,
	K_P_BACKDATE,
	K_P_KEY_USAGE,
	K_P_EXT_KEY_USAGE,
	K_P_CA,
	K_P_PATHLEN,
	K_P_SUBJECT,
	K_P_REQUIRE_CN,
	K_P_SAN,
	K_P_REQUIRE_SAN,
	K_E_PROFILE,
	K_E_BOOTSTRAP_CA,
	K_E_CN_MATCH,
	K_E_SERVERKEYGEN,
	K_MAX
};

static const struct config_key {
	enum section	 sec;
	const char	*name;
} config_keys[K_MAX] = {
	[K_HSM_MODULE] =		{ SEC_HSM, "module" },
	[K_HSM_TOKEN] =			{ SEC_HSM, "token" },
	[K_HSM_PIN_SOURCE] =		{ SEC_HSM, "pin-source" },
	[K_HSM_SESSIONS] =		{ SEC_HSM, "sessions" },
	[K_HSM_SESSION_COPY] =		{ SEC_HSM, "session-copy" },
	[K_STORE_PATH] =		{ SEC_STORE, "path" },
	[K_CA_SUBJECT] =		{ SEC_CA, "subject" },
	[K_CA_KEY_TYPE] =		{ SEC_CA, "key-type" },
	[K_CA_VALIDITY] =		{ SEC_CA, "validity" },
	[K_CA_ROOT_SUBJECT] =		{ SEC_CA, "root-subject" },
	[K_CA_ROOT_KEY_TYPE] =		{ SEC_CA, "root-key-type" },
	[K_CA_ROOT_VALIDITY] =		{ SEC_CA, "root-validity" },
	[K_CA_RENEW_BEFORE] =		{ SEC_CA, "renew-before" },
	[K_CA_ACTIVATION_DELAY] =	{ SEC_CA, "activation-delay" },
	[K_CA_CRL_NEXT_UPDATE] =	{ SEC_CA, "crl-next-update" },
	[K_CA_CRL_URL] =		{ SEC_CA, "crl-url" },
	[K_CA_OCSP_URL] =		{ SEC_CA, "ocsp-url" },
	[K_CA_OCSP_SIGNER] =		{ SEC_CA, "ocsp-signer" },
	[K_CA_OCSP_VALIDITY] =		{ SEC_CA, "ocsp-validity" },
	[K_D_LISTEN] =			{ SEC_DAEMON, "listen" },
	[K_D_HTTP_LISTEN] =		{ SEC_DAEMON, "http-listen" },
	[K_D_TLS_CERT] =		{ SEC_DAEMON, "tls-cert" },
	[K_D_TLS_KEY] =			{ SEC_DAEMON, "tls-key" },
	[K_D_WORKERS] =			{ SEC_DAEMON, "workers" },
	[K_D_USER] =			{ SEC_DAEMON, "user" },
	[K_D_PIDFILE] =			{ SEC_DAEMON, "pidfile" },
	[K_D_MAX_BODY] =		{ SEC_DAEMON, "max-body" },
	[K_D_MAX_HEADER_SIZE] =		{ SEC_DAEMON, "max-header-size" },
	[K_D_MAX_HEADERS] =		{ SEC_DAEMON, "max-headers" },
	[K_D_TIMEOUT] =			{ SEC_DAEMON, "timeout" },
	[K_D_MAX_CONNECTIONS] =		{ SEC_DAEMON, "max-connections" },
	[K_D_MAX_HTTP_CONNECTIONS] =	{ SEC_DAEMON, "max-http-connections" },
	[K_D_SESSION_TICKETS] =		{ SEC_DAEMON, "session-tickets" },
	[K_D_RETRY_AFTER] =		{ SEC_DAEMON, "retry-after" },
	[K_D_CRL_DELAY] =		{ SEC_DAEMON, "crl-delay" },
	[K_D_AUDIT_CHECKPOINT_INTERVAL] = { SEC_DAEMON,
					    "audit-checkpoint-interval" },
	[K_D_LOG] =			{ SEC_DAEMON, "log" },
	[K_A_LISTEN] =			{ SEC_ADMIN, "listen" },
	[K_A_CLIENT_CA] =		{ SEC_ADMIN, "client-ca" },
	[K_A_MAX_CONNECTIONS] =		{ SEC_ADMIN, "max-connections" },
	[K_A_ADMINS] =			{ SEC_ADMIN, "admins" },
	[K_A_OPERATORS] =		{ SEC_ADMIN, "operators" },
	[K_A_AUDITORS] =		{ SEC_ADMIN, "auditors" },
	[K_R_SERVER] =			{ SEC_REMOTE, "server" },
	[K_R_CERT] =			{ SEC_REMOTE, "cert" },
	[K_R_KEY] =			{ SEC_REMOTE, "key" },
	[K_R_CA] =			{ SEC_REMOTE, "ca" },
	[K_P_VALIDITY] =		{ SEC_PROFILE, "validity" },
	[K_P_BACKDATE] =		{ SEC_PROFILE, "backdate" },
	[K_P_KEY_USAGE] =		{ SEC_PROFILE, "key-usage" },
	[K_P_EXT_KEY_USAGE] =		{ SEC_PROFILE, "extended-key-usage" },
	[K_P_CA] =			{ SEC_PROFILE, "ca" },
	[K_P_PATHLEN] =			{ SEC_PROFILE, "pathlen" },
	[K_P_SUBJECT] =			{ SEC_PROFILE, "subject" },
	[K_P_REQUIRE_CN] =		{ SEC_PROFILE, "require-cn" },
	[K_P_SAN] =			{ SEC_PROFILE, "san" },
	[K_P_REQUIRE_SAN] =		{ SEC_PROFILE, "require-san" },
	[K_E_PROFILE] =			{ SEC_EST, "profile" },
	[K_E_BOOTSTRAP_CA] =		{ SEC_EST, "bootstrap-ca" },
	[K_E_CN_MATCH] =		{ SEC_EST, "cn-match" },
	[K_E_SERVERKEYGEN] =		{ SEC_EST, "serverkeygen" },
};

struct parse {
	const char	*name;		/* for messages */
	size_t		 lineno;
	struct config	*cfg;
	struct hsmca_err *e;
	enum section	 sec;
	size_t		 secline[SEC_MAX];	/* header line of hsm/store/ca/daemon */
	size_t		 keyline[K_MAX];	/* line a key was set, 0: not */
	struct profile	*prof;		/* the [profile] being read */
	size_t		 profline;
	int		 builtin_seen[PROFILE_BUILTIN_COUNT];
	int		 in_est;	/* reading cfg->est[esti] */
	size_t		 esti;
	size_t		 estline;	/* its header line */
	size_t		*est_profline;	/* per label: line of its profile key */
};

static int
perr(struct parse *st, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "name:line: reason", HSMCA_ERR_CONFIG. */
static int
perr(struct parse *st, size_t line, const char *fmt, ...)
{
	char reason[HSMCA_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return err_set(st->e, HSMCA_ERR_CONFIG, "%s:%zu: %s", st->name, line,
	    reason);
}

static int
set_string(char **dst, const char *val, struct hsmca_err *e)
{
	char *s;

	if ((s = strdup(val)) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	free(*dst);
	*dst = s;
	return 0;
}

static void
profile_new_leaf(struct profile *p)
{
	/* An empty leaf profile: the section must at least set key-usage. */
	memset(p, 0, sizeof(*p));
	p->validity = 365 * DAY;
	p->backdate = 5 * 60;
	p->pathlen = -1;
	p->subject_allowed = PROFILE_SUBJ_CN;
	p->require_cn = 1;
}

/* Append a profile (taking ownership of its fields on success). */
static int
config_add_profile(struct config *cfg, struct profile *p,
    struct hsmca_err *e)
{
	struct profile *np;

	np = reallocarray(cfg->profiles, cfg->nprofiles + 1, sizeof(*np));
	if (np == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	cfg->profiles = np;
	cfg->profiles[cfg->nprofiles++] = *p;
	return 0;
}

static void
est_free_fields(struct config_est *est)
{
	free(est->label);
	free(est->profile);
	free(est->bootstrap_ca);
}

/* Append an EST label; profile and bootstrap may be NULL. */
static int
config_add_est(struct config *cfg, const char *label, const char *profile,
    const char *bootstrap, int serverkeygen, struct hsmca_err *e)
{
	struct config_est *ne, n;

	memset(&n, 0, sizeof(n));
	n.cn_match = 1;
	n.serverkeygen = serverkeygen;
	if ((n.label = strdup(label)) == NULL ||
	    (profile != NULL && (n.profile = strdup(profile)) == NULL) ||
	    (bootstrap != NULL && (n.bootstrap_ca = strdup(bootstrap)) == NULL))
		goto fail;
	ne = reallocarray(cfg->est, cfg->nest + 1, sizeof(*ne));
	if (ne == NULL)
		goto fail;
	cfg->est = ne;
	cfg->est[cfg->nest++] = n;
	return 0;
 fail:
	est_free_fields(&n);
	return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
}

/* a b c, malloc'd; NULL if out of memory. */
static char *
join(const char *a, const char *b, const char *c)
{
	char *s;

	if (asprintf(&s, "%s%s%s", a, b, c) == -1)
		return NULL;
	return s;
}

/* The demo directory: $HSMCA_HOME or ./hsmca-demo, made absolute. */
static int
demo_home(char **out, struct hsmca_err *e)
{
	char cwd[PATH_MAX], *s = NULL;
	const char *h;
	size_t n;
	int ret = HSMCA_ERR_CONFIG;

	if ((h = getenv("HSMCA_HOME")) == NULL || *h == '\0')
		h = "./hsmca-demo";
	for (const char *p = h; *p != '\0'; p++) {
		if (iscntrl((unsigned char)*p)) {
			ret = err_set(e, HSMCA_ERR_CONFIG,
			    "HSMCA_HOME contains a control character");
			goto out;
		}
	}
	if (*h == '/') {
		if ((s = strdup(h)) == NULL) {
			ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
			goto out;
		}
	} else {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			ret = err_set(e, HSMCA_ERR_IO, "cannot find the current "
			    "directory for HSMCA_HOME: %s", strerror(errno));
			goto out;
		}
		while (h[0] == '.' && h[1] == '/') {
			for (h += 2; *h == '/'; h++)
				;
		}
		if (strcmp(h, ".") == 0)
			h = "";
		if ((s = join(cwd, strcmp(cwd, "/") == 0 || *h == '\0' ?
		    "" : "/", h)) == NULL) {
			ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
			goto out;
		}
	}
	/* No trailing slash, except for "/" itself. */
	for (n = strlen(s); n > 1 && s[n - 1] == '/'; n--)
		s[n - 1] = '\0';
	*out = s;
	s = NULL;
	ret = 0;
out:
	free(s);
	return ret;
}

int
config_fix_demo_home(struct hsmca_err *e)
{
	char *home = NULL;
	int ret;

	if ((ret = demo_home(&home, e)) != 0)
		return ret;
	if (setenv("HSMCA_HOME", home, 1) == -1)
		ret = err_set(e, HSMCA_ERR_ALLOC, "HSMCA_HOME: %s",
		    strerror(errno));
	free(home);
	return ret;
}

/* The embedded defaults. With home, also the demo's HSM, store, TLS and
 * EST settings; without, those stay NULL or empty for a file to set. */
static int
config_defaults(const char *home, struct config **out, struct hsmca_err *e)
{
	struct config *cfg = NULL;
	struct profile p;
	char *factory = NULL;
	int ret = HSMCA_ERR_ALLOC, i;

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL) {
		err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	cfg->hsm.sessions = 4;
	cfg->hsm.session_copy = 1;
	cfg->ca.key_type = KEY_EC_P256;
	cfg->ca.validity = 2 * (int64_t)YEAR;
	cfg->ca.root_key_type = KEY_EC_P384;
	cfg->ca.root_validity = 20 * (int64_t)YEAR;
	cfg->ca.renew_before = 90 * DAY;
	cfg->ca.activation_delay = 45 * DAY;
	cfg->ca.crl_next_update = 7 * DAY;
	cfg->ca.ocsp_signer = CONFIG_OCSP_SIGNER_RESPONDER;
	cfg->ca.ocsp_validity = DAY;
	/* The demo's names and loopback URLs only for the demo: a file that
	 * leaves them out gets neutral names and no URLs, never a demo
	 * value inside a production certificate. */
	if ((cfg->ca.subject = strdup(home != NULL ?
	    "CN=hsmca Demo Device CA,O=hsmca demo" : "CN=hsmca Device CA"))
	    == NULL ||
	    (cfg->ca.root_subject = strdup(home != NULL ?
	    "CN=hsmca Demo Root CA,O=hsmca demo" : "CN=hsmca Root CA"))
	    == NULL ||
	    (cfg->ca.crl_url = strdup(home != NULL ?
	    "http://127.0.0.1:8080/crl/%g.crl" : "")) == NULL ||
	    (cfg->ca.ocsp_url = strdup(home != NULL ?
	    "http://127.0.0.1:8080/ocsp" : "")) == NULL) {
		err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	cfg->daemon.workers = 0;
	cfg->daemon.max_body = 64 * KIB;
	cfg->daemon.max_header_size = 8 * KIB;
	cfg->daemon.max_headers = 50;
	cfg->daemon.timeout = 10;
	cfg->daemon.max_connections = 1024;
	cfg->daemon.max_http_connections = 1024;
	cfg->admin.max_connections = 64;
	cfg->daemon.retry_after = 30;
	cfg->daemon.crl_delay = 2;
	cfg->daemon.audit_checkpoint_interval = 3600;
	if ((cfg->daemon.log = strdup("stderr")) == NULL ||
	    (cfg->daemon.listen = strdup(home != NULL ? "127.0.0.1:8443" :
	    "0.0.0.0:8443")) == NULL) {
		err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	if (home != NULL) {
		if ((cfg->hsm.module = strdup(HSMCA_SOFTHSM_MODULE)) == NULL ||
		    (cfg->hsm.token = strdup("pkcs11:token=hsmca")) == NULL ||
		    (cfg->hsm.pin_source = join("file:", home, "/user.pin"))
		    == NULL ||
		    (cfg->store.path = join("", home, "/hsmca.db")) == NULL ||
		    (cfg->daemon.http_listen = strdup("127.0.0.1:8080")) == NULL ||
		    (cfg->daemon.tls_cert = join("", home, "/server.pem"))
		    == NULL ||
		    (cfg->daemon.tls_key = join("", home, "/server.key"))
		    == NULL ||
		    (factory = join("", home, "/factory-ca.pem")) == NULL) {
			err_set(e, HSMCA_ERR_ALLOC, "out of memory");
			goto out;
		}
		if (config_add_est(cfg, "", "device", factory, 0, e) != 0 ||
		    config_add_est(cfg, "edge", "edge-ca", factory, 1, e) != 0)
			goto out;
	}
	for (i = 0; i < PROFILE_BUILTIN_COUNT; i++) {
		profile_builtin(i, &p);
		if (p.name == NULL) {
			err_set(e, HSMCA_ERR_ALLOC, "out of memory");
			goto out;
		}
		if (config_add_profile(cfg, &p, e) != 0) {
			profile_free_fields(&p);
			goto out;
		}
	}
	*out = cfg;
	cfg = NULL;
	ret = 0;
out:
	free(factory);
	config_free(cfg);
	return ret;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->hsm.module);
	free(cfg->hsm.token);
	free(cfg->hsm.pin_source);
	free(cfg->store.path);
	free(cfg->ca.subject);
	free(cfg->ca.root_subject);
	free(cfg->ca.crl_url);
	free(cfg->ca.ocsp_url);
	free(cfg->daemon.listen);
	free(cfg->daemon.http_listen);
	free(cfg->daemon.tls_cert);
	free(cfg->daemon.tls_key);
	free(cfg->daemon.user);
	free(cfg->daemon.pidfile);
	free(cfg->daemon.log);
	free(cfg->admin.listen);
	free(cfg->admin.client_ca);
	for (int i = 0; i < CONFIG_ROLE_MAX; i++)
		free(cfg->admin.roles[i]);
	free(cfg->remote.server);
	free(cfg->remote.cert);
	free(cfg->remote.key);
	free(cfg->remote.ca);
	for (size_t i = 0; i < cfg->nprofiles; i++)
		profile_free_fields(&cfg->profiles[i]);
	free(cfg->profiles);
	for (size_t i = 0; i < cfg->nest; i++)
		est_free_fields(&cfg->est[i]);
	free(cfg->est);
	free(cfg);
}

/* An empty value is no value ("http-listen =" is none). */
static int
str_differ(const char *a, const char *b)
{
	if (a != NULL && *a == '\0')
		a = NULL;
	if (b != NULL && *b == '\0')
		b = NULL;
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

size_t
config_restart_keys(const struct config *run, const struct config *next,
    const char **names, size_t max)
{
	const struct config_daemon *a = &run->daemon, *b = &next->daemon;
	/* What the processes took at their start: the sockets bound, the
	 * token logged in, the store opened, the TLS context built, the
	 * workers started, the user changed to, libevent's HTTP limits
	 * set. The rest is read from the running configuration each time
	 * it is needed, and a reload changes it. */
	const struct {
		const char	*name;
		int		 differ;
	} keys[] = {
		{ "[hsm] module", str_differ(run->hsm.module, next->hsm.module) },
		{ "[hsm] token", str_differ(run->hsm.token, next->hsm.token) },
		{ "[hsm] pin-source",
		    str_differ(run->hsm.pin_source, next->hsm.pin_source) },
		{ "[hsm] sessions", run->hsm.sessions != next->hsm.sessions },
		{ "[hsm] session-copy",
		    run->hsm.session_copy != next->hsm.session_copy },
		{ "[store] path", str_differ(run->store.path, next->store.path) },
		{ "[daemon] listen", str_differ(a->listen, b->listen) },
		{ "[daemon] http-listen",
		    str_differ(a->http_listen, b->http_listen) },
		{ "[daemon] tls-cert", str_differ(a->tls_cert, b->tls_cert) },
		{ "[daemon] tls-key", str_differ(a->tls_key, b->tls_key) },
		{ "[daemon] workers", a->workers != b->workers },
		{ "[daemon] user", str_differ(a->user, b->user) },
		{ "[daemon] pidfile", str_differ(a->pidfile, b->pidfile) },
		{ "[daemon] max-body", a->max_body != b->max_body },
		{ "[daemon] max-header-size",
		    a->max_header_size != b->max_header_size },
		/* The drain and a TLS handshake's deadline read it anew. */
		{ "[daemon] timeout (the HTTP read and write timeouts)",
		    a->timeout != b->timeout },
		{ "[daemon] session-tickets",
		    a->session_tickets != b->session_tickets },
		{ "[daemon] log", str_differ(a->log, b->log) },
		{ "[admin] listen",
		    str_differ(run->admin.listen, next->admin.listen) },
	};
	size_t i, n = 0;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (!keys[i].differ)
			continue;
		if (n < max)
			names[n] = keys[i].name;
		n++;
	}
	return n;
}

const struct profile *
config_profile(const struct config *cfg, const char *name)
{
	if (cfg == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->nprofiles; i++)
		if (cfg->profiles[i].name != NULL &&
		    strcmp(cfg->profiles[i].name, name) == 0)
			return &cfg->profiles[i];
	return NULL;
}

/* The next item of a comma-separated list in buf (NULL: go on after the
 * last one), spaces and tabs trimmed; NULL at the end. Like strtok_r,
 * it passes over empty items between commas. */
static char *
list_next(char *buf, char **save)
{
	char *item, *end;

	if ((item = strtok_r(buf, ",", save)) == NULL)
		return NULL;
	while (*item == ' ' || *item == '\t')
		item++;
	end = item + strlen(item);
	while (end > item && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return item;
}

/* The first item of list v, copied into buf for list_next to go on. */
static char *
list_first(const char *v, char *buf, size_t len, char **save)
{
	snprintf(buf, len, "%s", v);
	return list_next(buf, save);
}

enum identity {
	ID_INVALID,
	ID_CN,		/* a client certificate's subject CN */
	ID_SHA256,	/* its fingerprint */
};

/* One item of a role list: "CN=name" (name at most 64 characters) or
 * "sha256:" and 64 hex digits. *rest: the name or the fingerprint. */
static enum identity
identity_parse(const char *item, const char **rest)
{
	if (strncmp(item, "CN=", 3) == 0 && item[3] != '\0' &&
	    strlen(item) <= 3 + 64) {
		*rest = item + 3;
		return ID_CN;
	}
	if (strncmp(item, "sha256:", 7) == 0 && strlen(item) == 7 + 64 &&
	    strspn(item + 7, "0123456789abcdefABCDEF") == 64) {
		*rest = item + 7;
		return ID_SHA256;
	}
	return ID_INVALID;
}

enum config_role
config_admin_role(const struct config *cfg, const char *cn,
    const char *sha256)
{
	char buf[CONFIG_LINE_MAX + 1], *item, *save = NULL;
	const char *id;
	enum identity kind;

	for (int r = 0; r < CONFIG_ROLE_MAX; r++) {
		if (cfg->admin.roles[r] == NULL)
			continue;
		for (item = list_first(cfg->admin.roles[r], buf, sizeof(buf),
		    &save); item != NULL; item = list_next(NULL, &save)) {
			kind = identity_parse(item, &id);
			if ((kind == ID_CN && cn != NULL && strcmp(id, cn) == 0) ||
			    (kind == ID_SHA256 && sha256 != NULL &&
			    strcasecmp(id, sha256) == 0))
				return (enum config_role)r;
		}
	}
	return CONFIG_ROLE_NONE;
}

const struct config_est *
config_est_label(const struct config *cfg, const char *label)
{
	if (cfg == NULL || label == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->nest; i++)
		if (strcmp(cfg->est[i].label, label) == 0)
			return &cfg->est[i];
	return NULL;
}

/* ---- value checks ---- */

/* "[est]" or "[est LABEL]". */
static const char *
est_section(const char *label, char *buf, size_t len)
{
	snprintf(buf, len, "[est%s%s]", *label != '\0' ? " " : "", label);
	return buf;
}

static const char *
sec_label(struct parse *st, char *buf, size_t len)
{
	if (st->sec == SEC_PROFILE && st->prof != NULL)
		snprintf(buf, len, "[profile %s]", st->prof->name);
	else if (st->sec == SEC_EST && st->in_est)
		est_section(st->cfg->est[st->esti].label, buf, len);
	else
		snprintf(buf, len, "[%s]", section_names[st->sec]);
	return buf;
}

static int
parse_bool(const char *v, int *out)
{
	if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0)
		*out = 1;
	else if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

/* A decimal integer in [lo, hi], nothing else. */
static int
parse_int(const char *v, long lo, long hi, int *out)
{
	char *end;
	long n;

	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < lo || n > hi)
		return -1;
	*out = (int)n;
	return 0;
}

/* "a, b, c" or "none" through one of the profile name parsers. */
static int
parse_list(struct parse *st, const char *key, const char *v,
    int (*lookup)(const char *, unsigned int *), unsigned int *out)
{
	char buf[CONFIG_LINE_MAX + 1], *tok, *save = NULL;
	unsigned int mask = 0, bit;

	if (strcmp(v, "none") == 0) {
		*out = 0;
		return 0;
	}
	if (v[0] == ',' || (*v != '\0' && v[strlen(v) - 1] == ','))
		return perr(st, st->lineno, "%s: empty name in list", key);
	for (tok = list_first(v, buf, sizeof(buf), &save); tok != NULL;
	    tok = list_next(NULL, &save)) {
		if (*tok == '\0')
			return perr(st, st->lineno, "%s: empty name in list",
			    key);
		if (strcmp(tok, "none") == 0)
			return perr(st, st->lineno, "%s: \"none\" cannot be "
			    "combined with other names", key);
		if (lookup(tok, &bit) == -1)
			return perr(st, st->lineno, "%s: unknown name \"%.64s\"",
			    key, tok);
		if (mask & bit)
			return perr(st, st->lineno, "%s: %.64s listed twice",
			    key, tok);
		mask |= bit;
	}
	if (strstr(v, ",,") != NULL)
		return perr(st, st->lineno, "%s: empty name in list", key);
	*out = mask;
	return 0;
}

static int
parse_dur(struct parse *st, const char *key, const char *v, int64_t min,
    int64_t *out)
{
	int64_t secs;

	if (util_parse_duration(v, &secs) == -1)
		return perr(st, st->lineno, "%s: bad duration \"%.64s\" "
		    "(use e.g. 2y, 90d, 12h, 30m, 45s)", key, v);
	if (secs < min)
		return perr(st, st->lineno, "%s: must be %s", key,
		    min > 0 ? "longer than 0" : "0 or longer");
	*out = secs;
	return 0;
}

static int
check_abs_path(struct parse *st, const char *key, const char *v)
{
	if (*v != '/')
		return perr(st, st->lineno, "%s: \"%.64s\" is not an absolute "
		    "path", key, v);
	return 0;
}

/* "attr=value,attr=value": attributes OpenSSL knows, values not empty.
 * A backslash escapes the next character. */
static int
check_dn(struct parse *st, const char *key, const char *v)
{
	char attr[64];
	const char *p = v, *eq;
	size_t n;

	if (*v == '\0')
		return perr(st, st->lineno, "%s: empty distinguished name", key);
	while (*p != '\0') {
		if ((eq = strchr(p, '=')) == NULL || eq == p)
			return perr(st, st->lineno, "%s: expected attr=value "
			    "pairs separated by commas, as in "
			    "\"CN=Device CA,O=Example\"", key);
		for (n = (size_t)(eq - p); n > 0 && p[n - 1] == ' '; n--)
			;
		while (*p == ' ' && n > 0) {
			p++;
			n--;
		}
		if (n == 0 || n >= sizeof(attr))
			return perr(st, st->lineno, "%s: bad attribute name",
			    key);
		memcpy(attr, p, n);
		attr[n] = '\0';
		if (OBJ_txt2nid(attr) == NID_undef)
			return perr(st, st->lineno, "%s: unknown attribute "
			    "\"%s\"", key, attr);
		p = eq + 1;
		n = 0;
		while (*p != '\0' && *p != ',') {
			if (*p == '\\' && p[1] != '\0')
				p++;
			p++;
			n++;
		}
		if (n == 0)
			return perr(st, st->lineno, "%s: attribute %s has no "
			    "value", key, attr);
		if (*p == ',') {
			p++;
			if (*p == '\0')
				return perr(st, st->lineno, "%s: trailing comma",
				    key);
		}
	}
	return 0;
}

/* An http:// URL ("" for none); every '%' must be %g or %%, and with
 * need_gen, %g must appear: each CA generation has its own CRL. */
static int
check_url(struct parse *st, const char *key, const char *v, int need_gen)
{
	int gen = 0;

	if (*v == '\0')
		return 0;
	if (strncmp(v, "http://", 7) != 0 || v[7] == '\0' || v[7] == '/')
		return perr(st, st->lineno, "%s: \"%.64s\" is not an http:// "
		    "URL (relying parties fetch it over plain HTTP)", key, v);
	for (const char *p = v; *p != '\0'; p++) {
		if (*p == ' ' || *p == '\t')
			return perr(st, st->lineno, "%s: spaces in a URL", key);
		if (*p != '%')
			continue;
		if (p[1] == 'g')
			gen = 1;
		else if (p[1] != '%')
			return perr(st, st->lineno, "%s: unknown %%-escape "
			    "(only %%g, the generation id, and %%%%)", key);
		p++;
	}
	if (need_gen && !gen)
		return perr(st, st->lineno, "%s: must contain %%g, the "
		    "generation id: each CA generation has its own CRL", key);
	return 0;
}

static int
check_pin_source(struct parse *st, const char *v)
{
	const char *n;

	if (strncmp(v, "file:", 5) == 0) {
		if (v[5] != '/')
			return perr(st, st->lineno, "pin-source: file: needs "
			    "an absolute path, as in file:/etc/hsmca/pin");
		return 0;
	}
	if (strncmp(v, "env:", 4) == 0) {
		n = v + 4;
		if (!(isalpha((unsigned char)*n) || *n == '_'))
			goto badenv;
		for (; *n != '\0'; n++)
			if (!(isalnum((unsigned char)*n) || *n == '_'))
				goto badenv;
		return 0;
 badenv:
		return perr(st, st->lineno, "pin-source: env: needs a variable "
		    "name, as in env:HSMCA_PIN");
	}
	return perr(st, st->lineno, "pin-source must be file:/path or "
	    "env:NAME (the PIN never goes in this file)");
}

/* 1 to max letters, digits, '.', '_' or '-'. */
static int
valid_name(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' &&
		    *s != '-')
			return 0;
	return 1;
}

static int
valid_profile_name(const char *s)
{
	return isalnum((unsigned char)*s) &&
	    valid_name(s, CONFIG_PROFILE_NAME_MAX);
}

/* "HOST:PORT" or "[IPv6]:PORT", port 0..65535 (0: the kernel chooses, for tests). HOST is a name or an
 * IPv4 address; an IPv6 address needs the brackets. */
static int
check_hostport(struct parse *st, const char *key, const char *v)
{
	char host[CONFIG_HOST_MAX + 1];
	struct in6_addr a6;
	struct in_addr a4;
	const char *colon, *p;
	size_t n;
	int port, numeric = 1;

	if (*v == '[') {
		if ((p = strchr(v, ']')) == NULL || p[1] != ':')
			return perr(st, st->lineno, "%s: \"%.64s\" is not "
			    "[IPv6]:PORT", key, v);
		n = (size_t)(p - v - 1);
		if (n == 0 || n >= INET6_ADDRSTRLEN)
			goto bad6;
		memcpy(host, v + 1, n);
		host[n] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1)
			goto bad6;
		colon = p + 1;
	} else {
		if ((colon = strrchr(v, ':')) == NULL || colon == v)
			return perr(st, st->lineno, "%s: \"%.64s\" is not "
			    "HOST:PORT or [IPv6]:PORT", key, v);
		if (memchr(v, ':', (size_t)(colon - v)) != NULL)
			return perr(st, st->lineno, "%s: an IPv6 address goes "
			    "in brackets, as in [::1]:8443", key);
		n = (size_t)(colon - v);
		if (n > CONFIG_HOST_MAX || *v == '-' || *v == '.')
			goto badhost;
		for (p = v; p < colon; p++) {
			if (!isalnum((unsigned char)*p) && *p != '.' &&
			    *p != '-')
				goto badhost;
			if (isalpha((unsigned char)*p) || *p == '-')
				numeric = 0;
		}
		memcpy(host, v, n);
		host[n] = '\0';
		if (numeric && inet_pton(AF_INET, host, &a4) != 1)
			goto badhost;
	}
	if (parse_int(colon + 1, 0, 65535, &port) == -1)
		return perr(st, st->lineno, "%s: the port must be a number from "
		    "0 to 65535", key);
	return 0;
 bad6:
	return perr(st, st->lineno, "%s: bad IPv6 address in \"%.64s\"",
	    key, v);
 badhost:
	return perr(st, st->lineno, "%s: bad host in \"%.64s\" (a host name "
	    "or an IPv4 address)", key, v);
}

/* A byte count in the largest exact unit: 64k, 16m, 1000. */
static const char *
format_size(int64_t n, char *buf, size_t len)
{
	if (n != 0 && n % MIB == 0)
		snprintf(buf, len, "%" PRId64 "m", n / MIB);
	else if (n != 0 && n % KIB == 0)
		snprintf(buf, len, "%" PRId64 "k", n / KIB);
	else
		snprintf(buf, len, "%" PRId64, n);
	return buf;
}

/* A byte count: N, Nk or Nm (1024-based), within [lo, hi]. */
static int
parse_size(const char *v, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	long long n;
	int64_t mul = 1;

	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0)
		return -1;
	if (*end == 'k')
		mul = KIB;
	else if (*end == 'm')
		mul = MIB;
	else if (*end != '\0')
		return -1;
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (n > INT64_MAX / mul || n * mul < lo || n * mul > hi)
		return -1;
	*out = n * mul;
	return 0;
}

/* A duration in seconds within [lo, hi]. */
static int
parse_dur_range(struct parse *st, const char *key, const char *v,
    int64_t lo, int64_t hi, int64_t *out)
{
	char b1[32], b2[32];
	int64_t secs;

	if (parse_dur(st, key, v, 0, &secs) != 0)
		return HSMCA_ERR_CONFIG;
	if (secs < lo || secs > hi)
		return perr(st, st->lineno, "%s: must be from %s to %s", key,
		    util_format_duration(lo, b1, sizeof(b1)),
		    util_format_duration(hi, b2, sizeof(b2)));
	*out = secs;
	return 0;
}

/* A portable user name: letters, digits, . _ -, not starting with '-'. */
static int
valid_user(const char *s)
{
	return *s != '-' && valid_name(s, CONFIG_USER_MAX);
}

/* An EST label is a URL path segment after /.well-known/est/. */
static int
valid_est_label(const char *s)
{
	return valid_name(s, CONFIG_EST_LABEL_MAX);
}

/* Labels a client would read as something else: a path step, or an EST
 * operation of the default label (RFC 7030 3.2.2). */
static int
reserved_est_label(const char *s)
{
	static const char *const names[] = {
		".", "..", "cacerts", "simpleenroll", "simplereenroll",
		"fullcmc", "serverkeygen", "csrattrs",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return 1;
	return 0;
}

/* "none" clears an optional string; any other value is copied. */
static int
set_optional(char **dst, const char *v, struct hsmca_err *e)
{
	if (strcmp(v, "none") == 0) {
		free(*dst);
		*dst = NULL;
		return 0;
	}
	return set_string(dst, v, e);
}

/* "none", or a value that check accepts. */
static int
set_optional_checked(struct parse *st, const char *key, const char *v,
    int (*check)(struct parse *, const char *, const char *), char **dst)
{
	if (strcmp(v, "none") != 0 && check(st, key, v) != 0)
		return HSMCA_ERR_CONFIG;
	return set_optional(dst, v, st->e);
}

static int
set_bool(struct parse *st, const char *key, const char *v, int *dst)
{
	if (parse_bool(v, dst) == -1)
		return perr(st, st->lineno, "%s must be true, false, yes or no",
		    key);
	return 0;
}

static int
set_int(struct parse *st, const char *key, const char *v, int lo, int hi,
    int *dst)
{
	if (parse_int(v, lo, hi, dst) == -1)
		return perr(st, st->lineno, "%s must be a number from %d to %d",
		    key, lo, hi);
	return 0;
}

static int
set_size(struct parse *st, const char *key, const char *v, int64_t lo,
    int64_t hi, int64_t *dst)
{
	char b1[32], b2[32];

	if (parse_size(v, lo, hi, dst) == -1)
		return perr(st, st->lineno, "%s must be a size from %s to %s "
		    "(bytes, or with a k or m suffix)", key,
		    format_size(lo, b1, sizeof(b1)),
		    format_size(hi, b2, sizeof(b2)));
	return 0;
}

/* A role's identities: "CN=name" or "sha256:" and 64 hex digits, comma
 * separated, or none. Kept as given; config_admin_role() matches. */
static int
set_identities(struct parse *st, const char *key, const char *v, char **dst)
{
	char buf[CONFIG_LINE_MAX + 1], *item, *save = NULL;
	const char *id;
	size_t n = 0;

	if (strcmp(v, "none") == 0)
		return set_optional(dst, v, st->e);
	for (item = list_first(v, buf, sizeof(buf), &save); item != NULL;
	    item = list_next(NULL, &save)) {
		if (identity_parse(item, &id) == ID_INVALID)
			return perr(st, st->lineno, "%s: \"%.80s\" is not an "
			    "identity (CN=NAME or sha256:FINGERPRINT)", key,
			    item);
		n++;
	}
	if (n == 0)
		return perr(st, st->lineno, "%s needs an identity or none", key);
	return set_string(dst, v, st->e);
}

/* ---- keys ---- */

static int
set_key(struct parse *st, enum key k, const char *v, int quoted)
{
	struct config *cfg = st->cfg;
	struct config_daemon *d = &cfg->daemon;
	struct config_est *est = st->in_est ? &cfg->est[st->esti] : NULL;
	struct profile *p = st->prof;
	const char *key = config_keys[k].name;
	enum key_type kt;
	int64_t secs;
	int n;

	/* Only the URLs (no CDP, no AIA OCSP) and http-listen may be empty. */
	if (*v == '\0' && k != K_CA_CRL_URL && k != K_CA_OCSP_URL &&
	    k != K_D_HTTP_LISTEN)
		return perr(st, st->lineno, "%s needs a value", key);

	switch (k) {
	case K_HSM_MODULE:
		if (check_abs_path(st, key, v) != 0)
			return HSMCA_ERR_CONFIG;
		return set_string(&cfg->hsm.module, v, st->e);
	case K_HSM_TOKEN:
		if (strncmp(v, "pkcs11:", 7) != 0 || v[7] == '\0')
			return perr(st, st->lineno, "token must be a PKCS#11 "
			    "URI, as in pkcs11:token=hsmca");
		return set_string(&cfg->hsm.token, v, st->e);
	case K_HSM_PIN_SOURCE:
		if (check_pin_source(st, v) != 0)
			return HSMCA_ERR_CONFIG;
		return set_string(&cfg->hsm.pin_source, v, st->e);
	case K_HSM_SESSIONS:
		return set_int(st, key, v, 1, CONFIG_SESSIONS_MAX,
		    &cfg->hsm.sessions);
	case K_HSM_SESSION_COPY:
		return set_bool(st, key, v, &cfg->hsm.session_copy);
	case K_STORE_PATH:
		if (check_abs_path(st, key, v) != 0)
			return HSMCA_ERR_CONFIG;
		return set_string(&cfg->store.path, v, st->e);
	case K_CA_SUBJECT:
	case K_CA_ROOT_SUBJECT:
		if (check_dn(st, key, v) != 0)
			return HSMCA_ERR_CONFIG;
		return set_string(k == K_CA_SUBJECT ? &cfg->ca.subject :
		    &cfg->ca.root_subject, v, st->e);
	case K_CA_KEY_TYPE:
	case K_CA_ROOT_KEY_TYPE:
		if (keytype_parse(v, &kt) == -1)
			return perr(st, st->lineno, "%s: unknown key type "
			    "\"%.32s\" (ec-p256, ec-p384, rsa-2048 or "
			    "rsa-3072)", key, v);
		if (k == K_CA_KEY_TYPE)
			cfg->ca.key_type = kt;
		else
			cfg->ca.root_key_type = kt;
		return 0;
	case K_CA_VALIDITY:
		return parse_dur(st, key, v, 1, &cfg->ca.validity);
	case K_CA_ROOT_VALIDITY:
		return parse_dur(st, key, v, 1, &cfg->ca.root_validity);
	case K_CA_RENEW_BEFORE:
		return parse_dur(st, key, v, 1, &cfg->ca.renew_before);
	case K_CA_ACTIVATION_DELAY:
		return parse_dur(st, key, v, 0, &cfg->ca.activation_delay);
	case K_CA_CRL_NEXT_UPDATE:
		/* RFC 5280 leaves it open; relying parties cache a CRL until
		 * nextUpdate, so a long one hides revocations: 1h to 10d. */
		return parse_dur_range(st, key, v, 3600, 10 * DAY,
		    &cfg->ca.crl_next_update);
	case K_CA_CRL_URL:
	case K_CA_OCSP_URL:
		if (*v == '\0' && !quoted)
			return perr(st, st->lineno, "%s needs a value (\"\" "
			    "for none)", key);
		if (check_url(st, key, v, k == K_CA_CRL_URL) != 0)
			return HSMCA_ERR_CONFIG;
		return set_string(k == K_CA_CRL_URL ? &cfg->ca.crl_url :
		    &cfg->ca.ocsp_url, v, st->e);
	case K_CA_OCSP_SIGNER:
		if (strcmp(v, "responder") == 0)
			cfg->ca.ocsp_signer = CONFIG_OCSP_SIGNER_RESPONDER;
		else if (strcmp(v, "ca") == 0)
			cfg->ca.ocsp_signer = CONFIG_OCSP_SIGNER_CA;
		else
			return perr(st, st->lineno, "%s must be responder (a "
			    "delegated responder certificate per generation) "
			    "or ca (the generation's own key), not '%s'", key,
			    v);
		return 0;
	case K_CA_OCSP_VALIDITY:
		/* RFC 6960 leaves it open; a response is believed until its
		 * nextUpdate, so a long one hides a revocation: 8h to 7d. */
		return parse_dur_range(st, key, v, 8 * 3600, 7 * DAY,
		    &cfg->ca.ocsp_validity);
	case K_D_LISTEN:
		if (check_hostport(st, key, v) != 0)
			return HSMCA_ERR_CONFIG;
		return set_string(&d->listen, v, st->e);
	case K_D_HTTP_LISTEN:
		if (*v == '\0' && !quoted)
			return perr(st, st->lineno, "%s needs a value (none or "
			    "\"\" for none)", key);
		return set_optional_checked(st, key, *v == '\0' ? "none" : v,
		    check_hostport, &d->http_listen);
	case K_D_TLS_CERT:
	case K_D_PIDFILE:
		return set_optional_checked(st, key, v, check_abs_path,
		    k == K_D_TLS_CERT ? &d->tls_cert : &d->pidfile);
	case K_D_TLS_KEY:
		if (strncmp(v, "pkcs11:", 7) != 0)
			return set_optional_checked(st, key, v, check_abs_path,
			    &d->tls_key);
		if (v[7] == '\0')
			return perr(st, st->lineno, "tls-key: empty PKCS#11 URI");
		if (strstr(v, "pin-value") != NULL)
			return perr(st, st->lineno, "tls-key: no pin-value: the "
			    "PIN never goes in this file");
		return set_string(&d->tls_key, v, st->e);
	case K_D_WORKERS:
		if (parse_int(v, 0, CONFIG_WORKERS_MAX, &n) == -1)
			return perr(st, st->lineno, "workers must be a number "
			    "from 0 (one per core) to %d", CONFIG_WORKERS_MAX);
		d->workers = n;
		return 0;
	case K_D_USER:
		if (!valid_user(v))
			return perr(st, st->lineno, "user: bad user name "
			    "\"%.64s\" (letters, digits, '.', '_', '-'; at most "
			    "%d)", v, CONFIG_USER_MAX);
		return set_optional(&d->user, v, st->e);
	case K_D_MAX_BODY:
		return set_size(st, key, v, KIB, 16 * MIB, &d->max_body);
	case K_D_MAX_HEADER_SIZE:
		return set_size(st, key, v, KIB, MIB, &d->max_header_size);
	case K_D_MAX_HEADERS:
		return set_int(st, key, v, 1, CONFIG_HEADERS_MAX,
		    &d->max_headers);
	case K_D_TIMEOUT:
		return parse_dur_range(st, key, v, 1, CONFIG_TIMEOUT_MAX,
		    &d->timeout);
	case K_D_MAX_CONNECTIONS:
		return set_int(st, key, v, 1, CONFIG_CONNECTIONS_MAX,
		    &d->max_connections);
	case K_D_MAX_HTTP_CONNECTIONS:
		return set_int(st, key, v, 1, CONFIG_CONNECTIONS_MAX,
		    &d->max_http_connections);
	case K_A_MAX_CONNECTIONS:
		return set_int(st, key, v, 1, CONFIG_CONNECTIONS_MAX,
		    &cfg->admin.max_connections);
	case K_D_SESSION_TICKETS:
		if (parse_bool(v, &d->session_tickets) == -1)
			return perr(st, st->lineno, "session-tickets must be "
			    "true or false");
		return 0;
	case K_D_RETRY_AFTER:
		if (parse_dur_range(st, key, v, 1, CONFIG_RETRY_AFTER_MAX,
		    &secs) != 0)
			return HSMCA_ERR_CONFIG;
		d->retry_after = (int)secs;
		return 0;
	case K_D_CRL_DELAY:
		return parse_dur_range(st, key, v, 1, 3600, &d->crl_delay);
	case K_D_AUDIT_CHECKPOINT_INTERVAL:
		return parse_dur_range(st, key, v, 1, 7 * DAY,
		    &d->audit_checkpoint_interval);
	case K_D_LOG:
		if (strcmp(v, "stderr") != 0 && strcmp(v, "syslog") != 0)
			return perr(st, st->lineno, "log must be stderr or "
			    "syslog");
		return set_string(&d->log, v, st->e);
	case K_A_LISTEN:
		return set_optional_checked(st, key, v, check_hostport,
		    &cfg->admin.listen);
	case K_A_CLIENT_CA:
	case K_R_CERT:
	case K_R_KEY:
	case K_R_CA:
		return set_optional_checked(st, key, v, check_abs_path,
		    k == K_A_CLIENT_CA ? &cfg->admin.client_ca :
		    k == K_R_CERT ? &cfg->remote.cert : k == K_R_KEY ?
		    &cfg->remote.key : &cfg->remote.ca);
	case K_A_ADMINS:
	case K_A_OPERATORS:
	case K_A_AUDITORS:
		return set_identities(st, key, v, &cfg->admin.roles[k ==
		    K_A_ADMINS ? CONFIG_ROLE_ADMIN : k == K_A_OPERATORS ?
		    CONFIG_ROLE_OPERATOR : CONFIG_ROLE_AUDITOR]);
	case K_R_SERVER:
		if (strcmp(v, "none") != 0 && strncmp(v, "https://", 8) != 0)
			return perr(st, st->lineno, "server must be an https:// "
			    "URL or none");
		return set_optional(&cfg->remote.server, v, st->e);
	case K_E_PROFILE:
		if (!valid_profile_name(v))
			return perr(st, st->lineno, "profile: bad profile name "
			    "\"%.64s\"", v);
		st->est_profline[st->esti] = st->lineno;
		return set_string(&est->profile, v, st->e);
	case K_E_BOOTSTRAP_CA:
		return set_optional_checked(st, key, v, check_abs_path,
		    &est->bootstrap_ca);
	case K_E_CN_MATCH:
		return set_bool(st, key, v, &est->cn_match);
	case K_E_SERVERKEYGEN:
		return set_bool(st, key, v, &est->serverkeygen);
	case K_P_VALIDITY:
		return parse_dur(st, key, v, 1, &p->validity);
	case K_P_BACKDATE:
		if (parse_dur(st, key, v, 0, &p->backdate) != 0)
			return HSMCA_ERR_CONFIG;
		if (p->backdate > CONFIG_BACKDATE_MAX)
			return perr(st, st->lineno, "backdate: at most 1d; it "
			    "only absorbs device clock skew");
		return 0;
	case K_P_KEY_USAGE:
		if (strcmp(v, "none") == 0)
			return perr(st, st->lineno, "key-usage cannot be none: "
			    "every certificate states its key usage");
		return parse_list(st, key, v, profile_ku_parse, &p->key_usage);
	case K_P_EXT_KEY_USAGE:
		return parse_list(st, key, v, profile_eku_parse,
		    &p->ext_key_usage);
	case K_P_CA:
		return set_bool(st, key, v, &p->is_ca);
	case K_P_PATHLEN:
		if (strcmp(v, "none") == 0)
			p->pathlen = -1;
		else if (parse_int(v, 0, CONFIG_PATHLEN_MAX, &p->pathlen) == -1)
			return perr(st, st->lineno, "pathlen must be none or a "
			    "number from 0 to %d", CONFIG_PATHLEN_MAX);
		return 0;
	case K_P_SUBJECT:
		return parse_list(st, key, v, profile_subj_parse,
		    &p->subject_allowed);
	case K_P_REQUIRE_CN:
		return set_bool(st, key, v, &p->require_cn);
	case K_P_SAN:
		return parse_list(st, key, v, profile_san_parse,
		    &p->san_allowed);
	case K_P_REQUIRE_SAN:
		return set_bool(st, key, v, &p->require_san);
	case K_MAX:
		break;
	}
	return perr(st, st->lineno, "internal error: key %d", (int)k);
}

/* The last line among the given keys that the file set, else dflt. */
static size_t
last_line(const struct parse *st, size_t dflt, enum key a, enum key b)
{
	size_t l = st->keyline[a] > st->keyline[b] ?
	    st->keyline[a] : st->keyline[b];

	return l != 0 ? l : dflt;
}

/* End of a [profile] section: the checks that need all its keys. */
static int
profile_finish(struct parse *st)
{
	struct profile *p = st->prof;
	size_t hl = st->profline;

	if (p == NULL)
		return 0;
	st->prof = NULL;
	if (st->keyline[K_P_PATHLEN] != 0 && !p->is_ca)
		return perr(st, st->keyline[K_P_PATHLEN], "pathlen needs "
		    "ca = true in [profile %s]", p->name);
	if (!p->is_ca)
		p->pathlen = -1;
	if (p->key_usage == 0)
		return perr(st, hl, "[profile %s] must set key-usage", p->name);
	if (p->is_ca && (p->key_usage & PROFILE_KU_KEY_CERT_SIGN) == 0)
		return perr(st, last_line(st, hl, K_P_KEY_USAGE, K_P_CA),
		    "[profile %s] has ca = true, so key-usage must include "
		    "keyCertSign", p->name);
	if (!p->is_ca && (p->key_usage & PROFILE_KU_KEY_CERT_SIGN) != 0)
		return perr(st, last_line(st, hl, K_P_KEY_USAGE, K_P_CA),
		    "[profile %s]: keyCertSign in key-usage needs ca = true",
		    p->name);
	if (p->require_cn && (p->subject_allowed & PROFILE_SUBJ_CN) == 0)
		return perr(st, last_line(st, hl, K_P_REQUIRE_CN, K_P_SUBJECT),
		    "[profile %s] has require-cn = true but subject does not "
		    "allow CN", p->name);
	if (p->require_san && p->san_allowed == 0)
		return perr(st, last_line(st, hl, K_P_REQUIRE_SAN, K_P_SAN),
		    "[profile %s] has require-san = true but san is none",
		    p->name);
	if (p->subject_allowed == 0 && p->san_allowed == 0)
		return perr(st, last_line(st, hl, K_P_SUBJECT, K_P_SAN),
		    "[profile %s] allows neither subject attributes nor SAN "
		    "types: it could name nothing", p->name);
	return 0;
}

/* End of an [est] section. */
static int
est_finish(struct parse *st)
{
	char label[CONFIG_EST_LABEL_MAX + 8];

	if (!st->in_est)
		return 0;
	st->in_est = 0;
	if (st->keyline[K_E_PROFILE] == 0)
		return perr(st, st->estline, "%s needs profile",
		    est_section(st->cfg->est[st->esti].label, label,
		    sizeof(label)));
	return 0;
}

/* Start [est] or [est LABEL]. */
static int
est_start(struct parse *st, const char *label)
{
	char buf[CONFIG_EST_LABEL_MAX + 8];
	struct config *cfg = st->cfg;
	size_t *nl;
	int ret;

	if (*label != '\0' && !valid_est_label(label))
		return perr(st, st->lineno, "bad EST label \"%.64s\" "
		    "(letters, digits, '.', '_', '-'; at most %d)", label,
		    CONFIG_EST_LABEL_MAX);
	if (reserved_est_label(label))
		return perr(st, st->lineno, "EST label \"%s\" is reserved: "
		    "clients would read it as a path step or an EST "
		    "operation", label);
	if (config_est_label(cfg, label) != NULL)
		return perr(st, st->lineno, "duplicate section %s",
		    est_section(label, buf, sizeof(buf)));
	nl = reallocarray(st->est_profline, cfg->nest + 1, sizeof(*nl));
	if (nl == NULL)
		return err_set(st->e, HSMCA_ERR_ALLOC, "out of memory");
	st->est_profline = nl;
	if ((ret = config_add_est(cfg, label, NULL, NULL, 0, st->e)) != 0)
		return ret;
	st->esti = cfg->nest - 1;
	st->est_profline[st->esti] = 0;
	st->estline = st->lineno;
	st->in_est = 1;
	return 0;
}

static int
parse_header(struct parse *st, char *s)
{
	char *close, *after, *w1, *w2, *w3, *save = NULL;
	struct profile np;
	size_t i;
	int ret;

	if ((close = strchr(s, ']')) == NULL)
		return perr(st, st->lineno, "unterminated section header "
		    "(missing ']')");
	for (after = close + 1; *after == ' ' || *after == '\t'; after++)
		;
	if (*after != '\0' && *after != '#')
		return perr(st, st->lineno, "unexpected text after the section "
		    "header");
	*close = '\0';
	if ((ret = profile_finish(st)) != 0 || (ret = est_finish(st)) != 0)
		return ret;
	w1 = strtok_r(s + 1, " \t", &save);
	w2 = w1 != NULL ? strtok_r(NULL, " \t", &save) : NULL;
	w3 = w2 != NULL ? strtok_r(NULL, " \t", &save) : NULL;
	if (w1 == NULL)
		return perr(st, st->lineno, "empty section header");

	for (i = SEC_HSM; i < SEC_MAX; i++)
		if (strcmp(w1, section_names[i]) == 0)
			break;
	if (i == SEC_PROFILE && w3 != NULL)
		return perr(st, st->lineno, "a profile section reads "
		    "[profile NAME], one name without spaces");
	if (i == SEC_EST && w3 != NULL)
		return perr(st, st->lineno, "an EST section reads [est] or "
		    "[est LABEL], one label without spaces");
	if (i == SEC_MAX || (i != SEC_PROFILE && i != SEC_EST && w2 != NULL))
		return perr(st, st->lineno, "unknown section [%.64s%s%.64s] "
		    "(hsm, store, ca, daemon, admin, remote, profile NAME or "
		    "est [LABEL])", w1, w2 != NULL ? " " : "",
		    w2 != NULL ? w2 : "");
	memset(st->keyline + K_P_VALIDITY, 0,
	    (K_MAX - K_P_VALIDITY) * sizeof(st->keyline[0]));
	st->sec = (enum section)i;
	if (i == SEC_EST)
		return est_start(st, w2 != NULL ? w2 : "");
	if (i != SEC_PROFILE) {
		if (st->secline[i] != 0)
			return perr(st, st->lineno, "duplicate section [%s] "
			    "(first at line %zu)", w1, st->secline[i]);
		st->secline[i] = st->lineno;
		return 0;
	}

	if (w2 == NULL)
		return perr(st, st->lineno, "[profile] needs a name: "
		    "[profile NAME]");
	if (!valid_profile_name(w2))
		return perr(st, st->lineno, "bad profile name \"%.64s\" "
		    "(letters, digits, '.', '_', '-'; at most %d)", w2,
		    CONFIG_PROFILE_NAME_MAX);
	for (i = 0; i < st->cfg->nprofiles; i++)
		if (strcmp(st->cfg->profiles[i].name, w2) == 0)
			break;
	if (i < st->cfg->nprofiles) {
		/* The defaults hold the built-ins first; any later profile
		 * was added by an earlier section of this file. */
		if (i >= PROFILE_BUILTIN_COUNT || st->builtin_seen[i])
			return perr(st, st->lineno, "duplicate section "
			    "[profile %s]", w2);
		st->builtin_seen[i] = 1;
	} else {
		profile_new_leaf(&np);
		if ((np.name = strdup(w2)) == NULL)
			return err_set(st->e, HSMCA_ERR_ALLOC, "out of memory");
		if ((ret = config_add_profile(st->cfg, &np, st->e)) != 0) {
			profile_free_fields(&np);
			return ret;
		}
	}
	st->prof = &st->cfg->profiles[i];
	st->profline = st->lineno;
	return 0;
}

/* Split "key = value" (value possibly quoted, comment stripped). */
static int
parse_keyval(struct parse *st, char *s)
{
	char label[CONFIG_PROFILE_NAME_MAX + 16];
	char *eq, *kend, *v, *out, *end;
	int quoted = 0;
	size_t k;

	if ((eq = strchr(s, '=')) == NULL) {
		for (end = s; *end != '\0' && *end != ' ' && *end != '\t' &&
		    *end != '#'; end++)
			;
		*end = '\0';
		return perr(st, st->lineno, "expected key = value after "
		    "\"%.64s\"", s);
	}
	for (kend = eq; kend > s && (kend[-1] == ' ' || kend[-1] == '\t');
	    kend--)
		;
	if (kend == s)
		return perr(st, st->lineno, "a value without a key");
	*kend = '\0';

	for (v = eq + 1; *v == ' ' || *v == '\t'; v++)
		;
	if (*v == '"') {
		quoted = 1;
		out = v;
		for (end = v + 1; *end != '\0' && *end != '"'; end++) {
			if (*end == '\\' && (end[1] == '"' || end[1] == '\\'))
				end++;
			*out++ = *end;
		}
		if (*end != '"')
			return perr(st, st->lineno, "unterminated quoted value "
			    "for %.64s", s);
		*out = '\0';
		for (end++; *end == ' ' || *end == '\t'; end++)
			;
		if (*end != '\0' && *end != '#')
			return perr(st, st->lineno, "unexpected text after the "
			    "quoted value of %.64s", s);
	} else {
		for (end = v; *end != '\0'; end++) {
			if (*end == '#' && (end == v || end[-1] == ' ' ||
			    end[-1] == '\t'))
				break;
		}
		*end = '\0';
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
	}

	if (st->sec == SEC_NONE)
		return perr(st, st->lineno, "key %.64s before any [section]", s);
	for (k = 0; k < K_MAX; k++)
		if (config_keys[k].sec == st->sec &&
		    strcmp(config_keys[k].name, s) == 0)
			break;
	if (k == K_MAX)
		return perr(st, st->lineno, "unknown key %.64s in %s", s,
		    sec_label(st, label, sizeof(label)));
	if (st->keyline[k] != 0)
		return perr(st, st->lineno, "duplicate key %s in %s (first at "
		    "line %zu)", s, sec_label(st, label, sizeof(label)),
		    st->keyline[k]);
	st->keyline[k] = st->lineno;
	return set_key(st, (enum key)k, v, quoted);
}

/* After the last line: what needs the whole file. */
static int
parse_finish(struct parse *st)
{
	struct config *cfg = st->cfg;
	char b1[32], b2[32], label[CONFIG_EST_LABEL_MAX + 8];
	size_t eof = st->lineno > 0 ? st->lineno : 1;
	enum key k;
	int ret;

	if ((ret = profile_finish(st)) != 0 || (ret = est_finish(st)) != 0)
		return ret;
	if (cfg->admin.listen != NULL && cfg->admin.client_ca == NULL)
		return perr(st, st->secline[SEC_ADMIN], "[admin] listen needs "
		    "client-ca (the CA of the operators' certificates)");
	if (cfg->remote.server != NULL && (cfg->remote.cert == NULL ||
	    cfg->remote.key == NULL))
		return perr(st, st->secline[SEC_REMOTE], "[remote] server needs "
		    "cert and key (the operator's certificate and key)");
	/* A factory station's or an operator's file: only [remote], with
	 * a server. */
	if (cfg->remote.server != NULL && st->secline[SEC_HSM] == 0 &&
	    st->secline[SEC_STORE] == 0)
		return 0;
	if (st->secline[SEC_HSM] == 0)
		return perr(st, eof, "missing section [hsm] (module, token and "
		    "pin-source are required)");
	for (k = K_HSM_MODULE; k <= K_HSM_PIN_SOURCE; k++)
		if (st->keyline[k] == 0)
			return perr(st, st->secline[SEC_HSM], "[hsm] needs %s",
			    config_keys[k].name);
	if (st->secline[SEC_STORE] == 0)
		return perr(st, eof, "missing section [store] (path is "
		    "required)");
	if (st->keyline[K_STORE_PATH] == 0)
		return perr(st, st->secline[SEC_STORE], "[store] needs path");
	if (cfg->ca.renew_before >= cfg->ca.validity)
		return perr(st, last_line(st, st->secline[SEC_CA],
		    K_CA_RENEW_BEFORE, K_CA_VALIDITY), "renew-before (%s) must "
		    "be less than validity (%s)",
		    util_format_duration(cfg->ca.renew_before, b1, sizeof(b1)),
		    util_format_duration(cfg->ca.validity, b2, sizeof(b2)));
	if (cfg->ca.activation_delay >= cfg->ca.renew_before)
		return perr(st, last_line(st, st->secline[SEC_CA],
		    K_CA_ACTIVATION_DELAY, K_CA_RENEW_BEFORE), "activation-delay "
		    "(%s) must be less than renew-before (%s): a new generation "
		    "must activate before the old one expires",
		    util_format_duration(cfg->ca.activation_delay, b1,
		    sizeof(b1)),
		    util_format_duration(cfg->ca.renew_before, b2, sizeof(b2)));
	/* Profiles may be defined after the [est] section naming them. */
	for (size_t i = 0; i < cfg->nest; i++)
		if (config_profile(cfg, cfg->est[i].profile) == NULL)
			return perr(st, st->est_profline[i], "%s: no profile "
			    "\"%s\" (device, server, edge-ca or a [profile "
			    "NAME] of this file)", est_section(cfg->est[i].label,
			    label, sizeof(label)), cfg->est[i].profile);
	if (cfg->nest == 0)
		return config_add_est(cfg, "", "device", NULL, 0, st->e);
	return 0;
}

int
config_parse(const char *text, size_t len, const char *name,
    struct config **out, struct hsmca_err *e)
{
	struct config *cfg = NULL;
	struct parse st;
	char line[CONFIG_LINE_MAX + 2], *s;
	const char *p, *end, *nl;
	size_t n;
	int ret = HSMCA_ERR_CONFIG;

	memset(&st, 0, sizeof(st));
	st.name = name != NULL ? name : "(config)";
	st.e = e;
	if (text == NULL && len != 0) {
		ret = err_set(e, HSMCA_ERR_ARG, "config_parse: no text");
		goto out;
	}
	if ((ret = config_defaults(NULL, &cfg, e)) != 0)
		goto out;
	if (name != NULL && (cfg->path = strdup(name)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	st.cfg = cfg;

	if (len > 0 && (nl = memchr(text, '\0', len)) != NULL) {
		n = 1;
		for (p = text; p < nl; p++)
			n += *p == '\n';
		ret = perr(&st, n, "NUL byte in input (binary file?)");
		goto out;
	}
	for (p = text, end = text + len; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		st.lineno++;
		n = (size_t)(nl - p);
		if (n > CONFIG_LINE_MAX) {
			ret = perr(&st, st.lineno, "line longer than %d bytes",
			    CONFIG_LINE_MAX);
			goto out;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		for (s = line; *s != '\0'; s++) {
			if ((iscntrl((unsigned char)*s) && *s != '\t')) {
				ret = perr(&st, st.lineno, "control character "
				    "0x%02x in line", (unsigned char)*s);
				goto out;
			}
		}
		for (s = line; *s == ' ' || *s == '\t'; s++)
			;
		if (*s == '\0' || *s == '#')
			continue;
		if (*s == '[')
			ret = parse_header(&st, s);
		else
			ret = parse_keyval(&st, s);
		if (ret != 0)
			goto out;
	}
	if ((ret = parse_finish(&st)) != 0)
		goto out;
	*out = cfg;
	cfg = NULL;
	ret = 0;
out:
	free(st.est_profline);
	config_free(cfg);
	return ret;
}

/*
 * The names the appliance answers to, from its TLS certificate (its
 * subjectAltName, else a host name in its CN), become names that no
 * certificate below a CA profile's certificates may carry: a gateway's
 * edge CA could otherwise sign a server certificate for the appliance
 * that every client trusting hsmca's root would accept. No tls-cert
 * file yet (a CA being set up) adds none. One that does not read fails
 * no command but the issuance of a CA certificate (profile_apply), so
 * that a server certificate renewed with `hsmca issue >tls-cert` (the
 * shell empties the file first) or a broken file locks nothing else.
 */
static int
config_own_names(struct config *cfg, const struct fileset *fs,
    struct hsmca_err *e)
{
	const char *path = cfg->daemon.tls_cert;
	const struct fileset_file *f;
	GENERAL_NAMES *names = NULL;
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *dns = NULL;
	X509 *x = NULL;
	BIO *b = NULL;
	char cn[256], why[200];
	size_t i;
	int ret = 0;

	why[0] = '\0';
	if (path == NULL)
		return 0;
	for (i = 0; i < cfg->nprofiles && !cfg->profiles[i].is_ca; i++)
		;
	if (i == cfg->nprofiles)
		return 0;
	if ((f = fileset_get(fs, path)) == NULL || f->errnum == ENOENT)
		return 0;
	if (f->data == NULL) {
		snprintf(why, sizeof(why), "tls-cert %s", f->why != NULL ?
		    f->why : path);
		goto out;
	}
	if ((b = BIO_new_mem_buf(f->data, (int)f->len)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	if ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
		ERR_clear_error();
		snprintf(why, sizeof(why), "tls-cert %s holds no certificate",
		    path);
		goto out;
	}
	names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (names == NULL && util_name_cn(X509_get_subject_name(x), cn,
	    sizeof(cn)) == 0 && cn[0] != '\0' &&
	    strspn(cn, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == strlen(cn)) {
		if ((names = GENERAL_NAMES_new()) == NULL ||
		    (gn = GENERAL_NAME_new()) == NULL ||
		    (dns = ASN1_IA5STRING_new()) == NULL ||
		    !ASN1_STRING_set(dns, cn, -1)) {
			ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
			goto out;
		}
		GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
		dns = NULL;
		if (!sk_GENERAL_NAME_push(names, gn)) {
			ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
			goto out;
		}
		gn = NULL;
	}
	for (i = 0; names != NULL && i < cfg->nprofiles && ret == 0; i++)
		if (cfg->profiles[i].is_ca)
			ret = profile_exclude_names(&cfg->profiles[i], names,
			    e);
out:
	for (i = 0; why[0] != '\0' && i < cfg->nprofiles; i++)
		if (cfg->profiles[i].is_ca)
			snprintf(cfg->profiles[i].excluded_err,
			    sizeof(cfg->profiles[i].excluded_err), "%s", why);
	ASN1_IA5STRING_free(dns);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(names);
	X509_free(x);
	BIO_free(b);
	return ret;
}

/* Parse the configuration at path (NULL: the defaults) from fs. */
static int
config_parse_from(const struct fileset *fs, const char *path,
    struct config **out, struct hsmca_err *e)
{
	const unsigned char *text;
	char *home = NULL;
	size_t len;
	int ret;

	*out = NULL;
	if (path == NULL) {
		if ((ret = demo_home(&home, e)) == 0)
			ret = config_defaults(home, out, e);
		free(home);
	} else if ((ret = fileset_data(fs, path, &text, &len, e)) == 0) {
		if (len > CONFIG_MAX_SIZE)
			return err_set(e, HSMCA_ERR_IO, "%s: larger than %d "
			    "bytes", path, CONFIG_MAX_SIZE);
		ret = config_parse((const char *)text, len, path, out, e);
	}
	return ret;
}

int
config_load_fileset(const struct fileset *fs, const char *path,
    struct config **out, struct hsmca_err *e)
{
	int ret;

	if ((ret = config_parse_from(fs, path, out, e)) == 0 &&
	    (ret = config_own_names(*out, fs, e)) != 0) {
		config_free(*out);
		*out = NULL;
	}
	return ret;
}

/* Read path, then the files it names (all, or only tls-cert, which
 * every command needs for the names CA profiles exclude), into fs. */
static int
config_read(const char *path, int all, struct fileset **fsp,
    struct config **out, struct hsmca_err *e)
{
	struct fileset *fs = NULL;
	struct config *cfg = NULL;
	int ret;

	*out = NULL;
	if ((fs = fileset_new()) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	if ((path != NULL && (ret = fileset_read(fs, path, e)) != 0) ||
	    (ret = config_parse_from(fs, path, &cfg, e)) != 0)
		goto out;
	if (cfg->daemon.tls_cert != NULL &&
	    (ret = fileset_read(fs, cfg->daemon.tls_cert, e)) != 0)
		goto out;
	for (size_t i = 0; all && i < cfg->nest; i++)
		if (cfg->est[i].bootstrap_ca != NULL &&
		    (ret = fileset_read(fs, cfg->est[i].bootstrap_ca, e)) != 0)
			goto out;
	if (all && cfg->admin.client_ca != NULL &&
	    (ret = fileset_read(fs, cfg->admin.client_ca, e)) != 0)
		goto out;
	if ((ret = config_own_names(cfg, fs, e)) != 0)
		goto out;
	*out = cfg;
	cfg = NULL;
	if (fsp != NULL) {
		*fsp = fs;
		fs = NULL;
	}
out:
	config_free(cfg);
	fileset_free(fs);
	return ret;
}

int
config_load(const char *path, struct config **out, struct hsmca_err *e)
{
	return config_read(path, 0, NULL, out, e);
}

int
config_snapshot(const char *path, struct fileset **fs, struct config **out,
    struct hsmca_err *e)
{
	return config_read(path, 1, fs, out, e);
}

/* ---- printing ---- */

/* key = value, quoted when the value would not survive unquoted. */
static void
print_kv(FILE *fp, const char *key, const char *v)
{
	size_t n;
	int quote;

	if (v == NULL)
		v = "";
	n = strlen(v);
	quote = n == 0 || v[0] == ' ' || v[0] == '\t' || v[0] == '"' ||
	    v[n - 1] == ' ' || v[n - 1] == '\t' || strchr(v, '#') != NULL;
	fprintf(fp, "%s = ", key);
	if (!quote) {
		fprintf(fp, "%s\n", v);
		return;
	}
	fputc('"', fp);
	for (; *v != '\0'; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', fp);
		fputc(*v, fp);
	}
	fputs("\"\n", fp);
}

/* An optional string: NULL reads "none". */
static void
print_opt(FILE *fp, const char *key, const char *v)
{
	print_kv(fp, key, v != NULL ? v : "none");
}

static void
print_bool(FILE *fp, const char *key, int b)
{
	print_kv(fp, key, b ? "true" : "false");
}

static void
print_int(FILE *fp, const char *key, int n)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%d", n);
	print_kv(fp, key, buf);
}

static void
print_dur(FILE *fp, const char *key, int64_t secs)
{
	char buf[32];

	print_kv(fp, key, util_format_duration(secs, buf, sizeof(buf)));
}

static void
print_list(FILE *fp, const char *key, unsigned int mask,
    char *(*fmt)(unsigned int, char *, size_t))
{
	char buf[256];

	if (mask == 0 || fmt(mask, buf, sizeof(buf)) == NULL || *buf == '\0')
		print_kv(fp, key, "none");
	else
		print_kv(fp, key, buf);
}

static void
print_profile(FILE *fp, const struct profile *p)
{
	fprintf(fp, "\n[profile %s]\n", p->name);
	print_dur(fp, "validity", p->validity);
	print_dur(fp, "backdate", p->backdate);
	print_list(fp, "key-usage", p->key_usage, profile_ku_format);
	print_list(fp, "extended-key-usage", p->ext_key_usage,
	    profile_eku_format);
	print_bool(fp, "ca", p->is_ca);
	if (p->is_ca && p->pathlen < 0)
		print_kv(fp, "pathlen", "none");
	else if (p->is_ca)
		print_int(fp, "pathlen", p->pathlen);
	print_list(fp, "subject", p->subject_allowed, profile_subj_format);
	print_bool(fp, "require-cn", p->require_cn);
	print_list(fp, "san", p->san_allowed, profile_san_format);
	print_bool(fp, "require-san", p->require_san);
}

static void
print_size(FILE *fp, const char *key, int64_t n)
{
	char buf[32];

	print_kv(fp, key, format_size(n, buf, sizeof(buf)));
}

static void
print_daemon(FILE *fp, const struct config_daemon *d)
{
	fputs("\n[daemon]\n", fp);
	print_kv(fp, "listen", d->listen);
	print_opt(fp, "http-listen", d->http_listen);
	print_opt(fp, "tls-cert", d->tls_cert);
	print_opt(fp, "tls-key", d->tls_key);
	print_int(fp, "workers", d->workers);
	print_opt(fp, "user", d->user);
	print_opt(fp, "pidfile", d->pidfile);
	print_size(fp, "max-body", d->max_body);
	print_size(fp, "max-header-size", d->max_header_size);
	print_int(fp, "max-headers", d->max_headers);
	print_dur(fp, "timeout", d->timeout);
	print_int(fp, "max-connections", d->max_connections);
	print_int(fp, "max-http-connections", d->max_http_connections);
	print_bool(fp, "session-tickets", d->session_tickets);
	print_dur(fp, "retry-after", d->retry_after);
	print_dur(fp, "crl-delay", d->crl_delay);
	print_dur(fp, "audit-checkpoint-interval",
	    d->audit_checkpoint_interval);
	print_kv(fp, "log", d->log);
}

static void
print_admin(FILE *fp, const struct config_admin *a)
{
	fputs("\n[admin]\n", fp);
	print_opt(fp, "listen", a->listen);
	print_opt(fp, "client-ca", a->client_ca);
	print_int(fp, "max-connections", a->max_connections);
	print_opt(fp, "admins", a->roles[CONFIG_ROLE_ADMIN]);
	print_opt(fp, "operators", a->roles[CONFIG_ROLE_OPERATOR]);
	print_opt(fp, "auditors", a->roles[CONFIG_ROLE_AUDITOR]);
}

static void
print_remote(FILE *fp, const struct config_remote *r)
{
	fputs("\n[remote]\n", fp);
	print_opt(fp, "server", r->server);
	print_opt(fp, "cert", r->cert);
	print_opt(fp, "key", r->key);
	print_opt(fp, "ca", r->ca);
}

static void
print_est(FILE *fp, const struct config_est *est)
{
	char buf[CONFIG_EST_LABEL_MAX + 8];

	fprintf(fp, "\n%s\n", est_section(est->label, buf, sizeof(buf)));
	print_kv(fp, "profile", est->profile);
	print_opt(fp, "bootstrap-ca", est->bootstrap_ca);
	print_bool(fp, "cn-match", est->cn_match);
	print_bool(fp, "serverkeygen", est->serverkeygen);
}

int
config_print(const struct config *cfg, FILE *fp)
{
	if (cfg == NULL || fp == NULL)
		return HSMCA_ERR_ARG;
	/* A file with [remote] and neither [hsm] nor [store] reads back
	 * without them. */
	if (cfg->remote.server == NULL || cfg->hsm.module != NULL ||
	    cfg->store.path != NULL) {
		fputs("[hsm]\n", fp);
		print_kv(fp, "module", cfg->hsm.module);
		print_kv(fp, "token", cfg->hsm.token);
		print_kv(fp, "pin-source", cfg->hsm.pin_source);
		print_int(fp, "sessions", cfg->hsm.sessions);
		print_bool(fp, "session-copy", cfg->hsm.session_copy);

		fputs("\n[store]\n", fp);
		print_kv(fp, "path", cfg->store.path);
		fputc('\n', fp);
	}

	fputs("[ca]\n", fp);
	print_kv(fp, "subject", cfg->ca.subject);
	print_kv(fp, "key-type", keytype_name(cfg->ca.key_type));
	print_dur(fp, "validity", cfg->ca.validity);
	print_kv(fp, "root-subject", cfg->ca.root_subject);
	print_kv(fp, "root-key-type", keytype_name(cfg->ca.root_key_type));
	print_dur(fp, "root-validity", cfg->ca.root_validity);
	print_dur(fp, "renew-before", cfg->ca.renew_before);
	print_dur(fp, "activation-delay", cfg->ca.activation_delay);
	print_dur(fp, "crl-next-update", cfg->ca.crl_next_update);
	print_kv(fp, "crl-url", cfg->ca.crl_url);
	print_kv(fp, "ocsp-url", cfg->ca.ocsp_url);
	print_kv(fp, "ocsp-signer", cfg->ca.ocsp_signer ==
	    CONFIG_OCSP_SIGNER_CA ? "ca" : "responder");
	print_dur(fp, "ocsp-validity", cfg->ca.ocsp_validity);

	print_daemon(fp, &cfg->daemon);
	print_admin(fp, &cfg->admin);
	print_remote(fp, &cfg->remote);
	for (size_t i = 0; i < cfg->nprofiles; i++)
		print_profile(fp, &cfg->profiles[i]);
	for (size_t i = 0; i < cfg->nest; i++)
		print_est(fp, &cfg->est[i]);
	if (fflush(fp) != 0 || ferror(fp))
		return HSMCA_ERR_IO;
	return 0;
}
