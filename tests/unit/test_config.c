/* test_config.c: hsmca.conf parsing. Golden files in tests/unit/golden
 * (each *.conf parsed, printed normalized, compared with *.out byte for
 * byte, then re-parsed and printed again: identical), refusals with their
 * "name:line:" and the embedded defaults. HSMCA_GOLDEN_UPDATE=1 rewrites
 * the .out files (review the diff before committing). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "hsmca/config.h"
#include "hsmca/fileset.h"
#include "hsmca/profile.h"
#include "hsmca/util.h"
#include "testutil.h"

static char *
print_mem(const struct config *cfg, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *fp = open_memstream(&buf, &n);

	assert_non_null(fp);
	assert_int_equal(config_print(cfg, fp), 0);
	assert_int_equal(fclose(fp), 0);
	*len = n;
	return buf;
}

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Field by field: what config_parse(config_print(x)) must reproduce. */
static void
assert_config_equal(const struct config *a, const struct config *b)
{
	assert_true(str_eq(a->hsm.module, b->hsm.module));
	assert_true(str_eq(a->hsm.token, b->hsm.token));
	assert_true(str_eq(a->hsm.pin_source, b->hsm.pin_source));
	assert_int_equal(a->hsm.sessions, b->hsm.sessions);
	assert_int_equal(a->hsm.session_copy, b->hsm.session_copy);
	assert_true(str_eq(a->store.path, b->store.path));
	assert_true(str_eq(a->ca.subject, b->ca.subject));
	assert_int_equal(a->ca.key_type, b->ca.key_type);
	assert_int_equal(a->ca.validity, b->ca.validity);
	assert_true(str_eq(a->ca.root_subject, b->ca.root_subject));
	assert_int_equal(a->ca.root_key_type, b->ca.root_key_type);
	assert_int_equal(a->ca.root_validity, b->ca.root_validity);
	assert_int_equal(a->ca.renew_before, b->ca.renew_before);
	assert_int_equal(a->ca.activation_delay, b->ca.activation_delay);
	assert_true(str_eq(a->ca.crl_url, b->ca.crl_url));
	assert_true(str_eq(a->ca.ocsp_url, b->ca.ocsp_url));
	assert_int_equal(a->nprofiles, b->nprofiles);
	for (size_t i = 0; i < a->nprofiles; i++) {
		const struct profile *p = &a->profiles[i], *q = &b->profiles[i];

		assert_string_equal(p->name, q->name);
		assert_int_equal(p->validity, q->validity);
		assert_int_equal(p->backdate, q->backdate);
		assert_int_equal(p->key_usage, q->key_usage);
		assert_int_equal(p->ext_key_usage, q->ext_key_usage);
		assert_int_equal(p->is_ca, q->is_ca);
		assert_int_equal(p->pathlen, q->pathlen);
		assert_int_equal(p->subject_allowed, q->subject_allowed);
		assert_int_equal(p->require_cn, q->require_cn);
		assert_int_equal(p->san_allowed, q->san_allowed);
		assert_int_equal(p->require_san, q->require_san);
	}
	assert_true(str_eq(a->daemon.listen, b->daemon.listen));
	assert_true(str_eq(a->daemon.http_listen, b->daemon.http_listen));
	assert_true(str_eq(a->daemon.tls_cert, b->daemon.tls_cert));
	assert_true(str_eq(a->daemon.tls_key, b->daemon.tls_key));
	assert_int_equal(a->daemon.workers, b->daemon.workers);
	assert_true(str_eq(a->daemon.user, b->daemon.user));
	assert_true(str_eq(a->daemon.pidfile, b->daemon.pidfile));
	assert_int_equal(a->daemon.max_body, b->daemon.max_body);
	assert_int_equal(a->daemon.max_header_size, b->daemon.max_header_size);
	assert_int_equal(a->daemon.max_headers, b->daemon.max_headers);
	assert_int_equal(a->daemon.timeout, b->daemon.timeout);
	assert_int_equal(a->daemon.max_connections, b->daemon.max_connections);
	assert_int_equal(a->daemon.max_http_connections,
	    b->daemon.max_http_connections);
	assert_int_equal(a->admin.max_connections, b->admin.max_connections);
	assert_int_equal(a->daemon.retry_after, b->daemon.retry_after);
	assert_true(str_eq(a->daemon.log, b->daemon.log));
	assert_int_equal(a->nest, b->nest);
	for (size_t i = 0; i < a->nest; i++) {
		const struct config_est *p = &a->est[i], *q = &b->est[i];

		assert_string_equal(p->label, q->label);
		assert_true(str_eq(p->profile, q->profile));
		assert_true(str_eq(p->bootstrap_ca, q->bootstrap_ca));
		assert_int_equal(p->cn_match, q->cn_match);
		assert_int_equal(p->serverkeygen, q->serverkeygen);
	}
}

/* Fail with the first differing line, so a golden mismatch is readable. */
static void
assert_same_text(const char *what, const char *want, size_t wlen,
    const char *got, size_t glen)
{
	size_t i, line = 1, ls = 0;

	if (wlen == glen && memcmp(want, got, wlen) == 0)
		return;
	for (i = 0; i < wlen && i < glen && want[i] == got[i]; i++) {
		if (want[i] == '\n') {
			line++;
			ls = i + 1;
		}
	}
	fail_msg("%s differs at line %zu:\n  want: %.*s\n  got:  %.*s", what,
	    line, (int)strcspn(want + ls, "\n"), want + ls,
	    (int)strcspn(got + ls, "\n"), got + ls);
}

static const char *
golden_dir(char *buf, size_t len)
{
	const char *top = getenv("top_srcdir");

	if (top == NULL || *top == '\0')
		fail_msg("top_srcdir is not set: run as "
		    "top_srcdir=/path/to/hsmca ./tests/unit/test_config "
		    "(make check sets it)");
	snprintf(buf, len, "%s/tests/unit/golden", top);
	return buf;
}

static int
is_conf(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 5 && strcmp(d->d_name + n - 5, ".conf") == 0;
}

