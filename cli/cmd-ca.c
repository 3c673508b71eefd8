/* cmd-ca.c: hsmca ca init | import | import-cert | list | show | download |
 * pop | rotate | activate | revoke | tick */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "hsmca/clock.h"
#include "hsmca/crl.h"
#include "hsmca/ocsp.h"
#include "hsmca/pop.h"
#include "hsmca/util.h"

#include "cli.h"

#define PEM_MAX	(1024 * 1024)

static json_t *
gen_json(const struct store_generation *g, time_t now)
{
	json_t *o = json_object();
	const char *sigalg = NULL;
	const unsigned char *p = g->cert_der;
	X509 *x = NULL;

	if (p != NULL && (x = d2i_X509(NULL, &p, (long)g->cert_der_len)) != NULL) {
		const X509_ALGOR *alg;

		X509_get0_signature(NULL, &alg, x);
		sigalg = OBJ_nid2ln(OBJ_obj2nid(alg->algorithm));
	}
	json_object_set_new(o, "id", json_integer(g->id));
	json_object_set_new(o, "kind", json_string(store_gen_kind_name(g->kind)));
	json_object_set_new(o, "status", json_string(store_gen_status_name(
	    ca_effective_status(g, now))));
	json_object_set_new(o, "subject", json_string(g->subject ? g->subject : ""));
	json_object_set_new(o, "issuer", g->issuer ? json_string(g->issuer) :
	    json_null());
	json_object_set_new(o, "serial", g->serial[0] ? json_string(g->serial) :
	    json_null());
	json_object_set_new(o, "not_before", out_time(g->not_before));
	json_object_set_new(o, "not_after", out_time(g->not_after));
	json_object_set_new(o, "sha1", g->sha1[0] ? json_string(g->sha1) :
	    json_null());
	json_object_set_new(o, "sha256", g->sha256[0] ? json_string(g->sha256) :
	    json_null());
	json_object_set_new(o, "signature_algorithm", sigalg ?
	    json_string(sigalg) : json_null());
	json_object_set_new(o, "key_type", json_string(g->key_type ? g->key_type : ""));
	json_object_set_new(o, "key_uri", json_string(g->key_uri ? g->key_uri : ""));
	json_object_set_new(o, "parent", g->parent_id ? json_integer(g->parent_id) :
	    json_null());
	json_object_set_new(o, "created", out_time(g->created_at));
	/* activate_at: when it became active, or when it is to. */
	if (g->status == STORE_GEN_INACTIVE || g->status == STORE_GEN_PENDING) {
		json_object_set_new(o, "activated", json_null());
		json_object_set_new(o, "activates", out_time(g->activate_at));
	} else {
		json_object_set_new(o, "activated", out_time(g->activate_at));
		json_object_set_new(o, "activates", json_null());
	}
	if (g->status == STORE_GEN_REVOKED) {
		json_object_set_new(o, "revoked", out_time(g->revoked_at));
		json_object_set_new(o, "revocation_reason", g->revoke_reason ?
		    json_string(g->revoke_reason) : json_null());
	}
	X509_free(x);
	return o;
}

static int
read_text(struct cli *c, const char *path, char **out)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int ret;

	if ((ret = util_read_file(path, PEM_MAX, &buf, &len, &c->err)) != 0)
		return cli_error(c, ret);
	*out = (char *)buf;
	return CLI_EXIT_OK;
}

