/* cmd-expiring.c: hsmca expiring: CA generations and issued certificates
 * whose notAfter falls before now + a window, soonest first. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hsmca/clock.h"
#include "hsmca/pop.h"
#include "hsmca/util.h"

#include "cli.h"

#define EXPIRING_DEFAULT	(30 * 86400)
#define DAY			86400

enum expiring_kind {
	EXPIRING_CA = 0x01,
	EXPIRING_CERT = 0x02
};

struct expiring_row {
	time_t	 not_after;
	json_t	*obj;
};

/* Whole days from now to t (negative once expired), truncated. */
static long long
days_left(time_t t, time_t now)
{
	return ((long long)t - (long long)now) / DAY;
}

static int
row_cmp(const void *a, const void *b)
{
	const struct expiring_row *x = a, *y = b;

	if (x->not_after != y->not_after)
		return x->not_after < y->not_after ? -1 : 1;
	return 0;
}

static json_t *
row_json(const char *kind, json_t *id, int64_t gen, const char *status,
    const char *subject, const char *profile, time_t not_after, time_t now)
{
	json_t *o = json_object();

	json_object_set_new(o, "kind", json_string(kind));
	json_object_set_new(o, "id", id);
	json_object_set_new(o, "generation", json_integer(gen));
	json_object_set_new(o, "status", json_string(status));
	json_object_set_new(o, "not_after", out_time(not_after));
	json_object_set_new(o, "days_left", json_integer(days_left(not_after,
	    now)));
	json_object_set_new(o, "expired", json_boolean(not_after < now));
	json_object_set_new(o, "profile", profile != NULL ?
	    json_string(profile) : json_null());
	json_object_set_new(o, "subject", json_string(subject != NULL ?
	    subject : ""));
	return o;
}

static int
rows_add(struct expiring_row **v, size_t *n, size_t *cap, time_t not_after,
    json_t *obj)
{
	struct expiring_row *nv;

	if (*n == *cap) {
		*cap = *cap == 0 ? 16 : *cap * 2;
		if ((nv = reallocarray(*v, *cap, sizeof(**v))) == NULL) {
			json_decref(obj);
			return -1;
		}
		*v = nv;
	}
	(*v)[*n].not_after = not_after;
	(*v)[*n].obj = obj;
	(*n)++;
	return 0;
}