static void
test_golden(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX + 300], outpath[PATH_MAX + 300];
	struct dirent **ents = NULL;
	struct hsmca_err e;
	struct config *cfg, *cfg2;
	unsigned char *want;
	char *got, *got2;
	size_t wlen, glen, glen2;
	int n, i, update = getenv("HSMCA_GOLDEN_UPDATE") != NULL;

	(void)state;
	golden_dir(dir, sizeof(dir));
	n = scandir(dir, &ents, is_conf, alphasort);
	if (n < 0)
		fail_msg("cannot read %s", dir);
	assert_true(n >= 4);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		snprintf(outpath, sizeof(outpath), "%.*s.out",
		    (int)strlen(path) - 5, path);
		err_clear(&e);
		cfg = NULL;
		if (config_load(path, &cfg, &e) != 0)
			fail_msg("%s: %s", ents[i]->d_name, e.msg);
		assert_string_equal(cfg->path, path);
		got = print_mem(cfg, &glen);
		if (update && util_write_file_atomic(outpath, got, glen, 0644,
		    &e) != 0)
			fail_msg("%s", e.msg);
		if (util_read_file(outpath, 1 << 20, &want, &wlen, &e) != 0)
			fail_msg("%s (HSMCA_GOLDEN_UPDATE=1 creates it)", e.msg);
		assert_same_text(outpath, (const char *)want, wlen, got, glen);

		/* The normalized form parses to the same config and prints
		 * the same again. */
		cfg2 = NULL;
		if (config_parse(got, glen, "reprint", &cfg2, &e) != 0)
			fail_msg("%s, re-parsed: %s", ents[i]->d_name, e.msg);
		assert_config_equal(cfg, cfg2);
		got2 = print_mem(cfg2, &glen2);
		assert_same_text("re-print", got, glen, got2, glen2);

		free(got2);
		free(got);
		free(want);
		config_free(cfg2);
		config_free(cfg);
		free(ents[i]);
	}
	free(ents);
}