static int
cmd_ca_init(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "self-signed", no_argument, NULL, 's' },
		{ "external", no_argument, NULL, 'x' },
		{ "csr-out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	enum ca_init_mode mode = CA_INIT_ROOT_IN_HSM;
	struct ca_init_result r;
	const char *csr_out = NULL;
	json_t *o;
	int ch, ret;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			mode = CA_INIT_SELF_SIGNED;
			break;
		case 'x':
			mode = CA_INIT_EXTERNAL;
			break;
		case 'o':
			csr_out = optarg;
			break;
		default:
			return cli_usage(&cmd_ca_table[0]);
		}
	}
	if (optind != argc || (csr_out != NULL) != (mode == CA_INIT_EXTERNAL))
		return cli_usage(&cmd_ca_table[0]);
	if ((ret = ca_init(&c->ca, mode, clock_now(), &r, &c->err)) != 0)
		return cli_error(c, ret);
	if (r.csr_pem != NULL &&
	    (ret = util_write_file_atomic(csr_out, r.csr_pem, strlen(r.csr_pem),
	    0644, &c->err)) != 0) {
		ca_init_result_free(&r);
		return cli_error(c, ret);
	}
	o = json_object();
	json_object_set_new(o, "generation", json_integer(r.gen_id));
	json_object_set_new(o, "root", r.root_id ? json_integer(r.root_id) :
	    json_null());
	json_object_set_new(o, "status", json_string(r.csr_pem ? "pending" :
	    "active"));
	if (c->json)
		out_object(c, o, NULL);
	else if (r.csr_pem != NULL)
		fprintf(c->out, "CA generation %lld created, pending: the key is in the "
		    "token; get %s signed by your root, then run\n"
		    "  hsmca ca import-cert --cert SIGNED.pem\n",
		    (long long)r.gen_id, csr_out);
	else
		fprintf(c->out, "CA generation %lld created and active%s\n",
		    (long long)r.gen_id, r.root_id ? " (signed by the root "
		    "in the token)" : " (self-signed)");
	json_decref(o);
	ca_init_result_free(&r);
	return CLI_EXIT_OK;
}

static int
cmd_ca_import_cert(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "gen", required_argument, NULL, 'g' },
		{ NULL, 0, NULL, 0 }
	};
	const char *cert = NULL;
	char *pem = NULL;
	long long gen = 0;
	int64_t id = 0;
	int ch, ret;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cert = optarg;
			break;
		case 'g':
			if (cli_number(c, "--gen", optarg, 1, INT64_MAX,
			    &gen) != 0)
				return CLI_EXIT_USAGE;
			break;
		default:
			return cli_usage(&cmd_ca_table[2]);
		}
	}
	if (cert == NULL || optind != argc)
		return cli_usage(&cmd_ca_table[2]);
	if ((ret = read_text(c, cert, &pem)) != CLI_EXIT_OK)
		return ret;
	ret = ca_import_cert(&c->ca, gen, pem, clock_now(), &id, &c->err);
	free(pem);
	if (ret != 0)
		return cli_error(c, ret);
	fprintf(c->out, "CA generation %lld now has its certificate\n",
	    (long long)id);
	return CLI_EXIT_OK;
}

static int
cmd_ca_import(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "cert", required_argument, NULL, 'c' },
		{ "passphrase-source", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 }
	};
	const char *key = NULL, *cert = NULL, *pass = NULL;
	unsigned char *keybuf = NULL;
	size_t keylen = 0;
	char *pem = NULL;
	int64_t id = 0;
	int ch, ret;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			key = optarg;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'p':
			pass = optarg;
			break;
		default:
			return cli_usage(&cmd_ca_table[1]);
		}
	}
	if (key == NULL || cert == NULL || optind != argc)
		return cli_usage(&cmd_ca_table[1]);
	if ((ret = read_text(c, cert, &pem)) != CLI_EXIT_OK)
		return ret;
	if ((ret = util_read_file(key, PEM_MAX, &keybuf, &keylen,
	    &c->err)) != 0) {
		free(pem);
		return cli_error(c, ret);
	}
	ret = ca_import(&c->ca, (char *)keybuf, keylen, pass, pem, clock_now(),
	    &id, &c->err);
	util_freezero(keybuf, keylen);
	free(pem);
	if (ret != 0)
		return cli_error(c, ret);
	fprintf(c->out, "CA generation %lld imported; its key is now in token '%s' "
	    "(sensitive, not extractable). Destroy %s.\n", (long long)id,
	    hsm_token_label(c->hsm), key);
	return CLI_EXIT_OK;
}

