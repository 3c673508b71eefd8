/* cmd-cert.c: hsmca cert list | cert show | cert sweep */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "hsmca/clock.h"
#include "hsmca/crl.h"
#include "hsmca/issue.h"
#include "hsmca/serial.h"
#include "hsmca/util.h"

#include "cli.h"

static json_t *
cert_json(const struct store_cert *r, time_t now)
{
	json_t *o = json_object();
	const char *status = store_cert_status_name(r->status);

	if (r->status == STORE_CERT_VALID && r->not_after < now)
		status = "expired";
	json_object_set_new(o, "serial", json_string(r->serial));
	json_object_set_new(o, "issuer", json_integer(r->issuer_id));
	json_object_set_new(o, "status", json_string(status));
	json_object_set_new(o, "subject", json_string(r->subject ? r->subject : ""));
	json_object_set_new(o, "san", json_string(r->sans ? r->sans : ""));
	json_object_set_new(o, "not_before", out_time(r->not_before));
	json_object_set_new(o, "not_after", out_time(r->not_after));
	json_object_set_new(o, "profile", json_string(r->profile ? r->profile : ""));
	json_object_set_new(o, "requester", json_string(r->requester ?
	    r->requester : ""));
	json_object_set_new(o, "sha256", r->sha256[0] ? json_string(r->sha256) :
	    json_null());
	json_object_set_new(o, "issued", out_time(r->created_at));
	if (r->status == STORE_CERT_REVOKED) {
		json_object_set_new(o, "revoked", out_time(r->revoked_at));
		json_object_set_new(o, "revocation_reason",
		    json_string(crl_reason_name(r->revoke_reason)));
	}
	return o;
}

static int
cmd_cert_list(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "issuer", required_argument, NULL, 'i' },
		{ "status", required_argument, NULL, 's' },
		{ "profile", required_argument, NULL, 'p' },
		{ "limit", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct out_col cols[] = {
		{ "serial", "SERIAL" }, { "issuer", "GEN" },
		{ "status", "STATUS" }, { "profile", "PROFILE" },
		{ "not_after", "NOT AFTER" }, { "subject", "SUBJECT" },
		{ NULL, NULL }
	};
	static const struct out_col revoked_cols[] = {
		{ "serial", "SERIAL" }, { "issuer", "GEN" },
		{ "revoked", "REVOKED" }, { "revocation_reason", "REASON" },
		{ "not_after", "NOT AFTER" }, { "subject", "SUBJECT" },
		{ NULL, NULL }
	};
	struct store_cert_filter f;
	struct store_cert *v = NULL;
	enum store_cert_status s;
	size_t n = 0;
	json_t *rows;
	int ch, ret;

	memset(&f, 0, sizeof(f));
	f.status = -1;
	f.expired = -1;
	f.now = clock_now();
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			if ((ret = cli_generation_id(c, optarg,
			    &f.issuer_id)) != CLI_EXIT_OK)
				return ret;
			break;
		case 's':
			if (strcmp(optarg, "expired") == 0) {
				f.status = STORE_CERT_VALID;
				f.expired = 1;
			} else if (store_cert_status_parse(optarg, &s) == 0) {
				f.status = (int)s;
				if (s == STORE_CERT_VALID)
					f.expired = 0;
			} else
				return cli_errorx(c, CLI_EXIT_USAGE, "unknown "
				    "status '%s' (valid, expired, revoked, "
				    "reserved, failed)", optarg);
			break;
		case 'p':
			f.profile = optarg;
			break;
		case 'l': {
			long long lim;

			if (cli_number(c, "--limit", optarg, 1, INT32_MAX,
			    &lim) != 0)
				return CLI_EXIT_USAGE;
			f.limit = (int)lim;
			break;
		}
		default:
			return cli_usage(&cmd_cert_table[0]);
		}
	}
	if (optind != argc)
		return cli_usage(&cmd_cert_table[0]);
	if ((ret = store_list_certs(c->st, &f, &v, &n, &c->err)) != 0)
		return cli_error(c, ret);
	rows = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(rows, cert_json(&v[i], f.now));
	out_list(c, rows, f.status == STORE_CERT_REVOKED ? revoked_cols : cols);
	json_decref(rows);
	store_certs_free(v, n);
	return CLI_EXIT_OK;
}

static int
cmd_cert_show(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "issuer", required_argument, NULL, 'i' },
		{ "pem", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct out_col fields[] = {
		{ "serial", "Serial" }, { "issuer", "Issuer generation" },
		{ "status", "Status" }, { "subject", "Subject" },
		{ "san", "Subject alt names" }, { "not_before", "Not before" },
		{ "not_after", "Not after" }, { "profile", "Profile" },
		{ "requester", "Requester" }, { "sha256", "SHA-256" },
		{ "issued", "Issued" }, { "revoked", "Revoked" },
		{ "revocation_reason", "Reason" }, { NULL, NULL }
	};
	struct store_cert r;
	char serial[SERIAL_HEX_MAX];
	int64_t issuer = 0;
	json_t *o;
	int ch, ret, pem = 0;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			if ((ret = cli_generation_id(c, optarg, &issuer)) != CLI_EXIT_OK)
				return ret;
			break;
		case 'p':
			pem = 1;
			break;
		default:
			return cli_usage(&cmd_cert_table[1]);
		}
	}
	if (optind + 1 != argc)
		return cli_usage(&cmd_cert_table[1]);
	if (serial_normalize(argv[optind], serial) != 0)
		return cli_errorx(c, CLI_EXIT_USAGE, "'%s' is not a serial "
		    "number (hex, at most 20 octets)", argv[optind]);
	memset(&r, 0, sizeof(r));
	if ((ret = store_get_cert(c->st, issuer, serial, &r, &c->err)) != 0)
		return cli_error(c, ret);
	o = cert_json(&r, clock_now());
	if (r.der != NULL) {
		const unsigned char *p = r.der;
		X509 *x = d2i_X509(NULL, &p, (long)r.der_len);
		BIO *b = BIO_new(BIO_s_mem());
		char *data;
		long n;

		if (x != NULL && b != NULL && PEM_write_bio_X509(b, x)) {
			n = BIO_get_mem_data(b, &data);
			json_object_set_new(o, "pem", json_stringn(data,
			    (size_t)n));
		}
		X509_free(x);
		BIO_free(b);
	}
	out_object(c, o, fields);
	if (pem && !c->json && json_object_get(o, "pem") != NULL)
		fputs(json_string_value(json_object_get(o, "pem")), c->out);
	json_decref(o);
	store_cert_free_fields(&r);
	return CLI_EXIT_OK;
}