/* What the golden files cannot show: values the parser stored. */
static void
test_values(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX + 64];
	struct hsmca_err e;
	struct config *cfg = NULL;
	const struct profile *p;

	(void)state;
	golden_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/quoting.conf", dir);
	if (config_load(path, &cfg, &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(cfg->ca.subject, "CN=Device CA #1,O=Example");
	assert_string_equal(cfg->ca.crl_url,
	    "http://ca.example.com/crl/%g.crl#frag");
	assert_string_equal(cfg->ca.ocsp_url, "");
	assert_string_equal(cfg->hsm.module, "/opt/my hsm/lib pkcs11.so");
	assert_string_equal(cfg->hsm.token, "pkcs11:token=a\"b\\c");
	assert_string_equal(cfg->store.path, "/var/lib/hsmca #2/hsmca.db");
	assert_int_equal(cfg->hsm.sessions, 256);
	assert_int_equal(cfg->ca.validity, 3 * 365 * 86400);
	assert_int_equal(cfg->ca.key_type, KEY_RSA_3072);
	assert_int_equal(cfg->ca.activation_delay, 0);
	config_free(cfg);

	cfg = NULL;
	snprintf(path, sizeof(path), "%s/profile-override.conf", dir);
	if (config_load(path, &cfg, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(cfg->nprofiles, PROFILE_BUILTIN_COUNT);
	assert_non_null(p = config_profile(cfg, "edge-ca"));
	assert_int_equal(p->validity, 30 * 86400);
	assert_int_equal(p->pathlen, 1);
	assert_true(p->is_ca);
	/* Untouched keys keep the built-in's values. */
	assert_int_equal(p->key_usage, PROFILE_KU_KEY_CERT_SIGN |
	    PROFILE_KU_CRL_SIGN | PROFILE_KU_DIGITAL_SIGNATURE);
	assert_non_null(p = config_profile(cfg, "device"));
	assert_int_equal(p->key_usage, PROFILE_KU_DIGITAL_SIGNATURE);
	assert_int_equal(p->ext_key_usage, PROFILE_EKU_CLIENT_AUTH);
	assert_int_equal(p->san_allowed, 0);
	assert_int_equal(p->backdate, 3600);
	assert_int_equal(cfg->hsm.sessions, 16);
	assert_null(config_profile(cfg, "nosuch"));
	config_free(cfg);

	cfg = NULL;
	snprintf(path, sizeof(path), "%s/profile-new.conf", dir);
	if (config_load(path, &cfg, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(cfg->nprofiles, PROFILE_BUILTIN_COUNT + 3);
	assert_string_equal(cfg->profiles[0].name, "device");
	assert_string_equal(cfg->profiles[1].name, "server");
	assert_string_equal(cfg->profiles[2].name, "edge-ca");
	assert_string_equal(cfg->profiles[3].name, "ocsp-responder");
	assert_string_equal(cfg->profiles[4].name, "sensor.v2");
	assert_string_equal(cfg->profiles[5].name, "sub-ca");
	assert_non_null(p = config_profile(cfg, "sensor.v2"));
	assert_int_equal(p->validity, 365 * 86400);	/* new-profile default */
	assert_int_equal(p->key_usage, PROFILE_KU_DIGITAL_SIGNATURE |
	    PROFILE_KU_KEY_AGREEMENT);
	assert_int_equal(p->subject_allowed, 0);
	assert_true(p->require_san);
	assert_non_null(p = config_profile(cfg, "sub-ca"));
	assert_true(p->is_ca);
	assert_int_equal(p->pathlen, -1);
	assert_int_equal(p->backdate, 0);
	config_free(cfg);
}

/* Parse text that must be accepted. */
static struct config *
parse_ok(const char *text)
{
	struct hsmca_err e;
	struct config *cfg = NULL;

	if (config_parse(text, strlen(text), "t.conf", &cfg, &e) != 0)
		fail_msg("%s", e.msg);
	return cfg;
}

/* Lines 1-6: a valid minimal file to which each case appends. */
#define BASE "[hsm]\nmodule = /m.so\ntoken = pkcs11:token=t\n" \
	"pin-source = env:P\n[store]\npath = /s.db\n"

static void
test_daemon_est(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX + 64];
	struct hsmca_err e;
	struct config *cfg = NULL;
	const struct config_est *est;

	(void)state;
	golden_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/daemon-est.conf", dir);
	if (config_load(path, &cfg, &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(cfg->daemon.listen, "[2001:db8::1]:443");
	assert_string_equal(cfg->daemon.http_listen, "ca.example.com:80");
	assert_string_equal(cfg->daemon.tls_cert,
	    "/etc/hsmca/tls/server-chain.pem");
	assert_string_equal(cfg->daemon.tls_key,
	    "pkcs11:token=hsmca;object=est-tls;type=private");
	assert_int_equal(cfg->daemon.workers, 8);
	assert_string_equal(cfg->daemon.user, "_hsmca");
	assert_string_equal(cfg->daemon.pidfile, "/run/hsmcad.pid");
	assert_int_equal(cfg->daemon.max_body, 1048577);
	assert_int_equal(cfg->daemon.max_header_size, 16384);
	assert_int_equal(cfg->daemon.max_headers, 1000);
	assert_int_equal(cfg->daemon.timeout, 60);
	assert_int_equal(cfg->daemon.max_connections, 100000);
	assert_int_equal(cfg->daemon.max_http_connections, 5000);
	assert_int_equal(cfg->admin.max_connections, 64);
	assert_int_equal(cfg->daemon.retry_after, 120);
	assert_string_equal(cfg->daemon.log, "syslog");
	/* Labels in file order; no implicit default besides the file's. */
	assert_int_equal(cfg->nest, 3);
	assert_string_equal(cfg->est[0].label, "sensors.v2");
	assert_string_equal(cfg->est[1].label, "");
	assert_string_equal(cfg->est[2].label, "edge_gw-1");
	assert_non_null(est = config_est_label(cfg, "sensors.v2"));
	assert_string_equal(est->profile, "sensor");
	assert_null(est->bootstrap_ca);
	assert_false(est->cn_match);
	assert_false(est->serverkeygen);
	assert_non_null(est = config_est_label(cfg, ""));
	assert_string_equal(est->profile, "device");
	assert_string_equal(est->bootstrap_ca, "/etc/hsmca/factory-ca.pem");
	assert_true(est->cn_match);
	assert_false(est->serverkeygen);
	assert_non_null(est = config_est_label(cfg, "edge_gw-1"));
	assert_string_equal(est->profile, "edge-ca");
	assert_true(est->serverkeygen);
	assert_null(config_est_label(cfg, "edge"));
	assert_null(config_est_label(cfg, NULL));
	assert_null(config_est_label(NULL, ""));
	config_free(cfg);

	/* A file without [daemon] or [est]: the file defaults. */
	cfg = parse_ok(BASE);
	assert_string_equal(cfg->daemon.listen, "0.0.0.0:8443");
	assert_null(cfg->daemon.http_listen);
	assert_null(cfg->daemon.tls_cert);
	assert_null(cfg->daemon.tls_key);
	assert_int_equal(cfg->daemon.workers, 0);
	assert_null(cfg->daemon.user);
	assert_null(cfg->daemon.pidfile);
	assert_int_equal(cfg->daemon.max_body, 64 * 1024);
	assert_int_equal(cfg->daemon.max_header_size, 8 * 1024);
	assert_int_equal(cfg->daemon.max_headers, 50);
	assert_int_equal(cfg->daemon.timeout, 10);
	assert_int_equal(cfg->daemon.max_connections, 1024);
	assert_int_equal(cfg->daemon.max_http_connections, 1024);
	assert_int_equal(cfg->admin.max_connections, 64);
	assert_int_equal(cfg->daemon.retry_after, 30);
	assert_string_equal(cfg->daemon.log, "stderr");
	assert_int_equal(cfg->nest, 1);
	assert_non_null(est = config_est_label(cfg, ""));
	assert_string_equal(est->profile, "device");
	assert_null(est->bootstrap_ca);
	assert_true(est->cn_match);
	assert_false(est->serverkeygen);
	config_free(cfg);

	/* "" and none clear optional values; the limits are accepted; a
	 * file's [est LABEL] replaces the default label. */
	cfg = parse_ok(BASE "[daemon]\nhttp-listen = \"\"\ntls-key = none\n"
	    "user = none\npidfile = none\ntls-cert = none\n"
	    "listen = localhost:65535\nmax-body = 16m\n"
	    "max-header-size = 1k\nmax-headers = 1\ntimeout = 1h\n"
	    "retry-after = 1s\nmax-connections = 1\nworkers = 256\n"
	    "max-http-connections = 1\n"
	    "[admin]\nmax-connections = 100000\n"
	    "[est only]\nprofile = server\n");
	assert_null(cfg->daemon.http_listen);
	assert_null(cfg->daemon.tls_key);
	assert_null(cfg->daemon.user);
	assert_int_equal(cfg->daemon.max_body, 16 * 1024 * 1024);
	assert_int_equal(cfg->daemon.max_header_size, 1024);
	assert_int_equal(cfg->daemon.timeout, 3600);
	assert_int_equal(cfg->daemon.retry_after, 1);
	assert_int_equal(cfg->daemon.workers, 256);
	assert_int_equal(cfg->daemon.max_connections, 1);
	assert_int_equal(cfg->daemon.max_http_connections, 1);
	assert_int_equal(cfg->admin.max_connections, 100000);
	assert_int_equal(cfg->nest, 1);
	assert_null(config_est_label(cfg, ""));
	assert_non_null(config_est_label(cfg, "only"));
	config_free(cfg);

	cfg = parse_ok(BASE "[daemon]\nlisten = [::]:8443\n"
	    "http-listen = 10.0.0.1:8080\ntls-key = /etc/hsmca/server.key\n");
	assert_string_equal(cfg->daemon.listen, "[::]:8443");
	assert_string_equal(cfg->daemon.http_listen, "10.0.0.1:8080");
	assert_string_equal(cfg->daemon.tls_key, "/etc/hsmca/server.key");
	config_free(cfg);
}

/* hsmcad fixes the demo directory once, where it starts: a load after
 * -d moved it to / names the files the first load named. */
static void
test_fix_demo_home(void **state)
{
	struct hsmca_err e;
	struct config *cfg = NULL;
	char cwd[PATH_MAX], want[PATH_MAX + 64];
	int ret;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_string_not_equal(cwd, "/");
	assert_int_equal(setenv("HSMCA_HOME", "./rel/home/", 1), 0);
	assert_int_equal(config_fix_demo_home(&e), 0);
	snprintf(want, sizeof(want), "%s/rel/home", cwd);
	assert_string_equal(getenv("HSMCA_HOME"), want);
	assert_int_equal(chdir("/"), 0);
	ret = config_load(NULL, &cfg, &e);
	assert_int_equal(chdir(cwd), 0);
	if (ret != 0)
		fail_msg("%s", e.msg);
	snprintf(want, sizeof(want), "%s/rel/home/hsmca.db", cwd);
	assert_string_equal(cfg->store.path, want);
	config_free(cfg);

	/* Unset: ./hsmca-demo, fixed the same way. */
	assert_int_equal(unsetenv("HSMCA_HOME"), 0);
	assert_int_equal(config_fix_demo_home(&e), 0);
	snprintf(want, sizeof(want), "%s/hsmca-demo", cwd);
	assert_string_equal(getenv("HSMCA_HOME"), want);
	assert_int_equal(unsetenv("HSMCA_HOME"), 0);
}

static void
test_defaults(void **state)
{
	struct hsmca_err e;
	struct config *cfg = NULL, *cfg2 = NULL;
	struct profile b;
	char cwd[PATH_MAX], want[PATH_MAX + 64], *out;
	size_t len;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));

	assert_int_equal(setenv("HSMCA_HOME", "/srv/demo/", 1), 0);
	if (config_load(NULL, &cfg, &e) != 0)
		fail_msg("%s", e.msg);
	assert_null(cfg->path);
	assert_string_equal(cfg->hsm.module, HSMCA_SOFTHSM_MODULE);
	assert_string_equal(cfg->hsm.token, "pkcs11:token=hsmca");
	assert_string_equal(cfg->hsm.pin_source, "file:/srv/demo/user.pin");
	assert_int_equal(cfg->hsm.sessions, 4);
	assert_int_equal(cfg->hsm.session_copy, 1);
	assert_string_equal(cfg->store.path, "/srv/demo/hsmca.db");
	assert_string_equal(cfg->ca.subject,
	    "CN=hsmca Demo Device CA,O=hsmca demo");
	assert_int_equal(cfg->ca.key_type, KEY_EC_P256);
	assert_int_equal(cfg->ca.validity, 2 * 365 * 86400);
	assert_string_equal(cfg->ca.root_subject,
	    "CN=hsmca Demo Root CA,O=hsmca demo");
	assert_int_equal(cfg->ca.root_key_type, KEY_EC_P384);
	assert_int_equal(cfg->ca.root_validity, 20LL * 365 * 86400);
	assert_int_equal(cfg->ca.renew_before, 90 * 86400);
	assert_int_equal(cfg->ca.activation_delay, 45 * 86400);
	assert_string_equal(cfg->ca.crl_url, "http://127.0.0.1:8080/crl/%g.crl");
	assert_string_equal(cfg->ca.ocsp_url, "http://127.0.0.1:8080/ocsp");
	assert_int_equal(cfg->nprofiles, PROFILE_BUILTIN_COUNT);
	for (int i = 0; i < PROFILE_BUILTIN_COUNT; i++) {
		profile_builtin(i, &b);
		assert_string_equal(cfg->profiles[i].name, b.name);
		assert_int_equal(cfg->profiles[i].key_usage, b.key_usage);
		assert_int_equal(cfg->profiles[i].validity, b.validity);
		profile_free_fields(&b);
	}
	assert_non_null(config_profile(cfg, "device"));
	assert_non_null(config_profile(cfg, "server"));
	assert_non_null(config_profile(cfg, "edge-ca"));
	assert_string_equal(cfg->daemon.listen, "127.0.0.1:8443");
	assert_string_equal(cfg->daemon.http_listen, "127.0.0.1:8080");
	assert_string_equal(cfg->daemon.tls_cert, "/srv/demo/server.pem");
	assert_string_equal(cfg->daemon.tls_key, "/srv/demo/server.key");
	assert_int_equal(cfg->daemon.workers, 0);
	assert_null(cfg->daemon.user);
	assert_null(cfg->daemon.pidfile);
	assert_int_equal(cfg->daemon.max_body, 64 * 1024);
	assert_int_equal(cfg->daemon.max_header_size, 8 * 1024);
	assert_int_equal(cfg->daemon.max_headers, 50);
	assert_int_equal(cfg->daemon.timeout, 10);
	assert_int_equal(cfg->daemon.max_connections, 1024);
	assert_int_equal(cfg->daemon.max_http_connections, 1024);
	assert_int_equal(cfg->admin.max_connections, 64);
	assert_int_equal(cfg->daemon.retry_after, 30);
	assert_string_equal(cfg->daemon.log, "stderr");
	assert_int_equal(cfg->nest, 2);
	assert_string_equal(cfg->est[0].label, "");
	assert_string_equal(cfg->est[0].profile, "device");
	assert_string_equal(cfg->est[0].bootstrap_ca,
	    "/srv/demo/factory-ca.pem");
	assert_true(cfg->est[0].cn_match);
	assert_false(cfg->est[0].serverkeygen);
	assert_ptr_equal(config_est_label(cfg, "edge"), &cfg->est[1]);
	assert_string_equal(cfg->est[1].profile, "edge-ca");
	assert_string_equal(cfg->est[1].bootstrap_ca,
	    "/srv/demo/factory-ca.pem");
	assert_true(cfg->est[1].cn_match);
	assert_true(cfg->est[1].serverkeygen);

	/* The defaults print as a file that parses back to them. */
	out = print_mem(cfg, &len);
	if (config_parse(out, len, "defaults", &cfg2, &e) != 0)
		fail_msg("%s", e.msg);
	assert_config_equal(cfg, cfg2);
	free(out);
	config_free(cfg2);
	config_free(cfg);

	/* A relative home is made absolute. */
	cfg = NULL;
	assert_int_equal(setenv("HSMCA_HOME", "./rel/home", 1), 0);
	if (config_load(NULL, &cfg, &e) != 0)
		fail_msg("%s", e.msg);
	snprintf(want, sizeof(want), "%s/rel/home/hsmca.db", cwd);
	assert_string_equal(cfg->store.path, want);
	config_free(cfg);

	cfg = NULL;
	assert_int_equal(unsetenv("HSMCA_HOME"), 0);
	if (config_load(NULL, &cfg, &e) != 0)
		fail_msg("%s", e.msg);
	snprintf(want, sizeof(want), "file:%s/hsmca-demo/user.pin", cwd);
	assert_string_equal(cfg->hsm.pin_source, want);
	config_free(cfg);
}

#define D BASE "[daemon]\n"	/* keys from line 8 */

struct refusal {
	const char	*text;
	size_t		 len;	/* 0: strlen(text) */
	int		 line;
	const char	*reason;	/* a substring of the message */
};

static const struct refusal refusals[] = {
	{ BASE "[foo]\n", 0, 7, "unknown section [foo]" },
	{ BASE "[admin]\nlisten = 127.0.0.1:8444\n", 0, 7,
	    "[admin] listen needs client-ca" },
	{ BASE "[admin]\nadmins = alice\n", 0, 8, "is not an identity" },
	{ BASE "[admin]\nmax-connections = 0\n", 0, 8, "max-connections must "
	    "be a number from 1 to 100000" },
	{ BASE "[admin]\nauditors = sha256:abc\n", 0, 8, "is not an identity" },
	{ BASE "[admin]\noperators = ,\n", 0, 8, "needs an identity" },
	{ BASE "[remote]\nserver = http://x:1\n", 0, 8, "https:// URL" },
	{ BASE "[remote]\nserver = https://x:1\n", 0, 7,
	    "[remote] server needs cert and key" },
	{ "[remote]\nserver = https://x:1\ncert = c.pem\n", 0, 3,
	    "absolute path" },
	{ BASE "[hsm extra]\n", 0, 7, "unknown section" },
	{ BASE "[profile]\n", 0, 7, "needs a name" },
	{ BASE "[profile a b]\n", 0, 7, "[profile NAME]" },
	{ BASE "[profile bad/name]\n", 0, 7, "bad profile name" },
	{ BASE "[ca]\nfoo = 1\n", 0, 8, "unknown key foo in [ca]" },
	{ BASE "[profile device]\nmodule = /x\n", 0, 8,
	    "unknown key module in [profile device]" },
	{ "[hsm]\nmodule = /a.so\nmodule = /b.so\n", 0, 3,
	    "duplicate key module" },
	{ BASE "[profile server]\nsan = dns\nsan = ip\n", 0, 9,
	    "duplicate key san" },
	{ BASE "[hsm]\n", 0, 7, "duplicate section [hsm]" },
	{ BASE "[ca]\n[store]\n", 0, 8, "duplicate section [store]" },
	{ BASE "[profile device]\n[profile device]\n", 0, 8,
	    "duplicate section [profile device]" },
	{ BASE "[profile x]\nkey-usage = digitalSignature\n[profile x]\n", 0,
	    9, "duplicate section [profile x]" },
	{ BASE "[ca]\nkey-type = dsa-1024\n", 0, 8, "unknown key type" },
	{ BASE "[ca]\nvalidity = 2w\n", 0, 8, "bad duration" },
	{ BASE "[ca]\nvalidity = 0\n", 0, 8, "longer than 0" },
	{ BASE "[ca]\nsubject = CN\n", 0, 8, "attr=value" },
	{ BASE "[ca]\nsubject = XYZZY=a\n", 0, 8, "unknown attribute" },
	{ BASE "[ca]\ncrl-url = http://h/crl.crl\n", 0, 8, "%g" },
	{ BASE "[ca]\nocsp-url = ftp://h/ocsp\n", 0, 8, "http://" },
	{ BASE "[ca]\nocsp-url =\n", 0, 8, "needs a value" },
	{ BASE "[ca]\nsubject = \"CN=x\n", 0, 8, "unterminated quoted" },
	{ BASE "[ca]\nsubject = \"CN=x\" y\n", 0, 8, "after the quoted" },
	{ BASE "[ca]\nsubject\n", 0, 8, "expected key = value" },
	{ BASE "[profile device]\nca = maybe\n", 0, 8,
	    "true, false, yes or no" },
	{ BASE "[profile device]\nca = True\n", 0, 8, "true, false" },
	{ BASE "[profile device]\nkey-usage = digitalsignature\n", 0, 8,
	    "unknown name \"digitalsignature\"" },
	{ BASE "[profile device]\nkey-usage = none\n", 0, 8, "cannot be none" },
	{ BASE "[profile device]\nkey-usage = cRLSign,,keyAgreement\n", 0, 8,
	    "empty name" },
	{ BASE "[profile device]\nsan = dns, dns\n", 0, 8, "twice" },
	{ BASE "[profile device]\nsan = dns, none\n", 0, 8, "none" },
	{ BASE "[profile device]\nbackdate = 2d\n", 0, 8, "at most 1d" },
	{ BASE "= foo\n", 0, 7, "a value without a key" },
	{ BASE "[ca]\n  = foo\n", 0, 8, "a value without a key" },
	{ BASE "[ca\n", 0, 7, "unterminated section header" },
	{ BASE "[ca] x\n", 0, 7, "after the section header" },
	{ "[hsm]\nsessions = 0\n", 0, 2, "sessions must be a number from 1 to "
	    "256" },
	{ "[hsm]\nsessions = 257\n", 0, 2, "from 1 to 256" },
	{ "[hsm]\nsessions = 4x\n", 0, 2, "from 1 to 256" },
	{ "[hsm]\npin-source = /etc/hsmca/pin\n", 0, 2,
	    "pin-source must be file:/path or env:NAME" },
	{ "[hsm]\npin-source = file:pin\n", 0, 2, "absolute path" },
	{ "[hsm]\npin-source = env:1PIN\n", 0, 2, "variable name" },
	{ "[hsm]\nmodule = libsofthsm2.so\n", 0, 2, "absolute path" },
	{ "[hsm]\ntoken = hsmca\n", 0, 2, "PKCS#11 URI" },
	{ BASE "[profile device]\npathlen = 0\n", 0, 8,
	    "pathlen needs ca = true" },
	{ BASE "[profile edge-ca]\npathlen = 1\nca = false\n", 0, 8,
	    "pathlen needs ca = true" },
	{ BASE "[profile edge-ca]\npathlen = -1\n", 0, 8, "pathlen must be" },
	{ BASE "[profile device]\nca = true\n", 0, 8,
	    "must include keyCertSign" },
	{ BASE "[profile device]\n\nkey-usage = keyCertSign\n", 0, 9,
	    "keyCertSign in key-usage needs ca = true" },
	{ BASE "[profile device]\nsubject = O\n", 0, 8,
	    "require-cn = true but subject does not allow CN" },
	{ BASE "[profile device]\nrequire-san = true\nsan = none\n", 0, 9,
	    "require-san = true but san is none" },
	{ BASE "[profile x]\nvalidity = 1d\n", 0, 7, "must set key-usage" },
	{ BASE "[profile x]\nkey-usage = digitalSignature\nsubject = none\n"
	    "require-cn = no\n", 0, 9, "neither subject attributes nor SAN" },
	{ BASE "[ca]\nvalidity = 90d\n", 0, 8,
	    "renew-before (90d) must be less than validity (90d)" },
	{ BASE "[ca]\nrenew-before = 2y\n", 0, 8,
	    "renew-before (730d) must be less than validity" },
	{ BASE "[ca]\nactivation-delay = 90d\n", 0, 8,
	    "activation-delay (90d) must be less than renew-before (90d)" },
	{ BASE "[ca]\nactivation-delay = 30d\nrenew-before = 30d\n", 0, 9,
	    "activation-delay" },
	{ "module = /m.so\n", 0, 1, "before any [section]" },
	{ "[hsm]\nmodule = /m.so\ntoken = pkcs11:token=t\n[store]\n"
	    "path = /s.db\n", 0, 1, "[hsm] needs pin-source" },
	{ "[hsm]\nmodule = /m.so\ntoken = pkcs11:token=t\n"
	    "pin-source = env:P\n\n", 0, 5, "missing section [store]" },
	{ "", 0, 1, "missing section [hsm]" },
	{ BASE "[ca]\nsubject = a\001b\n", 0, 8, "control character" },
	{ BASE "[ca]\0\n", sizeof(BASE "[ca]\0\n") - 1, 7, "NUL byte" },
	{ BASE "\n\n\0", sizeof(BASE "\n\n\0") - 1, 9, "NUL byte" },

	/* [daemon] */
	{ D "[daemon]\n", 0, 8, "duplicate section [daemon]" },
	{ D "workers = 1\nworkers = 2\n", 0, 9,
	    "duplicate key workers in [daemon]" },
	{ D "foo = 1\n", 0, 8, "unknown key foo in [daemon]" },
	{ D "listen = 8443\n", 0, 8, "is not HOST:PORT" },
	{ D "listen = :8443\n", 0, 8, "is not HOST:PORT" },
	{ D "listen = ::1:8443\n", 0, 8, "in brackets" },
	{ D "listen = [::1]8443\n", 0, 8, "is not [IPv6]:PORT" },
	{ D "listen = [::1\n", 0, 8, "is not [IPv6]:PORT" },
	{ D "listen = []:8443\n", 0, 8, "bad IPv6 address" },
	{ D "listen = [::g]:8443\n", 0, 8, "bad IPv6 address" },
	{ D "listen = [10.0.0.1]:8443\n", 0, 8, "bad IPv6 address" },
	{ D "listen = 300.0.0.1:8443\n", 0, 8, "bad host" },
	{ D "listen = a_b:8443\n", 0, 8, "bad host" },
	{ D "listen = -a:8443\n", 0, 8, "bad host" },
	{ D "listen = h:65536\n", 0, 8, "from 0 to 65535" },
	{ D "listen = h:\n", 0, 8, "from 0 to 65535" },
	{ D "listen = h:+80\n", 0, 8, "from 0 to 65535" },
	{ D "listen = h:80x\n", 0, 8, "from 0 to 65535" },
	{ D "listen = none\n", 0, 8, "is not HOST:PORT" },
	{ D "listen = \"\"\n", 0, 8, "listen needs a value" },
	{ D "http-listen =\n", 0, 8, "needs a value (none or" },
	{ D "http-listen = 0.0.0.0\n", 0, 8, "is not HOST:PORT" },
	{ D "http-listen = [::1]:99999\n", 0, 8, "from 0 to 65535" },
	{ D "tls-cert = server.pem\n", 0, 8,
	    "tls-cert: \"server.pem\" is not an absolute path" },
	{ D "tls-key = server.key\n", 0, 8, "is not an absolute path" },
	{ D "tls-key = pkcs11:\n", 0, 8, "empty PKCS#11 URI" },
	{ D "tls-key = pkcs11:token=t;object=k?pin-value=1234\n", 0, 8,
	    "no pin-value" },
	{ D "workers = 257\n", 0, 8, "workers must be a number from 0" },
	{ D "workers = -1\n", 0, 8, "workers must be" },
	{ D "user = -root\n", 0, 8, "bad user name" },
	{ D "user = a b\n", 0, 8, "bad user name" },
	{ D "user = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 0, 8, "at most 32" },
	{ D "pidfile = hsmcad.pid\n", 0, 8, "is not an absolute path" },
	{ D "max-body = 1023\n", 0, 8, "max-body must be a size from 1k to 16m" },
	{ D "max-body = 16385k\n", 0, 8, "from 1k to 16m" },
	{ D "max-body = 17m\n", 0, 8, "from 1k to 16m" },
	{ D "max-body = 64K\n", 0, 8, "from 1k to 16m" },
	{ D "max-body = 64kb\n", 0, 8, "from 1k to 16m" },
	{ D "max-body = k\n", 0, 8, "from 1k to 16m" },
	{ D "max-body = 99999999999999999999m\n", 0, 8, "from 1k to 16m" },
	{ D "max-body = 9223372036854775807m\n", 0, 8, "from 1k to 16m" },
	{ D "max-header-size = 2m\n", 0, 8,
	    "max-header-size must be a size from 1k to 1m" },
	{ D "max-header-size = 0\n", 0, 8, "from 1k to 1m" },
	{ D "max-headers = 0\n", 0, 8, "max-headers must be a number from 1 "
	    "to 1000" },
	{ D "max-headers = 1001\n", 0, 8, "from 1 to 1000" },
	{ D "timeout = 0\n", 0, 8, "timeout: must be from 1s to 1h" },
	{ D "timeout = 2h\n", 0, 8, "from 1s to 1h" },
	{ D "timeout = 10x\n", 0, 8, "timeout: bad duration" },
	{ D "max-connections = 0\n", 0, 8, "max-connections must be a number "
	    "from 1 to 100000" },
	{ D "max-connections = 100001\n", 0, 8, "from 1 to 100000" },
	{ D "max-http-connections = 0\n", 0, 8, "max-http-connections must "
	    "be a number from 1 to 100000" },
	{ D "max-http-connections = 1e3\n", 0, 8, "from 1 to 100000" },
	{ D "session-tickets = 1\n", 0, 8, "session-tickets must be true or "
	    "false" },
	{ D "retry-after = 0\n", 0, 8, "retry-after: must be from 1s to 1h" },
	{ D "retry-after = 3601\n", 0, 8, "from 1s to 1h" },
	{ D "retry-after = 1d\n", 0, 8, "from 1s to 1h" },
	{ D "retry-after = soon\n", 0, 8, "bad duration" },
	{ D "crl-delay = 0\n", 0, 8, "crl-delay: must be from 1s to 1h" },
	{ D "crl-delay = 2h\n", 0, 8, "crl-delay: must be from 1s to 1h" },
	{ BASE "[ca]\ncrl-next-update = 11d\n", 0, 8,
	  "crl-next-update: must be from 1h to 10d" },
	{ BASE "[ca]\ncrl-next-update = 30m\n", 0, 8,
	  "crl-next-update: must be from 1h to 10d" },
	{ D "log = file\n", 0, 8, "log must be stderr or syslog" },
	{ D "log = Syslog\n", 0, 8, "stderr or syslog" },

	/* [est] */
	{ BASE "[est]\n", 0, 7, "[est] needs profile" },
	{ BASE "[est x]\ncn-match = true\n[profile x]\n", 0, 7,
	    "[est x] needs profile" },
	{ BASE "[est a b]\n", 0, 7, "[est] or [est LABEL]" },
	{ BASE "[est bad/label]\n", 0, 7, "bad EST label \"bad/label\"" },
	{ BASE "[est a:b]\n", 0, 7, "bad EST label" },
	{ BASE "[est xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxx]\n", 0, 7, "at most 64" },
	{ BASE "[est cacerts]\n", 0, 7, "EST label \"cacerts\" is reserved" },
	{ BASE "[est simpleenroll]\n", 0, 7, "is reserved" },
	{ BASE "[est ..]\n", 0, 7, "is reserved" },
	{ BASE "[est]\nprofile = device\n[est]\n", 0, 9,
	    "duplicate section [est]" },
	{ BASE "[est x]\nprofile = device\n[est y]\nprofile = device\n"
	    "[est x]\n", 0, 11, "duplicate section [est x]" },
	{ BASE "[est x]\nprofile = device\nprofile = server\n", 0, 9,
	    "duplicate key profile in [est x]" },
	{ BASE "[est x]\nfoo = 1\n", 0, 8, "unknown key foo in [est x]" },
	{ BASE "[est]\nvalidity = 1d\n", 0, 8, "unknown key validity in [est]" },
	{ BASE "[profile x]\nprofile = device\n", 0, 8,
	    "unknown key profile in [profile x]" },
	{ BASE "[est]\nprofile = nosuch\n", 0, 8,
	    "[est]: no profile \"nosuch\"" },
	/* The line of the profile key, though the check is at the end. */
	{ BASE "[est e]\n\nprofile = nosuch\n[profile nosuch2]\n"
	    "key-usage = digitalSignature\n", 0, 9,
	    "[est e]: no profile \"nosuch\"" },
	{ BASE "[est]\nprofile = a b\n", 0, 8, "bad profile name" },
	{ BASE "[est]\nprofile = device\nbootstrap-ca = ca.pem\n", 0, 9,
	    "bootstrap-ca: \"ca.pem\" is not an absolute path" },
	{ BASE "[est]\nprofile = device\nbootstrap-ca =\n", 0, 9,
	    "bootstrap-ca needs a value" },
	{ BASE "[est]\nprofile = device\ncn-match = maybe\n", 0, 9,
	    "cn-match must be true, false" },
	{ BASE "[est]\nprofile = device\nserverkeygen = 1\n", 0, 9,
	    "serverkeygen must be true, false" },
};

static void
test_refusals(void **state)
{
	char prefix[64];
	struct hsmca_err e;
	struct config *cfg;
	size_t i, len;
	int ret;

	(void)state;
	for (i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		const struct refusal *r = &refusals[i];

		len = r->len != 0 ? r->len : strlen(r->text);
		cfg = NULL;
		err_clear(&e);
		ret = config_parse(r->text, len, "t.conf", &cfg, &e);
		if (ret != HSMCA_ERR_CONFIG)
			fail_msg("case %zu (%s): returned %d, want "
			    "HSMCA_ERR_CONFIG", i, r->reason, ret);
		assert_null(cfg);
		assert_int_equal(e.code, HSMCA_ERR_CONFIG);
		snprintf(prefix, sizeof(prefix), "t.conf:%d: ", r->line);
		if (strncmp(e.msg, prefix, strlen(prefix)) != 0 ||
		    strstr(e.msg, r->reason) == NULL)
			fail_msg("case %zu: message \"%s\", want \"%s...%s\"",
			    i, e.msg, prefix, r->reason);
	}
}

/* Roles by CN or fingerprint, the most powerful first; a file with only
 * [remote] needs no [hsm] or [store]. */
/* The keys a reload cannot apply: named when they change, and only
 * then; the keys a reload applies are never named. */
static void
test_restart_keys(void **state)
{
	static const char run_text[] = BASE "[daemon]\nlisten = 127.0.0.1:1\n"
	    "tls-cert = /c.pem\ntls-key = /k.pem\nmax-body = 64k\n"
	    "max-connections = 10\nretry-after = 5\nhttp-listen = none\n";
	/* Same restart keys, http-listen none instead of absent; the
	 * reloadable ones changed. */
	static const char same_text[] = BASE "[daemon]\nlisten = 127.0.0.1:1\n"
	    "tls-cert = /c.pem\ntls-key = /k.pem\nmax-body = 64k\n"
	    "max-connections = 99\nretry-after = 7\n";
	static const char changed_text[] = "[hsm]\nmodule = /m.so\n"
	    "token = pkcs11:token=other\npin-source = env:P\n"
	    "[store]\npath = /s.db\n[daemon]\nlisten = 127.0.0.1:2\n"
	    "tls-cert = /c.pem\ntls-key = /k.pem\nmax-body = 128k\n"
	    "max-connections = 10\nretry-after = 5\n"
	    "[admin]\nlisten = 127.0.0.1:3\nclient-ca = /ops.pem\n"
	    "admins = CN=alice\n";
	struct config *run = NULL, *same = NULL, *changed = NULL;
	struct hsmca_err e;
	const char *names[8];

	(void)state;
	assert_int_equal(config_parse(run_text, strlen(run_text), "r.conf",
	    &run, &e), 0);
	assert_int_equal(config_parse(same_text, strlen(same_text), "s.conf",
	    &same, &e), 0);
	assert_int_equal(config_parse(changed_text, strlen(changed_text),
	    "c.conf", &changed, &e), 0);
	assert_int_equal(config_restart_keys(run, run, names, 8), 0);
	assert_int_equal(config_restart_keys(run, same, names, 8), 0);
	assert_int_equal(config_restart_keys(run, changed, names, 8), 4);
	assert_string_equal(names[0], "[hsm] token");
	assert_string_equal(names[1], "[daemon] listen");
	assert_string_equal(names[2], "[daemon] max-body");
	assert_string_equal(names[3], "[admin] listen");
	/* More than max: counted, and only max named. */
	names[1] = NULL;
	assert_int_equal(config_restart_keys(run, changed, names, 1), 4);
	assert_string_equal(names[0], "[hsm] token");
	assert_null(names[1]);
	config_free(run);
	config_free(same);
	config_free(changed);
}

static void
test_admin_roles(void **state)
{
	static const char fp[] = "ab12ab12ab12ab12ab12ab12ab12ab12"
	    "ab12ab12ab12ab12ab12ab12ab12ab12";
	static const char text[] = BASE "[admin]\nlisten = 127.0.0.1:1\n"
	    "client-ca = /ops.pem\nadmins = CN=alice, sha256:"
	    "AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12\n"
	    "operators = CN=bob,CN=alice\nauditors = CN=carol\n";
	static const char remote[] = "[remote]\nserver = https://ca:8444\n"
	    "cert = /op.pem\nkey = /op.key\n";
	struct hsmca_err e;
	struct config *cfg = NULL;

	(void)state;
	assert_int_equal(config_parse(text, strlen(text), "t.conf", &cfg, &e),
	    0);
	assert_int_equal(config_admin_role(cfg, "alice", NULL),
	    CONFIG_ROLE_ADMIN);
	assert_int_equal(config_admin_role(cfg, "bob", NULL),
	    CONFIG_ROLE_OPERATOR);
	assert_int_equal(config_admin_role(cfg, "carol", NULL),
	    CONFIG_ROLE_AUDITOR);
	assert_int_equal(config_admin_role(cfg, "mallory", NULL),
	    CONFIG_ROLE_NONE);
	assert_int_equal(config_admin_role(cfg, "Alice", NULL),
	    CONFIG_ROLE_NONE);
	assert_int_equal(config_admin_role(cfg, NULL, fp), CONFIG_ROLE_ADMIN);
	assert_int_equal(config_admin_role(cfg, "mallory", fp),
	    CONFIG_ROLE_ADMIN);
	assert_int_equal(config_admin_role(cfg, NULL, NULL), CONFIG_ROLE_NONE);
	config_free(cfg);
	cfg = NULL;
	assert_int_equal(config_parse(remote, strlen(remote), "r.conf", &cfg,
	    &e), 0);
	assert_string_equal(cfg->remote.server, "https://ca:8444");
	assert_null(cfg->store.path);
	assert_null(cfg->admin.listen);
	config_free(cfg);
}

/* 4096 bytes is the longest line; one more is refused. */
static void
test_long_line(void **state)
{
	struct hsmca_err e;
	struct config *cfg = NULL;
	size_t base = strlen(BASE);
	char *buf = malloc(base + 4097 + 2);

	(void)state;
	assert_non_null(buf);
	memcpy(buf, BASE, base);
	buf[base] = '#';
	memset(buf + base + 1, 'x', 4095);
	buf[base + 4096] = '\n';
	if (config_parse(buf, base + 4097, "t.conf", &cfg, &e) != 0)
		fail_msg("%s", e.msg);
	config_free(cfg);

	cfg = NULL;
	buf[base + 4096] = 'x';
	buf[base + 4097] = '\n';
	assert_int_equal(config_parse(buf, base + 4098, "t.conf", &cfg, &e),
	    HSMCA_ERR_CONFIG);
	assert_null(cfg);
	assert_non_null(strstr(e.msg, "t.conf:7: line longer than 4096"));
	free(buf);
}

static void
test_load_errors(void **state)
{
	struct hsmca_err e;
	struct config *cfg = NULL;
	char *dir, path[PATH_MAX];
	FILE *fp;

	(void)state;
	assert_int_equal(config_load("/nonexistent/hsmca.conf", &cfg, &e),
	    HSMCA_ERR_IO);
	assert_null(cfg);
	assert_non_null(strstr(e.msg, "/nonexistent/hsmca.conf"));

	/* A file's messages carry its path. */
	dir = tu_tmpdir();
	snprintf(path, sizeof(path), "%s/bad.conf", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs("[hsm]\nsessions = 1000\n", fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(config_load(path, &cfg, &e), HSMCA_ERR_CONFIG);
	assert_null(cfg);
	assert_int_equal(strncmp(e.msg, path, strlen(path)), 0);
	assert_non_null(strstr(e.msg, ":2: sessions"));

	/* The TLS certificate's names go into CA profiles: no file yet is
	 * none, a file that is no certificate leaves them unknown. */
	assert_non_null(fp = fopen(path, "w"));
	fprintf(fp, "%s[daemon]\ntls-cert = %s/server.pem\n", BASE, dir);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(config_load(path, &cfg, &e), 0);
	assert_null(config_profile(cfg, "edge-ca")->excluded);
	config_free(cfg);
	cfg = NULL;
	snprintf(path, sizeof(path), "%s/server.pem", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs("not a certificate\n", fp);
	assert_int_equal(fclose(fp), 0);
	snprintf(path, sizeof(path), "%s/bad.conf", dir);
	assert_int_equal(config_load(path, &cfg, &e), 0);
	assert_null(config_profile(cfg, "edge-ca")->excluded);
	assert_non_null(strstr(config_profile(cfg, "edge-ca")->excluded_err,
	    "server.pem holds no certificate"));
	assert_string_equal(config_profile(cfg, "device")->excluded_err, "");
	config_free(cfg);
	cfg = NULL;
	tu_rmtree(dir);
	free(dir);
}

/* hsmcad's snapshot: the config and every file it names, read once;
 * loading from it opens nothing, whatever happened to the files since. */
static void
test_snapshot(void **state)
{
	struct hsmca_err e;
	struct config *cfg = NULL, *again = NULL;
	struct fileset *fs = NULL;
	const struct fileset_file *f;
	const unsigned char *data;
	unsigned char *d1 = NULL, *d2 = NULL;
	size_t len;
	char *dir, path[PATH_MAX], cert[PATH_MAX], boot[PATH_MAX];
	int n1, n2;
	EVP_PKEY *k;
	X509 *x;
	FILE *fp;

	(void)state;
	dir = tu_tmpdir();
	snprintf(path, sizeof(path), "%s/hsmca.conf", dir);
	snprintf(cert, sizeof(cert), "%s/server.pem", dir);
	snprintf(boot, sizeof(boot), "%s/boot.pem", dir);
	k = tu_keygen("ec:P-256");
	x = tu_make_ca(k, "CN=ca.example", time(NULL) - 60, time(NULL) + 3600);
	assert_non_null(fp = fopen(cert, "w"));
	assert_int_equal(PEM_write_X509(fp, x), 1);
	assert_int_equal(fclose(fp), 0);
	assert_non_null(fp = fopen(boot, "w"));
	assert_int_equal(PEM_write_X509(fp, x), 1);
	assert_int_equal(fclose(fp), 0);
	assert_non_null(fp = fopen(path, "w"));
	fprintf(fp, "%s[daemon]\ntls-cert = %s\n[admin]\nclient-ca = "
	    "%s/missing.pem\n[est fab]\nprofile = device\nbootstrap-ca = "
	    "%s\n", BASE, cert, dir, boot);
	assert_int_equal(fclose(fp), 0);

	assert_int_equal(config_snapshot(path, &fs, &cfg, &e), 0);
	assert_non_null(config_profile(cfg, "edge-ca")->excluded);
	assert_int_equal(fs->n, 4);
	assert_non_null(f = fileset_get(fs, boot));
	assert_non_null(f->data);
	assert_int_equal(f->errnum, 0);
	assert_non_null(f = fileset_get(fs, cert));
	assert_non_null(strstr((const char *)f->data, "BEGIN CERTIFICATE"));
	/* A file that does not read is recorded with why, not refused. */
	snprintf(path, sizeof(path), "%s/missing.pem", dir);
	assert_non_null(f = fileset_get(fs, path));
	assert_null(f->data);
	assert_int_equal(f->errnum, ENOENT);
	assert_int_equal(fileset_data(fs, path, &data, &len, &e),
	    HSMCA_ERR_IO);
	assert_non_null(strstr(e.msg, "missing.pem: No such file"));
	assert_int_equal(fileset_data(fs, "/not/named", &data, &len, &e),
	    HSMCA_ERR_INTERNAL);

	/* Every file gone: the snapshot still loads, to the same config,
	 * with the TLS certificate's names excluded from CA profiles. */
	tu_rmtree(dir);
	snprintf(path, sizeof(path), "%s/hsmca.conf", dir);
	assert_int_not_equal(config_load(path, &again, &e), 0);
	assert_int_equal(config_load_fileset(fs, path, &again, &e), 0);
	assert_non_null(config_profile(again, "edge-ca")->excluded);
	n1 = ASN1_item_i2d((ASN1_VALUE *)config_profile(cfg,
	    "edge-ca")->excluded, &d1, ASN1_ITEM_rptr(NAME_CONSTRAINTS));
	n2 = ASN1_item_i2d((ASN1_VALUE *)config_profile(again,
	    "edge-ca")->excluded, &d2, ASN1_ITEM_rptr(NAME_CONSTRAINTS));
	assert_true(n1 > 0);
	assert_int_equal(n1, n2);
	assert_memory_equal(d1, d2, (size_t)n1);
	OPENSSL_free(d1);
	OPENSSL_free(d2);
	assert_non_null(config_est_label(again, "fab"));
	assert_string_equal(config_est_label(again, "fab")->bootstrap_ca, boot);
	config_free(again);
	again = NULL;
	/* Without the config itself, nothing loads. */
	assert_int_equal(config_load_fileset(fs, "/other.conf", &again, &e),
	    HSMCA_ERR_INTERNAL);
	assert_null(again);

	config_free(cfg);
	fileset_free(fs);
	X509_free(x);
	EVP_PKEY_free(k);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_daemon_est),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_fix_demo_home),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_admin_roles),
		cmocka_unit_test(test_restart_keys),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_snapshot),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