static const struct out_col gen_cols[] = {
	{ "id", "ID" }, { "kind", "KIND" }, { "status", "STATUS" },
	{ "not_before", "NOT BEFORE" }, { "not_after", "NOT AFTER" },
	{ "sha1", "SHA-1" }, { "sha256", "SHA-256" }, { "subject", "SUBJECT" },
	{ NULL, NULL }
};

static const struct out_col gen_fields[] = {
	{ "id", "Generation" }, { "kind", "Kind" }, { "status", "Status" },
	{ "subject", "Subject" }, { "issuer", "Issuer" },
	{ "serial", "Serial" }, { "not_before", "Not before" },
	{ "not_after", "Not after" },
	{ "signature_algorithm", "Signature algorithm" },
	{ "sha1", "SHA-1 thumbprint" }, { "sha256", "SHA-256 thumbprint" },
	{ "key_type", "Key type" }, { "key_uri", "Key" },
	{ "parent", "Parent" }, { "created", "Created" },
	{ "activated", "Activated" }, { "activates", "Activates" },
	{ "revoked", "Revoked" }, { "revocation_reason", "Reason" },
	{ NULL, NULL }
};

static int
cmd_ca_list(struct cli *c, int argc, char **argv)
{
	struct store_generation *v = NULL;
	size_t n = 0;
	time_t now = clock_now();
	json_t *rows;
	int ret;

	if (argc != 1)
		return cli_usage(&cmd_ca_table[3]);
	if ((ret = store_list_generations(c->st, &v, &n, &c->err)) != 0)
		return cli_error(c, ret);
	rows = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(rows, gen_json(&v[i], now));
	out_list(c, rows, gen_cols);
	json_decref(rows);
	store_generations_free(v, n);
	return CLI_EXIT_OK;
}

static int
cmd_ca_show(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pem", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 }
	};
	struct store_generation g;
	json_t *o;
	char *pem = NULL;
	int ch, ret, with_pem = 0;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'p')
			return cli_usage(&cmd_ca_table[4]);
		with_pem = 1;
	}
	if (optind + 1 != argc)
		return cli_usage(&cmd_ca_table[4]);
	memset(&g, 0, sizeof(g));
	if ((ret = store_find_generation(c->st, argv[optind], &g, &c->err)) != 0)
		return cli_error(c, ret);
	o = gen_json(&g, clock_now());
	if (g.cert_der != NULL && ca_pem(&c->ca, &g, 0, &pem, NULL) == 0)
		json_object_set_new(o, "pem", json_string(pem));
	out_object(c, o, gen_fields);
	if (with_pem && !c->json && pem != NULL)
		fputs(pem, c->out);
	free(pem);
	json_decref(o);
	store_generation_free_fields(&g);
	return CLI_EXIT_OK;
}