static int
cmd_expiring(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "within", required_argument, NULL, 'w' },
		{ "kind", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct out_col cols[] = {
		{ "kind", "KIND" }, { "id", "ID" }, { "generation", "GEN" },
		{ "status", "STATUS" }, { "not_after", "NOT AFTER" },
		{ "days_left", "DAYS" }, { "profile", "PROFILE" },
		{ "subject", "SUBJECT" }, { NULL, NULL }
	};
	struct store_generation *gens = NULL;
	struct store_cert *certs = NULL;
	struct store_cert_filter f;
	struct expiring_row *rows = NULL;
	size_t ngens = 0, ncerts = 0, nrows = 0, cap = 0;
	unsigned int kinds = EXPIRING_CA | EXPIRING_CERT;
	int64_t within = EXPIRING_DEFAULT;
	time_t now = clock_now(), limit;
	json_t *arr;
	int ch, ret;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'w':
			if (util_parse_duration(optarg, &within) != 0)
				return cli_errorx(c, CLI_EXIT_USAGE, "--within "
				    "'%s' is not a duration (30d, 12h, 1y)",
				    optarg);
			break;
		case 'k':
			if (strcmp(optarg, "ca") == 0)
				kinds = EXPIRING_CA;
			else if (strcmp(optarg, "cert") == 0)
				kinds = EXPIRING_CERT;
			else
				return cli_errorx(c, CLI_EXIT_USAGE, "--kind is "
				    "ca or cert, not '%s'", optarg);
			break;
		case 'j':
			c->json = 1;
			break;
		default:
			return cli_usage(&cmd_expiring_table[0]);
		}
	}
	if (optind != argc)
		return cli_usage(&cmd_expiring_table[0]);
	limit = now + (time_t)within;

	if (kinds & EXPIRING_CA) {
		if ((ret = store_list_generations(c->st, &gens, &ngens,
		    &c->err)) != 0) {
			ret = cli_error(c, ret);
			goto out;
		}
		/* If nothing can issue, the generation issuance is stuck
		 * on stays listed however long ago it expired. */
		size_t stalled = ca_stalled_generation(gens, ngens, now);

		for (size_t i = 0; i < ngens; i++) {
			const struct store_generation *g = &gens[i];

			/* Pending ones have no notAfter, revoked ones no
			 * longer matter; expired ones for as long as the
			 * window reaches back. */
			if (g->cert_der == NULL || g->not_after >= limit ||
			    (g->status != STORE_GEN_ACTIVE &&
			    g->status != STORE_GEN_INACTIVE &&
			    (g->status != STORE_GEN_EXPIRED ||
			    (g->not_after < now - (time_t)within &&
			    i != stalled))))
				continue;
			if (rows_add(&rows, &nrows, &cap, g->not_after,
			    row_json("ca", json_integer(g->id), g->id,
			    store_gen_status_name(ca_effective_status(g, now)),
			    g->subject, NULL, g->not_after, now)) != 0)
				goto nomem;
		}
	}
	if (kinds & EXPIRING_CERT) {
		/* Valid certificates with notAfter < limit: the store's
		 * "expired" filter, asked at the end of the window. */
		memset(&f, 0, sizeof(f));
		f.status = STORE_CERT_VALID;
		f.expired = 1;
		f.now = limit;
		if ((ret = store_list_certs(c->st, &f, &certs, &ncerts,
		    &c->err)) != 0) {
			ret = cli_error(c, ret);
			goto out;
		}
		for (size_t i = 0; i < ncerts; i++) {
			const struct store_cert *r = &certs[i];

			/* Proofs of possession are meant to lapse. */
			if (r->profile != NULL &&
			    strcmp(r->profile, POP_PROFILE) == 0)
				continue;
			if (rows_add(&rows, &nrows, &cap, r->not_after,
			    row_json("cert", json_string(r->serial),
			    r->issuer_id, r->not_after < now ? "expired" :
			    "valid", r->subject, r->profile, r->not_after,
			    now)) != 0)
				goto nomem;
		}
	}
	if (nrows > 0)
		qsort(rows, nrows, sizeof(*rows), row_cmp);
	arr = json_array();
	for (size_t i = 0; i < nrows; i++) {
		json_array_append_new(arr, rows[i].obj);
		rows[i].obj = NULL;
	}
	if (c->json || nrows > 0)
		out_list(c, arr, cols);
	else {
		char buf[32];

		fprintf(c->out, "nothing expires before %s\n",
		    clock_format(limit, buf, sizeof(buf)));
	}
	json_decref(arr);
	ret = CLI_EXIT_OK;
	goto out;
nomem:
	ret = cli_errorx(c, CLI_EXIT_FAIL, "out of memory");
out:
	for (size_t i = 0; i < nrows; i++)
		json_decref(rows[i].obj);
	free(rows);
	store_generations_free(gens, ngens);
	store_certs_free(certs, ncerts);
	return ret;
}

const struct cli_cmd cmd_expiring_table[] = {
	{ NULL, "expiring", "[--within DURATION] [--kind ca|cert] [--json]",
	  "list CA generations and certificates expiring soon or expired",
	  "  --within D       the window ahead of now (default 30d); already\n"
	  "                   expired ones are listed too, with negative days\n"
	  "  --kind ca|cert   only CA generations, or only issued certificates\n"
	  "  --json           JSON output (as the global --json)\n"
	  "Only active and inactive generations and valid certificates are\n"
	  "listed, soonest first; proof-of-possession certificates (`ca pop`)\n"
	  "are left out.\n",
	  CLI_NEED_STORE, cmd_expiring },
	{ NULL, NULL, NULL, NULL, NULL, 0, NULL }
};
