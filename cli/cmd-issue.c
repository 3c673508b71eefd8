/* cmd-issue.c: hsmca issue --csr FILE --profile NAME [--out FILE] */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "hsmca/clock.h"
#include "hsmca/csr.h"
#include "hsmca/issue.h"
#include "hsmca/util.h"

#include "cli.h"

/* The certificate, then (with_chain) its issuer and the issuer's chain. */
static int
cert_pem(X509 *x, const struct issuer *iss, int with_chain, char **out)
{
	BIO *b = BIO_new(BIO_s_mem());
	int ok;

	if (b == NULL)
		return -1;
	ok = PEM_write_bio_X509(b, x);
	if (ok && with_chain)
		ok = PEM_write_bio_X509(b, iss->cert);
	for (int i = 0; ok && with_chain && i < sk_X509_num(iss->chain); i++)
		ok = PEM_write_bio_X509(b, sk_X509_value(iss->chain, i));
	*out = ok ? util_bio_string(b, NULL) : NULL;
	BIO_free(b);
	return *out == NULL ? -1 : 0;
}

static int
cmd_issue(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "csr", required_argument, NULL, 'r' },
		{ "profile", required_argument, NULL, 'p' },
		{ "out", required_argument, NULL, 'o' },
		{ "chain", no_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 }
	};
	const char *csr_path = NULL, *profile_name = NULL, *out = NULL;
	unsigned char *buf = NULL;
	size_t len = 0;
	struct csr *csr = NULL;
	struct issuer *iss = NULL;
	struct issue_request req;
	struct issue_result res;
	char requester[128], *pem = NULL;
	json_t *o;
	int ch, ret, with_chain = 0;

	memset(&res, 0, sizeof(res));
	while ((ch = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			csr_path = optarg;
			break;
		case 'p':
			profile_name = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'c':
			with_chain = 1;
			break;
		default:
			return cli_usage(&cmd_issue_table[0]);
		}
	}
	if (csr_path == NULL || profile_name == NULL || optind != argc)
		return cli_usage(&cmd_issue_table[0]);

	memset(&req, 0, sizeof(req));
	if ((req.profile = config_profile(c->cfg, profile_name)) == NULL) {
		ret = cli_errorx(c, CLI_EXIT_NOT_FOUND, "unknown profile '%s'",
		    profile_name);
		goto out;
	}
	if ((ret = cli_read_input(c, csr_path, CSR_MAX_SIZE, &buf,
	    &len)) != CLI_EXIT_OK)
		goto out;
	if ((ret = csr_parse(buf, len, &csr, &c->err)) != 0 ||
	    (ret = ca_open_active(&c->ca, &iss, &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	snprintf(requester, sizeof(requester), "%s", c->ca.actor);
	req.csr = csr;
	req.requester = requester;
	req.now = clock_now();
	if ((ret = issue_certificate(c->hsm, c->st, iss, &req, &res,
	    &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	if (cert_pem(res.cert, iss, with_chain, &pem) != 0) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "cannot encode the "
		    "certificate (it is recorded as serial %s)", res.serial);
		goto out;
	}
	if (out == NULL && !c->json) {
		ret = cli_write_output(c, NULL, pem, strlen(pem));
		goto out;
	}
	if (out != NULL && (ret = cli_write_output(c, out, pem,
	    strlen(pem))) != CLI_EXIT_OK)
		goto out;
	o = json_object();
	json_object_set_new(o, "serial", json_string(res.serial));
	json_object_set_new(o, "issuer", json_integer(iss->gen_id));
	json_object_set_new(o, "sha256", json_string(res.sha256));
	json_object_set_new(o, "profile", json_string(req.profile->name));
	if (out != NULL)
		json_object_set_new(o, "file", json_string(out));
	else
		json_object_set_new(o, "pem", json_string(pem));
	if (c->json)
		out_object(c, o, NULL);
	else
		fprintf(c->out, "issued serial %s (generation %lld) to %s\n", res.serial,
		    (long long)iss->gen_id, out);
	json_decref(o);
	ret = CLI_EXIT_OK;
out:
	free(pem);
	issue_result_free(&res);
	issuer_free(iss);
	csr_free(csr);
	free(buf);
	return ret;
}

const struct cli_cmd cmd_issue_table[] = {
	{ NULL, "issue", "--csr FILE --profile NAME [--out FILE] [--chain]",
	  "issue a certificate for a CSR with the active CA generation",
	  "  --csr FILE       PKCS#10 request, PEM or DER\n"
	  "  --profile NAME   device, server, edge-ca or a profile of the config\n"
	  "  -o, --out FILE   write the PEM certificate to FILE (default: stdout)\n"
	  "  --chain          append the CA chain\n",
	  CLI_NEED_STORE | CLI_NEED_HSM, cmd_issue },
	{ NULL, NULL, NULL, NULL, NULL, 0, NULL }
};