/* The least age --older-than takes. A live issuance holds its
 * reservation for one signature and two commits; an `hsmca issue`
 * waiting for a slow token holds it longer, and one swept under it fails
 * (its certificate is never released). An hour is far beyond the first
 * and leaves an operator time to see the second. */
#define CERT_SWEEP_MIN_AGE	3600

struct cert_sweep {
	json_t	*rows;
	time_t	 now;
};

static void
cert_sweep_row(const struct store_cert *r, void *arg)
{
	struct cert_sweep *p = arg;

	json_array_append_new(p->rows, cert_json(r, p->now));
}

static int
cmd_cert_sweep(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "older-than", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct out_col cols[] = {
		{ "serial", "SERIAL" }, { "issuer", "GEN" },
		{ "issued", "RESERVED" }, { "profile", "PROFILE" },
		{ "requester", "REQUESTER" }, { NULL, NULL }
	};
	struct cert_sweep p;
	char shown[32], least[32];
	int64_t age = 24 * 3600;
	size_t n = 0;
	json_t *o;
	int ch, ret, quiet = 0;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			if (util_parse_duration(optarg, &age) != 0)
				return cli_errorx(c, CLI_EXIT_USAGE, "'%s' is "
				    "not a duration (1d, 36h ...)", optarg);
			if (age < CERT_SWEEP_MIN_AGE)
				return cli_errorx(c, CLI_EXIT_USAGE,
				    "--older-than %s: less than %s would fail "
				    "the reservations of issuances still "
				    "signing", optarg, util_format_duration(
				    CERT_SWEEP_MIN_AGE, least, sizeof(least)));
			break;
		case 'q':
			quiet = 1;
			break;
		default:
			return cli_usage(&cmd_cert_table[2]);
		}
	}
	if (optind != argc)
		return cli_usage(&cmd_cert_table[2]);
	p.now = clock_now();
	if ((p.rows = json_array()) == NULL)
		return cli_errorx(c, CLI_EXIT_FAIL, "out of memory");
	ret = issue_sweep_reserved(c->st, p.now, age, c->ca.actor,
	    cert_sweep_row, &p, &n, &c->err);
	util_format_duration(age, shown, sizeof(shown));
	if (c->json) {
		o = json_object();
		json_object_set_new(o, "older_than", json_string(shown));
		json_object_set_new(o, "marked_failed", json_integer(
		    (json_int_t)n));
		if (!quiet)
			json_object_set(o, "reservations", p.rows);
		out_object(c, o, NULL);
		json_decref(o);
	} else {
		fprintf(c->out, "%zu reservation%s older than %s marked "
		    "failed%s\n", n, n == 1 ? "" : "s", shown, n == 0 ? "" :
		    ": issuances that never completed, their serials never "
		    "used");
		if (!quiet && n > 0)
			out_list(c, p.rows, cols);
	}
	json_decref(p.rows);
	/* Those committed before an error are failed for good: said. */
	if (ret != 0)
		return cli_error(c, ret);
	return CLI_EXIT_OK;
}

const struct cli_cmd cmd_cert_table[] = {
	{ "cert", "list", "[--issuer ID] [--status S] [--profile P] [--limit N]",
	  "list issued certificates",
	  "  --issuer ID   only those of one CA generation (id or thumbprint)\n"
	  "  --status S    valid, expired, revoked, reserved or failed\n"
	  "                (--issuer GEN --status valid after `ca revoke GEN`:\n"
	  "                every certificate to reissue)\n"
	  "  --profile P   only those of one profile\n"
	  "  --limit N     at most N rows\n",
	  CLI_NEED_STORE, cmd_cert_list },
	{ "cert", "show", "[--issuer ID] [--pem] SERIAL",
	  "show one issued certificate",
	  "  --issuer ID   the generation, when a serial is known under several\n"
	  "  --pem         also print the certificate\n",
	  CLI_NEED_STORE, cmd_cert_show },
	{ "cert", "sweep", "[--older-than DURATION] [--quiet]",
	  "mark failed the reservations issuances left behind",
	  "  --older-than D  reserved more than D ago (default 1d, at least 1h)\n"
	  "                  and never recorded: an issuance that died between\n"
	  "                  reserving its serial and recording its certificate\n"
	  "  --quiet         print the count only, not the serials\n",
	  CLI_NEED_STORE, cmd_cert_sweep },
	{ NULL, NULL, NULL, NULL, NULL, 0, NULL }
};