/* The stored CSR of a generation made for an outside root, as PEM. */
static int
csr_pem(const struct store_generation *g, char **pem)
{
	const unsigned char *p = g->csr_der;
	X509_REQ *req = NULL;
	BIO *b = NULL;
	int ret = -1;

	*pem = NULL;
	if (p == NULL ||
	    (req = d2i_X509_REQ(NULL, &p, (long)g->csr_der_len)) == NULL ||
	    (b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_X509_REQ(b, req))
		goto out;
	if ((*pem = util_bio_string(b, NULL)) != NULL)
		ret = 0;
out:
	BIO_free(b);
	X509_REQ_free(req);
	return ret;
}

static int
cmd_ca_download(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "chain", no_argument, NULL, 'c' },
		{ "csr", no_argument, NULL, 'r' },
		{ "der", no_argument, NULL, 'd' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	struct store_generation g;
	const char *out = NULL;
	char *pem = NULL;
	int ch, ret, chain = 0, der = 0, csr = 0;

	while ((ch = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			chain = 1;
			break;
		case 'd':
			der = 1;
			break;
		case 'o':
			out = optarg;
			break;
		case 'r':
			csr = 1;
			break;
		default:
			return cli_usage(&cmd_ca_table[5]);
		}
	}
	if (optind + 1 != argc || (der && chain) || (csr && (der || chain)))
		return cli_usage(&cmd_ca_table[5]);
	memset(&g, 0, sizeof(g));
	if ((ret = store_find_generation(c->st, argv[optind], &g, &c->err)) != 0)
		return cli_error(c, ret);
	if (csr) {
		if ((ret = csr_pem(&g, &pem)) != 0)
			ret = cli_errorx(c, CLI_EXIT_FAIL, "generation %lld has "
			    "no CSR: only one made for an outside root has",
			    (long long)g.id);
		else
			ret = cli_write_output(c, out, pem, strlen(pem));
	} else if (der) {
		if (g.cert_der == NULL) {
			store_generation_free_fields(&g);
			return cli_errorx(c, CLI_EXIT_FAIL, "generation %lld has "
			    "no certificate yet", (long long)g.id);
		}
		ret = cli_write_output(c, out, g.cert_der, g.cert_der_len);
	} else if ((ret = ca_pem(&c->ca, &g, chain, &pem, &c->err)) != 0)
		ret = cli_error(c, ret);
	else
		ret = cli_write_output(c, out, pem, strlen(pem));
	free(pem);
	store_generation_free_fields(&g);
	return ret;
}

/* The certificate as PEM or DER, malloc'd. */
static int
pop_encode(const X509 *x, int der, unsigned char **out, size_t *len)
{
	BIO *b = NULL;
	unsigned char *d = NULL;
	int l;

	*out = NULL;
	if (der) {
		if ((l = i2d_X509(x, &d)) <= 0)
			return -1;
		if ((*out = malloc((size_t)l)) != NULL) {
			memcpy(*out, d, (size_t)l);
			*len = (size_t)l;
		}
		OPENSSL_free(d);
		return *out != NULL ? 0 : -1;
	}
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_X509(b, (X509 *)(uintptr_t)x)) {
		BIO_free(b);
		return -1;
	}
	*out = (unsigned char *)util_bio_string(b, len);
	BIO_free(b);
	return *out != NULL ? 0 : -1;
}

