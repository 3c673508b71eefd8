/* cmd-crl.c: hsmca crl: build, sign (in the HSM) and write the CRL of a
 * CA generation. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "hsmca/clock.h"
#include "hsmca/crl.h"
#include "hsmca/util.h"

#include "cli.h"

/* DER to PEM in a memory BIO, without decoding the CRL again (it may
 * be large). */
static BIO *
crl_pem(const unsigned char *der, size_t len)
{
	BIO *b;

	if ((b = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	if (PEM_write_bio(b, PEM_STRING_X509_CRL, "", der, (long)len) <= 0) {
		BIO_free(b);
		return NULL;
	}
	return b;
}

static int
cmd_crl(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, 'c' },
		{ "out", required_argument, NULL, 'o' },
		{ "der", no_argument, NULL, 'd' },
		{ "next-update", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	struct store_generation g;
	struct issuer *iss = NULL;
	struct crl_info info;
	const char *ref = NULL, *out = NULL;
	unsigned char *der = NULL;
	char *pem = NULL, t1[32], t2[32], object[32], detail[128];
	size_t len = 0, pemlen = 0;
	BIO *b = NULL;
	long n;
	int64_t secs = c->cfg->ca.crl_next_update;	/* [ca] crl-next-update */
	json_t *o;
	int ch, ret, as_der = 0;

	memset(&g, 0, sizeof(g));
	while ((ch = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			ref = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'd':
			as_der = 1;
			break;
		case 'n':
			if (util_parse_duration(optarg, &secs) != 0 || secs <= 0)
				return cli_errorx(c, CLI_EXIT_USAGE, "--next-update "
				    "'%s' is not a duration (7d, 36h ...)", optarg);
			if (secs > CRL_NEXT_UPDATE_MAX)
				return cli_errorx(c, CLI_EXIT_USAGE, "--next-update "
				    "%s is refused: a CRL is reissued at least every "
				    "%lld days", optarg,
				    (long long)(CRL_NEXT_UPDATE_MAX / 86400));
			break;
		default:
			return cli_usage(&cmd_crl_table[0]);
		}
	}
	if (optind != argc)
		return cli_usage(&cmd_crl_table[0]);
	if (c->json && out == NULL && as_der)
		return cli_errorx(c, CLI_EXIT_USAGE, "--json with --der needs "
		    "--out FILE");
	ret = ref != NULL ? store_find_generation(c->st, ref, &g, &c->err) :
	    store_active_generation(c->st, &g, &c->err);
	if (ret != 0)
		return cli_error(c, ret);
	if ((ret = issuer_open(c->hsm, c->st, &g, &c->cfg->ca, &iss,
	    &c->err)) != 0 ||
	    (ret = crl_build(c->hsm, c->st, iss, clock_now(), secs, &der, &len,
	    &info, &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	/* Recorded before it is released; the CRL number is already
	 * spent either way. */
	snprintf(object, sizeof(object), "gen:%lld", (long long)g.id);
	snprintf(detail, sizeof(detail), "CRL %lld: %zu revoked, next "
	    "update %s", (long long)info.number, info.entries,
	    clock_format(info.next_update, t1, sizeof(t1)));
	if ((ret = cli_audit(c, AUDIT_CRL, object, AUDIT_OK, detail)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	if (!as_der) {
		if ((b = crl_pem(der, len)) == NULL ||
		    (n = BIO_get_mem_data(b, &pem)) <= 0) {
			ret = cli_errorx(c, CLI_EXIT_FAIL, "cannot encode the "
			    "CRL as PEM");
			goto out;
		}
		pemlen = (size_t)n;
		OPENSSL_free(der);	/* the PEM is what is written */
		der = NULL;
	}
	if ((out != NULL || !c->json) && (ret = cli_write_output(c, out,
	    as_der ? (void *)der : (void *)pem, as_der ? len : pemlen)) !=
	    CLI_EXIT_OK)
		goto out;
	if (c->json) {
		o = json_object();
		json_object_set_new(o, "generation", json_integer(g.id));
		json_object_set_new(o, "number", json_integer(info.number));
		json_object_set_new(o, "this_update", out_time(info.this_update));
		json_object_set_new(o, "next_update", out_time(info.next_update));
		json_object_set_new(o, "entries", json_integer(
		    (json_int_t)info.entries));
		json_object_set_new(o, "out", out != NULL ? json_string(out) :
		    json_null());
		if (out == NULL)
			json_object_set_new(o, "pem", json_stringn(pem,
			    pemlen));
		out_object(c, o, NULL);
		json_decref(o);
	} else if (out != NULL)
		fprintf(c->out, "CRL %lld of CA generation %lld: %zu revoked, this update "
		    "%s, next update %s; written to %s\n",
		    (long long)info.number, (long long)g.id, info.entries,
		    clock_format(info.this_update, t1, sizeof(t1)),
		    clock_format(info.next_update, t2, sizeof(t2)), out);
	ret = CLI_EXIT_OK;
out:
	BIO_free(b);
	OPENSSL_free(der);
	issuer_free(iss);
	store_generation_free_fields(&g);
	return ret;
}

const struct cli_cmd cmd_crl_table[] = {
	{ NULL, "crl", "[--ca GEN] [--out FILE] [--der] [--next-update DUR]",
	  "sign a CRL of a CA generation in the HSM",
	  "  --ca GEN            the generation (id or thumbprint; default: the\n"
	  "                      active one)\n"
	  "  -o, --out FILE      write to FILE instead of standard output\n"
	  "  --der               DER instead of PEM\n"
	  "  --next-update DUR   nextUpdate after thisUpdate (default: the\n"
	  "                      config's crl-next-update, 7d; at\n"
	  "                      most 10d)\n"
	  "Each CRL takes the generation's next CRL number; it lists every\n"
	  "revoked certificate until the certificate expires.\n",
	  CLI_NEED_STORE | CLI_NEED_HSM, cmd_crl },
	{ NULL, NULL, NULL, NULL, NULL, 0, NULL }
};