static int
cmd_ca_pop(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "code", required_argument, NULL, 'k' },
		{ "out", required_argument, NULL, 'o' },
		{ "der", no_argument, NULL, 'd' },
		{ "validity", required_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 }
	};
	struct store_generation g;
	struct pop_request req;
	struct issue_result res;
	const char *out = NULL;
	char requester[128], sha1[UTIL_SHA1_HEX], nb[32], na[32];
	unsigned char *data = NULL;
	size_t len = 0;
	int ch, ret, der = 0;
	json_t *o;

	memset(&req, 0, sizeof(req));
	memset(&res, 0, sizeof(res));
	while ((ch = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			req.code = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'd':
			der = 1;
			break;
		case 'v':
			if (util_parse_duration(optarg, &req.validity) != 0 ||
			    req.validity <= 0)
				return cli_errorx(c, CLI_EXIT_USAGE, "--validity "
				    "'%s' is not a duration (2d, 36h)", optarg);
			break;
		default:
			return cli_usage(&cmd_ca_table[6]);
		}
	}
	if (optind + 1 != argc || req.code == NULL)
		return cli_usage(&cmd_ca_table[6]);
	if (c->json && der && out == NULL)
		return cli_errorx(c, CLI_EXIT_USAGE, "--json with --der needs "
		    "--out FILE");
	/* Refuse a bad code before touching the store or the token. */
	if ((ret = pop_check_code(req.code, &c->err)) != 0)
		return cli_error(c, ret);
	memset(&g, 0, sizeof(g));
	if ((ret = store_find_generation(c->st, argv[optind], &g,
	    &c->err)) != 0)
		return cli_error(c, ret);
	snprintf(requester, sizeof(requester), "%s", c->ca.actor);
	req.requester = requester;
	req.now = clock_now();
	if ((ret = pop_issue(&c->ca, &g, &req, &res, &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto done;
	}
	if (util_cert_sha1(res.cert, sha1) != 0 ||
	    pop_encode(res.cert, der, &data, &len) != 0) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "cannot encode the "
		    "verification certificate (serial %s, recorded)",
		    res.serial);
		goto done;
	}
	clock_format(issue_asn1_time(X509_get0_notBefore(res.cert)), nb,
	    sizeof(nb));
	clock_format(issue_asn1_time(X509_get0_notAfter(res.cert)), na,
	    sizeof(na));
	if (c->json) {
		o = json_object();
		json_object_set_new(o, "generation", json_integer(g.id));
		json_object_set_new(o, "code", json_string(req.code));
		json_object_set_new(o, "serial", json_string(res.serial));
		json_object_set_new(o, "sha1", json_string(sha1));
		json_object_set_new(o, "sha256", json_string(res.sha256));
		json_object_set_new(o, "not_before", json_string(nb));
		json_object_set_new(o, "not_after", json_string(na));
		if (out != NULL)
			json_object_set_new(o, "file", json_string(out));
		else if (!der)
			json_object_set_new(o, "pem", json_string((char *)data));
		if (out != NULL && (ret = cli_write_output(c, out, data,
		    len)) != CLI_EXIT_OK) {
			json_decref(o);
			goto done;
		}
		out_object(c, o, NULL);
		json_decref(o);
		ret = CLI_EXIT_OK;
		goto done;
	}
	if ((ret = cli_write_output(c, out, data, len)) != CLI_EXIT_OK)
		goto done;
	/* With the certificate on standard output, the summary goes to
	 * standard error so the output stays a clean PEM or DER. */
	fprintf(out != NULL && strcmp(out, "-") != 0 ? c->out : c->errout,
	    "proof of possession for CA generation %lld, CN=%s\n"
	    "serial:     %s\nvalid:      %s .. %s\nSHA-1:      %s\n"
	    "SHA-256:    %s\n", (long long)g.id, req.code, res.serial, nb, na,
	    sha1, res.sha256);
	ret = CLI_EXIT_OK;
done:
	free(data);
	issue_result_free(&res);
	store_generation_free_fields(&g);
	return ret;
}

static int
cmd_ca_rotate(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "csr-out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	struct ca_rotate_result r;
	const char *csr_out = NULL;
	char when[32];
	json_t *o;
	int ch, ret;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'o')
			return cli_usage(&cmd_ca_table[7]);
		csr_out = optarg;
	}
	if (optind != argc)
		return cli_usage(&cmd_ca_table[7]);
	if ((ret = ca_rotate(&c->ca, clock_now(), &r, &c->err)) != 0)
		return cli_error(c, ret);
	/* The generation is recorded with its CSR: if writing the file
	 * fails, `ca download --csr` still has it. */
	if (r.csr_pem != NULL && csr_out != NULL &&
	    (ret = util_write_file_atomic(csr_out, r.csr_pem,
	    strlen(r.csr_pem), 0644, &c->err)) != 0) {
		fprintf(c->errout, "hsmca: CA generation %lld created, pending, "
		    "but its CSR was not written: %s (`hsmca ca download --csr "
		    "%lld` has it)\n", (long long)r.gen_id, c->err.msg,
		    (long long)r.gen_id);
		ca_rotate_result_free(&r);
		return CLI_EXIT_FAIL;
	}
	if (c->json) {
		o = json_object();
		json_object_set_new(o, "generation", json_integer(r.gen_id));
		json_object_set_new(o, "status", json_string(
		    store_gen_status_name(r.status)));
		json_object_set_new(o, "root", r.root_id ?
		    json_integer(r.root_id) : json_null());
		json_object_set_new(o, "activates", out_time(r.activate_at));
		if (r.csr_pem != NULL)
			json_object_set_new(o, "csr", json_string(r.csr_pem));
		out_object(c, o, NULL);
		json_decref(o);
	} else if (r.status == STORE_GEN_PENDING)
		fprintf(c->out, "CA generation %lld created, pending: the key is "
		    "in the token; get %s signed by your root, then run\n"
		    "  hsmca ca import-cert --gen %lld --cert SIGNED.pem\n",
		    (long long)r.gen_id, csr_out != NULL ? csr_out :
		    "its CSR (`hsmca ca download --csr`)", (long long)r.gen_id);
	else
		fprintf(c->out, "CA generation %lld created (%s), inactive; it "
		    "becomes active at %s (`hsmca ca tick` or hsmcad), or with "
		    "`hsmca ca activate %lld`\n", (long long)r.gen_id,
		    r.root_id != 0 ? "signed by the root in the token" :
		    "self-signed", clock_format(r.activate_at, when,
		    sizeof(when)), (long long)r.gen_id);
	if (r.status != STORE_GEN_PENDING && r.not_after <= r.activate_at)
		fprintf(c->errout, "hsmca: warning: generation %lld ends at %s "
		    "with the root, before it would become active: activate "
		    "it sooner (`hsmca ca activate %lld`) and plan a new "
		    "root\n", (long long)r.gen_id, clock_format(r.not_after,
		    when, sizeof(when)), (long long)r.gen_id);
	ca_rotate_result_free(&r);
	return CLI_EXIT_OK;
}

static int
cmd_ca_activate(struct cli *c, int argc, char **argv)
{
	int64_t id, retired = 0;
	json_t *o;
	int ret, pop = 0;

	if (argc != 2 || argv[1][0] == '-')
		return cli_usage(&cmd_ca_table[8]);
	if ((ret = cli_generation_id(c, argv[1], &id)) != CLI_EXIT_OK)
		return ret;
	if ((ret = ca_activate(&c->ca, id, clock_now(), &pop, &retired,
	    &c->err)) != 0)
		return cli_error(c, ret);
	/* Done either way; relying parties that register a CA by proof of
	 * possession (IoT Hub, DPS, AWS IoT) would refuse its devices. */
	if (!pop)
		fprintf(c->errout, "hsmca: warning: no proof of possession was "
		    "ever issued for CA generation %lld: relying parties that "
		    "verify CAs that way do not trust it yet (`hsmca ca pop "
		    "%lld --code CODE`)\n", (long long)id, (long long)id);
	if (c->json) {
		o = json_object();
		json_object_set_new(o, "generation", json_integer(id));
		json_object_set_new(o, "retired", retired ?
		    json_integer(retired) : json_null());
		json_object_set_new(o, "pop_issued", json_boolean(pop));
		out_object(c, o, NULL);
		json_decref(o);
	} else if (retired != 0)
		fprintf(c->out, "CA generation %lld is active; generation %lld "
		    "is retired (inactive: it still verifies, issues no more)\n",
		    (long long)id, (long long)retired);
	else
		fprintf(c->out, "CA generation %lld is active\n", (long long)id);
	return CLI_EXIT_OK;
}

static int
cmd_ca_revoke(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 }
	};
	struct store_cert_filter f;
	const char *reason_name = NULL;
	int64_t id, valid = 0, responders = 0;
	time_t now = clock_now();
	json_t *o;
	int ch, ret, reason = 0, was_active = 0;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'r')
			return cli_usage(&cmd_ca_table[9]);
		reason_name = optarg;
	}
	if (optind + 1 != argc || reason_name == NULL)
		return cli_usage(&cmd_ca_table[9]);
	if (crl_reason_parse(reason_name, &reason, &c->err) != 0)
		return cli_errorx(c, CLI_EXIT_USAGE, "%s", c->err.msg);
	if ((ret = cli_generation_id(c, argv[optind], &id)) != CLI_EXIT_OK)
		return ret;
	if ((ret = ca_revoke(&c->ca, id, reason, now, &was_active,
	    &c->err)) != 0)
		return cli_error(c, ret);
	memset(&f, 0, sizeof(f));
	f.issuer_id = id;
	f.status = STORE_CERT_VALID;
	f.expired = 0;
	f.now = now;
	if (store_count_certs(c->st, &f, &valid, &c->err) != 0)
		valid = -1;
	/* Its OCSP responder's certificate is hsmca's own: it goes on
	 * answering for the generation and needs no reissuing. */
	f.profile = OCSP_RESPONDER_PROFILE;
	if (valid > 0 && store_count_certs(c->st, &f, &responders,
	    &c->err) == 0)
		valid -= responders;
	if (c->json) {
		o = json_object();
		json_object_set_new(o, "generation", json_integer(id));
		json_object_set_new(o, "reason", json_string(
		    crl_reason_name(reason)));
		json_object_set_new(o, "was_active", json_boolean(was_active));
		json_object_set_new(o, "valid_certificates", valid >= 0 ?
		    json_integer(valid) : json_null());
		out_object(c, o, NULL);
		json_decref(o);
		return CLI_EXIT_OK;
	}
	fprintf(c->out, "CA generation %lld revoked (%s): nothing more is "
	    "issued under it\n", (long long)id, crl_reason_name(reason));
	if (valid > 0)
		fprintf(c->out, "%lld certificates it issued are still valid "
		    "and need reissuing: hsmca cert list --issuer %lld --status "
		    "valid (those of profile %s are its OCSP responder's)\n",
		    (long long)valid, (long long)id, OCSP_RESPONDER_PROFILE);
	if (was_active)
		fprintf(c->out, "it was the active generation: nothing is "
		    "issued until another is activated (`hsmca ca activate "
		    "GEN`, after `hsmca ca rotate` if there is none)\n");
	return CLI_EXIT_OK;
}

static int
cmd_ca_tick(struct cli *c, int argc, char **argv)
{
	struct ca_events ev;
	json_t *rows, *o;
	int ret;

	if (argc != 1)
		return cli_usage(&cmd_ca_table[10]);
	ret = ca_rotation_tick(&c->ca, clock_now(), &ev, &c->err);
	/* What changed before a failure did commit: show it either way. */
	if (c->json) {
		rows = json_array();
		for (size_t i = 0; i < ev.n; i++) {
			o = json_object();
			json_object_set_new(o, "event", json_string(
			    ca_event_kind_name(ev.ev[i].kind)));
			json_object_set_new(o, "generation",
			    json_integer(ev.ev[i].gen_id));
			json_object_set_new(o, "message",
			    json_string(ev.ev[i].msg));
			json_array_append_new(rows, o);
		}
		out_list(c, rows, NULL);
		json_decref(rows);
	} else {
		for (size_t i = 0; i < ev.n; i++)
			fprintf(c->out, "%s\n", ev.ev[i].msg);
		if (ev.n == 0 && ret == 0)
			fprintf(c->out, "nothing to do\n");
	}
	return ret != 0 ? cli_error(c, ret) : CLI_EXIT_OK;
}

const struct cli_cmd cmd_ca_table[] = {
	{ "ca", "init", "[--self-signed | --external --csr-out FILE]",
	  "create the first CA generation with keys generated in the token",
	  "  (default)          a root key and an issuing CA key in the token;\n"
	  "                     the root signs the issuing CA\n"
	  "  --self-signed      one self-signed issuing CA (labs)\n"
	  "  --external         the issuing key in the token, its CSR written to\n"
	  "  --csr-out FILE     FILE for an outside root; then `ca import-cert`\n",
	  CLI_NEED_STORE | CLI_NEED_HSM, cmd_ca_init },
	{ "ca", "import", "--key FILE --cert FILE [--passphrase-source SRC]",
	  "import an existing CA key and certificate into the token",
	  "  --key FILE                PEM private key (encrypted or not)\n"
	  "  --cert FILE               its certificate, then its chain to the root\n"
	  "  --passphrase-source SRC   file:PATH or env:NAME holding the passphrase\n",
	  CLI_NEED_STORE | CLI_NEED_HSM, cmd_ca_import },
	{ "ca", "import-cert", "--cert FILE [--gen ID]",
	  "import the certificate an outside root signed for a pending generation",
	  "  --cert FILE   the certificate, followed by its chain to the root\n"
	  "  --gen ID      the pending generation (default: the only one)\n",
	  CLI_NEED_STORE | CLI_NEED_HSM, cmd_ca_import_cert },
	{ "ca", "list", "", "list CA generations", NULL,
	  CLI_NEED_STORE, cmd_ca_list },
	{ "ca", "show", "[--pem] ID|THUMBPRINT", "show one CA generation",
	  "  --pem   also print the certificate\n",
	  CLI_NEED_STORE, cmd_ca_show },
	{ "ca", "download", "[--chain | --der | --csr] [--out FILE] ID|THUMBPRINT",
	  "write a CA generation's certificate (PEM, or DER for .cer)",
	  "  --chain          append the chain up to the root\n"
	  "  --csr            the CSR of a generation made for an outside root\n"
	  "  --der            DER instead of PEM\n"
	  "  -o, --out FILE   write to FILE instead of standard output\n",
	  CLI_NEED_STORE, cmd_ca_download },
	{ "ca", "pop", "--code CODE [--der] [--out FILE] [--validity D] ID|THUMBPRINT",
	  "issue a proof-of-possession (verification) certificate for a cloud service",
	  "  --code CODE      the service's verification code: 1-64 letters,\n"
	  "                   digits or '-'; becomes the subject CN\n"
	  "  --der            DER (for a .cer file) instead of PEM\n"
	  "  -o, --out FILE   write to FILE instead of standard output\n"
	  "  --validity D     how long it is valid (default 2d, at most 30d)\n"
	  "The certificate is signed by the generation's key in the token and\n"
	  "recorded in the store under profile \"pop\" (see `cert list`).\n",
	  CLI_NEED_STORE | CLI_NEED_HSM, cmd_ca_pop },
	{ "ca", "rotate", "[--csr-out FILE]",
	  "create the next CA generation now, with a new key in the token",
	  "  --csr-out FILE   with an outside root: write the new generation's\n"
	  "                   CSR to FILE (`ca download --csr` has it too)\n"
	  "Signed by the root when the root is in the token, self-signed if the\n"
	  "CA is, else pending until `ca import-cert`. It stays inactive for\n"
	  "[ca] activation-delay, then `ca tick` or hsmcad activates it.\n",
	  CLI_NEED_STORE | CLI_NEED_HSM, cmd_ca_rotate },
	{ "ca", "activate", "ID|THUMBPRINT",
	  "make a CA generation the active one; the active one is retired",
	  "Warns if no proof of possession was ever issued for it.\n",
	  CLI_NEED_STORE, cmd_ca_activate },
	{ "ca", "revoke", "--reason R ID|THUMBPRINT",
	  "revoke a CA generation: nothing more is issued under it",
	  "  --reason R   an RFC 5280 reason: keyCompromise, cACompromise,\n"
	  "               superseded, cessationOfOperation ...\n"
	  "`cert list --issuer ID --status valid` lists what to reissue.\n",
	  CLI_NEED_STORE, cmd_ca_revoke },
	{ "ca", "tick", "",
	  "run one rotation step now, as hsmcad does on its timer (for cron)",
	  "Activates a generation whose time has come and retires the one it\n"
	  "replaces, marks expired generations, and creates the next one\n"
	  "[ca] renew-before ahead of the active one's expiry.\n",
	  CLI_NEED_STORE | CLI_NEED_HSM, cmd_ca_tick },
	{ NULL, NULL, NULL, NULL, NULL, 0, NULL }
};
